#include "pipeline/channel.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "core/fps_meter.hpp"
#include "io/ffmpeg_log.hpp"
#include "io/frame_view.hpp"
#include "io/sei_codec.hpp"
#include "io/stream_writer.hpp"
#include "io/url_redaction.hpp"
#include "io/video_decoder.hpp"
#include "io/video_encoder.hpp"
#include "models/detection_label.hpp"
#include "models/face_gallery.hpp"
#include "models/instance_mask.hpp"
#include "models/secondary_runner.hpp"
#include "models/tracker.hpp"
#include "vision/osd.hpp"

namespace vapipe::pipeline {

namespace {

// Passthrough: a packet the decoder has not turned into a frame after this many further packets never
// will (an SPS-only packet, a picture the decoder dropped): deeper than any H.264/H.265 reordering (16
// frames) with the single-threaded decoder of run_source. The source thread then reports it lost and the
// output sends it without SEI. The output never gives up on a packet by counting its own backlog: that
// backlog is the detector's latency, which a slow machine or an unpaced file makes as deep as the queues.
constexpr std::size_t kDecoderWindowPackets = 32;

// A file output that starts again (the stream changed codec or size) is never written over: segment n
// goes next to the first one as name.n.ext. Network outputs keep their address (a new session).
std::string segment_url(const std::string& first, int segment) {
  if (first.empty() || first.find("://") != std::string::npos) return first;
  const std::filesystem::path file(first);
  std::filesystem::path named = file.parent_path() / fmt::format("{}.{}", file.stem().string(), segment);
  named += file.extension();
  return named.string();
}

std::uint64_t to_us(double ms) { return static_cast<std::uint64_t>(std::max(0.0, ms) * 1000.0); }

void to_metadata_boxes(std::span<const models::Detection> detections, std::vector<io::MetadataBox>& boxes) {
  boxes.clear();
  for (const auto& d : detections) {
    io::MetadataBox& box =
        boxes.emplace_back(io::MetadataBox{d.x1, d.y1, d.x2, d.y2, d.score, d.class_id, d.track_id});
    for (const auto& p : d.keypoints) box.keypoints.push_back({p.x, p.y, p.score});
    if (d.identity) box.identity = io::MetadataIdentity{d.identity->name, d.identity->similarity};
  }
}

// `packet` refilled with `bytes` (the access unit with its SEI) and the timestamps and flags of `source`.
void fill_packet(AVPacket& packet, std::span<const std::uint8_t> bytes, const AVPacket& source) {
  av_packet_unref(&packet);
  if (av_new_packet(&packet, static_cast<int>(bytes.size())) < 0) fail("out of memory");
  std::memcpy(packet.data, bytes.data(), bytes.size());
  av_packet_copy_props(&packet, &source);
}

}  // namespace

bool is_network_address(const std::string& address) {
  return address.find("://") != std::string::npos && address.rfind("file:", 0) != 0;
}

const char* to_string(ChannelState state) {
  switch (state) {
    case ChannelState::kStarting:
      return "starting";
    case ChannelState::kStreaming:
      return "streaming";
    case ChannelState::kWaiting:
      return "waiting";
    case ChannelState::kEnded:
      return "ended";
    case ChannelState::kFailed:
      return "failed";
    case ChannelState::kRemoved:
      return "removed";
  }
  return "?";
}

struct Channel::OutputState {
  std::map<std::int64_t, FrameTaskPtr> reorder;
  std::int64_t next_emit = 0;
  std::int64_t total_frames = -1;  // known once the source ended
  bool closed = false;
  models::Tracker tracker;
  std::vector<models::Detection> last_detections;

  io::CodecParametersPtr codec;  // of the current source connection
  AVRational time_base{1, 90000};
  AVRational frame_rate{0, 1};

