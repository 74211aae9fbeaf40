#pragma once
// Every log line of a test (spdlog's default logger, the lines `vapipe run` prints) kept in memory, to
// count state-change lines or look for leaked credentials. Attach before the pipeline starts and let it
// go after the pipeline's threads are joined: the sink list itself is not guarded.
#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace vapipe::test {

class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(stream_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() {
    sink_->flush();
    return stream_.str();
  }
  // Lines holding every one of `parts`.
  template <typename... Parts>
  int count(const Parts&... parts) {
    std::istringstream lines(text());
    int found = 0;
    for (std::string line; std::getline(lines, line);) {
      if ((... && (line.find(std::string_view(parts)) != std::string::npos))) ++found;
    }
    return found;
  }

 private:
  std::ostringstream stream_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

}  // namespace vapipe::test
