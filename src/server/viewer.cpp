#include "server/viewer.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/bounded_queue.hpp"
#include "core/error.hpp"
#include "core/fps_meter.hpp"
#include "io/fmp4_muxer.hpp"
#include "io/jpeg_encoder.hpp"
#include "io/video_decoder.hpp"

namespace vapipe::server {

namespace {

using Clock = std::chrono::steady_clock;

enum class ClientKind : std::uint8_t { kVideo, kJpeg };

constexpr std::string_view kVideoPath = "/ws/video";
constexpr std::string_view kJpegPath = "/ws/jpeg";
// Records kept for pairing with their packets: more than any decoder's reorder depth.
constexpr std::size_t kMaxPendingRecords = 64;

struct Client {
  std::shared_ptr<WebSocketConnection> connection;
  ClientKind kind = ClientKind::kVideo;
  bool hello_sent = false;  // the init segment (video) or the stream description (JPEG) of this stream
  bool started = false;     // video: fragments flow from a key frame on
};

// What the output thread hands the viewer thread. Packets are references (no copy of the payload).
struct Event {
  enum class Kind : std::uint8_t { kPacket, kRecord };
  Kind kind = Kind::kPacket;
  std::uint64_t stream = 0;       // video_started() count when it was made
  std::uint64_t frames_done = 0;  // frame_done() count when it was made (a record: its own number)
  io::PacketPtr packet;
  std::string record;  // the JSON Lines record
  double pts_seconds = -1.0;
};

struct PendingRecord {
  double pts_seconds = -1.0;
  std::uint64_t number = 0;  // frame_done() count
  std::string json;
};

std::string control_message(const nlohmann::json& message) { return message.dump(); }

}  // namespace

// One channel's tap: the output thread's side only checks an atomic and queues references; the viewer
// thread muxes, decodes, encodes and sends.
class ChannelView final : public pipeline::ChannelTap {
 public:
  ChannelView(pipeline::ChannelInfo info, const ViewerOptions& options,
              std::function<void(ChannelView*)> on_closed)
      : info_(std::move(info)),
        options_(options),
        on_closed_(std::move(on_closed)),
        events_(options.queue_events) {
    worker_ = std::thread([this] { run(); });
  }

  ~ChannelView() override {
    events_.close();
    if (worker_.joinable()) worker_.join();
  }

  const std::string& name() const { return info_.name; }

  // ---- ChannelTap, on the channel's output thread: never blocks.
  bool wants_video() const override { return true; }

  void video_started(const AVCodecParameters& codec, AVRational time_base, AVRational frame_rate) override {
    std::lock_guard lock(stream_mutex_);
    codec_ = io::copy_codec_parameters(codec);
    time_base_ = time_base;
    frame_rate_ = frame_rate;
    stream_.fetch_add(1, std::memory_order_release);
    resync_ = true;
  }

  void video_stopped() override {
    std::lock_guard lock(stream_mutex_);
    codec_.reset();
    stream_.fetch_add(1, std::memory_order_release);
  }

  void video_packet(const AVPacket& packet) override {
    if (watchers_.load(std::memory_order_acquire) == 0) {
      resync_ = true;  // whoever comes next starts at a key frame
      return;
    }
    const bool key = (packet.flags & AV_PKT_FLAG_KEY) != 0;
    if (resync_ && !key) return;
    Event event;
    event.kind = Event::Kind::kPacket;
    event.stream = stream_.load(std::memory_order_acquire);
    event.frames_done = frames_done_;
    event.packet = io::make_packet();
    if (av_packet_ref(event.packet.get(), &packet) < 0) fail("out of memory");
    // A lost packet breaks every frame up to the next key frame: skip to it rather than send garbage.
    resync_ = !events_.try_push(std::move(event));
  }

  void frame_done(const pipeline::FrameRecord& record, std::string_view json_line, const AVFrame*) override {
    ++frames_done_;
    if (watchers_.load(std::memory_order_acquire) == 0) return;
    Event event;
    event.kind = Event::Kind::kRecord;
    event.stream = stream_.load(std::memory_order_acquire);
    event.frames_done = frames_done_;
    event.record.assign(json_line);
    event.pts_seconds = record.pts_seconds;
    events_.try_push(std::move(event));  // a lost record costs one frame's boxes
  }

