#pragma once
// Fragmented MP4 for Media Source Extensions, muxed by libavformat's mp4 muxer into memory:
// `movflags=empty_moov+default_base_moof+frag_custom` gives an init segment (ftyp + moov, H.264 in avcC)
// and then one fragment (moof + mdat) per packet. One fragment per frame rather than per GOP
// (`frag_keyframe`) because a GOP-sized fragment is only complete when the next key frame arrives, which
// adds a whole GOP (2 s for vapipe's x264) of latency to a live view; a client still starts at a key frame:
// `Fragment::key` tells which fragments it may start with.
//
// Media time: a packet's presentation time in the fragments is (pts - origin) * time_base, `origin` being
// the dts of the first packet written, so a caller can put the same clock on anything it shows beside the
// video (the viewer's boxes).
#include <cstdint>
#include <optional>
#include <string>

#include "io/ffmpeg_handles.hpp"

namespace vapipe::io {

struct Fmp4Fragment {
  std::string bytes;          // moof + mdat
  bool key = false;           // starts with a key frame: a client may start here
  double media_time_s = 0.0;  // presentation time of its frame in the fragments' timeline
};

class Fmp4Muxer {
 public:
  // `parameters`: H.264 or H.265 (extradata Annex-B or avcC/hvcC; when there is none, it is taken from the
  // first key frame). Throws vapipe::Error naming `label` when libavformat refuses the stream.
  Fmp4Muxer(const AVCodecParameters& parameters, AVRational time_base, AVRational frame_rate,
            std::string label = "fmp4");
  ~Fmp4Muxer();
  Fmp4Muxer(const Fmp4Muxer&) = delete;
  Fmp4Muxer& operator=(const Fmp4Muxer&) = delete;

  // Muxes one packet (timestamps in the constructor's time_base, decode order). std::nullopt while the
  // stream waits for its first key frame (no extradata yet, or the packets before the first key frame).
  // Throws vapipe::Error when libavformat fails (e.g. timestamps going back).
  std::optional<Fmp4Fragment> write(const AVPacket& packet);

  // ftyp + moov; empty until the first write() that returned a fragment when the stream had no extradata.
  const std::string& init_segment() const { return init_; }
  // The RFC 6381 codec of the stream for MediaSource.isTypeSupported / addSourceBuffer:
  // "avc1.PPCCLL" from the avcC record (profile, constraints, level); "hev1" for H.265 (no MSE in
  // Debian's chromium, measured: the viewer shows it as JPEG). Empty until init_segment() is.
  const std::string& codec_string() const { return codec_; }
  // (pts - origin) * time_base, as in the fragments; 0 before the first fragment.
  double media_time_s(std::int64_t pts) const;

 private:
  struct Output;
  void open(const AVCodecParameters& parameters);

  std::string label_;
  AVRational time_base_;
  AVRational frame_rate_;
  CodecParametersPtr pending_;  // parameters waiting for extradata from the first key frame
  std::unique_ptr<Output> output_;
  std::string init_;
  std::string codec_;
  std::optional<std::int64_t> origin_;
  PacketPtr scratch_ = make_packet();
};

// "avc1.PPCCLL" from an init segment's avcC box; empty when there is none.
std::string avc_codec_string(const std::string& init_segment);

}  // namespace vapipe::io
