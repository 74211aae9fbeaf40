#pragma once
// `vapipe run`: the whole pipeline of one config. Loads every model once (compiling .onnx files into the
// cache), starts one Detector per model and one Channel per configured channel, prints the statistics,
// and shuts down in dependency order so nothing accepted is lost:
//   sources stop -> detectors drain their queues and finish -> channels output the last frames and close
//   their files/streams (MP4 trailer, RTSP TEARDOWN) -> summary.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/fps_meter.hpp"
#include "pipeline/channel.hpp"
#include "pipeline/channel_tap.hpp"
#include "pipeline/config.hpp"
#include "pipeline/detector.hpp"
#include "pipeline/outputs.hpp"

namespace vapipe::pipeline {

struct RunOptions {
  bool stats_line = true;                             // the sophon-pipeline line every interval
  bool stats_table = false;                           // plus the per-channel table (--stats all)
  std::optional<std::chrono::milliseconds> duration;  // stop by itself after this long
  std::filesystem::path cache_dir;                    // compiled .onnx models; empty: default_cache_dir()
  int context_threads = 0;  // oneDNN threads per inference context; 0: cores / inference threads
  std::FILE* stats_out = stdout;
  io::ReconnectOptions reconnect{std::chrono::milliseconds(500), std::chrono::milliseconds(30'000), 2.0,
                                 std::chrono::milliseconds(10'000)};
};

// Totals of one channel at the end of a run.
struct ChannelSummary {
  int channel = 0;
  std::string address;  // as configured (credentials removed)
  std::string state;
  std::uint64_t decoded = 0, output = 0, inferred = 0, skipped = 0, dropped = 0, decode_errors = 0,
                reconnects = 0, packets_written = 0, packets_dropped = 0;
};

struct RunSummary {
  double seconds = 0.0;
  std::vector<ChannelSummary> channels;
  std::uint64_t frames_output() const;
};

class Pipeline {
 public:
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

  // Before run(): every channel gets a tap from `factory` (a null result: none for that channel). The
  // embedded servers and publishers (src/server) attach this way; see channel_tap.hpp.
  void add_tap_factory(TapFactory factory);
  ChannelInfo channel_info(std::size_t channel) const { return channels_.at(channel)->info(); }
  const PipelineConfig& config() const { return config_; }

  // Live totals of a channel (by channel id), for the embedding code and tests.
  const ChannelCounters& counters(std::size_t channel) const { return channels_.at(channel)->counters(); }
  std::size_t channel_count() const { return channels_.size(); }

 private:
  void print_statistics(Clock::time_point now, bool final_table);
  RunSummary summarize(double seconds) const;

  PipelineConfig config_;
  RunOptions options_;
  std::vector<std::unique_ptr<ResultsFile>> results_files_;
  std::vector<std::unique_ptr<Detector>> detectors_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::vector<TapFactory> tap_factories_;
  bool started_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;

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
