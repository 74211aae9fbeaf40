#include "io/video_source.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/url_redaction.hpp"

namespace vapipe::io {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

bool is_network_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return false;
  std::string scheme = url.substr(0, scheme_end);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return scheme != "file";
}

std::string lower_extension(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return extension;
}

// glob(3) pattern matching every file of `folder` with the extension of its first image (sorted by name,
// which is also the order glob returns); the image2 demuxer decodes them as one sequence.
std::string image_folder_pattern(const std::filesystem::path& folder) {
  static const char* const kImageExtensions[] = {".jpg",  ".jpeg", ".png", ".bmp", ".tif",
                                                 ".tiff", ".webp", ".pgm", ".ppm"};
  std::vector<std::filesystem::path> images;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    const auto extension = lower_extension(entry.path());
    if (std::find_if(std::begin(kImageExtensions), std::end(kImageExtensions),
                     [&](const char* known) { return extension == known; }) != std::end(kImageExtensions)) {
      images.push_back(entry.path());
    }
  }
  if (images.empty())
    fail("{}: folder holds no images (.jpg, .png, .bmp, .tif, .webp, .pgm, .ppm)", folder.string());
  std::sort(images.begin(), images.end());
  const std::string extension = images.front().extension().string();
  const auto others = std::count_if(images.begin(), images.end(), [&](const auto& image) {
    return image.extension().string() != extension;
  });
  if (others > 0) {
    spdlog::warn("{}: reading the {} '*{}' images; {} images with other extensions are skipped",
                 folder.string(), images.size() - static_cast<std::size_t>(others), extension, others);
  }
  std::string pattern;
  for (const char c : folder.string() + "/") {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') pattern += '\\';
    pattern += c;
  }
  return pattern + "*" + extension;
}

}  // namespace

VideoSource::VideoSource(std::string url, SourceOptions options)
    : url_(std::move(url)), shown_url_(redact_credentials(url_)), options_(std::move(options)) {
  if (options_.rtsp_transport != "tcp" && options_.rtsp_transport != "udp") {
    fail("{}: rtsp_transport must be \"tcp\" or \"udp\", not \"{}\"", shown_url_, options_.rtsp_transport);
  }
  live_ = is_network_url(url_);
  rtsp_ = url_.starts_with("rtsp://") || url_.starts_with("rtsps://");
  try {
    open();
  } catch (...) {
    close_input();  // no destructor runs for a constructor that throws
    throw;
  }
}

