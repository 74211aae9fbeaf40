#include "io/jpeg_encoder.hpp"

#include <algorithm>

extern "C" {
#include <libavutil/imgutils.h>
}

#include "core/error.hpp"

namespace vapipe::io {

JpegEncoder::JpegEncoder(int max_width, int quality)
    : max_width_(std::max(16, max_width)), quality_(quality) {
  if (avcodec_find_encoder(AV_CODEC_ID_MJPEG) == nullptr) fail("FFmpeg has no mjpeg encoder");
}

void JpegEncoder::reopen(int width, int height) {
  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
  context_.reset(avcodec_alloc_context3(codec));
  if (!context_) fail("out of memory");
  context_->width = width;
  context_->height = height;
  context_->pix_fmt = AV_PIX_FMT_YUVJ420P;
  context_->time_base = AVRational{1, 25};
  // Constant quantizer: qscale in global_quality units, the same quality for every picture.
  context_->flags |= AV_CODEC_FLAG_QSCALE;
  context_->global_quality = FF_QP2LAMBDA * quality_;
  int error = avcodec_open2(context_.get(), codec, nullptr);
  if (error < 0) fail("mjpeg encoder: {}", av_error_text(error));

  av_frame_unref(scaled_.get());
  scaled_->format = AV_PIX_FMT_YUVJ420P;
  scaled_->width = width;
  scaled_->height = height;
  error = av_frame_get_buffer(scaled_.get(), 0);
  if (error < 0) fail("out of memory");
}

std::string JpegEncoder::encode(const AVFrame& picture) {
  if (picture.width <= 0 || picture.height <= 0 || picture.data[0] == nullptr)
    fail("JPEG of an empty picture");
  if (picture.width != source_width_ || picture.height != source_height_ ||
      picture.format != source_format_) {
    int width = std::min(picture.width, max_width_);
    int height = static_cast<int>(static_cast<long long>(picture.height) * width / picture.width);
    width &= ~1;
    height = std::max(2, height & ~1);
    reopen(width, height);
    sws_.reset(sws_getContext(picture.width, picture.height, static_cast<AVPixelFormat>(picture.format),
                              width, height, AV_PIX_FMT_YUVJ420P, SWS_BILINEAR, nullptr, nullptr, nullptr));
    if (!sws_)
      fail("JPEG: no conversion from {} {}x{}",
           av_get_pix_fmt_name(static_cast<AVPixelFormat>(picture.format)), picture.width, picture.height);
    source_width_ = picture.width;
    source_height_ = picture.height;
    source_format_ = picture.format;
  }
  int error = av_frame_make_writable(scaled_.get());
  if (error < 0) fail("out of memory");
  sws_scale(sws_.get(), picture.data, picture.linesize, 0, picture.height, scaled_->data, scaled_->linesize);
  scaled_->quality = context_->global_quality;
  scaled_->pts = next_pts_++;  // the encoder wants increasing timestamps; the value means nothing here
  error = avcodec_send_frame(context_.get(), scaled_.get());
  if (error < 0) fail("mjpeg encoder: {}", av_error_text(error));
  error = avcodec_receive_packet(context_.get(), packet_.get());
  if (error < 0) fail("mjpeg encoder: {}", av_error_text(error));
  std::string jpeg(reinterpret_cast<const char*>(packet_->data), static_cast<std::size_t>(packet_->size));
  av_packet_unref(packet_.get());
  return jpeg;
}

}  // namespace vapipe::io
