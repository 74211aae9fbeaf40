#include "server/rtsp_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <sys/socket.h>

#include <fmt/format.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/annexb_filter.hpp"

extern "C" {
#include <libavutil/mathematics.h>
}

// How the pieces fit (gst-rtsp-server 1.22):
// - One media factory per channel, not shared: every client's DESCRIBE builds its own media
//   (appsrc ! parse ! rtpXpay), torn down when that client leaves. media-configure hands us its appsrc.
//   (A shared media serves TCP clients from one sender thread that only a new sample wakes: once all its
//   clients stalled or left without the media ending, a client joining it got nothing, for 80+ s in our
//   tests. Per-client medias cost a parser and payloader per client and remove every such coupling.)
// - The channel's output thread filters each packet once and pushes a shallow copy (shared memory, the
//   client's own timestamps) into every client's appsrc, never blocking: each appsrc is bounded by
//   max_queued_packets, and a packet that finds one full is dropped for that client with the rest of its
//   GOP, so that client resumes at the next key frame and the others lose nothing. With no client a packet
//   costs one lock.
// - Every stream is served as Annex-B with its parameter sets in front of every key frame (io::AnnexBFilter:
//   FFmpeg's mp4toannexb for AVCC/HVCC sources, the extradata for Annex-B ones; H.265 CRA pictures included,
//   which rtph265pay's config-interval does not cover), and a new media starts at a key frame.
// - TCP-interleaved clients: drop-backlog stays on for every client (the RTSP watch drops data, not control
//   messages, when its own 100-message backlog is full); a client that stops reading blocks only its own
//   media, whose appsrc then fills and drops here.
// - Every GStreamer callback runs on the server's one GMainLoop thread (thread pool of 0 threads), except
//   the bus sync handler (streaming threads) and the tap calls (channel output threads); Mount::mutex_
//   orders them.

