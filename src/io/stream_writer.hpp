#pragma once
// One video stream out: to a file (.mp4, .mkv, .ts, .flv, raw .h264/.h265 by extension) or pushed to a
// server (rtsp:// ANNOUNCE/RECORD over TCP, rtmp:// as FLV, tcp:// and udp:// as the raw H.264/H.265
// elementary stream, as sophon-pipeline's FfmpegOutputer sends them; options.format picks another muxer,
// e.g. "mpegts"). Packets are either the source's own (passthrough, SEI already inserted) or an encoder's.
// Raw elementary-stream outputs (tcp://, udp://, .h264, .h265) get every access unit in the layout
// pipeline_client reads: our SEI first, parameter sets before each key frame, no delimiters, 4-byte start
// codes (to_elementary_stream in sei_codec.hpp).
//
// The destination is opened lazily, on the first key frame. A destination that is absent or goes away
// never stops the caller: write() returns false and counts the packet, the muxer is dropped, and opening
// is retried with back-off (ReconnectPolicy) on a later key frame. Network opens and writes are bounded by
// an interrupt deadline (io_timeout), so write() never blocks much longer than that. It never throws for
// I/O; only bad arguments (unknown container, no codec parameters) throw, at construction.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/annexb_filter.hpp"
#include "io/ffmpeg_handles.hpp"
#include "io/reconnect_policy.hpp"
#include "io/sei_codec.hpp"

namespace vapipe::io {

struct StreamWriterOptions {
  std::string format;  // FFmpeg muxer name; empty: from the URL's scheme or file extension
  ReconnectOptions reconnect{std::chrono::milliseconds(500), std::chrono::milliseconds(10'000), 2.0,
                             std::chrono::milliseconds(10'000)};
  std::chrono::milliseconds io_timeout{3000};  // bound on one network open or write
  bool rtsp_tcp = true;                        // RTSP push: interleaved TCP (false: UDP)
};

struct StreamWriterStats {
  std::int64_t packets_written = 0;
  std::int64_t packets_dropped = 0;  // not written: destination down, waiting for a key frame, write error
  std::int64_t open_failures = 0;
  std::int64_t write_failures = 0;
  std::int64_t opens = 0;  // successful opens (1 + reconnects)
};

class StreamWriter {
 public:
  // `codec`: the stream's parameters (a demuxer's AVStream::codecpar or avcodec_parameters_from_context of
  // an encoder); `time_base`: the unit of the packets' pts/dts/duration; `frame_rate`: for packets
  // without timestamps (raw elementary streams), {0, 1} if unknown. Throws vapipe::Error when no muxer
  // matches the URL.
  StreamWriter(std::string url, const AVCodecParameters& codec, AVRational time_base,
               AVRational frame_rate = {0, 1}, StreamWriterOptions options = {});
  ~StreamWriter();
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  // Writes one packet; false when it was dropped (counted in stats()). The packet is not modified.
  bool write(const AVPacket& packet);
  // Writes the trailer (MP4 index, RTSP TEARDOWN) and closes for good: later writes are dropped (a file
  // is never reopened over itself). Never throws; the destructor calls it.
  void close();

  bool is_open() const { return output_ != nullptr; }
  ConnectionState state() const { return policy_.state(); }
  const StreamWriterStats& stats() const { return stats_; }
  const std::string& url() const { return url_; }
  const std::string& format_name() const { return format_name_; }

  // Whether an encoder feeding `url` should put SPS/PPS in the extradata (AV_CODEC_FLAG_GLOBAL_HEADER).
  static bool needs_global_header(const std::string& url, const std::string& format = {});
  // The muxer a URL maps to: rtsp, flv (rtmp://), mpegts (.ts), h264/hevc (raw: .h264, .h265, and tcp://
  // and udp:// by `codec`), mp4, ...
  static std::string guess_format(const std::string& url, AVCodecID codec = AV_CODEC_ID_H264);

 private:
  struct OutputDeleter {
    void operator()(AVFormatContext* context) const;
  };
  using OutputPtr = std::unique_ptr<AVFormatContext, OutputDeleter>;

  bool open();
  void drop_output(bool write_trailer);
  void arm_deadline();
  static int interrupt_callback(void* opaque);

  std::string url_;
  std::string format_name_;
  std::unique_ptr<AnnexBFilter> elementary_;  // raw H.264/H.265 output: packets rewritten on the way
  std::vector<std::uint8_t> elementary_bytes_;
  PacketPtr elementary_packet_;
  bool network_ = false;
  StreamWriterOptions options_;
  std::unique_ptr<AVCodecParameters, void (*)(AVCodecParameters*)> codec_;
  AVRational time_base_;
  AVRational frame_rate_;
  ReconnectPolicy policy_;
  OutputPtr output_;
  PacketPtr scratch_;
  std::chrono::steady_clock::time_point deadline_{};
  std::int64_t ts_offset_ = 0;  // added to dts/pts (output time base): each session starts at 0
  std::int64_t last_dts_ = AV_NOPTS_VALUE;
  std::int64_t next_synthetic_ts_ = 0;  // input time base, for packets without timestamps
  StreamWriterStats stats_;
  bool closed_ = false;
};

// How a stream's NAL units are framed, from its extradata: avcC/hvcC (MP4, MKV, FLV demuxers) means
// length prefixes of the size it declares; empty or Annex-B extradata means start codes.
NalFraming framing_of(const AVCodecParameters& codec);
// kH264 or kH265; throws vapipe::Error for other codecs (SEI metadata needs one of the two).
VideoCodec sei_codec_of(const AVCodecParameters& codec);

}  // namespace vapipe::io
