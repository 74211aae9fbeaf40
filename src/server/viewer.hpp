#pragma once
// The web viewer's live media (issue 5, item 2): per channel a ChannelTap that serves, over WebSockets of
// the HttpServer,
//   /ws/video?channel=<model>_<ch>  the channel's H.264 as fragmented MP4 for Media Source Extensions
//                                   (no re-encoding): text {"type":"init","codec":"avc1.64001f",...},
//                                   the init segment (binary), then one fragment (moof+mdat) per frame
//                                   from a key frame on;
//   /ws/jpeg?channel=<model>_<ch>   the fallback that plays everywhere: JPEG pictures (binary: an 8-byte
//                                   little-endian double media time, then the JPEG file), at most
//                                   `jpeg_fps` a second, decoded and encoded on the viewer's own thread;
// and on both, every frame's results as text {"type":"frame","t":T,"fps":F,"record":<JSON Lines record>}.
// `t` is the frame's presentation time on the timeline of the fragments (and of the JPEG headers), so the
// page draws each frame's boxes over the very frame it shows (video.requestVideoFrameCallback's mediaTime).
//
// Costs: with no client watching a channel its tap returns at once from every call (one atomic load); a
// client that stalls (more than `stall_bytes` queued) skips to the next key frame (video) or loses
// pictures (JPEG), alone. The channel's output thread never waits: its calls hand references to a bounded
// queue and drop (then resynchronise at a key frame) when it is full.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "pipeline/channel_tap.hpp"
#include "server/http_server.hpp"

namespace vapipe::server {

struct ViewerOptions {
  double jpeg_fps = 10.0;             // per channel, per JPEG session
  int jpeg_max_width = 960;           // JPEG pictures are scaled down to this width
  int jpeg_quality = 6;               // mjpeg qscale, 2 (best) to 31
  std::size_t stall_bytes = 2 << 20;  // queued bytes above which a client's frames are skipped
  std::size_t queue_events = 512;     // per channel, between its output thread and the viewer thread
};

class Viewer {
 public:
  // Registers the two WebSockets on `server` (before it starts); the server must outlive the Viewer's
  // use by it, i.e. stop before the Viewer is destroyed.
  explicit Viewer(HttpServer& server, ViewerOptions options = {});
  ~Viewer();
  Viewer(const Viewer&) = delete;
  Viewer& operator=(const Viewer&) = delete;

  // For Pipeline::add_tap_factory: one tap per channel (channels added at run time included).
  pipeline::TapFactory tap_factory();

  // Clients watching `channel` (a "<model>_<ch>" name) right now, for tests and metrics.
  std::size_t watchers(const std::string& channel) const;

 private:
  struct Registry;
  std::shared_ptr<Registry> registry_;
};

// The viewer's static files when `http.web_root` is not configured: $VAPIPE_WEB_ROOT, else the `web/`
// folder installed beside the executable (../share/vapipe/web), else the source tree's web/ that this
// build came from (so `vapipe run` works from the build tree).
std::filesystem::path default_web_root();

}  // namespace vapipe::server
