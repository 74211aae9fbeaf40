#include "io/video_decoder.hpp"

#include <utility>

#include <spdlog/spdlog.h>

#include "core/error.hpp"

namespace vapipe::io {

VideoDecoder::VideoDecoder(const AVCodecParameters& parameters, DecoderOptions options, std::string label)
    : label_(std::move(label)), options_(options) {
  if (parameters.width > options_.max_width || parameters.height > options_.max_height) {
    fail("{}: the stream is {}x{}, larger than the maximum resolution {}x{}", label_, parameters.width,
         parameters.height, options_.max_width, options_.max_height);
  }
  const AVCodec* codec = avcodec_find_decoder(parameters.codec_id);
  if (codec == nullptr) {
    fail("{}: no decoder for codec '{}' in this FFmpeg build", label_, avcodec_get_name(parameters.codec_id));
  }
  context_.reset(avcodec_alloc_context3(codec));
  if (!context_) fail("{}: avcodec_alloc_context3: out of memory", label_);
  if (const int error = avcodec_parameters_to_context(context_.get(), &parameters); error < 0) {
    fail("{}: decoder parameters for {}: {}", label_, codec->name, av_error_text(error));
  }
  context_->thread_count = options.threads < 0 ? 1 : options.threads;
  context_->thread_type = options.low_delay ? FF_THREAD_SLICE : FF_THREAD_FRAME | FF_THREAD_SLICE;
  if (options.low_delay) context_->flags |= AV_CODEC_FLAG_LOW_DELAY;
  if (options.skip_loop_filter) context_->skip_loop_filter = AVDISCARD_ALL;
  context_->opaque = this;
  context_->get_buffer2 = &VideoDecoder::get_bounded_buffer;
#if FF_API_THREAD_SAFE_CALLBACKS
  // FFmpeg 5 warns at every open ("custom get_buffer2() ... not marked as thread safe") unless the callback
  // is declared thread safe. Frame threads do call it; it only reads options and stores atomics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  context_->thread_safe_callbacks = 1;
#pragma GCC diagnostic pop
#endif
  if (const int error = avcodec_open2(context_.get(), codec, nullptr); error < 0) {
    fail("{}: opening the {} decoder: {}", label_, codec->name, av_error_text(error));
  }
}

int VideoDecoder::get_bounded_buffer(AVCodecContext* context, AVFrame* frame, int flags) {
  auto& self = *static_cast<VideoDecoder*>(context->opaque);
  if (frame->width > self.options_.max_width || frame->height > self.options_.max_height) {
    self.oversized_height_.store(frame->height, std::memory_order_relaxed);
    self.oversized_width_.store(frame->width, std::memory_order_relaxed);
    return AVERROR(EINVAL);
  }
  return avcodec_default_get_buffer2(context, frame, flags);
}

void VideoDecoder::throw_if_oversized() const {
  const int width = oversized_width_.load(std::memory_order_relaxed);
  if (width == 0) return;
  fail("{}: a frame is {}x{}, larger than the maximum resolution {}x{}", label_, width,
       oversized_height_.load(std::memory_order_relaxed), options_.max_width, options_.max_height);
}

DecodeStatus VideoDecoder::send(const AVPacket* packet, std::int64_t tag) {
  const bool flush = packet == nullptr || (packet->data == nullptr && packet->side_data_elems == 0);
  if (draining_) return flush ? DecodeStatus::kOk : DecodeStatus::kAgain;
  context_->reordered_opaque = tag;
  const int error = avcodec_send_packet(context_.get(), flush ? nullptr : packet);
  if (flush) draining_ = true;
  if (error == 0) return DecodeStatus::kOk;
  if (error == AVERROR(EAGAIN)) return DecodeStatus::kAgain;
  if (error == AVERROR_EOF) return DecodeStatus::kOk;  // already flushing
  if (!flush) throw_if_oversized();
  // Corrupt or unsupported data: the packet is dropped, decoding resumes at the next one. Only the first
  // few are logged, so a broken stream cannot flood the log.
  if (++errors_ <= 3) spdlog::warn("{}: packet dropped: {}", label_, av_error_text(error));
  return DecodeStatus::kOk;
}

DecodeStatus VideoDecoder::receive(AVFrame& frame) {
  av_frame_unref(&frame);
  for (;;) {
    const int error = avcodec_receive_frame(context_.get(), &frame);
    if (error == 0) {
      ++frames_;
      if ((frame.flags & AV_FRAME_FLAG_CORRUPT) != 0 || frame.decode_error_flags != 0) ++corrupt_frames_;
      return DecodeStatus::kOk;
    }
    if (error == AVERROR(EAGAIN)) return DecodeStatus::kAgain;
    if (error == AVERROR_EOF) return DecodeStatus::kEndOfStream;
    // A decode error surfaced on the output side (frame threading): count it and try the next frame.
    if (!draining_) throw_if_oversized();
    if (++errors_ <= 3) spdlog::warn("{}: frame dropped: {}", label_, av_error_text(error));
    if (!draining_) return DecodeStatus::kAgain;
  }
}

void VideoDecoder::reset() {
  avcodec_flush_buffers(context_.get());
  draining_ = false;
}

}  // namespace vapipe::io