  // The one call that waits, briefly: the viewer thread skips what is still queued (the channel is gone),
  // tells its clients and ends, so a removed channel leaves no thread behind (at most one fragment or
  // picture in progress is waited for).
  void closed() override {
    closing_.store(true, std::memory_order_release);
    events_.close();
    if (worker_.joinable()) worker_.join();
    if (on_closed_) on_closed_(this);
  }

  // ---- Clients, on the server thread.
  void add_client(const std::shared_ptr<WebSocketConnection>& connection, ClientKind kind) {
    std::lock_guard lock(clients_mutex_);
    if (events_.closed()) {
      connection->send_text(control_message({{"type", "closed"}, {"channel", info_.name}}), false);
      connection->close();
      return;
    }
    clients_.push_back(Client{connection, kind});
    watchers_.fetch_add(1, std::memory_order_acq_rel);
  }

  void remove_client(const WebSocketConnection* connection) {
    std::lock_guard lock(clients_mutex_);
    const auto it = std::find_if(clients_.begin(), clients_.end(),
                                 [&](const Client& c) { return c.connection.get() == connection; });
    if (it == clients_.end()) return;
    clients_.erase(it);
    watchers_.fetch_sub(1, std::memory_order_acq_rel);
  }

  std::size_t watchers() const { return static_cast<std::size_t>(watchers_.load(std::memory_order_acquire)); }

 private:
  // ---- The viewer thread.
  void run() {
    while (auto event = events_.pop()) {
      if (closing_.load(std::memory_order_acquire)) break;
      try {
        if (event->stream != worker_stream_) {
          restart_stream(event->stream);
          error_logged_ = false;
        }
        if (event->kind == Event::Kind::kRecord) {
          keep_record(*event);
        } else {
          send_packet(*event->packet, event->frames_done);
        }
      } catch (const std::exception& error) {
        // The channel goes on; this stream restarts for its viewers at the next key frame. Logged once
        // per stream: a failure that repeats on every frame must not flood the log.
        if (!error_logged_)
          spdlog::error("viewer {}: {} (restarting its stream for viewers)", info_.name, error.what());
        error_logged_ = true;
        restart_stream(worker_stream_);
        resync_ = true;
      }
    }
    std::lock_guard lock(clients_mutex_);
    for (auto& client : clients_) {
      client.connection->send_text(control_message({{"type", "closed"}, {"channel", info_.name}}), false);
      client.connection->close();
    }
    clients_.clear();
    watchers_.store(0, std::memory_order_release);
  }

  void restart_stream(std::uint64_t stream) {
    worker_stream_ = stream;
    muxer_.reset();
    muxer_failed_ = false;
    decoder_.reset();
    origin_.reset();
    records_.clear();
    last_jpeg_t_.reset();
    std::lock_guard lock(clients_mutex_);
    for (auto& client : clients_) client.hello_sent = client.started = false;
  }

  void keep_record(Event& event) {
    fps_.sample(++records_seen_, Clock::now());
    if (records_.size() == kMaxPendingRecords) records_.pop_front();
    records_.push_back(PendingRecord{event.pts_seconds, event.frames_done, std::move(event.record)});
  }

  // The record of the frame a packet carries. Passthrough packets have their frame's pts (B-frames: the
  // records come in presentation order, the packets in decode order). Re-encoded ones (annotated, or
  // passthrough of a codec without SEI) count frames in the encoder's time base instead, and the encoder
  // emits each frame's packet right after that frame's record: the record numbered like the packet.
  std::optional<PendingRecord> take_record(double packet_pts_seconds, std::uint64_t frames_done) {
    auto found = std::find_if(records_.begin(), records_.end(), [&](const PendingRecord& r) {
      return std::abs(r.pts_seconds - packet_pts_seconds) < 1e-4;
    });
    if (found == records_.end()) {
      found = std::find_if(records_.begin(), records_.end(),
                           [&](const PendingRecord& r) { return r.number == frames_done; });
    }
    if (found == records_.end()) return std::nullopt;
    PendingRecord record = std::move(*found);
    records_.erase(found);
    return record;
  }