namespace vapipe::server {
namespace {

using Clock = std::chrono::steady_clock;

// --- GLib/GStreamer handles, wrapped once ---

struct GObjectUnref {
  void operator()(gpointer object) const {
    if (object != nullptr) g_object_unref(object);
  }
};
template <typename T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;

struct GstObjectUnref {
  void operator()(gpointer object) const {
    if (object != nullptr) gst_object_unref(object);
  }
};
using ElementPtr = std::unique_ptr<GstElement, GstObjectUnref>;
using BusPtr = std::unique_ptr<GstBus, GstObjectUnref>;
using ClockPtr = std::unique_ptr<GstClock, GstObjectUnref>;

struct CapsUnref {
  void operator()(GstCaps* caps) const {
    if (caps != nullptr) gst_caps_unref(caps);
  }
};
using CapsPtr = std::unique_ptr<GstCaps, CapsUnref>;

struct MainContextUnref {
  void operator()(GMainContext* context) const { g_main_context_unref(context); }
};
struct MainLoopUnref {
  void operator()(GMainLoop* loop) const { g_main_loop_unref(loop); }
};
struct SourceUnref {
  void operator()(GSource* source) const { g_source_unref(source); }
};
struct ErrorFree {
  void operator()(GError* error) const { g_error_free(error); }
};
using ErrorPtr = std::unique_ptr<GError, ErrorFree>;

// Connects `callback` with a weak reference to `owner` as its data, released with the connection: a
// callback that outlives its owner finds it expired instead of dangling.
template <typename Owner>
void connect_weak(gpointer instance, const char* signal, GCallback callback,
                  const std::shared_ptr<Owner>& owner) {
  auto target = std::make_unique<std::weak_ptr<Owner>>(owner);
  g_signal_connect_data(
      instance, signal, callback, target.release(),
      [](gpointer data, GClosure*) {
        std::unique_ptr<std::weak_ptr<Owner>> owned(static_cast<std::weak_ptr<Owner>*>(data));
      },
      GConnectFlags{});
}

template <typename Owner>
std::shared_ptr<Owner> lock_target(gpointer data) {
  return static_cast<std::weak_ptr<Owner>*>(data)->lock();
}

// Runs `work` on the loop thread of `context` and waits for it (never called from that thread).
void run_on(GMainContext* context, const std::function<void()>& work) {
  struct Call {
    const std::function<void()>* work;
    std::mutex mutex;
    std::condition_variable done_changed;
    bool done = false;
  } call{&work, {}, {}, false};
  g_main_context_invoke(
      context,
      [](gpointer data) -> gboolean {
        auto& c = *static_cast<Call*>(data);
        (*c.work)();
        // Notified under the lock: once the waiter sees `done` it returns and `c` (on its stack) is gone,
        // so nothing here may touch `c` after the lock is released.
        std::lock_guard lock(c.mutex);
        c.done = true;
        c.done_changed.notify_all();
        return G_SOURCE_REMOVE;
      },
      &call);
  std::unique_lock lock(call.mutex);
  call.done_changed.wait(lock, [&] { return call.done; });
}

enum class StreamCodec { kNone, kH264, kH265 };

const char* launch_for(StreamCodec codec) {
  // The payloader's config-interval stays off: AnnexBFilter already puts the parameter sets in front of
  // every key frame (the payloader would add a second copy).
  return codec == StreamCodec::kH265 ? "( appsrc name=src ! h265parse ! rtph265pay name=pay0 pt=96 )"
                                     : "( appsrc name=src ! h264parse ! rtph264pay name=pay0 pt=96 )";
}

// SO_SNDBUF of each client connection (Linux doubles it): ~2 s of a 1 Mbit/s stream.
constexpr int kClientSendBufferBytes = 128 * 1024;

// A mid-stream re-anchor of the timeline happens when timestamps and the media's clock drift this far
// apart (a source that loops, reconnects or stalls).
constexpr GstClockTime kMaxClockDrift = 2 * GST_SECOND;

// One channel's mount: the tap's side (channel output thread) and the media's side (server thread).
class Mount : public std::enable_shared_from_this<Mount> {
 public:
  Mount(std::string path, std::size_t max_queued_packets, GstRTSPMediaFactory* factory, GMainContext* context)
      : path_(std::move(path)),
        max_queued_packets_(max_queued_packets),
        factory_(GST_RTSP_MEDIA_FACTORY(g_object_ref(factory))),
        context_(context) {}

  const std::string& path() const { return path_; }
  GstRTSPMediaFactory* factory() const { return factory_.get(); }

  // --- tap side ---

  void start_stream(const AVCodecParameters& codec, AVRational time_base) {
    std::unique_ptr<io::AnnexBFilter> filter;
    try {
      filter = std::make_unique<io::AnnexBFilter>(codec, "rtsp " + path_);
    } catch (const Error& error) {
      spdlog::warn("{} (not served)", error.what());
      std::lock_guard lock(mutex_);
      filter_.reset();
      caps_.reset();
      return;
    }
    const StreamCodec kind = filter->h265() ? StreamCodec::kH265 : StreamCodec::kH264;
    // Always Annex-B with parameter sets at every key frame (the filter's job), whatever the source's
    // framing: the one form that lets a client start at any key frame.
    CapsPtr caps(gst_caps_new_simple(kind == StreamCodec::kH265 ? "video/x-h265" : "video/x-h264",
                                     "stream-format", G_TYPE_STRING, "byte-stream", "alignment",
                                     G_TYPE_STRING, "au", nullptr));

    std::vector<GObjectPtr<GstRTSPMedia>> ended;
    bool new_launch = false;
    {
      std::lock_guard lock(mutex_);
      if (kind != launch_codec_) {
        // Another codec needs another pipeline: every client's media ends (its client gets EOS) and the
        // next client gets one built for this codec.
        new_launch = true;
        launch_codec_ = kind;
        for (auto& sink : sinks_) {
          gst_app_src_end_of_stream(GST_APP_SRC(sink.appsrc.get()));
          ended.emplace_back(GST_RTSP_MEDIA(g_object_ref(sink.media)));
        }
        sinks_.clear();
      } else {
        for (auto& sink : sinks_) gst_app_src_set_caps(GST_APP_SRC(sink.appsrc.get()), caps.get());
      }
      filter_ = std::move(filter);
      caps_ = std::move(caps);
      time_base_ = time_base;
      restart_timelines();
      streaming_ = true;
    }
    // Outside mutex_: the factory's own lock is never taken while holding ours.
    if (new_launch) gst_rtsp_media_factory_set_launch(factory_.get(), launch_for(kind));
    for (auto& media : ended) {
      // Unprepared on the server thread, so its client is told and the factory builds the next one anew.
      g_main_context_invoke_full(
          context_, G_PRIORITY_DEFAULT,
          [](gpointer m) -> gboolean {
            gst_rtsp_media_unprepare(GST_RTSP_MEDIA(m));
            return G_SOURCE_REMOVE;
          },
          media.release(), g_object_unref);
    }
  }

