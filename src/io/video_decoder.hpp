#pragma once
// Video decoding with libavcodec (H.264, H.265, MPEG-4, MJPEG, ... whatever the FFmpeg build has), under
// FFmpeg's own send/receive contract. Frames come out as references to the decoder's buffers (no copy).
// Corrupt input never stops decoding: the error is counted and the next packet is decoded.
#include <atomic>
#include <cstdint>
#include <string>

#include "io/ffmpeg_handles.hpp"

namespace vapipe::io {

// Frames larger than this are refused before FFmpeg allocates them (8K UHD is 7680x4320; a corrupt or
// hostile SPS can announce 65535x65535, 16 GiB of YUV per frame).
inline constexpr int kMaxFrameWidth = 8192;
inline constexpr int kMaxFrameHeight = 8192;

struct DecoderOptions {
  int threads = 1;  // decoder threads; 0 = FFmpeg picks (one per core)
  // Frame threading adds threads-1 frames of delay; slice threading adds none (live sources).
  bool low_delay = false;
  bool skip_loop_filter = false;   // no deblocking (AVDISCARD_ALL): cheaper, blockier pictures
  int max_width = kMaxFrameWidth;  // larger streams or frames: vapipe::Error naming the label and the size
  int max_height = kMaxFrameHeight;
};

enum class DecodeStatus : std::uint8_t {
  kOk,           // send: packet taken; receive: a frame was returned
  kAgain,        // send: receive frames first; receive: send more packets
  kEndOfStream,  // receive: flushed, no more frames (call reset() to decode a new stream)
};

class VideoDecoder {
 public:
  // Throws vapipe::Error naming `label` (a URL or channel) when no decoder exists for the codec or the
  // stream announces a size beyond options.max_width x max_height.
  explicit VideoDecoder(const AVCodecParameters& parameters, DecoderOptions options = {},
                        std::string label = "decoder");
  // The codec context points back at this object (get_buffer2): neither copied nor moved.
  VideoDecoder(const VideoDecoder&) = delete;
  VideoDecoder& operator=(const VideoDecoder&) = delete;

  // Sends one packet; nullptr (or an empty packet) starts the flush at end of stream. A corrupt packet
  // is counted in errors() and dropped (kOk). A picture larger than the maximum size throws vapipe::Error
  // (the stream cannot be decoded within bounds; its frames would only be dropped one by one). kAgain: the decoder is full, call receive() then resend.
  // `tag` comes back as the AVFrame::reordered_opaque of the frame(s) decoded from this packet, so a
  // caller can pair frames with their packets across B-frame reordering.
  DecodeStatus send(const AVPacket* packet, std::int64_t tag = 0);
  // Unreferences `frame`, then fills it with the next decoded frame if there is one. Frame size and
  // format come from the frame itself (frame.width/height/format): they may change mid-stream.
  DecodeStatus receive(AVFrame& frame);
  // Drops buffered frames and leaves the flushed state, so decoding can start again (loop, reconnect).
  void reset();

  std::int64_t errors() const { return errors_; }                  // packets or frames that failed to decode
  std::int64_t corrupt_frames() const { return corrupt_frames_; }  // frames returned with concealed errors
  std::int64_t frames() const { return frames_; }
  const AVCodecContext& context() const { return *context_; }

 private:
  // AVCodecContext::get_buffer2: refuses pictures beyond the maximum size before they are allocated.
  static int get_bounded_buffer(AVCodecContext* context, AVFrame* frame, int flags);
  void throw_if_oversized() const;

  std::string label_;
  DecoderOptions options_;
  CodecContextPtr context_;
  // Set by get_bounded_buffer (a frame thread with frame threading) when it refused a picture.
  std::atomic<int> oversized_width_{0};
  std::atomic<int> oversized_height_{0};
  bool draining_ = false;
  std::int64_t errors_ = 0;
  std::int64_t corrupt_frames_ = 0;
  std::int64_t frames_ = 0;
};

}  // namespace vapipe::io
