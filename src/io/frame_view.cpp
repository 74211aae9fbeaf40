#include "io/frame_view.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

#include "core/error.hpp"

namespace vapipe::io {

std::optional<vision::ImageView> direct_view(const AVFrame& frame) {
  // Negative strides (bottom-up frames) would be fine for ImageView, but keep the common layouts only.
  switch (frame.format) {
    case AV_PIX_FMT_NV12:
      return vision::ImageView::nv12(frame.data[0], frame.linesize[0], frame.data[1], frame.linesize[1],
                                     frame.width, frame.height);
    case AV_PIX_FMT_YUV420P:
    case AV_PIX_FMT_YUVJ420P:
      return vision::ImageView::i420(frame.data[0], frame.linesize[0], frame.data[1], frame.linesize[1],
                                     frame.data[2], frame.linesize[2], frame.width, frame.height);
    default:
      return std::nullopt;
  }
}

vision::ImageView FrameViewer::view(const AVFrame& frame) {
  if (auto direct = direct_view(frame)) return *direct;
  return bgr(frame);
}

vision::ImageView FrameViewer::bgr(const AVFrame& frame) {
  if (frame.width <= 0 || frame.height <= 0)
    fail("frame view: empty frame ({}x{})", frame.width, frame.height);
  if (!sws_ || frame.width != width_ || frame.height != height_ || frame.format != format_) {
    sws_.reset(sws_getContext(frame.width, frame.height, static_cast<AVPixelFormat>(frame.format),
                              frame.width, frame.height, AV_PIX_FMT_BGR24, SWS_BILINEAR, nullptr, nullptr,
                              nullptr));
    if (!sws_) {
      const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(frame.format));
      fail("frame view: cannot convert pixel format {} ({}x{}) to BGR", name != nullptr ? name : "unknown",
           frame.width, frame.height);
    }
    width_ = frame.width;
    height_ = frame.height;
    format_ = frame.format;
    bgr_.resize(static_cast<std::size_t>(width_) * static_cast<std::size_t>(height_) * 3);
  }
  std::uint8_t* destination[4] = {bgr_.data(), nullptr, nullptr, nullptr};
  const int destination_stride[4] = {width_ * 3, 0, 0, 0};
  sws_scale(sws_.get(), frame.data, frame.linesize, 0, frame.height, destination, destination_stride);
  return vision::ImageView::bgr(bgr_.data(), width_, height_, width_ * 3);
}

}  // namespace vapipe::io