  void send_packet(const AVPacket& packet, std::uint64_t frames_done) {
    prune_closed_clients();
    AVRational time_base{0, 1};
    AVRational frame_rate{0, 1};
    io::CodecParametersPtr codec;
    // One lock at a time: clients_mutex_ is never held while taking stream_mutex_ or the other way round.
    const bool needs_decoder = !decoder_ && has_clients(ClientKind::kJpeg);
    {
      std::lock_guard lock(stream_mutex_);
      if (!codec_ || stream_.load(std::memory_order_acquire) != worker_stream_) return;  // a newer stream
      time_base = time_base_;
      frame_rate = frame_rate_;
      if ((!muxer_ && !muxer_failed_) || needs_decoder) codec = io::copy_codec_parameters(*codec_);
    }
    const bool key = (packet.flags & AV_PKT_FLAG_KEY) != 0;
    if (!origin_) {
      if (!key) return;
      origin_ = packet.dts != AV_NOPTS_VALUE ? packet.dts : packet.pts;
    }
    if (packet.pts == AV_NOPTS_VALUE) return;
    const double t = static_cast<double>(packet.pts - *origin_) * av_q2d(time_base);
    auto record = take_record(static_cast<double>(packet.pts) * av_q2d(time_base), frames_done);

    if (!muxer_ && !muxer_failed_ && codec) {
      try {
        muxer_ = std::make_unique<io::Fmp4Muxer>(*codec, time_base, frame_rate, info_.name);
      } catch (const Error& error) {
        muxer_failed_ = true;  // JPEG only for this stream; tell the video clients so they switch
        spdlog::warn("viewer {}: no MSE video ({}); JPEG clients only", info_.name, error.what());
        broadcast(
            ClientKind::kVideo,
            control_message({{"type", "unsupported"}, {"channel", info_.name}, {"error", error.what()}}));
      }
    }
    if (muxer_) {
      if (auto fragment = muxer_->write(packet)) send_fragment(*fragment);
    }
    if (has_clients(ClientKind::kJpeg)) {
      send_jpeg(packet, codec.get(), time_base);
    } else {
      decoder_.reset();
    }
    if (record) {
      broadcast_frame(fmt::format(R"({{"type":"frame","t":{:.6f},"fps":{:.2f},"record":{}}})", t, fps_.fps(),
                                  record->json));
    }
  }

  void send_fragment(const io::Fmp4Fragment& fragment) {
    const auto [width, height] = codec_width_height();  // before clients_mutex_: one lock at a time
    std::lock_guard lock(clients_mutex_);
    for (auto& client : clients_) {
      if (client.kind != ClientKind::kVideo) continue;
      if (!client.hello_sent) {
        if (muxer_->init_segment().empty()) continue;
        client.connection->send_text(
            control_message({{"type", "init"},
                             {"channel", info_.name},
                             {"codec", muxer_->codec_string()},
                             {"mime", fmt::format("video/mp4; codecs=\"{}\"", muxer_->codec_string())},
                             {"width", width},
                             {"height", height},
                             {"mode", pipeline::to_string(info_.output_mode)}}),
            false);
        client.connection->send_binary(muxer_->init_segment(), false);
        client.hello_sent = true;
        client.started = false;
      }
      if (!client.started) {
        if (!fragment.key) continue;
        client.started = true;
      }
      // A client that does not read: its next frames go, up to the next key frame (never half a GOP).
      if (client.connection->queued_bytes() > options_.stall_bytes) {
        client.started = false;
        continue;
      }
      client.connection->send_binary(fragment.bytes, false);
    }
  }

  void send_jpeg(const AVPacket& packet, const AVCodecParameters* codec, AVRational time_base) {
    if (!decoder_) {
      if ((packet.flags & AV_PKT_FLAG_KEY) == 0 || codec == nullptr) return;
      decoder_ = std::make_unique<io::VideoDecoder>(
          *codec, io::DecoderOptions{.threads = 1, .low_delay = true}, info_.name);
      if (!jpeg_) jpeg_ = std::make_unique<io::JpegEncoder>(options_.jpeg_max_width, options_.jpeg_quality);
    }
    while (decoder_->send(&packet) == io::DecodeStatus::kAgain) encode_decoded(time_base);
    encode_decoded(time_base);
  }

