#pragma once
// Log lines carry values that come from outside: camera addresses, model names, paths, request fields and
// the exception messages that quote them. A raw '\n' in one forges a second log line, an ESC sequence
// repaints or retitles the operator's terminal. Every line is therefore escaped where it is formatted:
// the formatter of make_log_formatter() does it for every spdlog line, printable() for text written
// elsewhere (the CLI's one-line error).
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace vapipe {

// `text` with every control character escaped: C0 (bytes 0x00-0x1f) and DEL as "\n", "\t", "\r" or
// "\xHH"; C1 controls (U+0080-U+009F, which some terminals obey like ESC '[') and bytes that are not
// valid UTF-8 as "\xHH" per byte. A backslash stays as it is; printable text (UTF-8 included) is unchanged.
std::string printable(std::string_view text);

// True when printable(text) would change nothing.
bool is_printable(std::string_view text);

// spdlog's pattern formatter with the message (%v) passed through printable(): install with
// spdlog::set_formatter(make_log_formatter("[%H:%M:%S] %v")).
std::unique_ptr<spdlog::formatter> make_log_formatter(std::string pattern);

}  // namespace vapipe
