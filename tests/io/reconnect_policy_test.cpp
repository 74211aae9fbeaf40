#include "io/reconnect_policy.hpp"

#include <vector>

#include <gtest/gtest.h>

namespace vapipe::io {
namespace {

using namespace std::chrono_literals;
using Clock = ReconnectPolicy::Clock;

struct Change {
  ConnectionState from;
  ConnectionState to;
};

TEST(ReconnectPolicy, BacksOffExponentiallyUpToTheMaximum) {
  ReconnectPolicy policy({.initial_delay = 500ms, .max_delay = 30s});
  Clock::time_point now{};
  std::vector<Clock::duration> delays;
  for (int i = 0; i < 10; ++i) {
    delays.push_back(policy.on_failure(now, "refused"));
    EXPECT_FALSE(policy.should_attempt(now + delays.back() - 1ms));
    EXPECT_TRUE(policy.should_attempt(now + delays.back()));
    now += delays.back();
  }
  EXPECT_EQ(delays[0], 500ms);
  EXPECT_EQ(delays[1], 1s);
  EXPECT_EQ(delays[2], 2s);
  EXPECT_EQ(delays[5], 16s);
  EXPECT_EQ(delays[6], 30s);
  EXPECT_EQ(delays[9], 30s);
  EXPECT_EQ(policy.consecutive_failures(), 10);
}

TEST(ReconnectPolicy, ReportsEachStateChangeOnceNotEachAttempt) {
  std::vector<Change> changes;
  ReconnectPolicy policy({}, [&](ConnectionState from, ConnectionState to, const std::string&) {
    changes.push_back({from, to});
  });
  Clock::time_point now{};
  EXPECT_EQ(policy.state(), ConnectionState::kConnecting);
  for (int attempt = 0; attempt < 20; ++attempt) now += policy.on_failure(now, "refused");  // camera down
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].to, ConnectionState::kWaiting);
  policy.on_connected(now);
  policy.on_failure(now + 1min, "connection reset");
  policy.on_failure(now + 2min, "refused");
  policy.on_connected(now + 3min);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[1].to, ConnectionState::kStreaming);
  EXPECT_EQ(changes[2].from, ConnectionState::kStreaming);
  EXPECT_EQ(changes[2].to, ConnectionState::kWaiting);
  EXPECT_EQ(changes[3].to, ConnectionState::kStreaming);
  EXPECT_EQ(policy.reconnects(), 1);  // the first connection is not a reconnect
}

TEST(ReconnectPolicy, StableConnectionResetsTheBackOffFlappingDoesNot) {
  ReconnectPolicy policy({.initial_delay = 500ms, .max_delay = 30s, .stable_after = 10s});
  Clock::time_point now{};
  for (int i = 0; i < 4; ++i) now += policy.on_failure(now, "refused");  // next delay 8 s
  policy.on_connected(now);
  EXPECT_EQ(policy.on_failure(now + 2s, "dropped"), 8s);  // flapping: keeps growing
  now += 20s;
  policy.on_connected(now);
  EXPECT_EQ(policy.on_failure(now + 11s, "dropped"), 500ms);  // stable for 11 s: starts over
}

TEST(ReconnectPolicy, DetailSaysWhyAndHowLongItWasDown) {
  std::vector<std::string> details;
  ReconnectPolicy policy(
      {}, [&](ConnectionState, ConnectionState, const std::string& detail) { details.push_back(detail); });
  Clock::time_point now{};
  policy.on_connected(now);
  policy.on_failure(now + 5s, "Connection refused");
  policy.on_failure(now + 6s, "Connection refused");
  policy.on_connected(now + 9s);
  ASSERT_EQ(details.size(), 3u);
  EXPECT_NE(details[1].find("Connection refused"), std::string::npos);
  EXPECT_NE(details[2].find("2 failed attempt"), std::string::npos) << details[2];
  EXPECT_NE(details[2].find("4.0 s down"), std::string::npos) << details[2];
  EXPECT_STREQ(to_string(ConnectionState::kWaiting), "waiting");
}

}  // namespace
}  // namespace vapipe::io