  void push(const AVPacket& packet) {
    std::lock_guard lock(mutex_);
    if (sinks_.empty() || !caps_ || !filter_) return;  // nobody watching
    const bool key_frame = (packet.flags & AV_PKT_FLAG_KEY) != 0;
    GstBuffer* shared = nullptr;  // the packet's bytes, filtered once, shared by every client's copy
    for (Sink& sink : sinks_) {
      if (sink.need_key_frame) {
        if (!key_frame) {
          if (sink.resyncing) packets_dropped_.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        sink.need_key_frame = false;
        sink.resyncing = false;
      }
      GstAppSrc* appsrc = GST_APP_SRC(sink.appsrc.get());
      if (gst_app_src_get_current_level_buffers(appsrc) >= max_queued_packets_) {
        // This client stopped reading (its media blocked): it alone skips to the next key frame.
        packets_dropped_.fetch_add(1, std::memory_order_relaxed);
        sink.need_key_frame = true;
        sink.resyncing = true;
        continue;
      }
      if (shared == nullptr) {
        const std::span<const std::uint8_t> bytes = filter_->filter(packet);
        if (bytes.empty()) return;
        // A copy: the channel reuses its packet buffers.
        shared = gst_buffer_new_memdup(bytes.data(), bytes.size());
        if (shared == nullptr) return;
      }
      // Shares the memory; timestamps are this client's media's own.
      GstBuffer* buffer = gst_buffer_copy(shared);
      stamp(*buffer, packet, *appsrc, sink);
      if (!key_frame) GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DELTA_UNIT);
      if (gst_app_src_push_buffer(appsrc, buffer) == GST_FLOW_OK) {
        packets_served_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (shared != nullptr) gst_buffer_unref(shared);
  }

  void stop_stream() {
    std::lock_guard lock(mutex_);
    streaming_ = false;
  }

  // The channel is gone (or the server stops): EOS to every client's media, which sends it on to its client.
  void end() {
    std::lock_guard lock(mutex_);
    streaming_ = false;
    ended_ = true;
    for (Sink& sink : sinks_) {
      if (sink.eos_sent) continue;
      gst_app_src_end_of_stream(GST_APP_SRC(sink.appsrc.get()));
      sink.eos_sent = true;
    }
  }

  // Waits until the EOS sent by end() went through every media (their sinks have it), up to `deadline`.
  void wait_drained(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    drained_changed_.wait_until(lock, deadline, [&] {
      return std::all_of(sinks_.begin(), sinks_.end(),
                         [](const Sink& sink) { return !sink.eos_sent || sink.eos_seen; });
    });
  }

  // --- media side (server thread, bus sync handler) ---

  void attach(GstRTSPMedia* media) {
    ElementPtr bin(gst_rtsp_media_get_element(media));
    ElementPtr appsrc(bin ? gst_bin_get_by_name(GST_BIN(bin.get()), "src") : nullptr);
    if (!appsrc) {
      spdlog::error("rtsp {}: the media has no appsrc", path_);
      return;
    }
    // Live, timestamps ours (stamp()), no size limit of its own: the queue bound is max_queued_packets_.
    g_object_set(appsrc.get(), "format", GST_FORMAT_TIME, "is-live", TRUE, "do-timestamp", FALSE, "max-bytes",
                 guint64{0}, "block", FALSE, nullptr);
    Sink sink;
    if (BusPtr bus(gst_element_get_bus(bin.get())); bus) {
      gst_bus_enable_sync_message_emission(bus.get());
      connect_weak(bus.get(), "sync-message::eos", G_CALLBACK(&Mount::on_bus_eos), shared_from_this());
      sink.bus = bus.get();
    }
    std::lock_guard lock(mutex_);
    if (caps_) gst_app_src_set_caps(GST_APP_SRC(appsrc.get()), caps_.get());
    if (ended_) gst_app_src_end_of_stream(GST_APP_SRC(appsrc.get()));
    sink.appsrc = std::move(appsrc);
    sink.media = media;
    sink.eos_sent = ended_;
    sinks_.push_back(std::move(sink));
  }

  void detach(GstRTSPMedia* media) {
    std::lock_guard lock(mutex_);
    std::erase_if(sinks_, [&](const Sink& sink) { return sink.media == media; });
    drained_changed_.notify_all();
  }

  bool has_media() const {
    std::lock_guard lock(mutex_);
    return !sinks_.empty();
  }

  void detach_all() {
    std::lock_guard lock(mutex_);
    sinks_.clear();
    drained_changed_.notify_all();
  }

  std::atomic<int> clients{0};

  RtspMountStats stats() const {
    RtspMountStats s;
    s.path = path_;
    s.clients = clients.load();
    {
      std::lock_guard lock(mutex_);
      s.streaming = streaming_;
    }
    s.packets_served = packets_served_.load();
    s.packets_dropped = packets_dropped_.load();
    return s;
  }

 private:
  // One client's media (the factory is not shared): its appsrc and where its timeline stands.
  struct Sink {
    GstRTSPMedia* media = nullptr;  // identity only (the media owns the appsrc's pipeline)
    ElementPtr appsrc;
    GstBus* bus = nullptr;  // identity only, to find the sink an EOS message is for
    bool eos_sent = false;
    bool eos_seen = false;
    bool need_key_frame = true;
    bool resyncing = false;  // waiting for a key frame after a drop: what is skipped counts as dropped
    bool anchored = false;
    std::int64_t offset = 0;
    std::int64_t last_dts = -1;    // the last DTS given out (running time, ns)
    std::int64_t last_in_dts = 0;  // the source's last DTS (ns)
  };

  static void on_bus_eos(GstBus* bus, GstMessage*, gpointer data) {
    if (auto mount = lock_target<Mount>(data)) {
      std::lock_guard lock(mount->mutex_);
      for (Sink& sink : mount->sinks_)
        if (sink.bus == bus) sink.eos_seen = true;
      mount->drained_changed_.notify_all();
    }
  }

  // With mutex_: the next packet starts a new timeline, at a key frame, for every client.
  void restart_timelines() {
    for (Sink& sink : sinks_) {
      sink.need_key_frame = true;
      sink.resyncing = false;
      sink.anchored = false;
    }
  }

  // Maps the channel's timestamps onto the running time of a client's media: anchored at the first packet
  // of a timeline, re-anchored (keeping DTS increasing) when they drift apart by kMaxClockDrift. PTS - DTS
  // is kept, so B-frames of a passthrough stream stay in order.
  void stamp(GstBuffer& buffer, const AVPacket& packet, GstAppSrc& appsrc, Sink& sink) const {
    const AVRational nanoseconds{1, static_cast<int>(GST_SECOND)};
    const std::int64_t dts_in = packet.dts != AV_NOPTS_VALUE ? packet.dts : packet.pts;
    const std::int64_t pts_in = packet.pts != AV_NOPTS_VALUE ? packet.pts : dts_in;
    if (dts_in == AV_NOPTS_VALUE) return;  // untimed: appsrc passes it as it is
    const std::int64_t dts = av_rescale_q(dts_in, time_base_, nanoseconds);
    const std::int64_t pts = av_rescale_q(pts_in, time_base_, nanoseconds);
    std::int64_t now = -1;
    if (ClockPtr clock(gst_element_get_clock(GST_ELEMENT(&appsrc))); clock) {
      now = static_cast<std::int64_t>(gst_clock_get_time(clock.get()) -
                                      gst_element_get_base_time(GST_ELEMENT(&appsrc)));
    }
    // A jump in the source's own timestamps (a reconnect or loop restarting them) or a drift from the
    // clock (a source that stalled, a pipeline that fell behind) starts a new anchor, 1 ms after the last.
    const auto max_drift = static_cast<std::int64_t>(kMaxClockDrift);
    const bool jumped = sink.anchored && (dts < sink.last_in_dts || dts - sink.last_in_dts > max_drift);
    const bool drifted = sink.anchored && now >= 0 && std::llabs(dts + sink.offset - now) > max_drift;
    if (!sink.anchored || jumped || drifted) {
      sink.offset = std::max<std::int64_t>(now, 0) - dts;
      if (sink.anchored)
        sink.offset = std::max(sink.offset, sink.last_dts + static_cast<std::int64_t>(GST_MSECOND) - dts);
      sink.anchored = true;
    }
    sink.last_in_dts = dts;
    const std::int64_t out_dts = std::max(dts + sink.offset, sink.last_dts + 1);
    sink.last_dts = out_dts;
    GST_BUFFER_DTS(&buffer) = static_cast<GstClockTime>(out_dts);
    GST_BUFFER_PTS(&buffer) = static_cast<GstClockTime>(std::max(pts + sink.offset, out_dts));
  }

  const std::string path_;
  const std::size_t max_queued_packets_;
  GObjectPtr<GstRTSPMediaFactory> factory_;
  GMainContext* context_;

  mutable std::mutex mutex_;
  std::condition_variable drained_changed_;
  std::vector<Sink> sinks_;  // one per client's media; empty: nobody watching
  StreamCodec launch_codec_ = StreamCodec::kH264;
  std::unique_ptr<io::AnnexBFilter> filter_;  // of the current stream; null: not served
  CapsPtr caps_;
  AVRational time_base_{1, 90000};
  bool streaming_ = false;
  bool ended_ = false;

  std::atomic<std::uint64_t> packets_served_{0};
  std::atomic<std::uint64_t> packets_dropped_{0};
};

// The mounts by path, shared by the server and the taps (a tap can outlive the server).
struct Registry {
  std::mutex mutex;
  GObjectPtr<GstRTSPMountPoints> mount_points;
  std::map<std::string, std::shared_ptr<Mount>> mounts;
  std::vector<std::shared_ptr<Mount>> ended;  // removed while a media of theirs may still be draining

  // A tap's mount goes when its channel closes, unless a newer one took the path meanwhile.
  void remove(const std::shared_ptr<Mount>& mount) {
    std::lock_guard lock(mutex);
    auto found = mounts.find(mount->path());
    if (found == mounts.end() || found->second != mount) return;
    mounts.erase(found);
    gst_rtsp_mount_points_remove_factory(mount_points.get(), mount->path().c_str());
    // Its clients may still be getting the EOS: stop() waits for that too.
    std::erase_if(ended, [](const std::shared_ptr<Mount>& m) { return !m->has_media(); });
    ended.push_back(mount);
  }

  std::shared_ptr<Mount> find_for(std::string_view request_path) {
    std::lock_guard lock(mutex);
    for (const auto& [path, mount] : mounts) {
      if (request_path == path || (request_path.starts_with(path) && request_path.size() > path.size() &&
                                   request_path[path.size()] == '/'))
        return mount;
    }
    return nullptr;
  }
};

class RtspTap final : public pipeline::ChannelTap {
 public:
  RtspTap(std::shared_ptr<Mount> mount, std::shared_ptr<Registry> registry)
      : mount_(std::move(mount)), registry_(std::move(registry)) {}

  bool wants_video() const override { return true; }
  void video_started(const AVCodecParameters& codec, AVRational time_base,
                     AVRational /*frame_rate*/) override {
    mount_->start_stream(codec, time_base);
  }
  void video_packet(const AVPacket& packet) override { mount_->push(packet); }
  void video_stopped() override { mount_->stop_stream(); }
  void closed() override {
    mount_->end();
    registry_->remove(mount_);
  }

 private:
  std::shared_ptr<Mount> mount_;
  std::shared_ptr<Registry> registry_;
};

void on_media_configure(GstRTSPMediaFactory*, GstRTSPMedia* media, gpointer data) {
  auto mount = lock_target<Mount>(data);
  if (!mount) return;
  mount->attach(media);
  connect_weak(media, "unprepared", G_CALLBACK(+[](GstRTSPMedia* unprepared, gpointer target) {
                 if (auto m = lock_target<Mount>(target)) m->detach(unprepared);
               }),
               mount);
}

GstRTSPFilterResult remove_client(GstRTSPServer*, GstRTSPClient*, gpointer) { return GST_RTSP_FILTER_REMOVE; }

}  // namespace

struct RtspServer::Impl {
  RtspServerOptions options;
  std::unique_ptr<GMainContext, MainContextUnref> context;
  std::unique_ptr<GMainLoop, MainLoopUnref> loop;
  GObjectPtr<GstRTSPServer> server;
  std::unique_ptr<GSource, SourceUnref> listener;
  std::shared_ptr<Registry> registry = std::make_shared<Registry>();
  int port = 0;
  std::thread thread;
  std::mutex stop_mutex;
  bool stopped = false;
  std::atomic<int> clients_connected{0};
  // Server thread only: the mounts each connected client plays.
  std::map<GstRTSPClient*, std::set<Mount*>> playing;
  std::map<GstRTSPClient*, std::vector<std::shared_ptr<Mount>>> keep;

