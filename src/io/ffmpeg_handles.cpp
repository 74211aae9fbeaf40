#include "io/ffmpeg_handles.hpp"

#include "core/error.hpp"

namespace vapipe::io {

PacketPtr make_packet() {
  PacketPtr packet(av_packet_alloc());
  if (!packet) fail("av_packet_alloc: out of memory");
  return packet;
}

FramePtr make_frame() {
  FramePtr frame(av_frame_alloc());
  if (!frame) fail("av_frame_alloc: out of memory");
  return frame;
}

CodecParametersPtr copy_codec_parameters(const AVCodecParameters& source) {
  CodecParametersPtr copy(avcodec_parameters_alloc());
  if (!copy || avcodec_parameters_copy(copy.get(), &source) < 0)
    fail("avcodec_parameters_copy: out of memory");
  return copy;
}

std::string av_error_text(int error) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  if (av_strerror(error, text, sizeof(text)) < 0) return "FFmpeg error " + std::to_string(error);
  return text;
}

}  // namespace vapipe::io
