#include "io/fmp4_muxer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <utility>

extern "C" {
#include <libavcodec/bsf.h>
#include <libavutil/mem.h>
#include <libavutil/opt.h>
}

#include "core/error.hpp"

namespace vapipe::io {

namespace {

constexpr int kIoBufferBytes = 64 * 1024;
constexpr const char* kMovFlags = "empty_moov+default_base_moof+frag_custom";

struct MuxerDeleter {
  void operator()(AVFormatContext* context) const { avformat_free_context(context); }
};
struct BsfDeleter {
  void operator()(AVBSFContext* context) const { av_bsf_free(&context); }
};

// libavformat's write callback: everything the muxer writes lands in one string.
int append_to_string(void* opaque, std::uint8_t* data, int size) {
  static_cast<std::string*>(opaque)->append(reinterpret_cast<const char*>(data),
                                            static_cast<std::size_t>(size));
  return size;
}

// SPS/PPS of the first key frame as extradata (Annex-B streams without it: raw .h264, MPEG-TS, some
// RTSP cameras), by FFmpeg's extract_extradata bitstream filter.
bool take_extradata(AVCodecParameters& parameters, const AVPacket& key_packet) {
  const AVBitStreamFilter* filter = av_bsf_get_by_name("extract_extradata");
  AVBSFContext* raw = nullptr;
  if (filter == nullptr || av_bsf_alloc(filter, &raw) < 0) return false;
  std::unique_ptr<AVBSFContext, BsfDeleter> bsf(raw);
  if (avcodec_parameters_copy(bsf->par_in, &parameters) < 0 || av_bsf_init(bsf.get()) < 0) return false;
  PacketPtr packet = make_packet();
  if (av_packet_ref(packet.get(), &key_packet) < 0 || av_bsf_send_packet(bsf.get(), packet.get()) < 0)
    return false;
  if (av_bsf_receive_packet(bsf.get(), packet.get()) < 0) return false;
  std::size_t size = 0;
  const std::uint8_t* data = av_packet_get_side_data(packet.get(), AV_PKT_DATA_NEW_EXTRADATA, &size);
  if (data == nullptr || size == 0) return false;
  av_freep(&parameters.extradata);
  parameters.extradata = static_cast<std::uint8_t*>(av_mallocz(size + AV_INPUT_BUFFER_PADDING_SIZE));
  if (parameters.extradata == nullptr) fail("out of memory");
  std::memcpy(parameters.extradata, data, size);
  parameters.extradata_size = static_cast<int>(size);
  return true;
}

}  // namespace

std::string avc_codec_string(const std::string& init_segment) {
  // avcC: "avcC" then configurationVersion(1), AVCProfileIndication, profile_compatibility, AVCLevelIndication.
  const auto at = init_segment.find("avcC");
  if (at == std::string::npos || at + 8 > init_segment.size()) return {};
  const auto byte = [&](std::size_t i) {
    return static_cast<unsigned>(static_cast<std::uint8_t>(init_segment[i]));
  };
  return fmt::format("avc1.{:02x}{:02x}{:02x}", byte(at + 5), byte(at + 6), byte(at + 7));
}

struct Fmp4Muxer::Output {
  std::unique_ptr<AVFormatContext, MuxerDeleter> context;
  IoContextPtr io;
  std::string written;  // what the muxer wrote since the last take
  AVRational stream_time_base{1, 90000};
  std::int64_t discont_flag = 0;  // movflags' frag_discont bit
};

Fmp4Muxer::Fmp4Muxer(const AVCodecParameters& parameters, AVRational time_base, AVRational frame_rate,
                     std::string label)
    : label_(std::move(label)), time_base_(time_base), frame_rate_(frame_rate) {
  if (parameters.codec_id != AV_CODEC_ID_H264 && parameters.codec_id != AV_CODEC_ID_HEVC)
    fail("{}: fragmented MP4 carries H.264 or H.265 here, not {}", label_,
         avcodec_get_name(parameters.codec_id));
  if (time_base_.num <= 0 || time_base_.den <= 0) fail("{}: invalid time base", label_);
  if (parameters.extradata_size > 0) {
    open(parameters);
  } else {
    pending_ = copy_codec_parameters(parameters);
  }
}

Fmp4Muxer::~Fmp4Muxer() = default;

void Fmp4Muxer::open(const AVCodecParameters& parameters) {
  auto output = std::make_unique<Output>();
  AVFormatContext* raw = nullptr;
  int error = avformat_alloc_output_context2(&raw, nullptr, "mp4", nullptr);
  if (error < 0 || raw == nullptr) fail("{}: no mp4 muxer: {}", label_, av_error_text(error));
  output->context.reset(raw);

  auto* buffer = static_cast<std::uint8_t*>(av_malloc(kIoBufferBytes));
  if (buffer == nullptr) fail("out of memory");
  output->io.reset(
      avio_alloc_context(buffer, kIoBufferBytes, 1, &output->written, nullptr, &append_to_string, nullptr));
  if (!output->io) {
    av_free(buffer);
    fail("out of memory");
  }
  output->context->pb = output->io.get();
  output->context->flags |= AVFMT_FLAG_CUSTOM_IO;

  AVStream* stream = avformat_new_stream(output->context.get(), nullptr);
  if (stream == nullptr || avcodec_parameters_copy(stream->codecpar, &parameters) < 0) fail("out of memory");
  stream->codecpar->codec_tag = 0;  // the muxer picks avc1/hev1
  stream->time_base = time_base_;
  if (frame_rate_.num > 0 && frame_rate_.den > 0) stream->avg_frame_rate = frame_rate_;

  AVDictionary* raw_options = nullptr;
  av_dict_set(&raw_options, "movflags", kMovFlags, 0);
  std::unique_ptr<AVDictionary, DictionaryDeleter> options;
  error = avformat_write_header(output->context.get(), &raw_options);
  options.reset(raw_options);
  if (error < 0) fail("{}: fragmented MP4 header: {}", label_, av_error_text(error));
  avio_flush(output->context->pb);
  output->stream_time_base = stream->time_base;
  const AVOption* discont = av_opt_find(output->context->priv_data, "frag_discont", "movflags", 0, 0);
  if (discont == nullptr) fail("{}: this libavformat's mp4 muxer has no frag_discont", label_);
  output->discont_flag = discont->default_val.i64;
  init_ = std::exchange(output->written, {});
  codec_ = parameters.codec_id == AV_CODEC_ID_H264 ? avc_codec_string(init_) : "hev1";
  if (codec_.empty()) fail("{}: the init segment has no avcC record", label_);
  output_ = std::move(output);
}

std::optional<Fmp4Fragment> Fmp4Muxer::write(const AVPacket& packet) {
  const bool key = (packet.flags & AV_PKT_FLAG_KEY) != 0;
  if (!output_) {
    if (!key) return std::nullopt;
    if (!take_extradata(*pending_, packet)) return std::nullopt;
    open(*pending_);
    pending_.reset();
  }
  if (!origin_) {
    if (!key) return std::nullopt;  // a stream starts with a key frame
    origin_ = packet.dts != AV_NOPTS_VALUE ? packet.dts : packet.pts;
  }
  if (packet.pts == AV_NOPTS_VALUE) fail("{}: packet without a timestamp", label_);

  AVPacket& out = *scratch_;
  av_packet_unref(&out);
  if (av_packet_ref(&out, &packet) < 0) fail("out of memory");
  const std::int64_t dts = packet.dts != AV_NOPTS_VALUE ? packet.dts : packet.pts;
  out.pts = packet.pts - *origin_;
  out.dts = dts - *origin_;
  // The muxer needs each fragment's last (here: only) sample duration; without one it guesses and warns.
  if (out.duration <= 0 && frame_rate_.num > 0 && frame_rate_.den > 0)
    out.duration = av_rescale_q(1, av_inv_q(frame_rate_), time_base_);
  out.stream_index = 0;
  av_packet_rescale_ts(&out, time_base_, output_->stream_time_base);

  // Every fragment's decode time (tfdt) from the packet's own dts: without frag_discont movenc adds up
  // sample durations, which drift from the real timestamps when a camera's frame interval varies and jump
  // back when packets are skipped (a viewer resynchronising at a key frame).
  // The muxer clears the flag once it took it, and keeps flags of its own beside ours (fragment): add it.
  std::int64_t flags = 0;
  int error = av_opt_get_int(output_->context->priv_data, "movflags", 0, &flags);
  if (error >= 0)
    error = av_opt_set_int(output_->context->priv_data, "movflags", flags | output_->discont_flag, 0);
  if (error < 0) fail("{}: movflags: {}", label_, av_error_text(error));
  error = av_write_frame(output_->context.get(), &out);
  if (error >= 0) error = av_write_frame(output_->context.get(), nullptr);  // frag_custom: flush it
  av_packet_unref(&out);
  if (error < 0) fail("{}: writing a fragment: {}", label_, av_error_text(error));
  avio_flush(output_->context->pb);
  Fmp4Fragment fragment;
  fragment.bytes = std::exchange(output_->written, {});
  fragment.key = key;
  fragment.media_time_s = media_time_s(packet.pts);
  return fragment;
}

double Fmp4Muxer::media_time_s(std::int64_t pts) const {
  if (!origin_) return 0.0;
  return static_cast<double>(pts - *origin_) * av_q2d(time_base_);
}

}  // namespace vapipe::io
