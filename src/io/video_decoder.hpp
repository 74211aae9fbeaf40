#pragma once
// Video decoding with libavcodec (H.264, H.265, MPEG-4, MJPEG, ... whatever the FFmpeg build has), under
// FFmpeg's own send/receive contract. Frames come out as references to the decoder's buffers (no copy).
// Corrupt input never stops decoding: the error is counted and the next packet is decoded.
#include <cstdint>
#include <string>

#include "io/ffmpeg_handles.hpp"

namespace vapipe::io {

struct DecoderOptions {
  int threads = 1;  // decoder threads; 0 = FFmpeg picks (one per core)
  // Frame threading adds threads-1 frames of delay; slice threading adds none (live sources).
  bool low_delay = false;
};

enum class DecodeStatus : std::uint8_t {
  kOk,           // send: packet taken; receive: a frame was returned
  kAgain,        // send: receive frames first; receive: send more packets
  kEndOfStream,  // receive: flushed, no more frames (call reset() to decode a new stream)
};

class VideoDecoder {
 public:
  // Throws vapipe::Error naming `label` (a URL or channel) when no decoder exists for the codec.
  explicit VideoDecoder(const AVCodecParameters& parameters, DecoderOptions options = {},
                        std::string label = "decoder");

  // Sends one packet; nullptr (or an empty packet) starts the flush at end of stream. A corrupt packet
  // is counted in errors() and dropped (kOk). kAgain: the decoder is full, call receive() then resend.
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
  std::string label_;
  CodecContextPtr context_;
  bool draining_ = false;
  std::int64_t errors_ = 0;
  std::int64_t corrupt_frames_ = 0;
  std::int64_t frames_ = 0;
};

}  // namespace vapipe::io