  std::string video_url;    // empty: no output_path, the video goes to taps only
  std::string first_url;    // video_url of the first output segment
  int segment = 0;          // output restarts so far (segment_url)
  bool video_open = false;  // the writer (if any) and the taps take packets
  bool video_disabled = false;
  bool reencode = false;  // passthrough of a codec without SEI: x264 + SEI
  std::unique_ptr<io::StreamWriter> writer;
  // Packets of the writers closed before this one (the output restarts when the stream changes codec or
  // size): the channel's counters are totals over all of them.
  std::uint64_t written_before = 0;
  std::uint64_t dropped_before = 0;
  // Passthrough: source packets waiting for their frame's detections, and detections waiting to be sent.
  std::deque<std::pair<std::int64_t, io::PacketPtr>> pending;
  std::map<std::int64_t, std::vector<io::MetadataBox>> done;
  std::set<std::int64_t> lost;
  std::unique_ptr<io::SeiInserter> inserter;
  io::PacketPtr scratch = io::make_packet();     // encoder output
  io::PacketPtr sei_packet = io::make_packet();  // a packet with its SEI inserted, reused
  std::vector<io::MetadataBox> boxes;
  // Annotated.
  std::unique_ptr<io::VideoEncoder> encoder;
  io::FrameViewer viewer;
  FpsMeter fps{std::chrono::seconds(2)};
  std::vector<vision::OsdBox> osd;
  // The second-stage network (this thread's execution context) and its latest result per track.
  struct CachedResult {
    std::vector<models::Keypoint> keypoints;  // a pose network's
    std::vector<float> embedding;             // a face embedding network's
    float x1 = 0, y1 = 0, x2 = 0, y2 = 0;     // the box they were found in
    std::int64_t frame = 0;
    std::optional<models::Attribute> attribute;  // a classifier's
  };
  std::unique_ptr<models::SecondaryRunner> secondary;
  std::unordered_map<int, CachedResult> secondary_cache;
  // Face recognition: per track, the gallery matches of its faces so far by name ("": unknown); the track's
  // identity is the name with the most votes (ties: the higher total similarity).
  struct Vote {
    int count = 0;
    float similarity_sum = 0.0f;
  };
  struct TrackVotes {
    std::map<std::string, Vote> by_name;
    std::int64_t last_frame = 0;
  };
  std::unordered_map<int, TrackVotes> identity_votes;
  const models::FaceGallery* voted_with = nullptr;  // the gallery the votes were cast against
  std::vector<models::Detection> secondary_batch;
  std::vector<std::size_t> secondary_index;
  std::vector<std::size_t>
      secondary_order;  // the frame's objects of the second stage's classes, largest first
};

namespace {

// A track's result is reused for this many frames (its keypoints follow the box's move and size), so the
// second-stage cost follows new objects, not frames; an object without a track runs every time.
constexpr std::int64_t kSecondaryMaxAge = 5;

}  // namespace

Channel::Channel(ChannelSetup setup)
    : setup_(std::move(setup)),
      label_(fmt::format("channel {} ({})", setup_.channel, io::redact_credentials(setup_.address))),
      events_(256) {
  video_wanted_ = setup_.model->output_path && setup_.model->output_mode != OutputMode::kResults;
  wants_packets_ = video_wanted_ && setup_.model->output_mode == OutputMode::kPassthrough;
}

void Channel::add_tap(std::shared_ptr<ChannelTap> tap) {
  if (!tap) return;
  if (tap->wants_video() && setup_.model->output_mode != OutputMode::kResults) video_wanted_ = true;
  taps_want_pixels_ = taps_want_pixels_ || tap->wants_pixels();
  wants_packets_ = video_wanted_ && setup_.model->output_mode == OutputMode::kPassthrough;
  taps_.push_back(std::move(tap));
}

ChannelInfo Channel::info() const {
  ChannelInfo result{
      setup_.channel,
      setup_.name.empty() ? fmt::format("{}_{}", setup_.model->name, setup_.channel) : setup_.name,
      setup_.model->name, io::redact_credentials(setup_.address), setup_.model->output_mode};
  if (setup_.detector == nullptr) return result;
  const models::PostProcessor& detector = setup_.detector->labels();
  const auto skeleton = detector.skeleton();
  result.skeleton.assign(skeleton.begin(), skeleton.end());
  if (setup_.secondary) {
    // The classes the second stage takes, by SecondaryRunner's rule, without building a runner (an execution
    // context) for it.
    const nlohmann::json& metadata = setup_.secondary->metadata();
    const auto names = models::SecondaryRunner::class_names_taken(metadata, setup_.secondary_classes);
    for (int c = 0; c < detector.num_classes(); ++c)
      if (std::find(names.begin(), names.end(), detector.label(c)) != names.end())
        result.secondary_classes.push_back(c);
    if (const models::TaskKind* task = models::find_task(metadata.value("model_type", std::string())))
      result.secondary_skeleton.assign(task->skeleton.begin(), task->skeleton.end());
  }
  return result;
}

template <typename Call>
void Channel::notify_taps(Call&& call) {
  for (auto it = taps_.begin(); it != taps_.end();) {
    try {
      call(**it);
      ++it;
    } catch (const std::exception& error) {
      spdlog::error("{}: a live output failed and is detached: {}", label_, error.what());
      it = taps_.erase(it);
    }
  }
}

Channel::~Channel() {
  stop_source();
  join_source();
  events_.close();
  if (output_thread_.joinable()) output_thread_.join();
}

void Channel::start() {
  output_thread_ = std::thread([this] { output_loop(); });
  source_thread_ = std::thread([this] { source_loop(); });
}

void Channel::stop_source() {
  stop_ = true;
  {
    std::lock_guard lock(source_mutex_);
    if (current_source_ != nullptr) current_source_->interrupt();
  }
  source_wake_.notify_all();
}

void Channel::join_source() {
  if (source_thread_.joinable()) source_thread_.join();
}

void Channel::finish_output() {
  events_.close();
  if (output_thread_.joinable()) output_thread_.join();
}

bool Channel::outputs_closed() const {
  std::lock_guard lock(closed_mutex_);
  return outputs_closed_;
}

void Channel::wait_outputs_closed() {
  std::unique_lock lock(closed_mutex_);
  closed_wake_.wait(lock, [&] { return outputs_closed_ || !output_thread_.joinable(); });
}

void Channel::deliver(FrameTaskPtr task) {
  ChannelEvent event;
  event.kind = ChannelEvent::Kind::kFrame;
  event.frame = std::move(task);
  events_.push(std::move(event));
}

void Channel::set_state(ChannelState state) { state_.store(state); }

bool Channel::wait_for_retry(Clock::time_point until) {
  std::unique_lock lock(source_mutex_);
  source_wake_.wait_until(lock, until, [&] { return stop_.load(); });
  return !stop_.load();
}

// --- source side -------------------------------------------------------------------------------------------

void Channel::source_loop() {
  const bool live = is_network_address(setup_.address);
  io::SourceOptions options;
  options.loop = setup_.camera->loop;
  options.pace = setup_.camera->pace;
  options.rtsp_transport = std::string(to_string(setup_.camera->rtsp_transport));
  options.timeout_ms = 5000;
  options.stop = &stop_;  // stop_source() ends an open in progress too
  io::ReconnectPolicy policy(setup_.reconnect,
                             [this](io::ConnectionState, io::ConnectionState to, const std::string& detail) {
                               if (to == io::ConnectionState::kWaiting) {
                                 spdlog::warn("{}: {}", label_, detail);
                                 set_state(ChannelState::kWaiting);
                               } else {
                                 spdlog::info("{}: {}", label_, detail);
                               }
                             });

  while (!stop_) {
    if (!policy.should_attempt(Clock::now()) && !wait_for_retry(policy.retry_at())) break;
    // FFmpeg's complaints about this connection (its open, demuxing and decoding, all on this thread):
    // a few lines naming the channel, then a count.
    const io::FfmpegLogScope ffmpeg_log(label_);
    std::unique_ptr<io::VideoSource> source;
    try {
      source = std::make_unique<io::VideoSource>(setup_.address, options);
    } catch (const Error& error) {
      if (stop_) break;  // an open interrupted by the drain (a FIFO nobody writes): stopped, not failed
      if (!live) {
        spdlog::error("{}: {}; the channel stops, the others go on", label_, error.what());
        set_state(ChannelState::kFailed);
        break;
      }
      policy.on_failure(Clock::now(), error.what());
      continue;
    }
    {
      std::lock_guard lock(source_mutex_);
      current_source_ = source.get();
      if (stop_) source->interrupt();
    }
    policy.on_connected(Clock::now());
    counters_.reconnects.store(static_cast<std::uint64_t>(policy.reconnects()), std::memory_order_relaxed);
    set_state(ChannelState::kStreaming);
    {
      ChannelEvent start;
      start.kind = ChannelEvent::Kind::kStreamStart;
      start.codec = io::copy_codec_parameters(source->codec_parameters());
      start.time_base = source->info().time_base;
      start.frame_rate = source->info().frame_rate;
      reencode_ = wants_packets_ && start.codec->codec_id != AV_CODEC_ID_H264 &&
                  start.codec->codec_id != AV_CODEC_ID_HEVC;
      start.reencode = reencode_;
      events_.push(std::move(start));
    }
    std::string failure;
    const bool ended_cleanly = run_source(*source, failure);
    {
      std::lock_guard lock(source_mutex_);
      current_source_ = nullptr;
    }
    if (stop_) break;
    if (!live) {
      if (ended_cleanly) {
        spdlog::info("{}: end of file after {} frames", label_, next_frame_);
        set_state(ChannelState::kEnded);
      } else {
        spdlog::error("{}: {}; the channel stops, the others go on", label_, failure);
        set_state(ChannelState::kFailed);
      }
      break;
    }
    policy.on_failure(Clock::now(), ended_cleanly ? "the stream ended" : failure);
  }
  if (state_.load() == ChannelState::kStreaming || state_.load() == ChannelState::kWaiting ||
      state_.load() == ChannelState::kStarting) {
    set_state(ChannelState::kEnded);
  }
  ChannelEvent end;
  end.kind = ChannelEvent::Kind::kEnd;
  end.total_frames = next_frame_;
  events_.push(std::move(end));
  source_done_ = true;
  if (on_source_done_) on_source_done_();
}

bool Channel::run_source(io::VideoSource& source, std::string& failure) {
  std::unique_ptr<io::VideoDecoder> decoder;
  try {
    decoder = std::make_unique<io::VideoDecoder>(
        source.codec_parameters(),
        io::DecoderOptions{
            .threads = 1, .low_delay = source.is_live(), .skip_loop_filter = setup_.camera->skip_loop_filter},
        label_);
  } catch (const Error& error) {
    failure = error.what();
    return false;
  }
  const std::uint64_t errors_before = counters_.decode_errors.load();
  const std::uint64_t corrupt_before = counters_.corrupt_frames.load();
  auto publish_errors = [&] {
    counters_.decode_errors.store(errors_before + static_cast<std::uint64_t>(decoder->errors()),
                                  std::memory_order_relaxed);
    counters_.corrupt_frames.store(corrupt_before + static_cast<std::uint64_t>(decoder->corrupt_frames()),
                                   std::memory_order_relaxed);
  };
  io::PacketPtr packet = io::make_packet();
  io::FramePtr frame = io::make_frame();
  double pending_decode_ms = 0.0;  // decode time not yet attributed to a frame
  // Passthrough: for the packets of this connection from tag `window_base` on, whether the decoder has
  // given a frame for them (or they were reported lost). Tags are consecutive, so a flag per packet.
  const bool track_packets = wants_packets_ && !reencode_;
  std::deque<bool> answered;
  std::int64_t window_base = next_tag_;
  auto report_lost = [&](std::int64_t tag) {
    ChannelEvent lost;
    lost.kind = ChannelEvent::Kind::kPacketLost;
    lost.tag = tag;
    events_.push(std::move(lost));
  };
  auto mark_answered = [&](std::int64_t tag) {
    if (tag >= window_base && tag - window_base < static_cast<std::int64_t>(answered.size()))
      answered[static_cast<std::size_t>(tag - window_base)] = true;
  };
  // Packets older than the last `keep` that are still unanswered will never be: reported lost.
  auto settle = [&](std::size_t keep) {
    while (!answered.empty() && (answered.front() || answered.size() > keep)) {
      if (!answered.front()) report_lost(window_base);
      answered.pop_front();
      ++window_base;
    }
  };

  auto drain_frames = [&] {
    for (;;) {
      const auto started = Clock::now();
      const io::DecodeStatus status = decoder->receive(*frame);
      pending_decode_ms += elapsed_ms(started);
      if (status != io::DecodeStatus::kOk) return;
      auto task = std::make_unique<FrameTask>();
      task->channel = setup_.channel;
      task->frame_index = next_frame_++;
      task->packet_tag = frame->reordered_opaque;
      if (track_packets) mark_answered(task->packet_tag);
      task->pts = frame->best_effort_timestamp;
      task->width = frame->width;
      task->height = frame->height;
      task->decoded_at = Clock::now();
      task->decode_ms = pending_decode_ms;
      pending_decode_ms = 0.0;
      task->keep_pixels = reencode_ || taps_want_pixels_ || setup_.secondary != nullptr ||
                          (video_wanted_ && setup_.model->output_mode == OutputMode::kAnnotated);
      task->frame = io::make_frame();
      av_frame_move_ref(task->frame.get(), frame.get());
      counters_.decoded.fetch_add(1, std::memory_order_relaxed);
      route_frame(std::move(task));
    }
  };

  const AVRational time_base = source.info().time_base;
  std::optional<std::int64_t> shift;  // added to this connection's timestamps (continue_timeline)
  auto continue_timeline = [&](AVPacket& p) {
    const std::int64_t first = p.dts != AV_NOPTS_VALUE ? p.dts : p.pts;
    if (first == AV_NOPTS_VALUE) return;
    if (!shift) {
      shift = timeline_end_ == AV_NOPTS_VALUE
                  ? 0
                  : std::max<std::int64_t>(0, av_rescale_q(timeline_end_, timeline_base_, time_base) - first);
    }
    if (p.pts != AV_NOPTS_VALUE) p.pts += *shift;
    if (p.dts != AV_NOPTS_VALUE) p.dts += *shift;
    const std::int64_t end =
        std::max(p.pts, p.dts) + std::max<std::int64_t>(1, p.duration);  // NOPTS is the smallest int64
    if (timeline_end_ == AV_NOPTS_VALUE || av_compare_ts(end, time_base, timeline_end_, timeline_base_) > 0) {
      timeline_end_ = end;
      timeline_base_ = time_base;
    }
  };

  bool ok = true;
  try {
    while (!stop_ && source.read(*packet)) {
      continue_timeline(*packet);
      const std::int64_t tag = next_tag_++;
      if (wants_packets_ && !reencode_) {
        ChannelEvent event;
        event.kind = ChannelEvent::Kind::kPacket;
        event.tag = tag;
        event.packet = io::make_packet();
        if (av_packet_ref(event.packet.get(), packet.get()) < 0) fail("out of memory referencing a packet");
        events_.push(std::move(event));
        answered.push_back(false);
      }
      const std::int64_t errors = decoder->errors();
      for (;;) {
        const auto started = Clock::now();
        const io::DecodeStatus status = decoder->send(packet.get(), tag);
        pending_decode_ms += elapsed_ms(started);
        if (status != io::DecodeStatus::kAgain) break;
        drain_frames();
      }
      if (decoder->errors() > errors && track_packets) {
        report_lost(tag);
        mark_answered(tag);
      }
      publish_errors();
      drain_frames();
      if (track_packets) settle(kDecoderWindowPackets);
    }
  } catch (const Error& error) {
    failure = error.what();
    ok = false;
  }
  // Frames still inside the decoder (reordering, frame threads) belong to this connection: get them out.
  decoder->send(nullptr);
  drain_frames();
  if (track_packets) settle(0);  // the decoder is empty: what it did not answer is lost
  publish_errors();
  return ok;
}

void Channel::route_frame(FrameTaskPtr task) {
  const int every = setup_.model->skip_frame_num + 1;
  if (task->frame_index % every != 0) {
    task->outcome = FrameOutcome::kSkipped;
    if (!task->keep_pixels) task->frame.reset();
    deliver(std::move(task));
    return;
  }
  setup_.detector->submit(std::move(task), setup_.drop_when_full);
}

// --- output side -------------------------------------------------------------------------------------------

void Channel::output_loop() {
  OutputState out;
  if (setup_.model->output_path)
    out.first_url = out.video_url = channel_output_url(*setup_.model->output_path, setup_.channel);
  // The thread ends as soon as the outputs are closed (the source ended and every frame it decoded was
  // emitted): an ended or failed channel gives its thread back without waiting to be deleted.
  while (!out.closed) {
    auto event = events_.pop();
    if (!event) break;
    handle(out, std::move(*event));
  }
  events_.close();  // nothing is expected after the end; a late push fails rather than waiting for room
  // Closed before the end arrived (shutdown): whatever is left goes out in order.
  while (!out.reorder.empty()) {
    auto node = out.reorder.extract(out.reorder.begin());
    emit(out, std::move(node.mapped()));
  }
  close_outputs(out);
}

void Channel::handle(OutputState& out, ChannelEvent event) {
  if (out.closed) return;
  switch (event.kind) {
    case ChannelEvent::Kind::kStreamStart: {
      out.tracker.reset();
      out.last_detections.clear();
      const bool changed =
          out.codec && (out.codec->codec_id != event.codec->codec_id ||
                        out.codec->width != event.codec->width || out.codec->height != event.codec->height);
      out.codec = std::move(event.codec);
      out.time_base = event.time_base;
      out.frame_rate = event.frame_rate;
      if (event.reencode && !out.reencode) {
        spdlog::warn(
            "{}: the source is {}, which cannot carry SEI: passthrough encodes it with x264 to carry "
            "the detections",
            label_, avcodec_get_name(out.codec->codec_id));
      }
      out.reencode = event.reencode;
      if (wants_packets_ && changed && out.video_open) {
        write_passthrough(out, true);
        stop_video(out);
        out.video_url = segment_url(out.first_url, ++out.segment);
        spdlog::warn("{}: the stream changed codec or size; output starts again in {}", label_,
                     out.video_url.empty() ? std::string("(live only)") : out.video_url);
        out.video_disabled = false;
      }
      return;
    }
    case ChannelEvent::Kind::kPacket:
      if (!wants_packets_ || out.reencode || out.video_disabled) return;
      if (!out.video_open && out.codec) {
        FrameTask none;
        open_video_output(out, none);
      }
      if (!out.video_open) return;
      out.pending.emplace_back(event.tag, std::move(event.packet));
      write_passthrough(out, false);
      return;
    case ChannelEvent::Kind::kPacketLost:
      out.lost.insert(event.tag);
      write_passthrough(out, false);
      return;
    case ChannelEvent::Kind::kFrame: {
      const std::int64_t index = event.frame->frame_index;
      out.reorder.emplace(index, std::move(event.frame));
      while (!out.reorder.empty() && out.reorder.begin()->first == out.next_emit) {
        auto node = out.reorder.extract(out.reorder.begin());
        emit(out, std::move(node.mapped()));
      }
      break;
    }
    case ChannelEvent::Kind::kEnd:
      out.total_frames = event.total_frames;
      break;
  }
  if (out.total_frames >= 0 && out.next_emit >= out.total_frames && out.reorder.empty()) close_outputs(out);
}

void Channel::run_secondary(OutputState& out, FrameTask& task) {
  if (!task.frame) return;
  if (!out.secondary) {
    std::vector<std::string> labels;
    const auto& post = setup_.detector->labels();
    for (int c = 0; c < post.num_classes(); ++c) labels.push_back(post.label(c));
    out.secondary = std::make_unique<models::SecondaryRunner>(
        setup_.secondary, labels,
        models::SecondaryRunner::Options{.threads = 1, .classes = setup_.secondary_classes});
  }
  models::SecondaryRunner& runner = *out.secondary;
  const bool embeddings = runner.produces_embeddings();
  out.secondary_batch.clear();
  out.secondary_index.clear();
  // Largest objects first: the ones the second stage sees best, and the ones cut last by the limit.
  std::vector<std::size_t>& order = out.secondary_order;  // reused: no allocation per frame
  order.clear();
  for (std::size_t i = 0; i < task.detections.size(); ++i)
    if (runner.can_run_on(task.detections[i])) order.push_back(i);
  auto area = [&](std::size_t i) {
    const auto& d = task.detections[i];
    return (d.x2 - d.x1) * (d.y2 - d.y1);
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return area(a) > area(b); });
  std::uint64_t cached = 0;
  for (std::size_t i : order) {
    models::Detection& d = task.detections[i];
    const auto hit = d.track_id >= 0 ? out.secondary_cache.find(d.track_id) : out.secondary_cache.end();
    if (hit != out.secondary_cache.end() && task.frame_index - hit->second.frame <= kSecondaryMaxAge) {
      const auto& c = hit->second;
      d.attribute = c.attribute;
      if (embeddings) {
        d.embedding = c.embedding;
      } else {
        // Moved and scaled with the box since they were found.
        const float sx = (d.x2 - d.x1) / std::max(c.x2 - c.x1, 1e-3f);
        const float sy = (d.y2 - d.y1) / std::max(c.y2 - c.y1, 1e-3f);
        d.keypoints = c.keypoints;
        for (auto& p : d.keypoints) {
          p.x = d.x1 + (p.x - c.x1) * sx;
          p.y = d.y1 + (p.y - c.y1) * sy;
        }
      }
      ++cached;
      continue;
    }
    // At most max_objects of a frame (the largest first); the rest reuse or go without.
    if (out.secondary_batch.size() >= static_cast<std::size_t>(setup_.secondary_max_objects)) continue;
    out.secondary_batch.push_back(d);
    out.secondary_index.push_back(i);
  }
  counters_.secondary_cached.fetch_add(cached, std::memory_order_relaxed);
  const std::shared_ptr<const models::FaceGallery> gallery =
      embeddings && setup_.gallery ? setup_.gallery->current() : nullptr;
  if (gallery.get() != out.voted_with) {
    // A reloaded gallery (the API): votes cast against the old one name people it may no longer hold.
    out.identity_votes.clear();
    out.voted_with = gallery.get();
  }
  if (!out.secondary_batch.empty()) {
    runner.run(out.viewer.bgr(*task.frame), out.secondary_batch);
    for (std::size_t k = 0; k < out.secondary_batch.size(); ++k) {
      models::Detection& d = task.detections[out.secondary_index[k]];
      d.attribute = std::move(out.secondary_batch[k].attribute);
      if (embeddings)
        d.embedding = std::move(out.secondary_batch[k].embedding);
      else
        d.keypoints = std::move(out.secondary_batch[k].keypoints);
      if (d.track_id >= 0) {
        out.secondary_cache[d.track_id] = {embeddings ? std::vector<models::Keypoint>() : d.keypoints,
                                           d.embedding,
                                           d.x1,
                                           d.y1,
                                           d.x2,
                                           d.y2,
                                           task.frame_index,
                                           d.attribute};
      }
      if (gallery == nullptr || d.embedding.empty()) continue;
      // Each fresh embedding of a track votes once; a face without a track is named by this frame alone.
      const models::Identity match = gallery->match(d.embedding, setup_.gallery->threshold());
      if (d.track_id < 0) {
        d.identity = match;
        continue;
      }
      auto& votes = out.identity_votes[d.track_id];
      auto& vote = votes.by_name[match.name];
      ++vote.count;
      vote.similarity_sum += match.similarity;
    }
    counters_.secondary_runs.fetch_add(out.secondary_batch.size(), std::memory_order_relaxed);
  }
  if (gallery != nullptr) {
    for (std::size_t i : order) {
      models::Detection& d = task.detections[i];
      const auto votes = d.track_id >= 0 ? out.identity_votes.find(d.track_id) : out.identity_votes.end();
      if (votes == out.identity_votes.end()) continue;
      votes->second.last_frame = task.frame_index;
      const auto winner = std::max_element(
          votes->second.by_name.begin(), votes->second.by_name.end(), [](const auto& a, const auto& b) {
            return a.second.count != b.second.count ? a.second.count < b.second.count
                                                    : a.second.similarity_sum < b.second.similarity_sum;
          });
      if (winner == votes->second.by_name.end()) continue;
      d.identity = models::Identity{winner->first,
                                    winner->second.similarity_sum / static_cast<float>(winner->second.count)};
    }
  }
  // Tracks gone for long are forgotten (the cache and the votes stay as small as the live tracks).
  std::erase_if(out.secondary_cache, [&](const auto& entry) {
    return task.frame_index - entry.second.frame > 10 * kSecondaryMaxAge;
  });
  std::erase_if(out.identity_votes, [&](const auto& entry) {
    return task.frame_index - entry.second.last_frame > 10 * kSecondaryMaxAge;
  });
}

