#pragma once
// A real RTSP server on loopback for tests: GStreamer's gst-rtsp-server in-process, serving a
// gst-launch pipeline at rtsp://127.0.0.1:<free port>/test; stop() is a camera switched off.
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

namespace vapipe::test {

inline GstRTSPFilterResult remove_client(GstRTSPServer*, GstRTSPClient*, gpointer) {
  return GST_RTSP_FILTER_REMOVE;
}

class LoopbackRtspServer {
 public:
  // Serves `launch` at rtsp://127.0.0.1:<port>/test; port 0: a free one (a restarted camera passes the
  // port of the one it replaces).
  explicit LoopbackRtspServer(const std::string& launch, int port = 0) {
    gst_init(nullptr, nullptr);
    context_ = g_main_context_new();
    loop_ = g_main_loop_new(context_, FALSE);
    server_ = gst_rtsp_server_new();
    gst_rtsp_server_set_address(server_, "127.0.0.1");
    gst_rtsp_server_set_service(server_, std::to_string(port).c_str());  // 0: the kernel picks
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

  int port() const { return port_; }
  std::string url() const { return fmt::format("rtsp://127.0.0.1:{}/test", port_); }
  bool running() const { return source_id_ != 0 && port_ > 0; }

  // Closes the listening socket and every client connection, as a camera that is switched off.
  void stop() {
    if (server_ == nullptr) return;
    if (GSource* source = g_main_context_find_source_by_id(context_, source_id_); source != nullptr) {
      g_source_destroy(source);
    }
    gst_rtsp_server_client_filter(server_, remove_client, nullptr);
    // Quit from inside the loop: a quit issued before the loop thread got to g_main_loop_run would be
    // lost and join() would wait forever.
    g_main_context_invoke(
        context_,
        [](gpointer loop) {
          g_main_loop_quit(static_cast<GMainLoop*>(loop));
          return G_SOURCE_REMOVE;
        },
        loop_);
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

}  // namespace vapipe::test
