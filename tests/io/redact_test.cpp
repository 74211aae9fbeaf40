// Camera credentials are masked in every text vapipe shows: the function itself, and a real FFmpeg open
// of a password-protected RTSP URL that nothing serves (its error message names the URL).
#include "io/redact.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "io/ffmpeg_log.hpp"
#include "io/video_source.hpp"
#include "support/process.hpp"

namespace vapipe::io {
namespace {

TEST(RedactCredentials, MasksThePasswordOfEveryUrlInAText) {
  EXPECT_EQ(redact_credentials("rtsp://admin:secret@10.0.0.5:554/stream1"),
            "rtsp://admin:***@10.0.0.5:554/stream1");
  EXPECT_EQ(redact_credentials("open 'rtsp://a:b@h/x' and rtmp://u:p@w/live failed"),
            "open 'rtsp://a:***@h/x' and rtmp://u:***@w/live failed");
  EXPECT_EQ(redact_credentials("rtsp://user:p@ss@host/x"), "rtsp://user:***@host/x");
  EXPECT_EQ(redact_credentials("rtsp://u:pw@host"), "rtsp://u:***@host");
  EXPECT_EQ(redact_credentials("rtsp://u:pw@host?x=1"), "rtsp://u:***@host?x=1");
  // Nothing to hide: unchanged.
  for (const std::string text : {"rtsp://host:554/a@b", "rtsp://user@host/x", "/videos/a:b@c.mp4",
                                 "http://127.0.0.1:8080/api", "no url here", ""})
    EXPECT_EQ(redact_credentials(text), text);
}

TEST(RedactCredentials, AFailedOpenNamesTheUrlWithoutItsPassword) {
  route_ffmpeg_log_to_spdlog();
  const std::string url = "rtsp://admin:hunter2@127.0.0.1:" + std::to_string(test::free_port()) + "/cam";
  SourceOptions options;
  options.timeout_ms = 3000;
  try {
    VideoSource source(url, options);
    FAIL() << "nothing listens there";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("rtsp://admin:***@127.0.0.1"), std::string::npos) << message;
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace vapipe::io
