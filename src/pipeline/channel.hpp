#pragma once
// One channel of `vapipe run`: a source thread (open with reconnect back-off, demux, decode, skip rule,
// submit to the model's Detector) and an output thread (per-channel reordering, tracker, JSON Lines,
// passthrough with SEI or annotated re-encode to a file or server). A fault in one channel (camera gone,
// corrupt stream, output server down) is handled and logged here and never reaches another channel.
//
//   source thread: VideoSource ─► VideoDecoder ─► FrameTask ─► Detector::submit ┐
//                        │ packets (passthrough)                                  │ (skipped frames direct)
//                        ▼                                                         ▼
//   output thread: events_ (packets, stream starts, results in any order) ─► reorder by frame index ─►
//                  tracker ─► results line, SEI + source packets | OSD + x264 ─► StreamWriter
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/bounded_queue.hpp"
#include "core/fps_meter.hpp"
#include "io/ffmpeg_handles.hpp"
#include "io/reconnect_policy.hpp"
#include "io/video_source.hpp"
#include "pipeline/channel_tap.hpp"
#include "pipeline/config.hpp"
#include "pipeline/detector.hpp"
#include "pipeline/frame_task.hpp"
#include "pipeline/outputs.hpp"

namespace vapipe::models {
class GalleryHolder;
}

