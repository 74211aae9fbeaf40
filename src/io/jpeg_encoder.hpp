#pragma once
// Decoded pictures to JPEG with FFmpeg's mjpeg encoder, for viewers that cannot play the video stream
// itself (the web viewer's fallback). Any pixel format in; scaled (never up) to at most `max_width` and
// converted to full-range 4:2:0 by swscale into a reused frame.
#include <cstdint>
#include <string>

#include "io/ffmpeg_handles.hpp"

namespace vapipe::io {

class JpegEncoder {
 public:
  // `quality`: 2 (best) to 31, mjpeg's qscale. Throws vapipe::Error when FFmpeg has no mjpeg encoder.
  explicit JpegEncoder(int max_width = 1280, int quality = 5);

  // One JPEG file's bytes. Throws vapipe::Error for an empty picture or an encoder failure.
  std::string encode(const AVFrame& picture);

 private:
  void reopen(int width, int height);

  int max_width_;
  int quality_;
  CodecContextPtr context_;
  SwsContextPtr sws_;
  FramePtr scaled_ = make_frame();
  PacketPtr packet_ = make_packet();
  int source_width_ = 0;
  int source_height_ = 0;
  int source_format_ = -1;
  std::int64_t next_pts_ = 0;
};

}  // namespace vapipe::io
