#!/usr/bin/python3
"""A camera for scripts/soak.sh: gst-rtsp-server (Debian's python3-gi + gir1.2-gst-rtsp-server-1.0) serving
a live H.264 stream at rtsp://127.0.0.1:PORT/cam until it is killed, as an IP camera that can be switched
off (SIGKILL) and on again (a new process on the same port).

The stream is made live (videotestsrc is-live, x264 zerolatency, a key frame every second) rather than read
from a file, so it never ends by itself: every end the soak sees is one it caused.

usage: soak_camera.py PORT [WIDTH HEIGHT FPS]
"""
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    if len(sys.argv) not in (2, 5):
        print(__doc__, file=sys.stderr)
        return 2
    port = sys.argv[1]
    width, height, fps = (sys.argv[2:5] if len(sys.argv) == 5 else ("640", "360", "10"))
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "bitrate=500 ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"soak_camera: cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"soak_camera: rtsp://127.0.0.1:{port}/cam", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