namespace vapipe::pipeline {

// Per-frame stage times by bucket, for the Prometheus histograms at /metrics. Upper bounds in milliseconds:
// sub-millisecond stages (post-processing) up to seconds (a stalled output, end-to-end latency).
inline constexpr std::array<double, 14> kLatencyBucketsMs{0.5, 1,   2,   5,    10,   20,   50,
                                                          100, 200, 500, 1000, 2000, 5000, 10000};

struct LatencyHistogram {
  // counts[i]: observations in (bound[i-1], bound[i]]; the last one: over the largest bound.
  std::array<std::atomic<std::uint64_t>, kLatencyBucketsMs.size() + 1> counts{};
  void observe(double ms) {
    std::size_t bucket = 0;
    while (bucket < kLatencyBucketsMs.size() && ms > kLatencyBucketsMs[bucket]) ++bucket;
    counts[bucket].fetch_add(1, std::memory_order_relaxed);
  }
};

// The stages of LatencyHistogram, in ChannelCounters::histograms.
enum class Stage : std::uint8_t { kDecode, kPreprocess, kInfer, kPostprocess, kOutput, kEndToEnd };
inline constexpr std::size_t kStageCount = 6;

// Counters a channel's threads bump and the statistics printer reads (relaxed atomics: totals only).
struct ChannelCounters {
  std::atomic<std::uint64_t> decoded{0};
  std::atomic<std::uint64_t> output{0};  // frames that reached the end of the channel (all outputs done)
  std::atomic<std::uint64_t> inferred{0};
  std::atomic<std::uint64_t> skipped{0};
  std::atomic<std::uint64_t> dropped{0};  // = dropped_queue_full + dropped_failed + dropped_stale
  std::atomic<std::uint64_t> dropped_queue_full{0};
  std::atomic<std::uint64_t> dropped_failed{0};  // preprocessing or inference failed
  std::atomic<std::uint64_t> dropped_stale{0};   // live source, older than max_latency_ms
  std::atomic<std::uint64_t> decode_errors{0};
  std::atomic<std::uint64_t> corrupt_frames{0};  // decoded with concealed errors (damaged stream)
  std::atomic<std::uint64_t> reconnects{0};
  std::atomic<std::uint64_t> packets_written{0};
  std::atomic<std::uint64_t> packets_dropped{0};  // video output could not take them (server down)
  std::atomic<std::uint64_t> results_dropped{0};  // JSON Lines the results file could not take (disk full)
  // The model's second-stage network (pose on persons): objects it ran on, and objects whose fresh result
  // of the same track was reused instead.
  std::atomic<std::uint64_t> secondary_runs{0};
  std::atomic<std::uint64_t> secondary_cached{0};
  // Sums over output frames of the per-stage times, in microseconds.
  std::atomic<std::uint64_t> decode_us{0};
  std::atomic<std::uint64_t> preprocess_us{0};
  std::atomic<std::uint64_t> infer_us{0};
  std::atomic<std::uint64_t> postprocess_us{0};
  std::atomic<std::uint64_t> output_us{0};
  std::atomic<std::uint64_t> latency_us{0};  // decoded -> all outputs done
  // The same times frame by frame (decode..postprocess: inferred frames; output, end-to-end: every frame).
  std::array<LatencyHistogram, kStageCount> histograms;
  // End-to-end latency of the last frames, for the p50/p99 of the stats table, /api/channels and /metrics.
  RecentPercentiles recent_latency;
  LatencyHistogram& histogram(Stage stage) { return histograms[static_cast<std::size_t>(stage)]; }
  const LatencyHistogram& histogram(Stage stage) const { return histograms[static_cast<std::size_t>(stage)]; }
};

// A network stream (rtsp://, rtmp://, http://, ...) rather than a file: reconnects, may drop frames.
bool is_network_address(const std::string& address);

// kRemoved: taken out at run time (control API); drained, its outputs closed and its threads gone.
enum class ChannelState : std::uint8_t { kStarting, kStreaming, kWaiting, kEnded, kFailed, kRemoved };
const char* to_string(ChannelState state);

struct ChannelSetup {
  int channel = 0;
  std::string name;  // empty: "<model>_<channel>"
  std::string address;
  const CameraConfig* camera = nullptr;
  const ModelConfig* model = nullptr;
  Detector* detector = nullptr;
  // A top-down network of the model's package (pose) run on the detector's objects of its classes, in the
  // channel's output thread after tracking; null: none.
  std::shared_ptr<const Network> secondary;
  std::vector<std::string> secondary_classes;  // the config's "secondary" classes; empty: the network's own
  int secondary_max_objects = 8;               // objects of a frame it runs on at most, the largest first
  // A face embedding secondary's gallery: each tracked face gets the identity its track's matches vote for.
  std::shared_ptr<models::GalleryHolder> gallery;
  ResultsFile* results = nullptr;  // shared by the channels of a model; may be null
  bool drop_when_full = false;     // live source and non-blocking queue: drop oldest instead of waiting
  int encoder_threads = 0;
  io::ReconnectOptions reconnect;
};

// What the output thread receives, in its queue's order. A packet always comes before the frames
// decoded from it; results come in any order and are put back in frame order by the output thread.
struct ChannelEvent {
  enum class Kind : std::uint8_t {
    kStreamStart,  // a (re)connection: codec parameters for the passthrough output; tracker restarts
    kPacket,       // a source packet (passthrough only), tagged
    kPacketLost,   // the packet `tag` failed to decode: no frame will carry its metadata
    kFrame,        // a frame back from the detector (or skipped/dropped)
    kEnd,          // the source ended; `total_frames` frames were decoded in all
  };
  Kind kind = Kind::kFrame;
  std::int64_t tag = -1;
  io::PacketPtr packet;
  io::CodecParametersPtr codec;
  AVRational time_base{0, 1};
  AVRational frame_rate{0, 1};
  FrameTaskPtr frame;
  std::int64_t total_frames = 0;
  // kStreamStart, passthrough only: the source codec cannot carry SEI (not H.264/H.265), so the frames are
  // encoded with x264 instead and the SEI goes into the encoded stream.
  bool reencode = false;
};

class Channel {
 public:
  explicit Channel(ChannelSetup setup);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Before start(): attaches a live consumer of this channel's outputs (see channel_tap.hpp).
  void add_tap(std::shared_ptr<ChannelTap> tap);
  ChannelInfo info() const;

