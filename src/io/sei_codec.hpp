#pragma once
// Detections carried in the video stream itself: an SEI NAL unit (user_data_unregistered, payload type 5)
// per frame, in the byte layout of sophon-pipeline (modules/bmutility/stream_sei.cpp and
// NetOutputDatum::toByteBuffer in bmutility_types.h), so its clients read our streams. The layout, field
// by field, is in docs/metadata.md.
//
// Writing is meant for the per-frame path: SeiInserter reuses its buffers. Reading is robust to any input
// (a network client parses what arrives): sizes are bounded, nothing is read out of bounds, and a bad
// buffer gives an error result, never an exception or a crash.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace vapipe::io {

enum class VideoCodec : std::uint8_t { kH264, kH265 };

// How NAL units are delimited in a packet: Annex-B start codes (raw .h264/.h265, MPEG-TS, RTSP sources)
// or big-endian length prefixes (AVCC/HVCC: MP4, MKV, FLV), whose size comes from the extradata.
struct NalFraming {
  bool annex_b = true;
  int length_size = 4;  // bytes per length prefix when !annex_b: 1, 2 or 4
  static NalFraming annexb() { return {true, 4}; }
  static NalFraming length_prefixed(int length_size = 4) { return {false, length_size}; }
};

// sophon-pipeline's UUID (stream_sei.cpp, "self UUID"), the first 16 bytes of the SEI payload.
inline constexpr std::array<std::uint8_t, 16> kMetadataUuid = {
    0x54, 0x80, 0x83, 0x97, 0xf0, 0x23, 0x47, 0x4b, 0xb7, 0xf7, 0x4f, 0x32, 0xb5, 0x4e, 0x06, 0xac};
// vapipe's own UUID (a random version 4 UUID) for its extension message (keypoints, identities), which
// follows sophon's message in the same SEI NAL unit: sophon's readers take the first message with their
// UUID and never see it (docs/metadata.md).
inline constexpr std::array<std::uint8_t, 16> kExtensionUuid = {
    0x0d, 0xf5, 0x4b, 0x78, 0xc9, 0xde, 0x4d, 0x41, 0xa2, 0x04, 0xee, 0x17, 0xcc, 0x6b, 0x7a, 0x2b};

// Who a face is (models::Identity's twin): the gallery name, empty for an unknown face, and the cosine
// similarity to the best gallery entry.
struct MetadataIdentity {
  std::string name;
  float similarity = 0;
  bool operator==(const MetadataIdentity&) const = default;
};

// One box as sophon-pipeline's NetOutputObject serializes it. Own type rather than models::Detection:
// io and models are siblings in the module graph (the pipeline converts).
struct MetadataBox {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // source image pixels
  float score = 0;
  std::int32_t class_id = 0;
  std::int32_t track_id = -1;  // -1: not tracked
  // vapipe extension (docs/metadata.md), carried in vapipe's own SEI message where sophon's readers never
  // look: landmarks / joints (x, y, score) in source pixels, and the identity of a recognized face.
  std::vector<std::array<float, 3>> keypoints{};
  std::optional<MetadataIdentity> identity{};
  bool operator==(const MetadataBox&) const = default;
};

// Upper bound on boxes per frame, on both sides: the writer refuses more, the reader rejects a count above
// it before allocating.
inline constexpr std::size_t kMaxMetadataBoxes = 4096;
// Upper bound on keypoints per box (COCO-WholeBody has 133; ours: 5 face landmarks, 17 joints).
inline constexpr std::size_t kMaxKeypointsPerBox = 256;
// The extension message's blocks: keypoints ("VPKP") then identities ("VPID"), each tag followed by a
// big-endian version (1).
inline constexpr std::array<std::uint8_t, 4> kKeypointsTag = {'V', 'P', 'K', 'P'};
inline constexpr std::array<std::uint8_t, 4> kIdentityTag = {'V', 'P', 'I', 'D'};
// Longest name written, in bytes (a longer one is cut at a UTF-8 character boundary): the length byte's 255
// marks an unknown face.
inline constexpr std::size_t kMaxIdentityNameBytes = 254;

enum class SeiError : std::uint8_t {
  kNone,
  kNoMetadata,    // no SEI with our UUID in the buffer (frames without one are normal)
  kMalformedNal,  // NAL framing broken: truncated length prefix, size beyond the buffer
  kMalformedSei,  // SEI message sizes run past the NAL
  kBadPayload,    // our UUID, but the base64 text or the box list does not parse
};
const char* to_string(SeiError error);

struct SeiReadResult {
  SeiError error = SeiError::kNoMetadata;
  std::vector<MetadataBox> boxes;
  bool ok() const { return error == SeiError::kNone; }
};

// --- payload (the part after the UUID) ---

// NetOutputDatum::toByteBuffer for type Box: int32 type 0, uint32 count, then per box x1 y1 x2 y2 score as
// little-endian IEEE floats and class_id track_id as big-endian int32, nothing else (pipeline_client reads
// the track ids only when the payload is exactly that long). Appends to `out`.
void serialize_boxes(std::span<const MetadataBox> boxes, std::vector<std::uint8_t>& out);
// The inverse; false (and `boxes` unspecified) when the bytes are not exactly a box list.
bool parse_boxes(std::span<const std::uint8_t> bytes, std::vector<MetadataBox>& boxes);