VideoSource::~VideoSource() {
  // Closing an RTSP session sends TEARDOWN; a dead server must not hold shutdown for the full timeout.
  deadline_ns_.store(now_ns() + 1'000'000'000, std::memory_order_relaxed);
  close_input();  // while the members the interrupt callback reads are still alive
}

void VideoSource::close_input() {
  format_.reset();
  if (special_io_ != nullptr) {
    av_freep(&special_io_->buffer);
    avio_context_free(&special_io_);
  }
  if (special_fd_ >= 0) ::close(special_fd_);
  special_fd_ = -1;
}

const AVCodecParameters& VideoSource::codec_parameters() const {
  return *format_->streams[stream_index_]->codecpar;
}

int VideoSource::interrupt_callback(void* opaque) {
  const auto* self = static_cast<const VideoSource*>(opaque);
  if (self->stopping()) return 1;
  const std::int64_t deadline = self->deadline_ns_.load(std::memory_order_relaxed);
  if (deadline == 0 || now_ns() <= deadline) return 0;
  self->timed_out_.store(true, std::memory_order_relaxed);
  return 1;
}

// FFmpeg's file protocol opens and reads a FIFO with blocking calls its interrupt callback cannot end (an
// open with no writer never returns). This reads it without blocking: poll in short slices, checking the
// deadline and interrupt() between them. POLLHUP without data: the writer closed, end of stream.
int VideoSource::read_special(void* opaque, std::uint8_t* buffer, int size) {
  auto* self = static_cast<VideoSource*>(opaque);
  for (;;) {
    if (interrupt_callback(self) != 0) return AVERROR_EXIT;
    pollfd waiting{self->special_fd_, POLLIN, 0};
    const int ready = ::poll(&waiting, 1, 20);
    if (ready < 0 && errno != EINTR) return AVERROR(errno);
    if (ready <= 0) continue;
    if ((waiting.revents & POLLIN) == 0) return (waiting.revents & POLLHUP) != 0 ? AVERROR_EOF : AVERROR(EIO);
    const ssize_t got = ::read(self->special_fd_, buffer, static_cast<std::size_t>(size));
    if (got > 0) return static_cast<int>(got);
    if (got == 0) return AVERROR_EOF;
    if (errno != EAGAIN && errno != EINTR) return AVERROR(errno);
  }
}

void VideoSource::arm_deadline() {
  // Regular files wait for the disk however long it takes; a deadline there only fails healthy files when
  // the CPU is starved (256 channels of one file failed with "Immediate exit requested").
  const bool bounded = live_ || special_;
  deadline_ns_.store(
      bounded && options_.timeout_ms > 0 ? now_ns() + std::int64_t{options_.timeout_ms} * 1'000'000 : 0,
      std::memory_order_relaxed);
}

void VideoSource::fail_io(const char* operation, int error) const {
  if (timed_out_.load(std::memory_order_relaxed) && rtsp_ && std::strcmp(operation, "open") == 0) {
    // The open of an RTSP URL is the connection and the RTSP exchange (OPTIONS, DESCRIBE, SETUP, PLAY):
    // a server that took the connection and never answered (before, FFmpeg's socket timeout said
    // "Invalid data found when processing input").
    char host[256] = "";
    int port = -1;
    av_url_split(nullptr, 0, nullptr, 0, host, sizeof(host), &port, nullptr, 0, shown_url_.c_str());
    fail("{}: no RTSP reply from {}:{} within {:g} s", shown_url_, host, port < 0 ? 554 : port,
         options_.timeout_ms / 1000.0);
  }
  if (timed_out_.load(std::memory_order_relaxed)) {
    fail("{}: {} timed out: no data within {} ms{}", shown_url_, operation, options_.timeout_ms,
         special_ ? " (does anything write to it?)" : "");
  }
  fail("{}: {} failed: {}", shown_url_, operation, av_error_text(error));
}

void VideoSource::open_special(AVFormatContext* context, const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading then returns at once, writer or not.
  special_fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (special_fd_ < 0) {
    const int error = errno;
    avformat_free_context(context);
    fail("{}: cannot open: {}", shown_url_, std::strerror(error));
  }
  constexpr int kBufferBytes = 64 * 1024;
  auto* buffer = static_cast<unsigned char*>(av_malloc(kBufferBytes));
  if (buffer != nullptr) {
    special_io_ =
        avio_alloc_context(buffer, kBufferBytes, 0, this, &VideoSource::read_special, nullptr, nullptr);
  }
  if (special_io_ == nullptr) {
    av_free(buffer);
    avformat_free_context(context);
    fail("{}: avio_alloc_context: out of memory", shown_url_);
  }
  special_io_->seekable = 0;
  context->pb = special_io_;
  context->flags |= AVFMT_FLAG_CUSTOM_IO;
}

void VideoSource::open() {
  AVDictionary* raw_options = nullptr;
  const AVInputFormat* input_format = nullptr;
  std::string location = url_;
  const std::string timeout_us = std::to_string(std::int64_t{std::max(options_.timeout_ms, 0)} * 1000);
  const bool image_folder = !live_ && std::filesystem::is_directory(url_);
  // A local path that is neither a regular file nor a folder: a FIFO or a device another process feeds.
  std::error_code status_error;
  const auto status = live_ ? std::filesystem::file_status() : std::filesystem::status(url_, status_error);
  special_ = !live_ && !status_error && std::filesystem::exists(status) &&
             !std::filesystem::is_regular_file(status) && !std::filesystem::is_directory(status);
  if (image_folder) {
    location = image_folder_pattern(url_);
    input_format = av_find_input_format("image2");
    av_dict_set(&raw_options, "pattern_type", "glob", 0);
    av_dict_set(&raw_options, "framerate", std::to_string(options_.image_fps).c_str(), 0);
  } else if (rtsp_) {
    av_dict_set(&raw_options, "rtsp_transport", options_.rtsp_transport.c_str(), 0);
    // FFmpeg >= 5: "timeout" is the RTSP socket I/O timeout (it was "stimeout" before). It is a backstop,
    // a second after our own deadline: when it fired first, FFmpeg reported a silent server as "Invalid
    // data found when processing input", and our deadline is the one that knows to say what happened.
    const std::string backstop_us = std::to_string((std::int64_t{options_.timeout_ms} + 1000) * 1000);
    if (options_.timeout_ms > 0) av_dict_set(&raw_options, "timeout", backstop_us.c_str(), 0);
  } else if (live_ && options_.timeout_ms > 0) {
    av_dict_set(&raw_options, "rw_timeout", timeout_us.c_str(), 0);
  } else if (!live_ && !std::filesystem::exists(url_)) {
    fail("{}: no such file or folder", shown_url_);
  }
  for (const auto& [key, value] : options_.format_options)
    av_dict_set(&raw_options, key.c_str(), value.c_str(), 0);
  std::unique_ptr<AVDictionary*, void (*)(AVDictionary**)> dictionary_guard(&raw_options, av_dict_free);

  AVFormatContext* context = avformat_alloc_context();
  if (context == nullptr) fail("{}: avformat_alloc_context: out of memory", shown_url_);
  context->interrupt_callback.callback = &VideoSource::interrupt_callback;
  context->interrupt_callback.opaque = this;
  if (special_) open_special(context, url_);
  arm_deadline();
  // On failure avformat_open_input frees the context (not a custom I/O context: close_input does).
  if (const int error = avformat_open_input(&context, location.c_str(), input_format, &raw_options);
      error < 0) {
    close_input();
    fail_io("open", error);
  }
  format_.reset(context);
  if (const int error = avformat_find_stream_info(format_.get(), nullptr); error < 0) {
    fail_io("reading stream information", error);
  }
  stream_index_ = av_find_best_stream(format_.get(), AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (stream_index_ < 0) fail("{}: no video stream ({})", shown_url_, av_error_text(stream_index_));
  for (unsigned i = 0; i < format_->nb_streams; ++i) {
    if (static_cast<int>(i) != stream_index_) format_->streams[i]->discard = AVDISCARD_ALL;
  }
  AVStream* stream = format_->streams[stream_index_];
  info_.codec_id = stream->codecpar->codec_id;
  info_.width = stream->codecpar->width;
  info_.height = stream->codecpar->height;
  info_.time_base = stream->time_base;
  info_.frame_rate = av_guess_frame_rate(format_.get(), stream, nullptr);
  if (info_.frame_rate.num <= 0 || info_.frame_rate.den <= 0) info_.frame_rate = AVRational{0, 1};
  if (info_.codec_id == AV_CODEC_ID_NONE) fail("{}: unknown video codec", shown_url_);
  const AVRational frame_duration = info_.frame_rate.num > 0 ? av_inv_q(info_.frame_rate) : AVRational{1, 25};
  default_duration_ = std::max<std::int64_t>(1, av_rescale_q(1, frame_duration, info_.time_base));
}

bool VideoSource::restart() {
  AVStream* stream = format_->streams[stream_index_];
  const std::int64_t start = stream->start_time != AV_NOPTS_VALUE ? stream->start_time : 0;
  arm_deadline();
  if (av_seek_frame(format_.get(), stream_index_, start, AVSEEK_FLAG_BACKWARD) < 0 &&
      av_seek_frame(format_.get(), -1, 0, AVSEEK_FLAG_BYTE) < 0) {
    // Not seekable (some raw streams, a FIFO): open the file again.
    close_input();
    open();
  }
  if (first_timestamp_ != AV_NOPTS_VALUE && end_timestamp_ != AV_NOPTS_VALUE) {
    loop_offset_ += end_timestamp_ - first_timestamp_;
  }
  first_timestamp_ = AV_NOPTS_VALUE;
  end_timestamp_ = AV_NOPTS_VALUE;
  next_stamp_ = 0;  // the loop offset moves the next loop's stamps past this one's
  ++loops_;
  return true;
}

void VideoSource::pace(const AVPacket& packet) {
  std::int64_t timestamp = packet.dts != AV_NOPTS_VALUE ? packet.dts : packet.pts;
  if (timestamp == AV_NOPTS_VALUE) timestamp = packets_ * default_duration_;
  const auto now = Clock::now();
  if (pace_timestamp_ == AV_NOPTS_VALUE) {
    pace_anchor_ = now;
    pace_timestamp_ = timestamp;
    return;
  }
  const auto due =
      pace_anchor_ + std::chrono::nanoseconds(av_rescale_q(timestamp - pace_timestamp_, info_.time_base,
                                                           AVRational{1, 1'000'000'000}));
  // A timestamp jump (or a consumer more than a second behind) re-anchors the clock instead of sleeping
  // through the gap or releasing a burst.
  if (due - now > std::chrono::seconds(1) || now - due > std::chrono::seconds(1)) {
    pace_anchor_ = now;
    pace_timestamp_ = timestamp;
    return;
  }
  if (due > now) std::this_thread::sleep_until(due);
}

void VideoSource::stamp(AVPacket& packet) {
  // Elementary streams (.h264, .h265, raw H.26x over tcp://) carry no timestamps: the frame rate numbers
  // the packets (the raw demuxers give every packet one frame's duration). Without a known rate (a live
  // untimed stream), the clock of arrival does, never going back.
  std::int64_t timestamp = next_stamp_;
  if (info_.frame_rate.num <= 0 && live_) {
    const auto now = Clock::now();
    if (packets_ == 0) stamp_anchor_ = now;
    const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - stamp_anchor_);
    timestamp =
        std::max(next_stamp_, av_rescale_q(elapsed.count(), AVRational{1, 1'000'000'000}, info_.time_base));
  }
  packet.pts = packet.dts = timestamp;
  if (packet.duration <= 0) packet.duration = default_duration_;
  next_stamp_ = timestamp + std::max<std::int64_t>(1, info_.frame_rate.num > 0 ? packet.duration : 1);
}

bool VideoSource::read(AVPacket& packet) {
  av_packet_unref(&packet);
  for (;;) {
    if (stopping()) return false;
    arm_deadline();
    const int error = av_read_frame(format_.get(), &packet);
    if (error == AVERROR(EAGAIN)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (error < 0) {
      if (stopping()) return false;
      if (error == AVERROR_EOF) {
        if (options_.loop && !live_ && packets_ > 0) {
          restart();
          continue;
        }
        return false;
      }
      fail_io("read", error);
    }
    if (packet.stream_index != stream_index_) {
      av_packet_unref(&packet);
      continue;
    }
    if (packet.size > kMaxPacketBytes) {
      const int size = packet.size;
      av_packet_unref(&packet);
      fail("{}: a packet of {} bytes is larger than the maximum ({} bytes)", shown_url_, size,
           kMaxPacketBytes);
    }
    if (packet.pts == AV_NOPTS_VALUE && packet.dts == AV_NOPTS_VALUE) stamp(packet);
    const std::int64_t timestamp = packet.pts != AV_NOPTS_VALUE ? packet.pts : packet.dts;
    if (timestamp != AV_NOPTS_VALUE) {
      const std::int64_t first = packet.dts != AV_NOPTS_VALUE ? std::min(packet.dts, timestamp) : timestamp;
      if (first_timestamp_ == AV_NOPTS_VALUE || first < first_timestamp_) first_timestamp_ = first;
      const std::int64_t end = timestamp + (packet.duration > 0 ? packet.duration : default_duration_);
      if (end_timestamp_ == AV_NOPTS_VALUE || end > end_timestamp_) end_timestamp_ = end;
    }
    if (loop_offset_ != 0) {
      if (packet.pts != AV_NOPTS_VALUE) packet.pts += loop_offset_;
      if (packet.dts != AV_NOPTS_VALUE) packet.dts += loop_offset_;
    }
    if (options_.pace && !live_) pace(packet);
    ++packets_;
    return true;
  }
}

}  // namespace vapipe::io