  static void on_client_connected(GstRTSPServer*, GstRTSPClient* client, gpointer data) {
    auto& impl = *static_cast<Impl*>(data);
    impl.clients_connected.fetch_add(1);
    // Drop data, never control messages, when a client's RTSP backlog is full (the default, made explicit:
    // with FALSE a client that stops reading makes the media wait for it).
    g_object_set(client, "drop-backlog", TRUE, nullptr);
    // The kernel's send buffer is the first backlog of a client that stops reading; autotuned on loopback it
    // holds ~20 s of video (measured: 2.8 MB) before gst-rtsp-server notices. Bounded, a stall reaches the
    // per-transport backlog (and its 10 s cut-off) within seconds, and costs the host little memory.
    if (GstRTSPConnection* connection = gst_rtsp_client_get_connection(client); connection != nullptr) {
      if (GSocket* socket = gst_rtsp_connection_get_write_socket(connection); socket != nullptr)
        g_socket_set_option(socket, SOL_SOCKET, SO_SNDBUF, kClientSendBufferBytes, nullptr);
    }
    g_signal_connect(client, "play-request", G_CALLBACK(&Impl::on_play), data);
    g_signal_connect(client, "teardown-request", G_CALLBACK(&Impl::on_teardown), data);
    g_signal_connect(client, "closed", G_CALLBACK(&Impl::on_closed), data);
  }