  void encode_decoded(AVRational time_base) {
    const double interval_s = options_.jpeg_fps > 0 ? 1.0 / options_.jpeg_fps : 0.0;
    while (decoder_->receive(*picture_) == io::DecodeStatus::kOk) {
      const std::int64_t pts =
          picture_->best_effort_timestamp != AV_NOPTS_VALUE ? picture_->best_effort_timestamp : picture_->pts;
      if (pts == AV_NOPTS_VALUE) continue;
      const double t = static_cast<double>(pts - *origin_) * av_q2d(time_base);
      // Rate limit on the video's own clock (a paced file and a camera alike); a jump back restarts it.
      if (last_jpeg_t_ && t >= *last_jpeg_t_ && t - *last_jpeg_t_ < interval_s - 1e-6) continue;
      if (!jpeg_client_ready()) continue;
      last_jpeg_t_ = t;
      std::string message(sizeof(double), '\0');
      std::memcpy(message.data(), &t, sizeof(double));  // x86/ARM: little-endian, as the page reads it
      message += jpeg_->encode(*picture_);
      std::lock_guard lock(clients_mutex_);
      for (auto& client : clients_) {
        if (client.kind != ClientKind::kJpeg) continue;
        if (!client.hello_sent) {
          client.connection->send_text(control_message({{"type", "hello"},
                                                        {"channel", info_.name},
                                                        {"width", picture_->width},
                                                        {"height", picture_->height},
                                                        {"mode", pipeline::to_string(info_.output_mode)}}),
                                       false);
          client.hello_sent = true;
        }
        if (client.connection->queued_bytes() > options_.stall_bytes) continue;
        client.connection->send_binary(message, true);
      }
    }
  }

  bool jpeg_client_ready() {
    std::lock_guard lock(clients_mutex_);
    return std::any_of(clients_.begin(), clients_.end(), [&](const Client& c) {
      return c.kind == ClientKind::kJpeg && c.connection->queued_bytes() <= options_.stall_bytes;
    });
  }

  void broadcast_frame(const std::string& message) {
    std::lock_guard lock(clients_mutex_);
    for (auto& client : clients_) {
      if (!client.hello_sent) continue;  // boxes without pictures would only queue up
      client.connection->send_text(message, true);
    }
  }

  void broadcast(ClientKind kind, const std::string& message) {
    std::lock_guard lock(clients_mutex_);
    for (auto& client : clients_) {
      if (client.kind == kind) client.connection->send_text(message, false);
    }
  }

  bool has_clients(ClientKind kind) {
    std::lock_guard lock(clients_mutex_);
    return std::any_of(clients_.begin(), clients_.end(), [&](const Client& c) { return c.kind == kind; });
  }

  void prune_closed_clients() {
    std::lock_guard lock(clients_mutex_);
    const auto gone = std::remove_if(clients_.begin(), clients_.end(),
                                     [](const Client& c) { return !c.connection->is_open(); });
    watchers_.fetch_sub(static_cast<int>(clients_.end() - gone), std::memory_order_acq_rel);
    clients_.erase(gone, clients_.end());
  }

  std::pair<int, int> codec_width_height() {
    std::lock_guard lock(stream_mutex_);
    return codec_ ? std::pair{codec_->width, codec_->height} : std::pair{0, 0};
  }

  const pipeline::ChannelInfo info_;
  const ViewerOptions options_;
  std::function<void(ChannelView*)> on_closed_;

  // Shared between the output thread, the server thread and the viewer thread.
  std::atomic<int> watchers_{0};
  std::atomic<bool> closing_{false};
  std::atomic<std::uint64_t> stream_{0};
  std::mutex stream_mutex_;
  io::CodecParametersPtr codec_;  // of the current stream; null between streams
  AVRational time_base_{1, 90000};
  AVRational frame_rate_{0, 1};
  std::mutex clients_mutex_;
  std::vector<Client> clients_;

  std::uint64_t frames_done_ = 0;  // output thread only
  // Set by the output thread (and by the viewer thread after an error): skip to the next key frame.
  std::atomic<bool> resync_{true};
  // Output thread -> viewer thread.
  BoundedQueue<Event> events_;

  // Viewer thread only.
  std::uint64_t worker_stream_ = 0;
  std::unique_ptr<io::Fmp4Muxer> muxer_;
  bool muxer_failed_ = false;
  std::unique_ptr<io::VideoDecoder> decoder_;
  std::unique_ptr<io::JpegEncoder> jpeg_;
  io::FramePtr picture_ = io::make_frame();
  std::optional<std::int64_t> origin_;  // dts of the stream's first key frame sent: media time 0
  std::optional<double> last_jpeg_t_;
  std::deque<PendingRecord> records_;
  FpsMeter fps_{std::chrono::seconds(2)};
  std::uint64_t records_seen_ = 0;
  bool error_logged_ = false;

