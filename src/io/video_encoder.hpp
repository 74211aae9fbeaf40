#pragma once
// H.264 encoding with libx264 through libavcodec, for the annotated output. Frames come in as BGR (a
// cv::Mat's data pointer and step) or NV12 (a decoded frame's planes), are converted into the encoder's
// own reused YUV 4:2:0 frame (no allocation per frame), and packets come out under FFmpeg's send/receive
// contract.
#include <cstdint>
#include <string>

#include "io/ffmpeg_handles.hpp"

namespace vapipe::io {

enum class EncoderPixelFormat : std::uint8_t { kBgr24, kNv12 };

struct EncoderOptions {
  int width = 0;  // pixels; frames of another size are scaled to this one
  int height = 0;
  int fps_num = 25;  // frame rate; the time base is its inverse, so pts count frames
  int fps_den = 1;
  int gop_size = 50;     // key frame interval in frames (a reconnecting client waits at most this long)
  int bitrate_kbps = 0;  // > 0: average bitrate; 0: constant quality (crf)
  int crf = 23;          // x264 constant rate factor when bitrate_kbps is 0
  std::string preset = "veryfast";
  std::string tune = "zerolatency";  // no look-ahead and no B-frames: a frame out per frame in; "" for none
  int threads = 0;                   // 0: x264 picks
  // SPS/PPS in the extradata only (MP4, MKV, FLV, RTSP want that: StreamWriter::needs_global_header);
  // otherwise repeated in-band before every key frame (raw .h264, MPEG-TS).
  bool global_header = false;
  // With global_header: SPS/PPS also in-band before every key frame (live outputs that clients join at any
  // key frame, and containers that want the extradata).
  bool repeat_headers = false;
};

// One input picture. BGR: planes[0]/strides[0] (bytes per row, e.g. cv::Mat::step). NV12: Y in plane 0,
// interleaved UV in plane 1.
struct EncoderFrame {
  EncoderPixelFormat format = EncoderPixelFormat::kBgr24;
  int width = 0;
  int height = 0;
  const std::uint8_t* planes[2] = {nullptr, nullptr};
  int strides[2] = {0, 0};
  std::int64_t pts = AV_NOPTS_VALUE;  // in time_base() units; AV_NOPTS_VALUE: the next frame number

  // A packed BGR picture (a cv::Mat's data and step).
  static EncoderFrame bgr24(const std::uint8_t* pixels, int width, int height, int stride) {
    EncoderFrame frame;
    frame.width = width;
    frame.height = height;
    frame.planes[0] = pixels;
    frame.strides[0] = stride;
    return frame;
  }
};

enum class EncodeStatus : std::uint8_t {
  kOk,           // send: frame taken; receive: a packet was returned
  kAgain,        // send: receive packets first; receive: send more frames
  kEndOfStream,  // receive: flushed, no more packets
};

class VideoEncoder {
 public:
  // Throws vapipe::Error naming `label` when libx264 is missing or rejects the options.
  explicit VideoEncoder(const EncoderOptions& options, std::string label = "encoder");

  // Converts and sends one frame; nullptr starts the flush. Throws vapipe::Error on a bad frame (null
  // plane, non-positive size) or an encoder failure.
  EncodeStatus send(const EncoderFrame* frame);
  // Unreferences `packet`, then fills it with the next packet (pts/dts in time_base()) if there is one.
  EncodeStatus receive(AVPacket& packet);

  AVRational time_base() const { return context_->time_base; }
  // The stream's codec parameters (extradata included when global_header), for StreamWriter.
  const AVCodecContext& context() const { return *context_; }
  std::int64_t frames_sent() const { return next_pts_; }

 private:
  std::string label_;
  CodecContextPtr context_;
  FramePtr frame_;
  SwsContextPtr sws_;
  std::int64_t next_pts_ = 0;
  bool draining_ = false;
};

}  // namespace vapipe::io
