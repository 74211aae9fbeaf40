#pragma once
// What sophon-pipeline's viewer, pipeline_client (github:sophon-ai-algo/pipeline_client), makes of a
// stream: a line-by-line port of the two rules of its utility/stream_decode.cpp that decide whether it shows
// anything, applied to the packets its FFmpeg demuxer hands out (av_read_frame on the received stream):
//
// - StreamDecoder::on_read_frame drops every packet until is_key_frame() says yes. For H.264 that is when
//   the packet's first NAL (data[4]) is an SPS (7), or else when the NAL after the first 00 00 00 01 found
//   from byte 4 on is an SPS or an IDR slice (5). For other codecs every packet is a key frame.
// - It reads an SEI only when the packet begins with it: H.264 `00 00 00 01` then type 6; H.265 `00 00 00
//   01` or `00 00 01` then type 39 (prefix SEI). h26xsei_packet_read then takes the first
//   user_data_unregistered message with sophon's UUID: ours. StreamController::on_decoded_sei_info decodes
//   its base64 and hands it to NetOutputDatum::fromByteBuffer (utility/face_info_serialize.h), ported below:
//   the boxes the client draws.
#include <bit>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "io/sei_codec.hpp"
#include "support/media.hpp"

namespace vapipe::test {

// StreamDecoder::is_key_frame. The client reads past the packet's end on short packets; this port stops
// at the end (such a packet is no key frame).
inline bool client_is_key_frame(io::VideoCodec codec, std::span<const std::uint8_t> data) {
  if (codec != io::VideoCodec::kH264) return true;
  if (data.size() < 5) return false;
  int nal_type = data[4] & 0x1f;
  if (nal_type != 7) {
    for (std::size_t p = 4; p + 4 < data.size(); ++p) {
      if (data[p] == 0 && data[p + 1] == 0 && data[p + 2] == 0 && data[p + 3] == 1) {
        nal_type = data[p + 4] & 0x1f;
        break;
      }
    }
  }
  return nal_type == 7 || nal_type == 5;
}

// NetOutputDatum::fromByteBuffer for type Box (pipeline_client at 9e6fcc8): int32 type, uint32 count (ByteBuffer
// pops integers through ntohl, floats in host order: little-endian), then per box x1 y1 x2 y2 score class_id,
// and track_id only when the bytes after the count are exactly sizeof(NetOutputObject) = 28 per box. With
// any other length it reads 24 bytes a box, leaving track_id 0: one byte after the box list shifts every box
// after the first. nullopt for another datum type; where the client would read past the end (its ByteBuffer
// then fails the pop and leaves the field as it was), this port stops.
inline std::optional<std::vector<io::MetadataBox>> client_from_byte_buffer(
    std::span<const std::uint8_t> bytes) {
  std::size_t at = 0;
  const auto pop_be32 = [&](std::uint32_t& value) {
    if (bytes.size() - at < 4) return false;
    value = (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
            (std::uint32_t{bytes[at + 2]} << 8) | bytes[at + 3];
    at += 4;
    return true;
  };
  const auto pop_float = [&](float& value) {
    if (bytes.size() - at < 4) return false;
    value = std::bit_cast<float>((std::uint32_t{bytes[at + 3]} << 24) | (std::uint32_t{bytes[at + 2]} << 16) |
                                 (std::uint32_t{bytes[at + 1]} << 8) | bytes[at]);
    at += 4;
    return true;
  };
  std::uint32_t type = 0;
  std::uint32_t count = 0;
  if (!pop_be32(type) || type != 0 || !pop_be32(count)) return std::nullopt;
  const bool has_track = std::size_t{count} * 28 == bytes.size() - at;
  std::vector<io::MetadataBox> boxes;
  for (std::uint32_t i = 0; i < count; ++i) {
    io::MetadataBox box;
    box.track_id = 0;  // NetOutputObject's default
    std::uint32_t class_id = 0;
    std::uint32_t track_id = 0;
    if (!pop_float(box.x1) || !pop_float(box.y1) || !pop_float(box.x2) || !pop_float(box.y2) ||
        !pop_float(box.score) || !pop_be32(class_id))
      break;
    box.class_id = static_cast<std::int32_t>(class_id);
    if (has_track && pop_be32(track_id)) box.track_id = static_cast<std::int32_t>(track_id);
    boxes.push_back(box);
  }
  return boxes;
}

// The detections the client reads from a packet: nullopt when it does not look at it (no SEI first) or
// finds none of ours there.
inline std::optional<std::vector<io::MetadataBox>> client_read_sei(io::VideoCodec codec,
                                                                   std::span<const std::uint8_t> data) {
  bool first_is_sei = false;
  std::size_t header = 0;  // where the first NAL's header starts
  if (codec == io::VideoCodec::kH264) {
    first_is_sei = data.size() > 4 && data[0] == 0 && data[1] == 0 && data[2] == 0 && data[3] == 1 &&
                   (data[4] & 0x1f) == 6;
    header = 4;
  } else if (data.size() > 4 && data[0] == 0 && data[1] == 0 && data[2] == 0 && data[3] == 1) {
    first_is_sei = ((data[4] & 0x7e) >> 1) == 39;
    header = 4;
  } else if (data.size() > 3 && data[0] == 0 && data[1] == 0 && data[2] == 1) {
    first_is_sei = ((data[3] & 0x7e) >> 1) == 39;
    header = 3;
  }
  if (!first_is_sei) return std::nullopt;
  // The first NAL alone: up to the next start code.
  std::size_t end = data.size();
  for (std::size_t i = header + 1; i + 3 <= data.size(); ++i) {
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1) {
      end = i;
      break;
    }
  }
  std::vector<std::uint8_t> text;
  std::vector<std::uint8_t> bytes;
  if (io::read_user_data(codec, io::NalFraming::annexb(), data.first(end), text) != io::SeiError::kNone ||
      !io::base64_decode({reinterpret_cast<const char*>(text.data()), text.size()}, bytes))
    return std::nullopt;
  return client_from_byte_buffer(bytes);
}

struct ClientView {
  std::size_t packets = 0;               // handed out by the demuxer
  std::optional<std::size_t> first_key;  // index of the packet that ended the wait for a key frame
  std::size_t sei_first_4_byte = 0;      // packets (from first_key on) that begin 00 00 00 01 + our SEI
  std::vector<std::optional<std::vector<io::MetadataBox>>> boxes;  // from first_key on, per packet
  std::vector<bool> demuxer_key;                // AV_PKT_FLAG_KEY of each packet (from first_key on)
  std::vector<std::vector<std::uint8_t>> data;  // the packets (from first_key on)
};

// The stream in `file` (received with `ffmpeg -c copy -f h264|hevc`) as pipeline_client sees it.
inline ClientView pipeline_client_view(const fs::path& file) {
  ClientView view;
  const Demuxed demuxed = demux(file);
  if (demuxed.codec == nullptr) return view;
  const io::VideoCodec codec = io::sei_codec_of(*demuxed.codec);
  view.packets = demuxed.packets.size();
  for (std::size_t i = 0; i < demuxed.packets.size(); ++i) {
    const auto& packet = demuxed.packets[i];
    const std::span<const std::uint8_t> data(packet->data, static_cast<std::size_t>(packet->size));
    if (!view.first_key) {
      if (!client_is_key_frame(codec, data)) continue;
      view.first_key = i;
    }
    auto boxes = client_read_sei(codec, data);
    // Sent with a 4-byte start code: FFmpeg's HEVC parser leaves its zero_byte at the end of the packet
    // before (its H.264 parser keeps it), which the client's H.265 rule accepts as well.
    const bool zero_byte_before = i > 0 && demuxed.packets[i - 1]->size > 0 &&
                                  demuxed.packets[i - 1]->data[demuxed.packets[i - 1]->size - 1] == 0;
    if (boxes && data.size() > 4 && (data[2] == 0 ? data[3] == 1 : data[2] == 1 && zero_byte_before))
      ++view.sei_first_4_byte;
    view.boxes.push_back(std::move(boxes));
    view.demuxer_key.push_back((packet->flags & AV_PKT_FLAG_KEY) != 0);
    view.data.emplace_back(data.begin(), data.end());
  }
  return view;
}

}  // namespace vapipe::test
