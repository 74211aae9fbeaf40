#pragma once
// When to reconnect a network source, and what to tell the log. Pure logic driven by the caller's clock
// (tests use a fake one): exponential back-off between attempts, reset once a connection has been stable
// for a while, and a state machine whose *reported* state changes once per episode, so a camera that is
// down for an hour logs "waiting" once, not once per attempt.
//
//   connecting --connected--> streaming --failed--> waiting --connected--> streaming ...
//   connecting --failed--> waiting;  attempts while waiting stay "waiting" (no report per attempt)
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace vapipe::io {

enum class ConnectionState : std::uint8_t { kConnecting, kStreaming, kWaiting };

const char* to_string(ConnectionState state);

struct ReconnectOptions {
  std::chrono::milliseconds initial_delay{500};
  std::chrono::milliseconds max_delay{30'000};
  double multiplier = 2.0;
  std::chrono::milliseconds stable_after{10'000};  // streaming this long resets the back-off
};

class ReconnectPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  // Called once per reported state change with a one-line description (for the log).
  using Listener = std::function<void(ConnectionState from, ConnectionState to, const std::string& detail)>;

  explicit ReconnectPolicy(ReconnectOptions options = {}, Listener listener = {});

  // A connection attempt succeeded at `now`.
  void on_connected(Clock::time_point now);
  // The attempt or the running stream failed at `now`; returns how long to wait before the next attempt.
  Clock::duration on_failure(Clock::time_point now, const std::string& reason);
  // Whether the waiting period is over (always true unless waiting).
  bool should_attempt(Clock::time_point now) const {
    return state_ != ConnectionState::kWaiting || now >= retry_at_;
  }
  Clock::time_point retry_at() const { return retry_at_; }

  ConnectionState state() const { return state_; }
  int consecutive_failures() const { return failures_; }
  Clock::duration next_delay() const { return delay_; }
  std::int64_t reconnects() const { return reconnects_; }  // successful connections after the first

 private:
  void report(ConnectionState to, const std::string& detail);

  ReconnectOptions options_;
  Listener listener_;
  ConnectionState state_ = ConnectionState::kConnecting;
  Clock::duration delay_;
  Clock::time_point retry_at_{};
  Clock::time_point connected_at_{};
  Clock::time_point down_since_{};
  int failures_ = 0;
  bool ever_connected_ = false;
  std::int64_t reconnects_ = 0;
};

}  // namespace vapipe::io
