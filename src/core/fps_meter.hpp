#pragma once
// Frame-rate measurement and the statistics lines `vapipe run` prints.
//
// Counting stays off the hot path: stages bump a plain atomic counter per frame; once per statistics tick the
// printer hands the running total to FpsMeter::sample, which keeps the last few (time, total) pairs in a ring and
// reports the rate over a sliding window (sophon-pipeline's bm::StatTool does the same with a 5-sample range).
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vapipe {

class FpsMeter {
 public:
  using Clock = std::chrono::steady_clock;

  // `window`: how far back the rate looks. `max_samples`: ring size; samples beyond it are forgotten even when
  // younger than the window (sample at most every window/max_samples to use the whole window).
  explicit FpsMeter(Clock::duration window = std::chrono::seconds(5), std::size_t max_samples = 64);

  // Records that `total` events had happened by `now`. Totals must not decrease and times must not go back;
  // a sample breaking that restarts the measurement from it (a counter reset, a clock jump).
  void sample(std::uint64_t total, Clock::time_point now);

  // Events per second between the oldest sample inside the window and the newest one; 0 until two samples span
  // a positive time.
  double fps() const;

  // Forgets every sample.
  void reset();

 private:
  struct Sample {
    std::uint64_t total = 0;
    Clock::time_point time;
  };
  Clock::duration window_;
  std::vector<Sample> ring_;
  std::size_t head_ = 0;  // oldest sample
  std::size_t count_ = 0;
};

// Percentiles of the most recent observations (a channel's end-to-end latencies): what the mean hides when a
// few frames wait. One writer records (the channel's output thread), readers (the statistics printer, the
// API) copy under the mutex; both are once per frame or per second, so the lock is never contended for long.
class RecentPercentiles {
 public:
  static constexpr std::size_t kCapacity = 512;

  void record(double value);
  // The nearest-rank percentile `p` (0 < p <= 100) of the last kCapacity observations; 0 before the first.
  double percentile(double p) const;
  // Same for several percentiles from one copy of the observations.
  template <std::size_t N>
  std::array<double, N> percentiles(const std::array<double, N>& ps) const {
    std::array<double, N> out{};
    const std::vector<float> sorted = sorted_copy();
    for (std::size_t i = 0; i < N; ++i) out[i] = nearest_rank(sorted, ps[i]);
    return out;
  }

 private:
  std::vector<float> sorted_copy() const;
  static double nearest_rank(const std::vector<float>& sorted, double p);

  mutable std::mutex mutex_;
  std::array<float, kCapacity> values_{};
  std::size_t count_ = 0;  // observations held (up to kCapacity)
  std::size_t next_ = 0;   // where the next one goes
};

// sophon-pipeline's once-a-second line, byte for byte:
//   [2024-05-01:12:00:05] total fps =96.0,ch=0: speed=24.0
// The timestamp is "%Y-%m-%d:%H:%M:%S" in local time; both rates have one decimal. sophon-pipeline prints only
// channel 0 whatever the number of channels (examples/*/main.cpp), and so does this; the per-channel view is
// format_stats_table.
std::string format_stats_line(const std::tm& local_time, double total_fps, int channel, double channel_fps);
// Same, stamped with `now` converted to local time.
std::string format_stats_line(std::time_t now, double total_fps, int channel, double channel_fps);

// One row of the per-channel table (`--stats all`).
struct ChannelStats {
  int channel = 0;
  double fps = 0.0;
  std::uint64_t frames = 0;   // frames that reached the output
  std::uint64_t dropped = 0;  // frames dropped by the live-source policy or skipped on errors
  std::size_t queue_depth = 0;
  std::vector<double> stage_ms;  // mean time per frame in each stage, in the order of the table's stage names
  double latency_ms = 0.0;       // decode -> output, mean over the last interval
  double latency_p50_ms = 0.0;   // decode -> output, median of the channel's last frames (RecentPercentiles)
  double latency_p99_ms = 0.0;   // and its 99th percentile
};

// A fixed-width text table, one header line then one line per channel, each line ending in '\n':
//     ch      fps   frames  dropped  queue decode_ms infer_ms latency_ms    p50_ms    p99_ms
//      0     24.0      480        0      2      3.10    12.40       41.0      40.0      52.0
// Stage columns are named "<stage>_ms"; a channel with fewer stage times than names shows "-".
std::string format_stats_table(std::span<const ChannelStats> channels,
                               std::span<const std::string_view> stage_names);

}  // namespace vapipe