// The extension message's payload (after kExtensionUuid, binary, no base64), for the same boxes in the same
// order (at most kMaxMetadataBoxes): when any box has keypoints, the tag "VPKP", uint32 version 1, then per
// box uint32 n and n x (x, y, score) floats; then, when any box has an identity, the tag "VPID", uint32
// version 1, then per box a uint8 n: 0 no identity; 1..254 a known face, its n-byte UTF-8 name and its
// similarity (little-endian float); 255 an unknown face and its similarity. Integers big-endian, floats
// little-endian, as in the box list. Appends nothing when no box has either.
void serialize_extensions(std::span<const MetadataBox> boxes, std::vector<std::uint8_t>& out);
// Sets the keypoints and identities of `boxes` (as parse_boxes left them) from an extension payload; false
// (and `boxes` unspecified) unless it is one or both blocks, whole, in that order, with nothing after them,
// and every name is UTF-8.
bool parse_extensions(std::span<const std::uint8_t> bytes, std::vector<MetadataBox>& boxes);

// bm::base64_enc: standard alphabet, '=' padding, "\r\n" after every 76 characters. Appends to `out`.
void base64_encode(std::span<const std::uint8_t> bytes, std::string& out);
// Accepts what base64_encode writes (line breaks anywhere); false on any other character or bad padding.
bool base64_decode(std::string_view text, std::vector<std::uint8_t>& out);

// --- NAL units ---

// Appends a complete SEI NAL unit carrying `user_data` after the UUID (H.264: nal_unit_type 6; H.265:
// prefix SEI, type 39), framed as `framing` says (start code 00 00 00 01, or a length prefix), with
// emulation prevention bytes inserted where the RBSP holds 00 00 0x (x <= 3). A non-empty `extension` goes
// into a second message of the same NAL unit, after kExtensionUuid.
void append_sei_nal(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> user_data,
                    std::span<const std::uint8_t> extension, std::vector<std::uint8_t>& out);
inline void append_sei_nal(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> user_data,
                           std::vector<std::uint8_t>& out) {
  append_sei_nal(codec, framing, user_data, {}, out);
}

// Appends `access_unit` with `sei_nal` (framed like the access unit) inserted at the front of the access
// unit, after an access unit delimiter if one leads: before every VCL NAL as H.264 7.4.1.2.3 and H.265
// 7.4.2.4.4 require, and first in the packet, which is where sophon-pipeline's reader looks
// (stream_decode.cpp checks that the packet starts with an SEI). A broken access unit is copied unchanged
// after the SEI.
void insert_sei(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> access_unit,
                std::span<const std::uint8_t> sei_nal, std::vector<std::uint8_t>& out);

// Appends `access_unit` (Annex-B) as sophon-pipeline's tcp:// and udp:// outputs send it and
// pipeline_client reads it (utility/stream_decode.cpp): the SEI NAL unit carrying our metadata first (the
// client reads an SEI only as the packet's first NAL unit, after a 4-byte start code), access unit
// delimiters dropped (they would have to come first), the other NAL units in their order, every one after a
// 4-byte start code (the client recognises a key frame by the NAL unit after the first 4-byte start code
// past the first NAL's: the SPS). An access unit without our SEI keeps its order, less the delimiters.
void to_elementary_stream(VideoCodec codec, std::span<const std::uint8_t> access_unit,
                          std::vector<std::uint8_t>& out);

// Finds the first SEI message with our UUID and copies its user data (after the UUID, emulation
// prevention removed) into `user_data`. kNone when found.
SeiError read_user_data(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> packet,
                        std::vector<std::uint8_t>& user_data);

// Finds our metadata SEI in a packet or access unit (every SEI NAL and every SEI message in it is tried;
// other SEI, such as x264's version string, are skipped), with the extension message of the same NAL unit
// when it has one.
SeiReadResult read_metadata(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> packet);

// Per-channel writer for the passthrough output: reuses its buffers, so a stream of similar frames does
// not allocate after the first ones. Not thread-safe (one per channel).
class SeiInserter {
 public:
  SeiInserter(VideoCodec codec, NalFraming framing) : codec_(codec), framing_(framing) {}

  // `access_unit` with the metadata SEI for `boxes` inserted; valid until the next call. More than
  // kMaxMetadataBoxes boxes: the first kMaxMetadataBoxes are written.
  std::span<const std::uint8_t> insert(std::span<const std::uint8_t> access_unit,
                                       std::span<const MetadataBox> boxes);
  // The SEI NAL unit alone (framed), valid until the next call.
  std::span<const std::uint8_t> make_nal(std::span<const MetadataBox> boxes);

  VideoCodec codec() const { return codec_; }
  NalFraming framing() const { return framing_; }

 private:
  VideoCodec codec_;
  NalFraming framing_;
  std::vector<std::uint8_t> bytes_;
  std::vector<std::uint8_t> extension_;
  std::string text_;
  std::vector<std::uint8_t> nal_;
  std::vector<std::uint8_t> out_;
};

}  // namespace vapipe::io
