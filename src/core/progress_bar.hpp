#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace vapipe {

// A one-line terminal progress bar for long steps (compile, calibration). Draws only when stderr is a
// terminal, so logs and CI output stay clean.
class ProgressBar {
 public:
  ProgressBar(std::string label, std::size_t total);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void advance(std::size_t steps = 1);
  void finish();

 private:
  void draw();
  std::string label_;
  std::size_t total_;
  std::size_t done_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace vapipe
