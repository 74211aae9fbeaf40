// A real RTSP server on loopback (GStreamer's gst-rtsp-server, in-process) serving an H.264 clip in real
// time: VideoSource connects over TCP and decodes; then the server goes away and the source must report
// the end (EOF or an error) within its timeout instead of hanging.
#include <chrono>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>
#include <gtest/gtest.h>

#include "io/test_clips.hpp"
#include "support/rtsp_server.hpp"

namespace vapipe::io {
namespace {

using Clock = std::chrono::steady_clock;

using vapipe::test::LoopbackRtspServer;

TEST(RtspSource, DecodesFromALoopbackServerAndNoticesItsEnd) {
  const auto clip = test::mp4_clip();  // 60 frames at 10 fps: 6 s of stream
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  LoopbackRtspServer server(fmt::format(
      "( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
      clip.string()));
  ASSERT_TRUE(server.running());

  SourceOptions options;
  options.timeout_ms = 3000;
  VideoSource source(server.url(), options);
  EXPECT_TRUE(source.is_live());
  EXPECT_EQ(source.info().codec_id, AV_CODEC_ID_H264);
  EXPECT_EQ(source.info().width, 768);
  const auto result = test::decode_all(source, 20);
  EXPECT_GE(result.frames, 20);
  EXPECT_EQ(result.width, 768);
  EXPECT_EQ(result.height, 576);
  EXPECT_TRUE(result.first_frame_varies);

  server.stop();
  const auto stopped = Clock::now();
  auto packet = make_packet();
  bool ended = false;
  try {
    while (source.read(*packet)) {
      // Packets already in flight (socket buffers) may still arrive.
      ASSERT_LT(Clock::now() - stopped, std::chrono::seconds(8)) << "still reading from a stopped server";
    }
    ended = true;
  } catch (const Error& error) {
    ended = true;
    EXPECT_NE(std::string(error.what()).find(server.url()), std::string::npos) << error.what();
  }
  EXPECT_TRUE(ended);
  EXPECT_LT(Clock::now() - stopped, std::chrono::seconds(8));
}

}  // namespace
}  // namespace vapipe::io