  void start();
  // Stops reading (interrupts a blocked read or a back-off wait); frames already decoded still finish.
  void stop_source();
  void join_source();
  // After every frame of this channel has been delivered (detectors joined): drains and closes outputs.
  void finish_output();
  // After join_source(): waits until the output thread has emitted every frame the source decoded and
  // closed the outputs (taps got closed()). The detectors keep running: this is how one channel leaves a
  // running pipeline. Then finish_output() ends the output thread and mark_removed() records it.
  void wait_outputs_closed();
  bool outputs_closed() const;
  void mark_removed() { set_state(ChannelState::kRemoved); }

  // From the detector threads (and other channels' sources for drop-oldest): a frame of this channel.
  void deliver(FrameTaskPtr task);

  bool source_done() const { return source_done_.load(); }
  ChannelState state() const { return state_.load(); }
  int id() const { return setup_.channel; }
  const std::string& address() const { return setup_.address; }
  const ChannelCounters& counters() const { return counters_; }
  std::size_t queue_depth() const { return events_.size(); }
  void set_on_source_done(std::function<void()> callback) { on_source_done_ = std::move(callback); }
  // Called on the output thread once the outputs closed (before start()).
  void set_on_outputs_closed(std::function<void()> callback) { on_outputs_closed_ = std::move(callback); }

 private:
  struct OutputState;

  void source_loop();
  bool run_source(io::VideoSource& source, std::string& failure);
  void route_frame(FrameTaskPtr task);
  void output_loop();
  void handle(OutputState& out, ChannelEvent event);
  void emit(OutputState& out, FrameTaskPtr task);
  void run_secondary(OutputState& out, FrameTask& task);
  void open_video_output(OutputState& out, const FrameTask& first);
  void encode_frame(OutputState& out, FrameTask& task, bool draw);
  void write_passthrough(OutputState& out, bool flush_all);
  void close_outputs(OutputState& out);
  void send_video(OutputState& out, const AVPacket& packet);
  void stop_video(OutputState& out);
  template <typename Call>
  void notify_taps(Call&& call);
  void publish_writer_stats(const OutputState& out);
  void set_state(ChannelState state);
  bool wait_for_retry(Clock::time_point until);

  ChannelSetup setup_;
  std::string label_;
  ChannelCounters counters_;
  std::atomic<ChannelState> state_{ChannelState::kStarting};
  std::atomic<bool> stop_{false};
  std::atomic<bool> source_done_{false};
  std::function<void()> on_source_done_;
  std::function<void()> on_outputs_closed_;

  mutable std::mutex closed_mutex_;  // outputs_closed_, set by the output thread
  std::condition_variable closed_wake_;
  bool outputs_closed_ = false;

  std::mutex source_mutex_;  // guards current_source_ and the back-off wait
  std::condition_variable source_wake_;
  io::VideoSource* current_source_ = nullptr;

  std::int64_t next_frame_ = 0;  // source thread only
  std::int64_t next_tag_ = 0;    // source thread only
  // The channel's timeline (source thread only): a new connection (a reconnect, a codec change) whose
  // timestamps start over is moved to continue after the end of the previous one, so every output (files,
  // pushes, the RTSP server, the viewer, JSON Lines) sees the same increasing timestamps.
  AVRational timeline_base_{1, 1};                 // unit of timeline_end_
  std::int64_t timeline_end_ = AV_NOPTS_VALUE;     // the latest packet's pts + duration
  std::vector<std::shared_ptr<ChannelTap>> taps_;  // fixed once started; output thread only
  bool video_wanted_ = false;  // a video output (file/server from output_path, or a tap) exists
  bool taps_want_pixels_ = false;
  bool wants_packets_ = false;  // passthrough output
  bool reencode_ = false;       // source thread only: passthrough of a codec without SEI (ChannelEvent)
  BoundedQueue<ChannelEvent> events_;
  std::thread source_thread_;
  std::thread output_thread_;
};

}  // namespace vapipe::pipeline
