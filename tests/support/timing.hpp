#pragma once
// Time limits of tests that wait on real work (frames decoded, a client served, a process exiting), scaled
// for slow builds: scripts/sanitize.sh sets VAPIPE_TEST_TIME_SCALE (ThreadSanitizer runs code 5-15x slower).
// Only the waiting is scaled; what the test asserts once the wait is over stays the same.
#include <chrono>
#include <cstdlib>

namespace vapipe::test {

// VAPIPE_TEST_TIME_SCALE as a factor >= 1 (1 when unset or not a number).
inline double time_scale() {
  static const double scale = [] {
    const char* text = std::getenv("VAPIPE_TEST_TIME_SCALE");
    const double value = text == nullptr ? 1.0 : std::atof(text);
    return value >= 1.0 ? value : 1.0;
  }();
  return scale;
}

// `limit` stretched by time_scale().
template <typename Rep, typename Period>
std::chrono::milliseconds scaled(std::chrono::duration<Rep, Period> limit) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(limit).count();
  return std::chrono::milliseconds(
      static_cast<std::chrono::milliseconds::rep>(static_cast<double>(ms) * time_scale()));
}

}  // namespace vapipe::test
