#include "core/fps_meter.hpp"

#include <algorithm>

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
  out += fmt::format(" {:>10}\n", "latency_ms");
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
    out += fmt::format(" {:>10.1f}\n", ch.latency_ms);
  }
  return out;
}

}  // namespace vapipe
