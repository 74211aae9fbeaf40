#pragma once
// Decoded frames as vision::ImageView for the fused preprocessing. NV12 and YUV420P/YUVJ420P (what
// software H.264/H.265 decoders produce) are viewed in place, strides included; any other pixel format
// is converted to BGR by swscale into a buffer the FrameViewer owns and reuses.
#include <cstdint>
#include <optional>
#include <vector>

#include "io/ffmpeg_handles.hpp"
#include "vision/image_view.hpp"

namespace vapipe::io {

// The frame's planes without a copy, or nullopt when its pixel format has no ImageView equivalent.
// The view is valid while `frame` keeps its buffers.
std::optional<vision::ImageView> direct_view(const AVFrame& frame);

// One per channel (or worker): keeps the swscale context and the BGR buffer between frames, so a
// stream of a fixed size and format allocates only on its first frame.
class FrameViewer {
 public:
  // A view of `frame`: direct when possible, else a BGR conversion into this viewer's buffer (valid
  // until the next call). Throws vapipe::Error for frames swscale cannot convert.
  vision::ImageView view(const AVFrame& frame);
  // Always a BGR copy in this viewer's buffer (valid until the next call): for drawing on the picture.
  vision::ImageView bgr(const AVFrame& frame);
  // The buffer behind the last BGR view, writable (OSD draws into it before encoding).
  std::uint8_t* bgr_pixels() { return bgr_.data(); }

 private:
  SwsContextPtr sws_;
  std::vector<std::uint8_t> bgr_;
  int width_ = 0;
  int height_ = 0;
  int format_ = -1;
};

}  // namespace vapipe::io
