#include "io/reconnect_policy.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace vapipe::io {
namespace {

double seconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

}  // namespace

const char* to_string(ConnectionState state) {
  switch (state) {
    case ConnectionState::kConnecting:
      return "connecting";
    case ConnectionState::kStreaming:
      return "streaming";
    case ConnectionState::kWaiting:
      return "waiting";
  }
  return "unknown";
}

ReconnectPolicy::ReconnectPolicy(ReconnectOptions options, Listener listener)
    : options_(options), listener_(std::move(listener)), delay_(options.initial_delay) {}

void ReconnectPolicy::report(ConnectionState to, const std::string& detail) {
  const ConnectionState from = state_;
  state_ = to;
  if (from != to && listener_) listener_(from, to, detail);
}

void ReconnectPolicy::on_connected(Clock::time_point now) {
  std::string detail = "connected";
  if (ever_connected_) {
    ++reconnects_;
    detail = fmt::format("reconnected after {} failed attempt(s), {:.1f} s down", failures_,
                         seconds(now - down_since_));
  }
  ever_connected_ = true;
  connected_at_ = now;
  failures_ = 0;
  report(ConnectionState::kStreaming, detail);
}

ReconnectPolicy::Clock::duration ReconnectPolicy::on_failure(Clock::time_point now,
                                                             const std::string& reason) {
  // A connection that held for the stable period starts the back-off over; a flapping one keeps growing it.
  if (state_ == ConnectionState::kStreaming && now - connected_at_ >= options_.stable_after) {
    delay_ = options_.initial_delay;
  }
  if (state_ != ConnectionState::kWaiting) down_since_ = now;
  const Clock::duration wait = delay_;
  ++failures_;
  retry_at_ = now + wait;
  const auto grown = std::chrono::duration_cast<Clock::duration>(delay_ * options_.multiplier);
  delay_ = std::min<Clock::duration>(grown, options_.max_delay);
  report(ConnectionState::kWaiting, fmt::format("{}; retrying every {:.1f}..{:.1f} s", reason, seconds(wait),
                                                seconds(options_.max_delay)));
  return wait;
}

}  // namespace vapipe::io