void Channel::emit(OutputState& out, FrameTaskPtr task) {
  const auto started = Clock::now();
  const Clock::time_point decoded_at = task->decoded_at;
  out.next_emit = task->frame_index + 1;
  if (task->outcome == FrameOutcome::kInferred) {
    out.tracker.update(task->detections);
    if (setup_.secondary) run_secondary(out, *task);
    out.last_detections = task->detections;
    counters_.inferred.fetch_add(1, std::memory_order_relaxed);
    counters_.decode_us.fetch_add(to_us(task->decode_ms), std::memory_order_relaxed);
    counters_.preprocess_us.fetch_add(to_us(task->preprocess_ms), std::memory_order_relaxed);
    counters_.infer_us.fetch_add(to_us(task->infer_ms), std::memory_order_relaxed);
    counters_.postprocess_us.fetch_add(to_us(task->postprocess_ms), std::memory_order_relaxed);
    counters_.histogram(Stage::kDecode).observe(task->decode_ms);
    counters_.histogram(Stage::kPreprocess).observe(task->preprocess_ms);
    counters_.histogram(Stage::kInfer).observe(task->infer_ms);
    counters_.histogram(Stage::kPostprocess).observe(task->postprocess_ms);
  } else {
    task->detections = out.last_detections;
    if (task->outcome == FrameOutcome::kSkipped) {
      counters_.skipped.fetch_add(1, std::memory_order_relaxed);
    } else {
      // The reason first: a reader that sees `dropped` finds it accounted for by the reasons.
      auto& reason = task->drop_reason == DropReason::kDetectionFailed ? counters_.dropped_failed
                     : task->drop_reason == DropReason::kStale         ? counters_.dropped_stale
                                                                       : counters_.dropped_queue_full;
      reason.fetch_add(1, std::memory_order_relaxed);
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }
  const auto& labels = setup_.detector->labels();

  if (setup_.results != nullptr || !taps_.empty()) {
    FrameRecord record;
    record.channel = setup_.channel;
    record.frame = task->frame_index;
    record.pts = task->pts == AV_NOPTS_VALUE ? -1 : task->pts;
    record.pts_seconds = task->pts == AV_NOPTS_VALUE || out.time_base.num == 0
                             ? -1.0
                             : static_cast<double>(task->pts) * av_q2d(out.time_base);
    record.width = task->width;
    record.height = task->height;
    record.inferred = task->outcome == FrameOutcome::kInferred;
    record.detections = task->detections;
    const std::string line = format_record(record, [&](int id) { return labels.label(id); });
    if (setup_.results != nullptr && !setup_.results->write_line(line))
      counters_.results_dropped.fetch_add(1, std::memory_order_relaxed);
    const AVFrame* picture = taps_want_pixels_ ? task->frame.get() : nullptr;
    notify_taps([&](ChannelTap& tap) { tap.frame_done(record, line, picture); });
  }

  const bool annotated = setup_.model->output_mode == OutputMode::kAnnotated;
  if (video_wanted_ && (annotated || out.reencode) && !out.video_disabled && task->frame) {
    if (!out.encoder) open_video_output(out, *task);
    if (out.encoder && out.video_open) encode_frame(out, *task, annotated);
  }

  if (out.video_open && out.inserter && !out.pending.empty() &&
      task->packet_tag >= out.pending.front().first) {
    to_metadata_boxes(task->detections, out.done[task->packet_tag]);
    write_passthrough(out, false);
  }

  task.reset();  // pixels back to the decoder before counting the frame as done
  const auto now = Clock::now();
  const double output_ms = elapsed_ms(started, now);
  const double latency_ms = elapsed_ms(decoded_at, now);
  counters_.output_us.fetch_add(to_us(output_ms), std::memory_order_relaxed);
  counters_.latency_us.fetch_add(to_us(latency_ms), std::memory_order_relaxed);
  counters_.histogram(Stage::kOutput).observe(output_ms);
  counters_.histogram(Stage::kEndToEnd).observe(latency_ms);
  counters_.recent_latency.record(latency_ms);
  counters_.output.fetch_add(1, std::memory_order_relaxed);
}

void Channel::encode_frame(OutputState& out, FrameTask& task, bool draw) {
  const auto& labels = setup_.detector->labels();
  const vision::ImageView bgr = out.viewer.bgr(*task.frame);
  if (draw) {
    out.fps.sample(static_cast<std::uint64_t>(task.frame_index), Clock::now());
    cv::Mat image(bgr.height, bgr.width, CV_8UC3, out.viewer.bgr_pixels(),
                  static_cast<std::size_t>(bgr.strides[0]));
    out.osd.clear();
    for (const auto& d : task.detections) {
      vision::OsdBox box{
          d.x1,
          d.y1,
          d.x2,
          d.y2,
          d.track_id >= 0 ? d.track_id : d.class_id,
          models::display_label(d, labels.label(d.class_id)),
          {},
          out.secondary && out.secondary->takes(d.class_id) ? out.secondary->skeleton() : labels.skeleton()};
      for (const auto& p : d.keypoints) box.points.push_back({p.x, p.y, p.score});
      if (!d.mask.empty()) {
        models::PixelMask mask = models::rasterize(d);
        box.mask = {mask.x, mask.y, mask.width, mask.height, std::move(mask.pixels)};
      }
      out.osd.push_back(std::move(box));
    }
    vision::draw_boxes(image, out.osd);
    cv::putText(image, fmt::format("ch {}  {:.1f} fps", setup_.channel, out.fps.fps()), cv::Point(8, 24),
                cv::FONT_HERSHEY_SIMPLEX, 0.7, cv::Scalar(0, 255, 255), 2, cv::LINE_AA);
  }
  const io::EncoderFrame frame = io::EncoderFrame::bgr24(out.viewer.bgr_pixels(), bgr.width, bgr.height,
                                                         static_cast<int>(bgr.strides[0]));
  to_metadata_boxes(task.detections, out.boxes);
  try {
    out.encoder->send(&frame);
    // zerolatency: no look-ahead, no B-frames, so the packets coming out now are this frame's.
    while (out.encoder->receive(*out.scratch) == io::EncodeStatus::kOk) {
      if (!out.inserter) {
        send_video(out, *out.scratch);
        continue;
      }
      const auto bytes = out.inserter->insert(
          std::span(out.scratch->data, static_cast<std::size_t>(out.scratch->size)), out.boxes);
      fill_packet(*out.sei_packet, bytes, *out.scratch);
      send_video(out, *out.sei_packet);
    }
  } catch (const Error& error) {
    spdlog::error("{}: encoding failed, video output off: {}", label_, error.what());
    out.video_disabled = true;
  }
  publish_writer_stats(out);
}

void Channel::send_video(OutputState& out, const AVPacket& packet) {
  if (out.writer) {
    out.writer->write(packet);
  } else {
    counters_.packets_written.fetch_add(1, std::memory_order_relaxed);  // live outputs only
  }
  notify_taps([&](ChannelTap& tap) { tap.video_packet(packet); });
}

void Channel::stop_video(OutputState& out) {
  if (!out.video_open) return;
  out.video_open = false;
  if (out.writer) {
    out.writer->close();
    publish_writer_stats(out);
    spdlog::info("{}: output {} closed ({} packets written, {} dropped)", label_, out.video_url,
                 out.writer->stats().packets_written, out.writer->stats().packets_dropped);
    out.written_before += static_cast<std::uint64_t>(out.writer->stats().packets_written);
    out.dropped_before += static_cast<std::uint64_t>(out.writer->stats().packets_dropped);
    out.writer.reset();
  }
  notify_taps([](ChannelTap& tap) { tap.video_stopped(); });
}

void Channel::publish_writer_stats(const OutputState& out) {
  if (!out.writer) return;
  counters_.packets_written.store(out.written_before +
                                  static_cast<std::uint64_t>(out.writer->stats().packets_written));
  counters_.packets_dropped.store(out.dropped_before +
                                  static_cast<std::uint64_t>(out.writer->stats().packets_dropped));
}

void Channel::open_video_output(OutputState& out, const FrameTask& first) {
  const bool live_taps =
      std::any_of(taps_.begin(), taps_.end(), [](const auto& tap) { return tap->wants_video(); });
  try {
    io::StreamWriterOptions options;
    options.rtsp_tcp = true;
    options.format = setup_.model->output_format.value_or("");
    io::CodecParametersPtr parameters;
    AVRational time_base = out.time_base;
    AVRational frame_rate = out.frame_rate;
    if (setup_.model->output_mode == OutputMode::kPassthrough && !out.reencode) {
      const io::VideoCodec codec = io::sei_codec_of(*out.codec);  // throws for codecs without SEI
      out.inserter = std::make_unique<io::SeiInserter>(codec, io::framing_of(*out.codec));
      parameters = io::copy_codec_parameters(*out.codec);
    } else {
      io::EncoderOptions encoder;
      encoder.width = first.width & ~1;
      encoder.height = first.height & ~1;
      const bool known_rate = out.frame_rate.num > 0 && out.frame_rate.den > 0;
      encoder.fps_num = known_rate ? out.frame_rate.num : 25;
      encoder.fps_den = known_rate ? out.frame_rate.den : 1;
      encoder.gop_size = std::max(1, static_cast<int>(2 * encoder.fps_num / encoder.fps_den));
      encoder.threads = setup_.encoder_threads;
      // Live outputs get both: extradata for containers (fMP4) and SPS/PPS before every key frame for
      // clients that join mid-stream.
      encoder.global_header = live_taps || (!out.video_url.empty() && io::StreamWriter::needs_global_header(
                                                                          out.video_url, options.format));
      encoder.repeat_headers = live_taps;
      out.encoder = std::make_unique<io::VideoEncoder>(encoder, label_);
      parameters.reset(avcodec_parameters_alloc());
      if (!parameters || avcodec_parameters_from_context(parameters.get(), &out.encoder->context()) < 0)
        fail("out of memory");
      time_base = out.encoder->time_base();
      frame_rate = AVRational{encoder.fps_num, encoder.fps_den};
      // Annotated video carries the detections too (clients that draw their own overlay, the viewer).
      // libx264 emits Annex-B packets whatever the container (muxers convert): SEI goes in with start codes.
      out.inserter = std::make_unique<io::SeiInserter>(io::VideoCodec::kH264, io::NalFraming::annexb());
    }
    if (!out.video_url.empty()) {
      out.writer =
          std::make_unique<io::StreamWriter>(out.video_url, *parameters, time_base, frame_rate, options);
    }
    out.video_open = true;
    notify_taps([&](ChannelTap& tap) { tap.video_started(*parameters, time_base, frame_rate); });
    spdlog::info("{}: {} video to {}{}", label_,
                 out.reencode ? "re-encoded passthrough" : to_string(setup_.model->output_mode),
                 out.video_url.empty() ? std::string("live outputs") : io::redact_credentials(out.video_url),
                 !out.video_url.empty() && live_taps ? " and live outputs" : "");
  } catch (const Error& error) {
    spdlog::error("{}: no video output: {}", label_, error.what());
    out.video_disabled = true;
    out.video_open = false;
    out.writer.reset();
    out.encoder.reset();
    out.inserter.reset();
  }
}

void Channel::write_passthrough(OutputState& out, bool flush_all) {
  while (!out.pending.empty()) {
    const std::int64_t tag = out.pending.front().first;
    const io::PacketPtr& packet = out.pending.front().second;
    const auto found = out.done.find(tag);
    if (found != out.done.end()) {
      const auto bytes = out.inserter->insert(std::span(packet->data, static_cast<std::size_t>(packet->size)),
                                              found->second);
      fill_packet(*out.sei_packet, bytes, *packet);
      send_video(out, *out.sei_packet);
    } else if (flush_all || out.lost.contains(tag)) {
      send_video(out, *packet);  // no frame will carry metadata for it: sent as it came
    } else {
      break;
    }
    out.lost.erase(tag);
    out.pending.pop_front();
    // Metadata of tags already sent can go.
    const std::int64_t front = out.pending.empty() ? tag + 1 : out.pending.front().first;
    out.done.erase(out.done.begin(), out.done.lower_bound(front));
    out.lost.erase(out.lost.begin(), out.lost.lower_bound(front));
  }
  publish_writer_stats(out);
}

void Channel::close_outputs(OutputState& out) {
  if (out.closed) return;
  out.closed = true;
  if (out.video_open && out.inserter) write_passthrough(out, true);
  if (out.encoder && out.video_open) {
    try {
      out.encoder->send(nullptr);
      while (out.encoder->receive(*out.scratch) == io::EncodeStatus::kOk) send_video(out, *out.scratch);
    } catch (const Error& error) {
      spdlog::error("{}: flushing the encoder: {}", label_, error.what());
    }
  }
  stop_video(out);
  notify_taps([](ChannelTap& tap) { tap.closed(); });
  {
    std::lock_guard lock(closed_mutex_);
    outputs_closed_ = true;
  }
  closed_wake_.notify_all();
  if (on_outputs_closed_) on_outputs_closed_();
}

}  // namespace vapipe::pipeline
