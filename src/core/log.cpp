#include "core/log.hpp"

#include <spdlog/pattern_formatter.h>

namespace vapipe {
namespace {

// Length of the valid UTF-8 sequence at the start of `text` (1-4), or 0 when it is not one (a stray
// continuation byte, an overlong form, a surrogate, a truncated sequence, above U+10FFFF).
std::size_t utf8_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;   // overlong
    if (lead == 0xed) high = 0x9f;  // UTF-16 surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;   // overlong
    if (lead == 0xf4) high = 0x8f;  // above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  return length;
}

// The escape of the character at the start of `text` and how many bytes it covers; an empty escape
// when the character is printable as it is.
std::size_t next_character(std::string_view text, std::string* escape) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto hex = [&](unsigned char c) {
    *escape += "\\x";
    *escape += kHex[c >> 4];
    *escape += kHex[c & 0xf];
  };
  escape->clear();
  const auto first = static_cast<unsigned char>(text[0]);
  if (first < 0x20 || first == 0x7f) {
    if (first == '\n')
      *escape = "\\n";
    else if (first == '\r')
      *escape = "\\r";
    else if (first == '\t')
      *escape = "\\t";
    else
      hex(first);
    return 1;
  }
  const std::size_t length = utf8_length(text);
  if (length == 0) {
    hex(first);
    return 1;
  }
  // U+0080..U+009F are encoded 0xc2 0x80..0x9f.
  if (length == 2 && first == 0xc2 && static_cast<unsigned char>(text[1]) <= 0x9f) {
    hex(first);
    hex(static_cast<unsigned char>(text[1]));
  }
  return length;
}

class EscapingFormatter final : public spdlog::formatter {
 public:
  explicit EscapingFormatter(std::string pattern)
      : pattern_(pattern), inner_(std::make_unique<spdlog::pattern_formatter>(std::move(pattern))) {}

  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(message.payload.data(), message.payload.size());
    if (is_printable(payload)) return inner_->format(message, dest);
    const std::string escaped = printable(payload);
    spdlog::details::log_msg copy = message;
    copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
    inner_->format(copy, dest);
    // The colour range (%^...%$) was marked on the copy; the colour sinks read it from the original.
    message.color_range_start = copy.color_range_start;
    message.color_range_end = copy.color_range_end;
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<EscapingFormatter>(pattern_);
  }

 private:
  std::string pattern_;
  std::unique_ptr<spdlog::pattern_formatter> inner_;
};

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::string escape;
  while (!text.empty()) {
    const std::size_t length = next_character(text, &escape);
    if (escape.empty())
      out.append(text.substr(0, length));
    else
      out += escape;
    text.remove_prefix(length);
  }
  return out;
}

bool is_printable(std::string_view text) {
  std::string escape;
  while (!text.empty()) {
    text.remove_prefix(next_character(text, &escape));
    if (!escape.empty()) return false;
  }
  return true;
}

std::unique_ptr<spdlog::formatter> make_log_formatter(std::string pattern) {
  return std::make_unique<EscapingFormatter>(std::move(pattern));
}

}  // namespace vapipe