  static std::shared_ptr<Mount> mount_of(Impl& impl, GstRTSPContext* ctx) {
    if (ctx == nullptr || ctx->uri == nullptr || ctx->uri->abspath == nullptr) return nullptr;
    return impl.registry->find_for(ctx->uri->abspath);
  }

  static void on_play(GstRTSPClient* client, GstRTSPContext* ctx, gpointer data) {
    auto& impl = *static_cast<Impl*>(data);
    auto mount = mount_of(impl, ctx);
    if (!mount || impl.playing[client].contains(mount.get())) return;
    impl.playing[client].insert(mount.get());
    impl.keep[client].push_back(mount);
    mount->clients.fetch_add(1);
  }

  static void on_teardown(GstRTSPClient* client, GstRTSPContext* ctx, gpointer data) {
    auto& impl = *static_cast<Impl*>(data);
    auto mount = mount_of(impl, ctx);
    auto found = impl.playing.find(client);
    if (!mount || found == impl.playing.end() || !found->second.contains(mount.get())) return;
    found->second.erase(mount.get());
    mount->clients.fetch_sub(1);
  }

  static void on_closed(GstRTSPClient* client, gpointer data) {
    auto& impl = *static_cast<Impl*>(data);
    if (auto found = impl.playing.find(client); found != impl.playing.end()) {
      for (Mount* mount : found->second) mount->clients.fetch_sub(1);
      impl.playing.erase(found);
    }
    impl.keep.erase(client);
    impl.clients_connected.fetch_sub(1);
    g_signal_handlers_disconnect_by_data(client, data);
  }
};

RtspServer::RtspServer(RtspServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  impl.options = std::move(options);
  if (GError* raw = nullptr; !gst_init_check(nullptr, nullptr, &raw)) {
    ErrorPtr error(raw);
    fail("rtsp_server: GStreamer does not start: {}", error ? error->message : "unknown error");
  }
  impl.context.reset(g_main_context_new());
  impl.loop.reset(g_main_loop_new(impl.context.get(), FALSE));
  impl.server.reset(gst_rtsp_server_new());
  GstRTSPServer* server = impl.server.get();
  gst_rtsp_server_set_address(server, impl.options.bind.c_str());
  // Every client and media callback on the one server thread: no locking between them.
  GObjectPtr<GstRTSPThreadPool> pool(gst_rtsp_server_get_thread_pool(server));
  gst_rtsp_thread_pool_set_max_threads(pool.get(), 0);
  impl.registry->mount_points.reset(gst_rtsp_server_get_mount_points(server));
  g_signal_connect(server, "client-connected", G_CALLBACK(&Impl::on_client_connected), &impl);

  GError* raw = nullptr;
  std::vector<int> ports{impl.options.port};
  ports.insert(ports.end(), impl.options.other_ports.begin(), impl.options.other_ports.end());
  for (const int port : ports) {
    if (raw != nullptr) g_clear_error(&raw);
    gst_rtsp_server_set_service(server, std::to_string(port).c_str());
    impl.listener.reset(gst_rtsp_server_create_source(server, nullptr, &raw));
    if (impl.listener) break;
  }
  if (!impl.listener) {
    ErrorPtr error(raw);
    const std::string why = error ? error->message : "unknown error";
    if (!impl.options.other_ports.empty())
      fail("rtsp_server.port: cannot listen on {} at port {} nor at any of its {} alternatives (last: {})",
           impl.options.bind, impl.options.port, impl.options.other_ports.size(), why);
    if (error && g_error_matches(error.get(), G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
      fail("rtsp_server.port: {} is in use on {} ({})", impl.options.port, impl.options.bind, why);
    fail("rtsp_server.bind: cannot listen on {}:{} ({})", impl.options.bind, impl.options.port, why);
  }
  g_source_attach(impl.listener.get(), impl.context.get());
  impl.port = gst_rtsp_server_get_bound_port(server);
  impl.thread = std::thread([loop = impl.loop.get(), context = impl.context.get()] {
    g_main_context_push_thread_default(context);
    g_main_loop_run(loop);
    g_main_context_pop_thread_default(context);
  });
  spdlog::info("rtsp_server: listening on rtsp://{}:{}/", impl.options.bind, impl.port);
}

RtspServer::~RtspServer() { stop(); }

std::shared_ptr<pipeline::ChannelTap> RtspServer::make_tap(const pipeline::ChannelInfo& channel) {
  if (channel.output_mode == pipeline::OutputMode::kResults) return nullptr;
  Impl& impl = *impl_;
  const std::string path = "/" + channel.name;
  GObjectPtr<GstRTSPMediaFactory> factory(gst_rtsp_media_factory_new());
  // One media per client: gst-rtsp-stream's shared TCP sender waits on a new sample to notice a client
  // that joins, so a media whose clients all stalled or left never serves the next one (seen: 80+ s).
  gst_rtsp_media_factory_set_shared(factory.get(), FALSE);
  gst_rtsp_media_factory_set_launch(factory.get(), launch_for(StreamCodec::kH264));
  auto mount =
      std::make_shared<Mount>(path, impl.options.max_queued_packets, factory.get(), impl.context.get());
  connect_weak(factory.get(), "media-configure", G_CALLBACK(&on_media_configure), mount);
  std::shared_ptr<Mount> replaced;
  {
    std::lock_guard lock(impl.registry->mutex);
    auto& slot = impl.registry->mounts[path];
    replaced = std::exchange(slot, mount);
    // Transfers a reference: the mount points own the factory as long as the path is served.
    gst_rtsp_mount_points_add_factory(impl.registry->mount_points.get(), path.c_str(),
                                      GST_RTSP_MEDIA_FACTORY(g_object_ref(factory.get())));
  }
  if (replaced) replaced->end();
  spdlog::info("{}: served at {}", channel.name, url(channel.name));
  return std::make_shared<RtspTap>(std::move(mount), impl.registry);
}

void RtspServer::stop() {
  Impl& impl = *impl_;
  {
    std::lock_guard lock(impl.stop_mutex);
    if (impl.stopped) return;
    impl.stopped = true;
  }
  std::vector<std::shared_ptr<Mount>> mounts;
  {
    std::lock_guard lock(impl.registry->mutex);
    for (const auto& [path, mount] : impl.registry->mounts) mounts.push_back(mount);
    mounts.insert(mounts.end(), impl.registry->ended.begin(), impl.registry->ended.end());
  }
  // EOS first, so clients get the end of the stream (RTCP BYE) rather than a cut connection.
  for (const auto& mount : mounts) mount->end();
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  for (const auto& mount : mounts) mount->wait_drained(deadline);
  run_on(impl.context.get(), [&] {
    g_source_destroy(impl.listener.get());
    gst_rtsp_server_client_filter(impl.server.get(), remove_client, nullptr);
    g_main_loop_quit(impl.loop.get());
  });
  impl.thread.join();
  impl.listener.reset();  // the last reference to the listening socket: the port is free from here
  for (const auto& mount : mounts) mount->detach_all();
  {
    std::lock_guard lock(impl.registry->mutex);
    for (const auto& [path, mount] : impl.registry->mounts) {
      gst_rtsp_mount_points_remove_factory(impl.registry->mount_points.get(), path.c_str());
    }
    impl.registry->mounts.clear();
    impl.registry->ended.clear();
  }
  spdlog::info("rtsp_server: stopped");
}

int RtspServer::port() const { return impl_->port; }

std::string RtspServer::url(std::string_view name) const {
  const std::string& bind = impl_->options.bind;
  const std::string host = bind == "0.0.0.0" || bind == "::" || bind.empty() ? "127.0.0.1" : bind;
  return fmt::format("rtsp://{}:{}/{}", host.find(':') != std::string::npos ? "[" + host + "]" : host,
                     impl_->port, name);
}

RtspServerStats RtspServer::stats() const {
  RtspServerStats s;
  s.clients_connected = impl_->clients_connected.load();
  std::lock_guard lock(impl_->registry->mutex);
  for (const auto& [path, mount] : impl_->registry->mounts) {
    s.mounts.push_back(mount->stats());
    s.packets_served += s.mounts.back().packets_served;
    s.packets_dropped += s.mounts.back().packets_dropped;
  }
  return s;
}

}  // namespace vapipe::server