  std::thread worker_;  // last: starts after everything above exists
};

struct Viewer::Registry {
  ViewerOptions options;
  mutable std::mutex mutex;
  std::map<std::string, std::shared_ptr<ChannelView>> channels;
  std::map<const WebSocketConnection*, std::weak_ptr<ChannelView>> owners;

  void open(const std::shared_ptr<WebSocketConnection>& connection, const HttpRequest& request,
            ClientKind kind) {
    const auto name = request.query.find("channel");
    std::shared_ptr<ChannelView> view;
    {
      std::lock_guard lock(mutex);
      if (name != request.query.end()) {
        if (const auto it = channels.find(name->second); it != channels.end()) view = it->second;
      }
      if (view) owners[connection.get()] = view;
    }
    if (!view) {
      const std::string asked = name == request.query.end() ? std::string() : name->second;
      connection->send_text(
          control_message({{"type", "error"},
                           {"error", asked.empty() ? std::string("the ?channel= parameter is missing")
                                                   : fmt::format("no channel '{}'", asked)}}),
          false);
      connection->close();
      return;
    }
    view->add_client(connection, kind);
  }

  void close(const std::shared_ptr<WebSocketConnection>& connection) {
    std::shared_ptr<ChannelView> view;
    {
      std::lock_guard lock(mutex);
      const auto it = owners.find(connection.get());
      if (it == owners.end()) return;
      view = it->second.lock();
      owners.erase(it);
    }
    if (view) view->remove_client(connection.get());
  }
};

Viewer::Viewer(HttpServer& server, ViewerOptions options) : registry_(std::make_shared<Registry>()) {
  registry_->options = options;
  const std::weak_ptr<Registry> weak = registry_;
  for (const auto& [path, kind] :
       {std::pair{kVideoPath, ClientKind::kVideo}, std::pair{kJpegPath, ClientKind::kJpeg}}) {
    WebSocketHandlers handlers;
    // An init-capture, not `kind` itself: capturing a structured binding needs clang 16 (the ASan+UBSan
    // build uses clang 14).
    handlers.on_open = [weak, client_kind = kind](const std::shared_ptr<WebSocketConnection>& connection,
                                                  const HttpRequest& request) {
      if (auto registry = weak.lock()) registry->open(connection, request, client_kind);
    };
    handlers.on_close = [weak](const std::shared_ptr<WebSocketConnection>& connection) {
      if (auto registry = weak.lock()) registry->close(connection);
    };
    server.websocket(std::string(path), std::move(handlers));
  }
}

Viewer::~Viewer() = default;

pipeline::TapFactory Viewer::tap_factory() {
  const std::weak_ptr<Registry> weak = registry_;
  return [weak](const pipeline::ChannelInfo& info) -> std::shared_ptr<pipeline::ChannelTap> {
    auto registry = weak.lock();
    if (!registry) return nullptr;
    if (info.output_mode == pipeline::OutputMode::kResults) return nullptr;  // no video to show
    auto view = std::make_shared<ChannelView>(info, registry->options, [weak](ChannelView* closed) {
      auto live = weak.lock();
      if (!live) return;
      std::lock_guard lock(live->mutex);
      const auto it = live->channels.find(closed->name());
      if (it != live->channels.end() && it->second.get() == closed) live->channels.erase(it);
    });
    std::lock_guard lock(registry->mutex);
    registry->channels[info.name] = view;  // a channel re-added under its old name replaces it
    return view;
  };
}

std::size_t Viewer::watchers(const std::string& channel) const {
  std::lock_guard lock(registry_->mutex);
  const auto it = registry_->channels.find(channel);
  return it == registry_->channels.end() ? 0 : it->second->watchers();
}

std::filesystem::path default_web_root() {
  namespace fs = std::filesystem;
  if (const char* configured = std::getenv("VAPIPE_WEB_ROOT"); configured != nullptr && *configured != '\0')
    return configured;
  std::error_code error;
  const fs::path executable = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path installed = executable.parent_path().parent_path() / "share" / "vapipe" / "web";
    if (fs::is_regular_file(installed / "index.html", error)) return installed;
  }
  return VAPIPE_SOURCE_WEB_ROOT;
}

}  // namespace vapipe::server
