// Passwords in camera and server URLs never reach the log or the live servers' clients.
#include <gtest/gtest.h>

#include "io/url_redaction.hpp"

namespace vapipe::io {
namespace {

TEST(RedactCredentials, HidesThePasswordKeepsEverythingElse) {
  EXPECT_EQ(redact_credentials("rtsp://admin:secret@10.0.0.5:554/Streaming/101"),
            "rtsp://admin:***@10.0.0.5:554/Streaming/101");
  EXPECT_EQ(redact_credentials("rtmp://u:p@host/live/key"), "rtmp://u:***@host/live/key");
  // A password may hold '@' or ':'; the user info ends at the last '@' before the path.
  EXPECT_EQ(redact_credentials("rtsp://user:p@ss:w@host/x"), "rtsp://user:***@host/x");
  EXPECT_EQ(redact_credentials("rtsp://user:secret@host"), "rtsp://user:***@host");
}

TEST(RedactCredentials, LeavesAddressesWithoutAPasswordAlone) {
  EXPECT_EQ(redact_credentials("rtsp://10.0.0.5:554/x"), "rtsp://10.0.0.5:554/x");
  EXPECT_EQ(redact_credentials("rtsp://viewer@10.0.0.5/x"), "rtsp://viewer@10.0.0.5/x");
  EXPECT_EQ(redact_credentials("rtsp://host/path@with:colon"), "rtsp://host/path@with:colon");
  EXPECT_EQ(redact_credentials("/videos/a:b@c.mp4"), "/videos/a:b@c.mp4");
  EXPECT_EQ(redact_credentials(""), "");
}

}  // namespace
}  // namespace vapipe::io
