// libFuzzer target: the bitstream entry of a channel. The input is demuxed from memory through a custom
// AVIOContext with the demuxers a camera or file source uses (raw H.264/H.265, MPEG-TS, MP4, Matroska,
// FLV), then, as Channel::run_source does, decoded by io::VideoDecoder (its size bounds included), and each
// packet goes through io::AnnexBFilter (the RTSP server's path) and the SEI reader (the viewer's path).
// FFmpeg itself is not instrumented: coverage guides through our wrappers, FFmpeg is exercised blind.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>

extern "C" {
#include <libavformat/avformat.h>
#include <libavutil/log.h>
}
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/annexb_filter.hpp"
#include "io/ffmpeg_handles.hpp"
#include "io/sei_codec.hpp"
#include "io/video_decoder.hpp"

namespace {

using namespace vapipe::io;

// Bounds one input's work, so the fuzzer spends its time on many inputs rather than on one long stream.
constexpr int kMaxPackets = 64;
constexpr int kIoBufferBytes = 4096;

struct MemoryInput {
  std::span<const std::uint8_t> bytes;
  std::size_t position = 0;
};

int read_memory(void* opaque, std::uint8_t* buffer, int size) {
  auto& input = *static_cast<MemoryInput*>(opaque);
  const std::size_t left = input.bytes.size() - input.position;
  if (left == 0) return AVERROR_EOF;
  const std::size_t count = std::min(left, static_cast<std::size_t>(size));
  std::memcpy(buffer, input.bytes.data() + input.position, count);
  input.position += count;
  return static_cast<int>(count);
}

std::int64_t seek_memory(void* opaque, std::int64_t offset, int whence) {
  auto& input = *static_cast<MemoryInput*>(opaque);
  const auto size = static_cast<std::int64_t>(input.bytes.size());
  std::int64_t target = 0;
  switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
      return size;
    case SEEK_SET:
      target = offset;
      break;
    case SEEK_CUR:
      target = static_cast<std::int64_t>(input.position) + offset;
      break;
    case SEEK_END:
      target = size + offset;
      break;
    default:
      return AVERROR(EINVAL);
  }
  if (target < 0 || target > size) return AVERROR(EINVAL);
  input.position = static_cast<std::size_t>(target);
  return target;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  av_log_set_level(AV_LOG_QUIET);
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  MemoryInput input{{data, size}};
  auto* buffer = static_cast<std::uint8_t*>(av_malloc(kIoBufferBytes));
  if (buffer == nullptr) return 0;
  IoContextPtr io(avio_alloc_context(buffer, kIoBufferBytes, 0, &input, &read_memory, nullptr, &seek_memory));
  if (!io) {
    av_free(buffer);
    return 0;
  }
  AVFormatContext* raw_format = avformat_alloc_context();
  if (raw_format == nullptr) return 0;
  raw_format->pb = io.get();
  raw_format->flags |= AVFMT_FLAG_CUSTOM_IO;
  raw_format->probesize = 32 * 1024;
  raw_format->max_analyze_duration = 500'000;
  AVDictionary* options = nullptr;
  av_dict_set(&options, "format_whitelist", "h264,hevc,mpegts,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,flv", 0);
  const int opened = avformat_open_input(&raw_format, nullptr, nullptr, &options);
  av_dict_free(&options);
  if (opened < 0) return 0;  // avformat_open_input freed the context
  FormatContextPtr format(raw_format);
  if (avformat_find_stream_info(format.get(), nullptr) < 0) return 0;
  const int stream_index = av_find_best_stream(format.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (stream_index < 0) return 0;
  const AVCodecParameters& parameters = *format->streams[stream_index]->codecpar;

  try {
    VideoDecoder decoder(parameters, {.threads = 1}, "fuzz");
    std::optional<AnnexBFilter> annex_b;
    if (parameters.codec_id == AV_CODEC_ID_H264 || parameters.codec_id == AV_CODEC_ID_HEVC)
      annex_b.emplace(parameters, "fuzz");
    const VideoCodec codec = parameters.codec_id == AV_CODEC_ID_HEVC ? VideoCodec::kH265 : VideoCodec::kH264;
    const NalFraming framing = parameters.extradata_size > 0 && parameters.extradata[0] == 1
                                   ? NalFraming::length_prefixed()
                                   : NalFraming::annexb();
    PacketPtr packet = make_packet();
    FramePtr frame = make_frame();
    for (int count = 0; count < kMaxPackets && av_read_frame(format.get(), packet.get()) >= 0; ++count) {
      if (packet->stream_index == stream_index) {
        (void)read_metadata(codec, framing, {packet->data, static_cast<std::size_t>(packet->size)});
        if (annex_b) (void)annex_b->filter(*packet);
        while (decoder.send(packet.get(), count) == DecodeStatus::kAgain) {
          while (decoder.receive(*frame) == DecodeStatus::kOk) {
          }
        }
        while (decoder.receive(*frame) == DecodeStatus::kOk) {
        }
      }
      av_packet_unref(packet.get());
    }
    decoder.send(nullptr);
    while (decoder.receive(*frame) == DecodeStatus::kOk) {
    }
  } catch (const vapipe::Error&) {
  }
  return 0;
}
