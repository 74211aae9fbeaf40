#pragma once
// One video input opened with libavformat: rtsp:// (TCP by default), rtmp://, http(s)://, local files
// (MP4/MKV/AVI, raw H.264/H.265 elementary streams) and folders of images. Hands out the packets of the
// best video stream as references (no copy), so the same packets can feed the decoder and a passthrough
// output. Files can loop (pts keep increasing) and be paced to their own frame rate. Packets of elementary
// streams, which have no timestamps, get them from the frame rate (or the arrival clock when unknown).
//
// Blocking I/O is bounded where it can block: every open/read of a network stream, and of a local FIFO or
// device (fed by another process, which may never write), runs under a deadline (`timeout_ms`) checked by
// FFmpeg's interrupt callback; a FIFO is read through poll(2), so even an open with no writer is bounded.
// Regular files and image folders have no deadline: they always wait for the disk and lose nothing (a
// starved CPU must not fail them). interrupt() aborts any of them from another thread (shutdown).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "io/ffmpeg_handles.hpp"

namespace vapipe::io {

struct SourceOptions {
  std::string rtsp_transport = "tcp";  // "tcp" | "udp"
  int timeout_ms = 10000;              // longest a single open or read may block (not regular files)
  bool loop = false;                   // files: restart at end of file
  bool pace = false;                   // files: release packets at the stream's own frame rate
  double image_fps = 25.0;             // folders of images: frame rate of the sequence
  std::map<std::string, std::string>
      format_options;  // extra demuxer/protocol options (-> avformat_open_input)
  // When set, a true value acts as interrupt() from the start, the open included: the owner can stop a
  // source still being constructed (an open waiting for a camera or a FIFO's writer). Must outlive it.
  const std::atomic<bool>* stop = nullptr;
};

// Larger packets end the stream with vapipe::Error: an 8K intra frame at broadcast quality is a few MiB,
// and a raw Annex-B stream without start codes would otherwise grow one packet without bound.
inline constexpr int kMaxPacketBytes = 64 << 20;

// What a consumer needs to set up a decoder or a passthrough output for the selected stream.
struct StreamInfo {
  AVCodecID codec_id = AV_CODEC_ID_NONE;
  int width = 0;
  int height = 0;
  AVRational frame_rate{0, 1};  // {0, 1} when the container does not say
  AVRational time_base{0, 1};   // of the packets' pts/dts
};

class VideoSource {
 public:
  // Opens `url` (a URL, a file or a folder of images) and selects its best video stream. Throws
  // vapipe::Error naming the url on failure (missing file, no video stream, connection refused, timeout).
  explicit VideoSource(std::string url, SourceOptions options = {});
  ~VideoSource();
  VideoSource(const VideoSource&) = delete;
  VideoSource& operator=(const VideoSource&) = delete;

  const std::string& url() const { return url_; }
  const StreamInfo& info() const { return info_; }
  // Parameters of the selected stream (extradata included) for avcodec_parameters_to_context or a muxer.
  const AVCodecParameters& codec_parameters() const;
  // True for network streams (no looping or pacing; the caller reconnects after an error).
  bool is_live() const { return live_; }

  // Unreferences `packet` and fills it with a reference to the next packet of the video stream (pts/dts
  // in info().time_base, at least one of them set). Returns false at end of stream (or after interrupt()). Throws vapipe::Error on
  // I/O errors, timeouts and packets larger than kMaxPacketBytes.
  bool read(AVPacket& packet);

  // Thread-safe: makes a blocked or later read() return false promptly.
  void interrupt() { interrupted_.store(true, std::memory_order_relaxed); }

  // Number of times a looping file restarted.
  int loops() const { return loops_; }

 private:
  bool stopping() const {
    return interrupted_.load(std::memory_order_relaxed) ||
           (options_.stop != nullptr && options_.stop->load(std::memory_order_relaxed));
  }
  static int interrupt_callback(void* opaque);
  static int read_special(void* opaque, std::uint8_t* buffer, int size);
  void open();
  void open_special(AVFormatContext* context, const std::string& path);
  void close_input();
  void arm_deadline();
  bool restart();
  void pace(const AVPacket& packet);
  void stamp(AVPacket& packet);
  [[noreturn]] void fail_io(const char* operation, int error) const;

  std::string url_;
  std::string shown_url_;  // url_ without its password: the one in messages
  SourceOptions options_;
  FormatContextPtr format_;
  int stream_index_ = -1;
  StreamInfo info_;
  bool live_ = false;
  bool rtsp_ = false;     // rtsp:// or rtsps://
  bool special_ = false;  // a local FIFO, character device or socket: read through special_io_
  int special_fd_ = -1;
  AVIOContext* special_io_ = nullptr;
  std::atomic<bool> interrupted_{false};
  std::atomic<std::int64_t> deadline_ns_{0};  // steady_clock, checked by interrupt_callback; 0: none
  // Set when the deadline fired: FFmpeg then reports AVERROR_EXIT ("Immediate exit requested"), sticky on
  // its I/O context, so the message must come from here to say that a timeout fired.
  mutable std::atomic<bool> timed_out_{false};

  // Looping: the offset added to pts/dts, and the end (pts + duration) of the latest packet seen.
  int loops_ = 0;
  std::int64_t loop_offset_ = 0;
  std::int64_t first_timestamp_ = AV_NOPTS_VALUE;
  std::int64_t end_timestamp_ = AV_NOPTS_VALUE;
  std::int64_t default_duration_ = 0;  // one frame in time_base units (packets without a duration)

  // Packets without any timestamp (elementary streams): the next one's, and the arrival clock's origin.
  std::int64_t next_stamp_ = 0;
  std::chrono::steady_clock::time_point stamp_anchor_;

  // Pacing: the wall-clock time matching pace_timestamp_ (a packet's dts, in time_base units).
  std::chrono::steady_clock::time_point pace_anchor_;
  std::int64_t pace_timestamp_ = AV_NOPTS_VALUE;
  std::int64_t packets_ = 0;
};

}  // namespace vapipe::io
