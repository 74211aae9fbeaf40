#include "server/stats_history.hpp"

#include <algorithm>

namespace vapipe::server {

StatsHistory::StatsHistory(const pipeline::Pipeline& pipeline) : pipeline_(pipeline) {
  thread_ = std::thread([this] { loop(); });
}

StatsHistory::~StatsHistory() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StatsHistory::loop() {
  auto next = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    sample(std::chrono::steady_clock::now());
    lock.lock();
    next += kSampleInterval;
    wake_.wait_until(lock, next, [&] { return stop_; });
  }
}

void StatsHistory::sample(std::chrono::steady_clock::time_point now) {
  StatsSample result;
  result.unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::size_t count = pipeline_.channel_count();
  output_window_.resize(count);
  previous_.resize(count);
  for (std::size_t id = 0; id < count; ++id) {
    const pipeline::ChannelCounters& c = pipeline_.counters(id);
    Totals totals;
    totals.inferred = c.inferred.load(std::memory_order_relaxed);
    totals.output = c.output.load(std::memory_order_relaxed);
    totals.us = {
        c.decode_us.load(std::memory_order_relaxed), c.preprocess_us.load(std::memory_order_relaxed),
        c.infer_us.load(std::memory_order_relaxed),  c.postprocess_us.load(std::memory_order_relaxed),
        c.output_us.load(std::memory_order_relaxed), c.latency_us.load(std::memory_order_relaxed)};
    auto& window = output_window_[id];
    window.emplace_back(now, totals.output);
    while (window.size() > kFpsWindowSamples + 1) window.pop_front();
    const Totals before = previous_[id];  // a copy: the slot is overwritten next
    previous_[id] = totals;
    if (pipeline_.channel_state(id) == pipeline::ChannelState::kRemoved) continue;

    ChannelRates rates;
    rates.channel = static_cast<int>(id);
    const double seconds = std::chrono::duration<double>(window.back().first - window.front().first).count();
    rates.fps =
        seconds > 0 ? static_cast<double>(window.back().second - window.front().second) / seconds : 0.0;
    rates.frames = totals.output;
    rates.dropped = c.dropped.load(std::memory_order_relaxed);
    rates.queue_depth = pipeline_.queue_depth(id);
    const auto inferred = static_cast<double>(totals.inferred - before.inferred);
    const auto output = static_cast<double>(totals.output - before.output);
    for (std::size_t stage = 0; stage < 5; ++stage) {
      const double frames = stage < 4 ? inferred : output;  // decode..postprocess: inferred frames only
      rates.stage_ms[stage] =
          frames > 0 ? static_cast<double>(totals.us[stage] - before.us[stage]) / 1000.0 / frames : 0.0;
    }
    rates.latency_ms = output > 0 ? static_cast<double>(totals.us[5] - before.us[5]) / 1000.0 / output : 0.0;
    const auto [p50, p99] = c.recent_latency.percentiles(std::array<double, 2>{50, 99});
    rates.latency_p50_ms = p50;
    rates.latency_p99_ms = p99;
    result.total_fps += rates.fps;
    result.channels.push_back(rates);
  }
  std::lock_guard lock(mutex_);
  samples_.push_back(std::move(result));
  while (samples_.size() > kHistorySamples) samples_.pop_front();
}

StatsSample StatsHistory::latest() const {
  StatsSample sample;
  {
    std::lock_guard lock(mutex_);
    if (!samples_.empty()) sample = samples_.back();
  }
  // The sample can be up to a second old: a channel removed since then leaves it now, so that the current
  // figures (/api/stats, vapipe_fps of /metrics) list the same channels as GET /api/channels.
  std::erase_if(sample.channels, [&](const ChannelRates& rates) {
    return pipeline_.channel_state(static_cast<std::size_t>(rates.channel)) ==
           pipeline::ChannelState::kRemoved;
  });
  sample.total_fps = 0.0;
  for (const auto& rates : sample.channels) sample.total_fps += rates.fps;
  return sample;
}

std::vector<StatsSample> StatsHistory::history(std::size_t seconds) const {
  std::lock_guard lock(mutex_);
  const std::size_t n = std::min(seconds, samples_.size());
  return {samples_.end() - static_cast<std::ptrdiff_t>(n), samples_.end()};
}

ChannelRates StatsHistory::rates(int channel) const {
  std::lock_guard lock(mutex_);
  if (!samples_.empty()) {
    for (const auto& rates : samples_.back().channels)
      if (rates.channel == channel) return rates;
  }
  ChannelRates none;
  none.channel = channel;
  return none;
}

}  // namespace vapipe::server
