#include "io/annexb_filter.hpp"

#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/stream_writer.hpp"

namespace vapipe::io {

AnnexBFilter::AnnexBFilter(const AVCodecParameters& codec, const std::string& label)
    : label_(label), scratch_(make_packet()) {
  if (codec.codec_id != AV_CODEC_ID_H264 && codec.codec_id != AV_CODEC_ID_HEVC)
    fail("{}: {} cannot be converted to Annex-B (H.264 and H.265 only)", label_,
         avcodec_get_name(codec.codec_id));
  h265_ = codec.codec_id == AV_CODEC_ID_HEVC;
  if (framing_of(codec).annex_b) {
    if (codec.extradata != nullptr && codec.extradata_size > 0)
      headers_.assign(codec.extradata, codec.extradata + codec.extradata_size);
    return;
  }
  const AVBitStreamFilter* filter = av_bsf_get_by_name(h265_ ? "hevc_mp4toannexb" : "h264_mp4toannexb");
  if (filter == nullptr) fail("{}: FFmpeg lacks the {}_mp4toannexb filter", label_, h265_ ? "hevc" : "h264");
  AVBSFContext* raw = nullptr;
  if (av_bsf_alloc(filter, &raw) < 0) fail("{}: av_bsf_alloc: out of memory", label_);
  bsf_.reset(raw);
  if (avcodec_parameters_copy(bsf_->par_in, &codec) < 0)
    fail("{}: avcodec_parameters_copy: out of memory", label_);
  if (const int error = av_bsf_init(bsf_.get()); error < 0)
    fail("{}: {}_mp4toannexb: {}", label_, h265_ ? "hevc" : "h264", av_error_text(error));
}

std::span<const std::uint8_t> AnnexBFilter::filter(const AVPacket& packet) {
  const bool key_frame = (packet.flags & AV_PKT_FLAG_KEY) != 0;
  std::span<const std::uint8_t> annex_b(packet.data, static_cast<std::size_t>(packet.size));
  if (bsf_) {
    // The filter takes a reference (a copy when the packet is not refcounted) and gives one packet back.
    av_packet_unref(scratch_.get());
    int error = av_packet_ref(scratch_.get(), &packet);
    if (error >= 0) error = av_bsf_send_packet(bsf_.get(), scratch_.get());
    if (error >= 0) error = av_bsf_receive_packet(bsf_.get(), scratch_.get());
    if (error < 0) {
      if (!failure_logged_)
        spdlog::warn("{}: packet not converted to Annex-B: {}", label_, av_error_text(error));
      failure_logged_ = true;
      return {};
    }
    return {scratch_->data, static_cast<std::size_t>(scratch_->size)};
  }
  if (!key_frame || headers_.empty() || has_parameter_sets(annex_b)) return annex_b;
  out_.assign(headers_.begin(), headers_.end());
  out_.insert(out_.end(), annex_b.begin(), annex_b.end());
  return out_;
}

bool AnnexBFilter::has_parameter_sets(std::span<const std::uint8_t> annex_b) const {
  // Every NAL after a 00 00 01 start code: an SPS (H.264 type 7, H.265 type 33) anywhere in the packet.
  for (std::size_t i = 0; i + 3 < annex_b.size(); ++i) {
    if (annex_b[i] != 0 || annex_b[i + 1] != 0 || annex_b[i + 2] != 1) continue;
    const std::uint8_t header = annex_b[i + 3];
    const int type = h265_ ? (header >> 1) & 0x3f : header & 0x1f;
    if (type == (h265_ ? 33 : 7)) return true;
    i += 2;
  }
  return false;
}

}  // namespace vapipe::io
