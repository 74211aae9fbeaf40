#include "io/ffmpeg_log.hpp"

#include <cctype>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include <spdlog/spdlog.h>

#include "io/url_redaction.hpp"

extern "C" {
#include <libavutil/log.h>
}

namespace vapipe::io {

namespace {

// The same message text is let through this many times per window, then counted and summarized once
// when the window ends.
constexpr int kRepeatsPerWindow = 3;
constexpr std::chrono::seconds kWindow{60};

struct RateLimiter {
  struct Entry {
    std::chrono::steady_clock::time_point window_start;
    int count = 0;
  };
  std::mutex mutex;
  std::unordered_map<std::string, Entry> entries;

  // Returns how many earlier messages were suppressed (to report), or -1 when this one is suppressed.
  int admit(const std::string& text, std::chrono::steady_clock::time_point now) {
    // The context prefix holds an object address ("[tcp @ 0x55d0c3a8]") that differs per connection
    // attempt: leave it out of the key so a reconnect loop counts as one repeating message.
    std::string key;
    key.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text.compare(i, 2, "0x") == 0) {
        i += 2;
        while (i < text.size() && std::isxdigit(static_cast<unsigned char>(text[i])) != 0) ++i;
        --i;
        continue;
      }
      key += text[i];
    }
    std::lock_guard lock(mutex);
    if (entries.size() > 1024) entries.clear();  // bounded: messages with varying text (pts, sizes)
    Entry& entry = entries[key];
    if (entry.count == 0 || now - entry.window_start > kWindow) {
      const int suppressed = entry.count > kRepeatsPerWindow ? entry.count - kRepeatsPerWindow : 0;
      entry = {now, 1};
      return suppressed;
    }
    return ++entry.count <= kRepeatsPerWindow ? 0 : -1;
  }
};

RateLimiter& limiter() {
  static RateLimiter instance;
  return instance;
}

thread_local FfmpegLogScope* current_scope = nullptr;

}  // namespace

// The callback's access to the scope of its thread.
struct FfmpegLogScopeAccess {
  static void summarize(FfmpegLogScope& scope, const char* when) {
    if (scope.suppressed_unreported_ == 0) return;
    spdlog::warn("{}: {} more FFmpeg message(s) not logged {} ({} logged per connection)", scope.label_,
                 scope.suppressed_unreported_, when, scope.budget_);
    scope.suppressed_unreported_ = 0;
    scope.last_summary_ = std::chrono::steady_clock::now();
  }

  // True when the message may be logged (then it counts against the budget); false: counted, held back.
  // Within the budget the per-text limit still applies: a camera that refuses every reconnect attempt
  // (a new scope each) logs its one repeating message no more often than before.
  static bool admit(FfmpegLogScope& scope, const std::string& text,
                    std::chrono::steady_clock::time_point now) {
    if (scope.shown_ < scope.budget_) {
      // Held back by the per-text limit: that limiter's own "(and N more times ...)" counts it.
      if (limiter().admit(text, now) < 0) return false;
      ++scope.shown_;
      return true;
    }
    ++scope.suppressed_total_;
    ++scope.suppressed_unreported_;
    if (now - scope.last_summary_ >= kWindow)
      summarize(scope, fmt::format("in the last {} s", kWindow.count()).c_str());
    return false;
  }

  static const std::string& label(const FfmpegLogScope& scope) { return scope.label_; }
};

namespace {

void callback(void* context, int level, const char* format, va_list arguments) {
  if (level > AV_LOG_WARNING && !spdlog::should_log(spdlog::level::debug)) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(context, level, format, arguments, line, sizeof(line), &print_prefix);
  // FFmpeg's protocols may print the URL they open: never with its password.
  std::string text = redact_credentials(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  const auto spd_level = level <= AV_LOG_ERROR     ? spdlog::level::err
                         : level <= AV_LOG_WARNING ? spdlog::level::warn
                                                   : spdlog::level::debug;
  if (FfmpegLogScope* scope = current_scope; scope != nullptr) {
    // Debug output asked for by the user is not budgeted.
    if (level <= AV_LOG_WARNING && !FfmpegLogScopeAccess::admit(*scope, text, now)) return;
    spdlog::log(spd_level, "{}: ffmpeg: {}", FfmpegLogScopeAccess::label(*scope), text);
    return;
  }
  const int suppressed = limiter().admit(text, now);
  if (suppressed < 0) return;
  if (suppressed > 0) {
    spdlog::log(spd_level, "ffmpeg: {} (and {} more times in the last {} s)", text, suppressed,
                kWindow.count());
  } else {
    spdlog::log(spd_level, "ffmpeg: {}", text);
  }
}

}  // namespace

FfmpegLogScope::FfmpegLogScope(std::string label, int budget)
    : label_(std::move(label)),
      budget_(budget),
      last_summary_(std::chrono::steady_clock::now()),
      outer_(current_scope) {
  current_scope = this;
}

FfmpegLogScope::~FfmpegLogScope() {
  FfmpegLogScopeAccess::summarize(*this, "on this connection");
  current_scope = outer_;
}

void route_ffmpeg_log_to_spdlog() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_callback(callback); });
}

}  // namespace vapipe::io
