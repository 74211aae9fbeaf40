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

namespace vapipe::io {
namespace {

using Clock = std::chrono::steady_clock;

GstRTSPFilterResult remove_client(GstRTSPServer*, GstRTSPClient*, gpointer) { return GST_RTSP_FILTER_REMOVE; }

class LoopbackRtspServer {
 public:
  // Serves `launch` at rtsp://127.0.0.1:<free port>/test.
  explicit LoopbackRtspServer(const std::string& launch) {
    gst_init(nullptr, nullptr);
    context_ = g_main_context_new();
    loop_ = g_main_loop_new(context_, FALSE);
    server_ = gst_rtsp_server_new();
    gst_rtsp_server_set_address(server_, "127.0.0.1");
    gst_rtsp_server_set_service(server_, "0");  // the kernel picks a free port
    GstRTSPMountPoints* mounts = gst_rtsp_server_get_mount_points(server_);
    GstRTSPMediaFactory* factory = gst_rtsp_media_factory_new();
    gst_rtsp_media_factory_set_launch(factory, launch.c_str());
    gst_rtsp_media_factory_set_shared(factory, TRUE);
    gst_rtsp_mount_points_add_factory(mounts, "/test", factory);
    g_object_unref(mounts);
    source_id_ = gst_rtsp_server_attach(server_, context_);
    port_ = gst_rtsp_server_get_bound_port(server_);
    thread_ = std::thread([this] { g_main_loop_run(loop_); });
  }
  ~LoopbackRtspServer() {
    stop();
    g_main_loop_unref(loop_);
    g_main_context_unref(context_);
  }
  LoopbackRtspServer(const LoopbackRtspServer&) = delete;
  LoopbackRtspServer& operator=(const LoopbackRtspServer&) = delete;

  std::string url() const { return fmt::format("rtsp://127.0.0.1:{}/test", port_); }
  bool running() const { return source_id_ != 0 && port_ > 0; }

  // Closes the listening socket and every client connection, as a camera that is switched off.
  void stop() {
    if (server_ == nullptr) return;
    if (GSource* source = g_main_context_find_source_by_id(context_, source_id_); source != nullptr) {
      g_source_destroy(source);
    }
    gst_rtsp_server_client_filter(server_, remove_client, nullptr);
    g_main_loop_quit(loop_);
    if (thread_.joinable()) thread_.join();
    g_object_unref(server_);
    server_ = nullptr;
  }

 private:
  GMainContext* context_ = nullptr;
  GMainLoop* loop_ = nullptr;
  GstRTSPServer* server_ = nullptr;
  guint source_id_ = 0;
  int port_ = 0;
  std::thread thread_;
};

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
