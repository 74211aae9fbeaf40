// printable() and the log formatter (issue 17): a value with '\n' or an ESC sequence, logged as it came
// (a camera address, a request path), must not forge a log line or reach the operator's terminal.
#include "core/log.hpp"

#include <memory>
#include <sstream>

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

namespace vapipe {
namespace {

TEST(Printable, EscapesControlCharactersAndKeepsPrintableUtf8) {
  EXPECT_EQ(printable("rtsp://cam/1"), "rtsp://cam/1");
  EXPECT_EQ(printable("caméra été ☃ 😀"), "caméra été ☃ 😀");
  EXPECT_EQ(printable("a\nb\r\tc"), "a\\nb\\r\\tc");
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(printable("\x1b[2J\x1b]0;title\x07"), "\\x1b[2J\\x1b]0;title\\x07");
  EXPECT_EQ(printable("del\x7f"), "del\\x7f");
  // C1 controls: U+009B (CSI) as UTF-8, and as a lone byte that is no UTF-8 at all.
  EXPECT_EQ(printable("x\xc2\x9b"
                      "31m"),
            "x\\xc2\\x9b31m");
  EXPECT_EQ(printable("x\x9b"
                      "31m"),
            "x\\x9b31m");
  // Not UTF-8: overlong, surrogate, truncated: byte by byte.
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");
  EXPECT_EQ(printable("ok\xe2\x98"), "ok\\xe2\\x98");
  EXPECT_TRUE(is_printable("plain ☃"));
  EXPECT_FALSE(is_printable("line\nforged"));
}

TEST(Printable, TheLogFormatterEscapesEveryMessage) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  spdlog::logger logger("escape-test", sink);
  logger.set_formatter(make_log_formatter("[%l] %v"));
  logger.info("channel 3 added ({}, model '{}')", "/v/a.mp4\n[error] forged line\x1b[31m", "det");
  logger.info("plain ☃");
  EXPECT_EQ(out.str(),
            "[info] channel 3 added (/v/a.mp4\\n[error] forged line\\x1b[31m, model 'det')\n"
            "[info] plain ☃\n");
}

}  // namespace
}  // namespace vapipe
