#pragma once
// H.264/H.265 packets as Annex-B with the parameter sets (VPS/SPS/PPS) in front of every key frame: what a
// live output needs so a client can start at any key frame (the embedded RTSP server). Length-prefixed input
// (AVCC/HVCC from MP4, MKV) goes through FFmpeg's h264_mp4toannexb / hevc_mp4toannexb, which insert the
// extradata's parameter sets before IDR/IRAP pictures; Annex-B input passes as it is, with the extradata
// put in front of a key frame that does not carry its own (an RTSP camera announcing them only in the SDP,
// an H.265 CRA). Not thread-safe: one per stream.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/ffmpeg_handles.hpp"

namespace vapipe::io {

class AnnexBFilter {
 public:
  // Throws vapipe::Error for codecs other than H.264 and H.265. `label` names the stream in errors.
  AnnexBFilter(const AVCodecParameters& codec, const std::string& label);

  // `packet` converted; valid until the next call. Empty when the packet cannot be converted (logged once).
  std::span<const std::uint8_t> filter(const AVPacket& packet);

  bool h265() const { return h265_; }

 private:
  bool has_parameter_sets(std::span<const std::uint8_t> annex_b) const;

  std::string label_;
  bool h265_ = false;
  BsfContextPtr bsf_;  // null: the input is Annex-B already
  PacketPtr scratch_;
  std::vector<std::uint8_t> headers_;  // Annex-B parameter sets of the extradata
  std::vector<std::uint8_t> out_;
  bool failure_logged_ = false;
};

}  // namespace vapipe::io
