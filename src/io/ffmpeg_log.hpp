#pragma once
// FFmpeg's own log (av_log) sent to spdlog instead of stderr, one line per message, at most a few
// repeats of the same text per interval: a corrupt stream makes libavcodec print the same complaint for
// every frame, and a camera that is down for an hour must not fill the disk.
#include <chrono>
#include <cstdint>
#include <string>

namespace vapipe::io {

// Installs the callback (idempotent, process-wide). FFmpeg messages below `AV_LOG_WARNING` (info,
// verbose, debug) are dropped unless spdlog runs at debug level.
void route_ffmpeg_log_to_spdlog();

// One connection of a source (its open, reads and decoding), on the thread that does them: while it
// lives, FFmpeg's warnings and errors logged on this thread are prefixed with `label` (the channel and
// its redacted URL) and at most `budget` of them are logged; the rest are counted and summarized in one
// line a minute and one when the scope ends. A corrupt H.264 file logged 43 decoder lines in 10 s
// (issue 17): each message differs (macroblock numbers), so the per-text limit alone let all through.
// Messages of other threads (FFmpeg's own worker threads, muxers, encoders) keep the per-text limit.
class FfmpegLogScope {
 public:
  explicit FfmpegLogScope(std::string label, int budget = 3);
  ~FfmpegLogScope();
  FfmpegLogScope(const FfmpegLogScope&) = delete;
  FfmpegLogScope& operator=(const FfmpegLogScope&) = delete;

  std::int64_t suppressed() const { return suppressed_total_; }  // held back so far

 private:
  friend struct FfmpegLogScopeAccess;
  std::string label_;
  int budget_;
  int shown_ = 0;
  std::int64_t suppressed_total_ = 0;
  std::int64_t suppressed_unreported_ = 0;  // since the last summary line
  std::chrono::steady_clock::time_point last_summary_;
  FfmpegLogScope* outer_ = nullptr;  // scopes nest (a reopen inside a connection): the innermost counts
};

}  // namespace vapipe::io
