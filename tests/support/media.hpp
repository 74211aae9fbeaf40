#pragma once
// Reading a video file back in tests: every packet of its video stream (libavformat), and the detections
// each packet carries in our SEI.
#include <filesystem>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/ffmpeg_handles.hpp"
#include "io/sei_codec.hpp"
#include "io/stream_writer.hpp"
#include "support/process.hpp"

namespace vapipe::test {

namespace fs = std::filesystem;
using io::FormatContextPtr;
using io::PacketPtr;

// Demuxes a file with libavformat; every packet of its video stream.
struct Demuxed {
  AVCodecParameters* codec = nullptr;  // owned by `format`
  AVRational time_base{1, 1};
  AVRational frame_rate{0, 1};
  std::vector<PacketPtr> packets;
  FormatContextPtr format;
};

inline Demuxed demux(const fs::path& file) {
  Demuxed result;
  AVFormatContext* raw = nullptr;
  if (avformat_open_input(&raw, file.c_str(), nullptr, nullptr) < 0) {
    ADD_FAILURE() << "cannot open " << file;
    return result;
  }
  result.format.reset(raw);
  EXPECT_GE(avformat_find_stream_info(raw, nullptr), 0);
  const int index = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (index < 0) {
    ADD_FAILURE() << "no video in " << file;
    return result;
  }
  AVStream* stream = raw->streams[index];
  result.codec = stream->codecpar;
  result.time_base = stream->time_base;
  result.frame_rate = stream->avg_frame_rate;
  while (true) {
    PacketPtr packet = io::make_packet();
    if (av_read_frame(raw, packet.get()) < 0) break;
    if (packet->stream_index == index) result.packets.push_back(std::move(packet));
  }
  return result;
}

// Every packet's metadata, in file order; frames without our SEI give an empty optional.
inline std::vector<std::optional<std::vector<io::MetadataBox>>> read_back(const fs::path& file) {
  const Demuxed demuxed = demux(file);
  std::vector<std::optional<std::vector<io::MetadataBox>>> result;
  if (demuxed.codec == nullptr) return result;
  const io::VideoCodec codec = io::sei_codec_of(*demuxed.codec);
  const io::NalFraming framing = io::framing_of(*demuxed.codec);
  for (const auto& packet : demuxed.packets) {
    io::SeiReadResult read =
        io::read_metadata(codec, framing, std::span(packet->data, static_cast<std::size_t>(packet->size)));
    if (read.ok()) {
      result.emplace_back(std::move(read.boxes));
    } else {
      result.emplace_back();
    }
  }
  return result;
}

// Presentation times (s) of every frame ffprobe decodes from a file's first video stream.
inline std::vector<double> ffprobe_frame_times(const fs::path& file) {
  const std::string text = run_capture(
      "timeout 60 ffprobe -v error -select_streams v:0 -show_entries frame=pts_time -of csv=p=0 '" +
      file.string() + "'");
  std::vector<double> times;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) times.push_back(std::stod(line));
  }
  return times;
}

}  // namespace vapipe::test
