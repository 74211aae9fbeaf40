#pragma once
// Watching a served RTSP stream in tests with real clients: ffmpeg copying it to a file (for ffprobe and
// the SEI reader), the log a child process writes, and waiting on a condition that has nothing to wait on.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"

namespace vapipe::test {

// Polls `condition` (a child process, a log or a counter: nothing to wait on) until true or `limit` passed.
template <typename Condition>
bool wait_until(Condition condition, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (condition()) return true;  // evaluated once per turn: a condition may consume what it sees
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// `ffmpeg -rtsp_transport tcp -i URL -c copy -f h264|hevc out`: the stream as received, for ffprobe and the
// SEI reader. `seconds` 0: until the stream ends.
// Copies `seconds` of the stream's clock, or, with `frames` > 0, that many video packets: a client that joins
// a running media must not count on that clock, which the server moves forward to resync after the pipeline
// stalled (a late joiner on a loaded machine got a jump past its -t 3 and wrote nothing).
inline std::unique_ptr<Child> copy_client(const std::string& from, const fs::path& out,
                                          const std::string& format, int seconds, int frames = 0) {
  std::vector<std::string> argv = {"ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", from};
  if (frames > 0) {
    argv.insert(argv.end(), {"-frames:v", std::to_string(frames)});
  } else if (seconds > 0) {
    argv.insert(argv.end(), {"-t", std::to_string(seconds)});
  }
  argv.insert(argv.end(), {"-c", "copy", "-f", format, "-y", out.string()});
  return std::make_unique<Child>(argv, fs::path(out.string() + ".log"));
}

// What a child started with log `out` + ".log" (copy_client, or any Child) wrote so far.
inline std::string log_of(const fs::path& out) {
  std::ifstream in(out.string() + ".log");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace vapipe::test
