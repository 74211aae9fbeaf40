#include "core/progress_bar.hpp"

#include <unistd.h>

#include <algorithm>

#include <fmt/format.h>

namespace vapipe {

ProgressBar::ProgressBar(std::string label, std::size_t total)
    : label_(std::move(label)),
      total_(std::max<std::size_t>(total, 1)),
      enabled_(::isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(std::size_t steps) {
  done_ = std::min(total_, done_ + steps);
  const auto now = std::chrono::steady_clock::now();
  // Redraw at most 20 times a second: a terminal write per step would dominate short steps.
  if (done_ == total_ || now - last_draw_ > std::chrono::milliseconds(50)) {
    last_draw_ = now;
    draw();
  }
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  done_ = total_;
  draw();
  std::fputc('\n', stderr);
}

void ProgressBar::draw() {
  if (!enabled_) return;
  constexpr std::size_t kWidth = 30;
  const std::size_t filled = done_ * kWidth / total_;
  fmt::print(stderr, "\r{:<24} [{}{}] {:3}%", label_, std::string(filled, '#'),
             std::string(kWidth - filled, ' '), done_ * 100 / total_);
  std::fflush(stderr);
}

}  // namespace vapipe
