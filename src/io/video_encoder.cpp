#include "io/video_encoder.hpp"

#include <utility>

#include "core/error.hpp"

extern "C" {
#include <libavutil/opt.h>
}

namespace vapipe::io {

VideoEncoder::VideoEncoder(const EncoderOptions& options, std::string label) : label_(std::move(label)) {
  if (options.width <= 0 || options.height <= 0 || options.width % 2 != 0 || options.height % 2 != 0) {
    fail("{}: frame size {}x{} must be positive and even (4:2:0)", label_, options.width, options.height);
  }
  if (options.fps_num <= 0 || options.fps_den <= 0) {
    fail("{}: frame rate {}/{} must be positive", label_, options.fps_num, options.fps_den);
  }
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (codec == nullptr) fail("{}: this FFmpeg has no libx264 encoder", label_);
  context_.reset(avcodec_alloc_context3(codec));
  if (!context_) fail("{}: avcodec_alloc_context3: out of memory", label_);
  context_->width = options.width;
  context_->height = options.height;
  context_->pix_fmt = AV_PIX_FMT_YUV420P;
  context_->time_base = AVRational{options.fps_den, options.fps_num};
  context_->framerate = AVRational{options.fps_num, options.fps_den};
  context_->gop_size = options.gop_size;
  context_->thread_count = options.threads;
  if (options.global_header) context_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  if (options.bitrate_kbps > 0) {
    context_->bit_rate = std::int64_t{options.bitrate_kbps} * 1000;
    context_->rc_max_rate = context_->bit_rate;
    context_->rc_buffer_size = static_cast<int>(context_->bit_rate);  // one second of VBV
  }

  AVDictionary* raw = nullptr;
  av_dict_set(&raw, "preset", options.preset.c_str(), 0);
  if (!options.tune.empty()) av_dict_set(&raw, "tune", options.tune.c_str(), 0);
  // FFmpeg turns x264's repeat-headers off for global headers; x264-params are applied after that.
  if (options.global_header && options.repeat_headers)
    av_dict_set(&raw, "x264-params", "repeat-headers=1", 0);
  if (options.bitrate_kbps <= 0) av_dict_set_int(&raw, "crf", options.crf, 0);
  const int error = avcodec_open2(context_.get(), codec, &raw);
  std::string unused;
  if (const AVDictionaryEntry* entry = av_dict_get(raw, "", nullptr, AV_DICT_IGNORE_SUFFIX);
      entry != nullptr) {
    unused = entry->key;
  }
  av_dict_free(&raw);
  if (error < 0) {
    fail("{}: opening libx264 ({}x{}, preset {}, tune '{}'): {}", label_, options.width, options.height,
         options.preset, options.tune, av_error_text(error));
  }
  if (!unused.empty()) fail("{}: libx264 does not know the option '{}'", label_, unused);

  frame_ = make_frame();
  frame_->format = context_->pix_fmt;
  frame_->width = context_->width;
  frame_->height = context_->height;
  if (const int buffer_error = av_frame_get_buffer(frame_.get(), 0); buffer_error < 0) {
    fail("{}: av_frame_get_buffer: {}", label_, av_error_text(buffer_error));
  }
}

EncodeStatus VideoEncoder::send(const EncoderFrame* frame) {
  if (frame == nullptr) {
    if (draining_) return EncodeStatus::kOk;
    const int error = avcodec_send_frame(context_.get(), nullptr);
    if (error == AVERROR(EAGAIN)) return EncodeStatus::kAgain;
    if (error < 0 && error != AVERROR_EOF) fail("{}: flushing: {}", label_, av_error_text(error));
    draining_ = true;
    return EncodeStatus::kOk;
  }
  if (draining_) fail("{}: frame sent after the flush", label_);
  const bool nv12 = frame->format == EncoderPixelFormat::kNv12;
  if (frame->width <= 0 || frame->height <= 0 || frame->planes[0] == nullptr || frame->strides[0] <= 0 ||
      (nv12 && (frame->planes[1] == nullptr || frame->strides[1] <= 0))) {
    fail("{}: bad input frame ({}x{}, missing plane or stride)", label_, frame->width, frame->height);
  }
  // The encoder may still reference the frame it was sent last (frame threading): copy-on-write.
  if (const int error = av_frame_make_writable(frame_.get()); error < 0) {
    fail("{}: av_frame_make_writable: {}", label_, av_error_text(error));
  }
  const AVPixelFormat source_format = nv12 ? AV_PIX_FMT_NV12 : AV_PIX_FMT_BGR24;
  sws_.reset(sws_getCachedContext(sws_.release(), frame->width, frame->height, source_format, context_->width,
                                  context_->height, context_->pix_fmt, SWS_BILINEAR, nullptr, nullptr,
                                  nullptr));
  if (!sws_) fail("{}: no swscale conversion from {}x{} input", label_, frame->width, frame->height);
  const std::uint8_t* const source[4] = {frame->planes[0], frame->planes[1], nullptr, nullptr};
  const int source_strides[4] = {frame->strides[0], nv12 ? frame->strides[1] : 0, 0, 0};
  sws_scale(sws_.get(), source, source_strides, 0, frame->height, frame_->data, frame_->linesize);

  frame_->pts = frame->pts != AV_NOPTS_VALUE ? frame->pts : next_pts_;
  const int error = avcodec_send_frame(context_.get(), frame_.get());
  if (error == AVERROR(EAGAIN)) return EncodeStatus::kAgain;
  if (error < 0) fail("{}: encoding frame {}: {}", label_, frame_->pts, av_error_text(error));
  next_pts_ = frame_->pts + 1;
  return EncodeStatus::kOk;
}

EncodeStatus VideoEncoder::receive(AVPacket& packet) {
  av_packet_unref(&packet);
  const int error = avcodec_receive_packet(context_.get(), &packet);
  if (error == AVERROR(EAGAIN)) return EncodeStatus::kAgain;
  if (error == AVERROR_EOF) return EncodeStatus::kEndOfStream;
  if (error < 0) fail("{}: receiving a packet: {}", label_, av_error_text(error));
  return EncodeStatus::kOk;
}

}  // namespace vapipe::io
