#pragma once
// Owning handles for the FFmpeg objects of the video pipeline, wrapped once here: every other file of
// src/io uses these types instead of calling the *_free functions itself.
#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavformat/avformat.h>
#include <libavutil/error.h>
#include <libavutil/frame.h>
#include <libswscale/swscale.h>
}

namespace vapipe::io {

struct FormatContextDeleter {
  // avformat_close_input for demuxers (it also frees the context); the muxer side owns its own handle.
  void operator()(AVFormatContext* context) const { avformat_close_input(&context); }
};
struct CodecContextDeleter {
  void operator()(AVCodecContext* context) const { avcodec_free_context(&context); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct SwsContextDeleter {
  void operator()(SwsContext* context) const { sws_freeContext(context); }
};
struct CodecParametersDeleter {
  void operator()(AVCodecParameters* parameters) const { avcodec_parameters_free(&parameters); }
};
struct BsfContextDeleter {
  void operator()(AVBSFContext* context) const { av_bsf_free(&context); }
};
// A custom AVIOContext (memory in or out) owns its buffer through av_malloc; libavformat may have
// replaced it since.
struct IoContextDeleter {
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);
    avio_context_free(&io);
  }
};
struct DictionaryDeleter {
  void operator()(AVDictionary* dictionary) const { av_dict_free(&dictionary); }
};

using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextDeleter>;
using CodecParametersPtr = std::unique_ptr<AVCodecParameters, CodecParametersDeleter>;
using BsfContextPtr = std::unique_ptr<AVBSFContext, BsfContextDeleter>;
using IoContextPtr = std::unique_ptr<AVIOContext, IoContextDeleter>;

// Allocating constructors that throw vapipe::Error when FFmpeg is out of memory.
PacketPtr make_packet();
FramePtr make_frame();
// A copy of `source` (extradata included).
CodecParametersPtr copy_codec_parameters(const AVCodecParameters& source);

// FFmpeg's text for an AVERROR code ("Connection refused", "Invalid data found when processing input").
std::string av_error_text(int error);

}  // namespace vapipe::io
