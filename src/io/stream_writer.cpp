#include "io/stream_writer.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/url_redaction.hpp"

namespace vapipe::io {
namespace {

std::string lower_extension(const std::string& url) {
  std::string extension = std::filesystem::path(url).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension;
}

void free_parameters(AVCodecParameters* parameters) { avcodec_parameters_free(&parameters); }

ReconnectPolicy::Listener log_listener(std::string url) {
  return [url = std::move(url)](ConnectionState, ConnectionState to, const std::string& detail) {
    if (to == ConnectionState::kWaiting) {
      spdlog::warn("output {}: {}", url, detail);
    } else {
      spdlog::info("output {}: {}", url, detail);
    }
  };
}

}  // namespace

std::string StreamWriter::guess_format(const std::string& url, AVCodecID codec) {
  if (url.starts_with("rtsp://")) return "rtsp";
  if (url.starts_with("rtmp://") || url.starts_with("rtmps://")) return "flv";
  // sophon-pipeline (stream_pusher.h) sends the elementary stream itself over TCP and UDP, and
  // pipeline_client reads nothing else there.
  if (url.starts_with("tcp://") || url.starts_with("udp://"))
    return codec == AV_CODEC_ID_HEVC ? "hevc" : "h264";
  const std::string extension = lower_extension(url);
  if (extension == ".h264" || extension == ".264") return "h264";
  if (extension == ".h265" || extension == ".265" || extension == ".hevc") return "hevc";
  if (extension == ".mp4" || extension == ".mov") return "mp4";
  if (extension == ".mkv") return "matroska";
  if (extension == ".ts") return "mpegts";
  if (extension == ".flv") return "flv";
  const AVOutputFormat* format = av_guess_format(nullptr, url.c_str(), nullptr);
  return format != nullptr ? format->name : "";
}

bool StreamWriter::needs_global_header(const std::string& url, const std::string& format) {
  const std::string name = format.empty() ? guess_format(url) : format;
  const AVOutputFormat* output = av_guess_format(name.c_str(), nullptr, nullptr);
  return output != nullptr && (output->flags & AVFMT_GLOBALHEADER) != 0;
}

void StreamWriter::OutputDeleter::operator()(AVFormatContext* context) const {
  if (context->pb != nullptr && (context->oformat->flags & AVFMT_NOFILE) == 0) avio_closep(&context->pb);
  avformat_free_context(context);
}

StreamWriter::StreamWriter(std::string url, const AVCodecParameters& codec, AVRational time_base,
                           AVRational frame_rate, StreamWriterOptions options)
    : url_(std::move(url)),
      options_(std::move(options)),
      codec_(avcodec_parameters_alloc(), &free_parameters),
      time_base_(time_base),
      frame_rate_(frame_rate),
      policy_(options_.reconnect, log_listener(redact_credentials(url_))),
      scratch_(make_packet()) {
  format_name_ = options_.format.empty() ? guess_format(url_, codec.codec_id) : options_.format;
  if (format_name_.empty() || av_guess_format(format_name_.c_str(), nullptr, nullptr) == nullptr) {
    fail(
        "output {}: no FFmpeg muxer for this URL (format '{}'); use .mp4, .mkv, .ts, .flv, .h264, .h265, "
        "rtsp://, rtmp://, tcp:// or udp://",
        redact_credentials(url_), format_name_);
  }
  if (!codec_ || avcodec_parameters_copy(codec_.get(), &codec) < 0)
    fail("output {}: out of memory", redact_credentials(url_));
  if (time_base_.num <= 0 || time_base_.den <= 0) {
    fail("output {}: invalid packet time base {}/{}", redact_credentials(url_), time_base_.num,
         time_base_.den);
  }
  if (format_name_ == "h264" || format_name_ == "hevc") {
    const AVCodecID wanted = format_name_ == "h264" ? AV_CODEC_ID_H264 : AV_CODEC_ID_HEVC;
    if (codec.codec_id != wanted) {
      fail("output {}: the raw '{}' stream cannot carry {} video", redact_credentials(url_), format_name_,
           avcodec_get_name(codec.codec_id));
    }
    elementary_ = std::make_unique<AnnexBFilter>(codec, "output " + redact_credentials(url_));
    elementary_packet_ = make_packet();
  }
  const auto scheme_end = url_.find("://");
  network_ = scheme_end != std::string::npos && url_.compare(0, scheme_end, "file") != 0;
}

StreamWriter::~StreamWriter() { close(); }

int StreamWriter::interrupt_callback(void* opaque) {
  const auto* self = static_cast<const StreamWriter*>(opaque);
  return std::chrono::steady_clock::now() > self->deadline_ ? 1 : 0;
}

void StreamWriter::arm_deadline() {
  deadline_ = network_ ? std::chrono::steady_clock::now() + options_.io_timeout
                       : std::chrono::steady_clock::time_point::max();
}

bool StreamWriter::open() {
  arm_deadline();
  const auto failed = [this](const char* step, int error) {
    ++stats_.open_failures;
    output_.reset();
    const std::string reason = fmt::format("{} failed: {}", step, av_error_text(error));
    // The listener reports the first failure of an episode; later attempts stay quiet (no log flood).
    policy_.on_failure(std::chrono::steady_clock::now(), reason);
    return false;
  };

  AVFormatContext* raw = nullptr;
  if (const int error = avformat_alloc_output_context2(&raw, nullptr, format_name_.c_str(), url_.c_str());
      error < 0 || raw == nullptr) {
    return failed("creating the muxer", error < 0 ? error : AVERROR(ENOMEM));
  }
  output_.reset(raw);
  output_->interrupt_callback.callback = &StreamWriter::interrupt_callback;
  output_->interrupt_callback.opaque = this;
  // Every packet is flushed at once. Live pushes: MPEG-TS over TCP would otherwise sit in a 32 KiB buffer.
  // Files: a write that fails (a full disk, /dev/full) fails on the packet it loses, which is then counted
  // as dropped; buffered, the failure surfaced up to 32 KiB later and the packets in the buffer, lost
  // with it, had been counted as written (45 of 568 on /dev/full, issue 17).
  output_->flush_packets = 1;

  AVStream* stream = avformat_new_stream(output_.get(), nullptr);
  if (stream == nullptr) return failed("adding the stream", AVERROR(ENOMEM));
  if (const int error = avcodec_parameters_copy(stream->codecpar, codec_.get()); error < 0) {
    return failed("copying codec parameters", error);
  }
  stream->codecpar->codec_tag = 0;  // the source container's tag means nothing to another container
  stream->time_base = time_base_;   // a hint; the muxer picks its own in avformat_write_header
  if (frame_rate_.num > 0 && frame_rate_.den > 0) {
    stream->avg_frame_rate = frame_rate_;
    stream->r_frame_rate = frame_rate_;
  }

  AVDictionary* protocol_options = nullptr;
  AVDictionary* muxer_options = nullptr;
  if (network_) {
    const std::string timeout_us = std::to_string(options_.io_timeout.count() * 1000);
    av_dict_set(&protocol_options, "rw_timeout", timeout_us.c_str(), 0);
    if (format_name_ == "rtsp") {
      av_dict_set(&muxer_options, "rtsp_transport", options_.rtsp_tcp ? "tcp" : "udp", 0);
      av_dict_set(&muxer_options, "timeout", timeout_us.c_str(), 0);
    } else if (url_.starts_with("tcp://")) {
      av_dict_set(&protocol_options, "timeout", timeout_us.c_str(), 0);
    }
  }
  int error = 0;
  if ((output_->oformat->flags & AVFMT_NOFILE) == 0) {
    error = avio_open2(&output_->pb, url_.c_str(), AVIO_FLAG_WRITE, &output_->interrupt_callback,
                       &protocol_options);
  }
  av_dict_free(&protocol_options);
  if (error < 0) {
    av_dict_free(&muxer_options);
    return failed("opening", error);
  }
  error = avformat_write_header(output_.get(), &muxer_options);
  av_dict_free(&muxer_options);
  if (error < 0) return failed("writing the header", error);

  ++stats_.opens;
  policy_.on_connected(std::chrono::steady_clock::now());
  last_dts_ = AV_NOPTS_VALUE;
  return true;
}

void StreamWriter::drop_output(bool write_trailer) {
  if (!output_) return;
  // Bounded like every network operation: a dead server cannot hold the caller here either.
  arm_deadline();
  if (write_trailer) av_write_trailer(output_.get());
  output_.reset();
}

bool StreamWriter::write(const AVPacket& packet) {
  if (closed_) {
    ++stats_.packets_dropped;
    return false;
  }
  if (!output_) {
    // A new session must start at a key frame, and only once the back-off has elapsed.
    if ((packet.flags & AV_PKT_FLAG_KEY) == 0 || !policy_.should_attempt(std::chrono::steady_clock::now()) ||
        !open()) {
      ++stats_.packets_dropped;
      return false;
    }
  }

  AVPacket& out = *scratch_;
  const AVPacket* source = &packet;
  if (elementary_) {
    const auto annex_b = elementary_->filter(packet);
    elementary_bytes_.clear();
    to_elementary_stream(elementary_->h265() ? VideoCodec::kH265 : VideoCodec::kH264, annex_b,
                         elementary_bytes_);
    av_packet_unref(elementary_packet_.get());
    if (annex_b.empty() ||
        av_new_packet(elementary_packet_.get(), static_cast<int>(elementary_bytes_.size())) < 0 ||
        av_packet_copy_props(elementary_packet_.get(), &packet) < 0) {
      ++stats_.packets_dropped;
      return false;
    }
    std::copy(elementary_bytes_.begin(), elementary_bytes_.end(), elementary_packet_->data);
    source = elementary_packet_.get();
  }
  if (const int error = av_packet_ref(&out, source); error < 0) {
    ++stats_.packets_dropped;
    return false;
  }
  // Raw elementary streams have no timestamps: number the packets by the frame rate.
  std::int64_t duration = packet.duration;
  if (duration <= 0) {
    duration = (frame_rate_.num > 0 && frame_rate_.den > 0)
                   ? std::max<std::int64_t>(1, av_rescale_q(1, av_inv_q(frame_rate_), time_base_))
                   : 1;
  }
  if (out.pts == AV_NOPTS_VALUE && out.dts == AV_NOPTS_VALUE) {
    out.pts = out.dts = next_synthetic_ts_;
  } else if (out.dts == AV_NOPTS_VALUE) {
    out.dts = out.pts;
  } else if (out.pts == AV_NOPTS_VALUE) {
    out.pts = out.dts;
  }
  next_synthetic_ts_ = out.dts + duration;
  if (out.duration <= 0) out.duration = duration;

  AVStream* stream = output_->streams[0];
  av_packet_rescale_ts(&out, time_base_, stream->time_base);
  out.stream_index = 0;
  out.pos = -1;
  // Each session starts at 0; a source that loops or restarts (timestamps going back) is moved forward so
  // the muxer always sees increasing dts.
  if (last_dts_ == AV_NOPTS_VALUE) ts_offset_ = -out.dts;
  out.dts += ts_offset_;
  out.pts += ts_offset_;
  if (last_dts_ != AV_NOPTS_VALUE && out.dts <= last_dts_) {
    const std::int64_t shift = last_dts_ + 1 - out.dts;
    ts_offset_ += shift;
    out.dts += shift;
    out.pts += shift;
  }
  last_dts_ = out.dts;

  arm_deadline();
  const int error = av_write_frame(output_.get(), &out);
  av_packet_unref(&out);
  if (error < 0) {
    ++stats_.write_failures;
    ++stats_.packets_dropped;
    policy_.on_failure(std::chrono::steady_clock::now(),
                       fmt::format("write failed: {}", av_error_text(error)));
    drop_output(true);
    return false;
  }
  ++stats_.packets_written;
  return true;
}

void StreamWriter::close() {
  closed_ = true;
  drop_output(true);
}

NalFraming framing_of(const AVCodecParameters& codec) {
  const std::uint8_t* extradata = codec.extradata;
  const int size = codec.extradata_size;
  if (extradata == nullptr || size < 1 || extradata[0] != 1) return NalFraming::annexb();
  if (codec.codec_id == AV_CODEC_ID_H264 && size >= 7)
    return NalFraming::length_prefixed((extradata[4] & 3) + 1);
  if (codec.codec_id == AV_CODEC_ID_HEVC && size >= 23) {
    return NalFraming::length_prefixed((extradata[21] & 3) + 1);
  }
  return NalFraming::annexb();
}

VideoCodec sei_codec_of(const AVCodecParameters& codec) {
  if (codec.codec_id == AV_CODEC_ID_H264) return VideoCodec::kH264;
  if (codec.codec_id == AV_CODEC_ID_HEVC) return VideoCodec::kH265;
  fail("SEI metadata needs H.264 or H.265, not {}", avcodec_get_name(codec.codec_id));
}

}  // namespace vapipe::io
