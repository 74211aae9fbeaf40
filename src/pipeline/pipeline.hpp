#pragma once
// `vapipe run`: the whole pipeline of one config. Loads every model once (compiling .onnx files into the
// cache), starts one Detector per model and one Channel per configured channel, prints the statistics,
// and shuts down in dependency order so nothing accepted is lost:
//   sources stop -> detectors drain their queues and finish -> channels output the last frames and close
//   their files/streams (MP4 trailer, RTSP TEARDOWN) -> summary.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/fps_meter.hpp"
#include "pipeline/channel.hpp"
#include "pipeline/channel_tap.hpp"
#include "pipeline/config.hpp"
#include "pipeline/detector.hpp"
#include "pipeline/mosaic.hpp"
#include "pipeline/outputs.hpp"

namespace vapipe::pipeline {

struct RunOptions {
  bool stats_line = true;                             // the sophon-pipeline line every interval
  bool stats_table = false;                           // plus the per-channel table (--stats all)
  std::optional<std::chrono::milliseconds> duration;  // stop by itself after this long
  std::filesystem::path cache_dir;                    // compiled .onnx models; empty: default_cache_dir()
  int context_threads = 0;  // oneDNN threads per inference context; 0: one single-threaded context per core
  std::FILE* stats_out = stdout;
  // Cluster mode (src/cluster): the config's channels are not started here, their models are loaded, and
  // run() goes on until request_stop() even with no channel: a cluster node adds the channels it claims
  // with add_channel() and removes those it loses.
  bool standby = false;
  io::ReconnectOptions reconnect{std::chrono::milliseconds(500), std::chrono::milliseconds(30'000), 2.0,
                                 std::chrono::milliseconds(10'000)};
};

// Totals of one channel at the end of a run.
struct ChannelSummary {
  int channel = 0;
  std::string address;  // as configured (credentials removed)
  std::string state;
  std::uint64_t decoded = 0, output = 0, inferred = 0, skipped = 0, dropped = 0, decode_errors = 0,
                corrupt_frames = 0, reconnects = 0, packets_written = 0, packets_dropped = 0,
                results_dropped = 0;
  std::uint64_t dropped_queue_full = 0, dropped_failed = 0, dropped_stale = 0;  // dropped, by reason
  std::uint64_t secondary_runs = 0, secondary_cached = 0;  // a chained network's objects: run, reused
  double latency_p50_ms = 0.0, latency_p99_ms = 0.0;  // decode -> output, of the channel's last 512 frames
};

struct RunSummary {
  double seconds = 0.0;
  std::vector<ChannelSummary> channels;
  std::uint64_t frames_output() const;
};

// A channel added at run time (control API): like one `cameras[]` entry with chan_num 1 and one model.
struct ChannelRequest {
  std::string address;
  std::string model;  // the name of a model this run has loaded (one that a configured channel uses)
  bool loop = true;
  bool pace = true;
  RtspTransport rtsp_transport = RtspTransport::kTcp;
  // The channel's name (RTSP mount, MQTT topic suffix, viewer label); empty: "<model>_<id>". A cluster
  // node names a channel by its cluster-wide key, so it keeps its mount and topic on whichever node runs it.
  std::string name;
};

class Pipeline {
 public:
  // Channel ids a run may add beyond the configured ones (ids are never reused within a run).
  static constexpr std::size_t kMaxAddedChannels = 256;

  // Validates what the config alone cannot (models load, fit their config, outputs can be created);
  // throws vapipe::Error with the key path. Nothing is started yet.
  Pipeline(PipelineConfig config, RunOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Runs until request_stop(), the duration, or every source has ended; drains and returns the totals.
  RunSummary run();
  // Thread-safe; returns at once. run() then drains and returns.
  void request_stop();

  // Before run(): every channel gets a tap from `factory` (a null result: none for that channel), and so
  // does every channel added later. The embedded servers and publishers (src/server) attach this way; see
  // channel_tap.hpp. Factories run under the pipeline's channel lock: they must not call add_channel or
  // remove_channel.
  void add_tap_factory(TapFactory factory);
  const PipelineConfig& config() const { return config_; }
  // The `mosaic` output (null without one): live outputs of the composed stream attach with
  // Mosaic::add_output_tap before run().
  Mosaic* mosaic() const { return mosaic_.get(); }

  // Run time, thread-safe, returns at once (the source opens on the channel's own thread): a new channel
  // with the next unused id, its taps from every tap factory. Throws vapipe::Error naming the request
  // field ("model: ...", "address: ...") for a bad request, or starting with "pipeline: " when the run is
  // stopping or kMaxAddedChannels ids are used up. Before run(), the channel starts with the others.
  int add_channel(const ChannelRequest& request);
  // Run time, thread-safe, returns at once: the channel stops reading; the frames it decoded still go
  // through the detector and its outputs, which then close (taps get closed()); its threads, decoder and
  // buffers are freed by run()'s thread, the other channels untouched. Its counters stay (state
  // "removed") for the stats and the final summary. False when the channel is removed or being removed.
  bool remove_channel(int channel);
  // True for a model this run loaded (add_channel can use it).
  bool has_model(std::string_view name) const { return detector_by_name_.contains(std::string(name)); }
  // The class names of a model this run loaded (null for another name): for embedding code that shows the
  // detections of a tap's FrameRecord (the Python module's results).
  const models::PostProcessor* labels(std::string_view model) const {
    const auto it = detector_by_name_.find(std::string(model));
    return it == detector_by_name_.end() ? nullptr : &it->second->labels();
  }
  // The face gallery of a model with a "gallery" key; null for others. Its reload() (thread-safe) re-reads
  // the folder while the channels keep matching against the previous gallery until the new one is in.
  std::shared_ptr<models::GalleryHolder> gallery(std::string_view model) const {
    const auto it = galleries_by_model_.find(std::string(model));
    return it == galleries_by_model_.end() ? nullptr : it->second;
  }

  // Channel ids are 0 .. channel_count()-1, removed ones included. Thread-safe.
  std::size_t channel_count() const { return channel_count_.load(std::memory_order_acquire); }
  ChannelInfo channel_info(std::size_t channel) const { return channel_at(channel).info(); }
  ChannelState channel_state(std::size_t channel) const { return channel_at(channel).state(); }
  // remove_channel() was called (the channel may still be draining: its state is not kRemoved yet).
  bool channel_removing(std::size_t channel) const;
  // Frames decoded and not yet out of the channel's output queue.
  std::size_t queue_depth(std::size_t channel) const { return channel_at(channel).queue_depth(); }
  // Live totals of a channel (by channel id), for the embedding code and tests.
  const ChannelCounters& counters(std::size_t channel) const { return channel_at(channel).counters(); }

 private:
  Channel& channel_at(std::size_t channel) const;
  std::unique_ptr<Channel> make_channel(int id, const CameraConfig* camera, const ModelConfig* model,
                                        bool several_channels, std::string name = {});
  // Ends the removed channels whose outputs closed (all of them, waiting, when `wait`).
  void reap_removed_channels(bool wait);
  bool removal_ready() const;  // with mutex_ held
  void print_statistics(Clock::time_point now, bool final_table);
  RunSummary summarize(double seconds) const;

  PipelineConfig config_;
  RunOptions options_;
  std::vector<std::unique_ptr<ResultsFile>> results_files_;
  std::vector<std::unique_ptr<Detector>> detectors_;
  std::map<std::string, Detector*> detector_by_name_;
  // The network a model's "secondary" key names, checked against its detector; throws naming the key.
  std::shared_ptr<const Network> configured_secondary(const ModelConfig& model, const std::string& key,
                                                      const Model& package,
                                                      const std::shared_ptr<const Network>& detector);
  std::map<std::string, std::shared_ptr<const Network>> secondary_by_model_;  // a package's top-down network
  std::map<std::string, std::shared_ptr<models::GalleryHolder>> galleries_by_model_;  // "gallery" models
  std::map<std::string, ResultsFile*> results_by_model_;
  std::vector<TapFactory> tap_factories_;
  // After detectors_: destroyed first (its tiles name the detectors' classes).
  std::unique_ptr<Mosaic> mosaic_;

  // Channels by id in a table allocated once: the detector threads look channels up without a lock while
  // add_channel() appends (a slot is written before channel_count_ is published with release order).
  // Removed channels keep their slot (their counters feed the summary).
  std::unique_ptr<std::unique_ptr<Channel>[]> channels_;
  std::size_t channel_capacity_ = 0;
  std::atomic<std::size_t> channel_count_{0};
  mutable std::mutex channels_mutex_;       // add/remove, tap factories, added_cameras_, the flags below
  std::deque<CameraConfig> added_cameras_;  // of channels added at run time (stable addresses)
  std::vector<bool> removing_;              // by id: remove_channel() was called
  bool started_ = false;
  bool draining_ = false;  // run() is shutting down: no more adds

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;
  std::vector<int> pending_removals_;  // for run()'s thread to reap

  // Statistics state (run() thread only).
  struct ChannelWindow {
    FpsMeter fps{std::chrono::seconds(5)};
    std::uint64_t inferred = 0, output = 0;
    std::uint64_t decode_us = 0, preprocess_us = 0, infer_us = 0, postprocess_us = 0, output_us = 0,
                  latency_us = 0;
  };
  std::vector<ChannelWindow> windows_;
};

}  // namespace vapipe::pipeline
