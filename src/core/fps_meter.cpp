#include "core/fps_meter.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/error.hpp"

namespace vapipe {

FpsMeter::FpsMeter(Clock::duration window, std::size_t max_samples) : window_(window), ring_(max_samples) {
  if (max_samples < 2) fail("FpsMeter: needs room for at least 2 samples, got {}", max_samples);
  if (window <= Clock::duration::zero()) fail("FpsMeter: the window must be positive");
}

void FpsMeter::sample(std::uint64_t total, Clock::time_point now) {
  if (count_ > 0) {
    const Sample& newest = ring_[(head_ + count_ - 1) % ring_.size()];
    if (total < newest.total || now < newest.time) reset();
  }
  if (count_ == ring_.size()) {
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
  ring_[(head_ + count_) % ring_.size()] = Sample{total, now};
  ++count_;
  // Keep one sample at or before the window's start so the rate covers the whole window.
  while (count_ > 2) {
    const Sample& second = ring_[(head_ + 1) % ring_.size()];
    if (now - second.time < window_) break;
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
}

double FpsMeter::fps() const {
  if (count_ < 2) return 0.0;
  const Sample& oldest = ring_[head_];
  const Sample& newest = ring_[(head_ + count_ - 1) % ring_.size()];
  const double seconds = std::chrono::duration<double>(newest.time - oldest.time).count();
  if (seconds <= 0.0) return 0.0;
  return static_cast<double>(newest.total - oldest.total) / seconds;
}

void FpsMeter::reset() {
  head_ = 0;
  count_ = 0;
}

void RecentPercentiles::record(double value) {
  std::lock_guard lock(mutex_);
  values_[next_] = static_cast<float>(value);
  next_ = (next_ + 1) % kCapacity;
  count_ = std::min(count_ + 1, kCapacity);
}

std::vector<float> RecentPercentiles::sorted_copy() const {
  std::vector<float> sorted;
  {
    std::lock_guard lock(mutex_);
    sorted.assign(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(count_));
  }
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

double RecentPercentiles::nearest_rank(const std::vector<float>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  // Nearest rank: the smallest value with at least p % of the observations at or below it.
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double RecentPercentiles::percentile(double p) const { return nearest_rank(sorted_copy(), p); }

std::string format_stats_line(const std::tm& t, double total_fps, int channel, double channel_fps) {
  return fmt::format("[{}-{:02}-{:02}:{:02}:{:02}:{:02}] total fps ={:.1f},ch={}: speed={:.1f}",
                     t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, total_fps,
                     channel, channel_fps);
}

std::string format_stats_line(std::time_t now, double total_fps, int channel, double channel_fps) {
  std::tm local{};
  localtime_r(&now, &local);
  return format_stats_line(local, total_fps, channel, channel_fps);
}

std::string format_stats_table(std::span<const ChannelStats> channels,
                               std::span<const std::string_view> stage_names) {
  std::vector<std::string> stage_headers;
  stage_headers.reserve(stage_names.size());
  for (const auto name : stage_names) stage_headers.push_back(fmt::format("{}_ms", name));

  std::string out = fmt::format("{:>4} {:>8} {:>8} {:>8} {:>6}", "ch", "fps", "frames", "dropped", "queue");
  for (const auto& header : stage_headers)
    out += fmt::format(" {:>{}}", header, std::max<std::size_t>(header.size(), 8));
  out += fmt::format(" {:>10} {:>9} {:>9}\n", "latency_ms", "p50_ms", "p99_ms");
  for (const auto& ch : channels) {
    out += fmt::format("{:>4} {:>8.1f} {:>8} {:>8} {:>6}", ch.channel, ch.fps, ch.frames, ch.dropped,
                       ch.queue_depth);
    for (std::size_t i = 0; i < stage_headers.size(); ++i) {
      const std::size_t width = std::max<std::size_t>(stage_headers[i].size(), 8);
      if (i < ch.stage_ms.size()) {
        out += fmt::format(" {:>{}.2f}", ch.stage_ms[i], width);
      } else {
        out += fmt::format(" {:>{}}", "-", width);
      }
    }
    out += fmt::format(" {:>10.1f} {:>9.1f} {:>9.1f}\n", ch.latency_ms, ch.latency_p50_ms, ch.latency_p99_ms);
  }
  return out;
}

}  // namespace vapipe
