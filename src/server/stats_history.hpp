#pragma once
// Per-channel rates sampled once a second from the pipeline's counters, kept for the last kHistorySamples
// seconds: the current figures of GET /api/stats and /api/channels (fps over the last few seconds, mean
// stage times of the last second) and the series the viewer charts (GET /api/stats/history). One thread
// of its own, woken by a timed wait it can be stopped from; reading takes a mutex, never the pipeline's
// (latest() reads the channels' atomic states only).
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline/pipeline.hpp"

namespace vapipe::server {

inline constexpr std::size_t kHistorySamples = 300;  // 5 minutes at 1 s
inline constexpr std::chrono::milliseconds kSampleInterval{1000};
// fps is measured over this many samples (seconds): steady enough to read, quick to follow a change.
inline constexpr std::size_t kFpsWindowSamples = 5;

struct ChannelRates {
  int channel = 0;
  double fps = 0.0;             // frames output per second
  std::uint64_t frames = 0;     // output so far
  std::uint64_t dropped = 0;    // so far
  std::size_t queue_depth = 0;  // at the sample
  // Mean per frame over the last interval (0 when no frame went through): decode, preprocess, infer,
  // postprocess, output; and decode -> all outputs done.
  std::array<double, 5> stage_ms{};
  double latency_ms = 0.0;
  // Decode -> all outputs done over the channel's last frames (pipeline::ChannelCounters::recent_latency).
  double latency_p50_ms = 0.0;
  double latency_p99_ms = 0.0;
};

struct StatsSample {
  std::int64_t unix_ms = 0;
  double total_fps = 0.0;
  std::vector<ChannelRates> channels;  // channels not removed at the time, by id
};

class StatsHistory {
 public:
  explicit StatsHistory(const pipeline::Pipeline& pipeline);
  ~StatsHistory();  // stops the thread
  StatsHistory(const StatsHistory&) = delete;
  StatsHistory& operator=(const StatsHistory&) = delete;

  // The latest sample, less the channels removed since it was taken (empty before the first one).
  StatsSample latest() const;
  // Samples of the last `seconds` seconds, oldest first.
  std::vector<StatsSample> history(std::size_t seconds) const;
  // The latest rates of one channel (zeros when it has none yet).
  ChannelRates rates(int channel) const;

 private:
  struct Totals {
    std::uint64_t inferred = 0, output = 0;
    std::array<std::uint64_t, 6> us{};  // decode .. output, latency
  };
  void loop();
  void sample(std::chrono::steady_clock::time_point now);

  const pipeline::Pipeline& pipeline_;
  // Sampler thread only: per channel, the output count of the last kFpsWindowSamples samples and the
  // totals at the previous sample.
  std::vector<std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>>> output_window_;
  std::vector<Totals> previous_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::deque<StatsSample> samples_;
  std::thread thread_;
};

}  // namespace vapipe::server
