#pragma once
// The embedded RTSP server of `vapipe run` (gst-rtsp-server, one GMainLoop thread): every channel that
// produces video is served at rtsp://BIND:PORT/<model>_<ch>, the video exactly as the channel outputs it
// (passthrough + SEI, or annotated x264 + SEI), H.264 or H.265, to any number of clients sharing one
// media per channel. GStreamer stays inside rtsp_server.cpp.
//
// No client can slow the pipeline: the channel's tap only copies a packet into the media's appsrc queue
// (bounded by max_queued_packets; when it is full the packet and the rest of its GOP are dropped and
// counted), and a TCP client that stops reading is cut off by gst-rtsp-server's per-transport backlog
// without holding back the other clients (see rtsp_server.cpp and docs/architecture.md).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/channel_tap.hpp"

namespace vapipe::server {

struct RtspServerOptions {
  std::string bind = "127.0.0.1";
  int port = 8554;  // 0: any free port (tests); port() tells which
  // Tried in order when `port` cannot be bound (in use, privileged): sophon's video_stitch demo's 554, then
  // 1554, 1564, ... The error names `port` when none can be.
  std::vector<int> other_ports{};
  // Packets waiting between a channel's output thread and its media (~3 s at 30 fps). A media that
  // does not take them (its only client stalled, or between DESCRIBE and PLAY) costs drops, never a wait.
  std::size_t max_queued_packets = 90;
};

// One channel's mount.
struct RtspMountStats {
  std::string path;                   // "/yolov5s_0"
  int clients = 0;                    // clients playing it now
  bool streaming = false;             // the channel's video is on (a reconnecting camera: false, mount kept)
  std::uint64_t packets_served = 0;   // handed to the shared media (each of its clients gets them)
  std::uint64_t packets_dropped = 0;  // not handed over: the media's queue was full, and the rest of that GOP
};

struct RtspServerStats {
  int clients_connected = 0;  // RTSP connections open now
  std::uint64_t packets_served = 0;
  std::uint64_t packets_dropped = 0;
  std::vector<RtspMountStats> mounts;
};

class RtspServer {
 public:
  // Binds and starts serving at once. Throws vapipe::Error "rtsp_server.port: ..." when the port is in
  // use, "rtsp_server.bind: ..." when the address cannot be bound.
  explicit RtspServer(RtspServerOptions options);
  ~RtspServer();  // stop()
  RtspServer(const RtspServer&) = delete;
  RtspServer& operator=(const RtspServer&) = delete;

  // The tap of one channel (thread-safe): mounts /<channel.name>, served once the channel's video starts.
  // Null for a channel in "results" mode (no video). A mount with that name already there is replaced.
  std::shared_ptr<pipeline::ChannelTap> make_tap(const pipeline::ChannelInfo& channel);

  // Ends every stream (EOS and RTCP BYE to each client, up to 3 s for them to drain), closes every
  // connection and joins the server thread. Channels that go on writing after this reach nobody.
  void stop();

  int port() const;
  // rtsp://BIND:PORT/<name> as a client on this host reaches it (0.0.0.0 and :: give 127.0.0.1).
  std::string url(std::string_view name) const;
  // Thread-safe snapshot (for /metrics and tests).
  RtspServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vapipe::server
