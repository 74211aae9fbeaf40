#include "io/sei_codec.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <optional>

namespace vapipe::io {
namespace {

constexpr std::uint8_t kH264SeiType = 6;
constexpr std::uint8_t kH264AudType = 9;
constexpr std::uint8_t kH265PrefixSeiType = 39;
constexpr std::uint8_t kH265SuffixSeiType = 40;
constexpr std::uint8_t kH265AudType = 35;
constexpr std::uint8_t kUserDataUnregistered = 5;
constexpr std::size_t kBoxBytes = 7 * 4;   // x1 y1 x2 y2 score class_id track_id
constexpr std::int32_t kDatumTypeBox = 0;  // NetOutputDatum::Box
constexpr std::uint32_t kKeypointsVersion = 1;
constexpr std::uint32_t kIdentityVersion = 1;
constexpr std::uint8_t kUnknownIdentity = 255;  // the identity extension's length byte of an unknown face
static_assert(kMaxIdentityNameBytes < kUnknownIdentity);

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void put_be32(std::uint32_t value, std::vector<std::uint8_t>& out) {
  out.push_back(static_cast<std::uint8_t>(value >> 24));
  out.push_back(static_cast<std::uint8_t>(value >> 16));
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}
// sophon's ByteBuffer pushes floats in host order without htonl; its boxes come from ARM and x86 hosts,
// both little-endian, so little-endian is the wire format.
void put_le_float(float value, std::vector<std::uint8_t>& out) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  out.push_back(static_cast<std::uint8_t>(bits));
  out.push_back(static_cast<std::uint8_t>(bits >> 8));
  out.push_back(static_cast<std::uint8_t>(bits >> 16));
  out.push_back(static_cast<std::uint8_t>(bits >> 24));
}
std::uint32_t get_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
float get_le_float(const std::uint8_t* p) {
  const std::uint32_t bits =
      (std::uint32_t{p[3]} << 24) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[1]} << 8) | p[0];
  return std::bit_cast<float>(bits);
}

// Bytes of the UTF-8 character at the start of `text` (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF), 0 when it does not start with a whole one.
std::size_t utf8_char_size(std::span<const std::uint8_t> text) {
  if (text.empty()) return 0;
  const std::uint8_t lead = text[0];
  if (lead < 0x80) return 1;
  std::size_t size = 0;
  std::uint8_t low = 0x80, high = 0xbf;  // the range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    size = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    size = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    size = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    return 0;
  }
  if (text.size() < size || text[1] < low || text[1] > high) return 0;
  for (std::size_t i = 2; i < size; ++i)
    if (text[i] < 0x80 || text[i] > 0xbf) return 0;
  return size;
}

// A known face's name in the identity extension: its length byte, then at most kMaxIdentityNameBytes bytes of
// it, cut before a character that would not fit; a byte that is not UTF-8 (a gallery file name may be
// anything) is written as '?', so a reader can rely on UTF-8.
void put_name(std::string_view name, std::vector<std::uint8_t>& out) {
  const std::size_t length_at = out.size();
  out.push_back(0);
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(name.data()), name.size());
  std::size_t written = 0;
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t size = utf8_char_size(bytes.subspan(i));
    if (written + std::max<std::size_t>(size, 1) > kMaxIdentityNameBytes) break;
    if (size == 0) {
      out.push_back('?');
      ++i;
      ++written;
    } else {
      out.insert(out.end(), bytes.begin() + static_cast<std::ptrdiff_t>(i),
                 bytes.begin() + static_cast<std::ptrdiff_t>(i + size));
      i += size;
      written += size;
    }
  }
  out[length_at] = static_cast<std::uint8_t>(written);
}

int nal_type(VideoCodec codec, std::uint8_t first_header_byte) {
  return codec == VideoCodec::kH264 ? (first_header_byte & 0x1f) : ((first_header_byte >> 1) & 0x3f);
}
std::size_t header_size(VideoCodec codec) { return codec == VideoCodec::kH264 ? 1 : 2; }

// One NAL unit inside a packet: [unit_begin, begin) is its start code or length prefix, [begin, end) the
// NAL unit itself (header included).
struct NalUnit {
  std::size_t unit_begin = 0;
  std::size_t begin = 0;
  std::size_t end = 0;
};

// Walks the NAL units of a packet without copying. next() returns nullopt at the end or on broken
// framing (then malformed() is true).
class NalWalker {
 public:
  NalWalker(std::span<const std::uint8_t> data, NalFraming framing) : data_(data), framing_(framing) {
    if (framing_.annex_b) pos_ = find_start_code(0);
  }

  std::optional<NalUnit> next() { return framing_.annex_b ? next_annex_b() : next_length_prefixed(); }
  bool malformed() const { return malformed_; }

 private:
  // Index of the first 0 of the next 00 00 01 at or after `from`, or size().
  std::size_t find_start_code(std::size_t from) const {
    for (std::size_t i = from; i + 3 <= data_.size(); ++i) {
      if (data_[i + 2] > 1) {
        i += 2;  // no start code can begin at i, i+1 or i+2
      } else if (data_[i] == 0 && data_[i + 1] == 0 && data_[i + 2] == 1) {
        return i;
      }
    }
    return data_.size();
  }

  std::optional<NalUnit> next_annex_b() {
    if (pos_ >= data_.size()) return std::nullopt;
    NalUnit unit;
    unit.unit_begin = (pos_ > 0 && data_[pos_ - 1] == 0) ? pos_ - 1 : pos_;
    unit.begin = pos_ + 3;
    const std::size_t next = find_start_code(unit.begin);
    std::size_t end = next;
    while (end > unit.begin && data_[end - 1] == 0) --end;  // trailing_zero_8bits, 4-byte start codes
    unit.end = end;
    pos_ = next;
    return unit;
  }

  std::optional<NalUnit> next_length_prefixed() {
    const auto length_size = static_cast<std::size_t>(framing_.length_size);
    if (pos_ >= data_.size()) return std::nullopt;
    if (length_size < 1 || length_size > 4 || data_.size() - pos_ < length_size) {
      malformed_ = true;
      return std::nullopt;
    }
    std::size_t length = 0;
    for (std::size_t i = 0; i < length_size; ++i) length = (length << 8) | data_[pos_ + i];
    if (length > data_.size() - pos_ - length_size) {
      malformed_ = true;
      return std::nullopt;
    }
    NalUnit unit{pos_, pos_ + length_size, pos_ + length_size + length};
    pos_ = unit.end;
    return unit;
  }

  std::span<const std::uint8_t> data_;
  NalFraming framing_;
  std::size_t pos_ = 0;
  bool malformed_ = false;
};

void append_escaped(std::span<const std::uint8_t> rbsp, int& zeros, std::vector<std::uint8_t>& out) {
  for (const std::uint8_t byte : rbsp) {
    if (zeros >= 2 && byte <= 3) {
      out.push_back(3);  // emulation_prevention_three_byte (H.264 7.4.1, H.265 7.4.2)
      zeros = 0;
    }
    out.push_back(byte);
    zeros = byte == 0 ? zeros + 1 : 0;
  }
}

// Reads one ff-coded value (SEI payload type or size, H.264 7.3.2.3.1) from the RBSP.
bool read_ff_coded(std::span<const std::uint8_t> rbsp, std::size_t& pos, std::size_t& value) {
  value = 0;
  while (true) {
    if (pos >= rbsp.size()) return false;
    const std::uint8_t byte = rbsp[pos++];
    value += byte;
    if (byte != 0xff) return true;
  }
}

// Looks for our user_data_unregistered message in one SEI NAL unit (header removed, still escaped); on
// kNone, `user_data` is the payload after the UUID and `extension` that of the first message with vapipe's
// extension UUID in the same NAL unit (empty: none).
SeiError read_sei_rbsp(std::span<const std::uint8_t> escaped, std::vector<std::uint8_t>& rbsp,
                       std::span<const std::uint8_t>& user_data, std::span<const std::uint8_t>& extension) {
  rbsp.clear();
  int zeros = 0;
  for (const std::uint8_t byte : escaped) {
    if (zeros >= 2 && byte == 3) {
      zeros = 0;
      continue;
    }
    rbsp.push_back(byte);
    zeros = byte == 0 ? zeros + 1 : 0;
  }
  bool found = false;
  extension = {};
  std::size_t pos = 0;
  while (pos < rbsp.size()) {
    // more_rbsp_data(): what is left is the stop bit and alignment zeros.
    if (rbsp[pos] == 0x80 && std::all_of(rbsp.begin() + static_cast<std::ptrdiff_t>(pos) + 1, rbsp.end(),
                                         [](std::uint8_t b) { return b == 0; })) {
      break;
    }
    std::size_t type = 0;
    std::size_t size = 0;
    const bool whole =
        read_ff_coded(rbsp, pos, type) && read_ff_coded(rbsp, pos, size) && size <= rbsp.size() - pos;
    // Once ours is found, what follows cannot take it away (bytes of a packet without its start code run on
    // into our NAL unit: found by fuzz/sei_fuzzer).
    if (!whole) return found ? SeiError::kNone : SeiError::kMalformedSei;
    const std::span<const std::uint8_t> payload(rbsp.data() + pos, size);
    pos += size;
    const auto is = [&](const std::array<std::uint8_t, 16>& uuid) {
      return type == kUserDataUnregistered && size >= uuid.size() &&
             std::equal(uuid.begin(), uuid.end(), payload.begin());
    };
    if (found) {
      // The extension is the message right after ours, where the writer puts it, or there is none: after
      // ours without one comes our rbsp_trailing_bits byte, so bytes that run on into the NAL unit never
      // parse as an extension.
      if (is(kExtensionUuid)) extension = payload.subspan(kExtensionUuid.size());
      return SeiError::kNone;
    }
    if (is(kMetadataUuid)) {
      user_data = payload.subspan(kMetadataUuid.size());
      found = true;
    }
  }
  return found ? SeiError::kNone : SeiError::kNoMetadata;
}

// Calls `on_user_data(user_data, extension)` for each of our SEI messages until it returns kNone; the first
// real error (or kNoMetadata) otherwise.
template <typename OnUserData>
SeiError for_each_user_data(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> packet,
                            OnUserData&& on_user_data) {
  SeiError result = SeiError::kNoMetadata;
  std::vector<std::uint8_t> rbsp;
  NalWalker walker(packet, framing);
  const std::size_t header = header_size(codec);
  while (const auto unit = walker.next()) {
    if (unit->end - unit->begin <= header) continue;
    const int type = nal_type(codec, packet[unit->begin]);
    const bool is_sei = codec == VideoCodec::kH264
                            ? type == kH264SeiType
                            : (type == kH265PrefixSeiType || type == kH265SuffixSeiType);
    if (!is_sei) continue;
    std::span<const std::uint8_t> user_data;
    std::span<const std::uint8_t> extension;
    SeiError error = read_sei_rbsp(packet.subspan(unit->begin + header, unit->end - unit->begin - header),
                                   rbsp, user_data, extension);
    if (error == SeiError::kNone) error = on_user_data(user_data, extension);
    if (error == SeiError::kNone) return error;
    if (result == SeiError::kNoMetadata) result = error;  // keep the first real error
  }
  if (walker.malformed() && result == SeiError::kNoMetadata) result = SeiError::kMalformedNal;
  return result;
}

}  // namespace

const char* to_string(SeiError error) {
  switch (error) {
    case SeiError::kNone:
      return "ok";
    case SeiError::kNoMetadata:
      return "no metadata SEI";
    case SeiError::kMalformedNal:
      return "malformed NAL unit framing";
    case SeiError::kMalformedSei:
      return "malformed SEI message";
    case SeiError::kBadPayload:
      return "metadata SEI payload does not parse";
  }
  return "unknown SEI error";
}

void serialize_boxes(std::span<const MetadataBox> boxes, std::vector<std::uint8_t>& out) {
  const std::size_t count = std::min(boxes.size(), kMaxMetadataBoxes);
  out.reserve(out.size() + 8 + count * kBoxBytes);
  put_be32(static_cast<std::uint32_t>(kDatumTypeBox), out);
  put_be32(static_cast<std::uint32_t>(count), out);
  for (std::size_t i = 0; i < count; ++i) {
    const MetadataBox& box = boxes[i];
    put_le_float(box.x1, out);
    put_le_float(box.y1, out);
    put_le_float(box.x2, out);
    put_le_float(box.y2, out);
    put_le_float(box.score, out);
    put_be32(static_cast<std::uint32_t>(box.class_id), out);
    put_be32(static_cast<std::uint32_t>(box.track_id), out);
  }
}

void serialize_extensions(std::span<const MetadataBox> boxes, std::vector<std::uint8_t>& out) {
  const auto written = boxes.first(std::min(boxes.size(), kMaxMetadataBoxes));
  const auto has_keypoints = [](const MetadataBox& box) { return !box.keypoints.empty(); };
  if (std::any_of(written.begin(), written.end(), has_keypoints)) {
    out.insert(out.end(), kKeypointsTag.begin(), kKeypointsTag.end());
    put_be32(kKeypointsVersion, out);
    for (const MetadataBox& box : written) {
      const std::size_t points = std::min(box.keypoints.size(), kMaxKeypointsPerBox);
      put_be32(static_cast<std::uint32_t>(points), out);
      for (std::size_t k = 0; k < points; ++k)
        for (float value : box.keypoints[k]) put_le_float(value, out);
    }
  }
  const auto has_identity = [](const MetadataBox& box) { return box.identity.has_value(); };
  if (std::any_of(written.begin(), written.end(), has_identity)) {
    out.insert(out.end(), kIdentityTag.begin(), kIdentityTag.end());
    put_be32(kIdentityVersion, out);
    for (const MetadataBox& box : written) {
      if (!box.identity) {
        out.push_back(0);
      } else if (box.identity->name.empty()) {
        out.push_back(kUnknownIdentity);
        put_le_float(box.identity->similarity, out);
      } else {
        put_name(box.identity->name, out);
        put_le_float(box.identity->similarity, out);
      }
    }
  }
}

namespace {

// Whether an extension with this tag and version starts at `at`; if so, `at` moves past its header.
bool extension_header(std::span<const std::uint8_t> bytes, std::size_t& at,
                      std::span<const std::uint8_t, 4> tag, std::uint32_t version) {
  if (bytes.size() - at < 8 ||
      !std::equal(tag.begin(), tag.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at)))
    return false;
  if (get_be32(bytes.data() + at + 4) != version) return false;
  at += 8;
  return true;
}

// The keypoint extension's body, from `at` (after its header): false unless it is whole.
bool parse_keypoints(std::span<const std::uint8_t> bytes, std::size_t& at, std::vector<MetadataBox>& boxes) {
  for (MetadataBox& box : boxes) {
    if (bytes.size() - at < 4) return false;
    const std::uint32_t points = get_be32(bytes.data() + at);
    at += 4;
    if (points > kMaxKeypointsPerBox || bytes.size() - at < std::size_t{points} * 12) return false;
    box.keypoints.resize(points);
    for (auto& point : box.keypoints) {
      for (float& value : point) {
        value = get_le_float(bytes.data() + at);
        at += 4;
      }
    }
  }
  return true;
}

// The identity extension's body, from `at` (after its header): false unless it is whole and every name is
// UTF-8 (a name goes on into JSON and onto the screen).
bool parse_identities(std::span<const std::uint8_t> bytes, std::size_t& at, std::vector<MetadataBox>& boxes) {
  for (MetadataBox& box : boxes) {
    if (bytes.size() - at < 1) return false;
    const std::uint8_t length = bytes[at++];
    if (length == 0) continue;
    const std::size_t name_bytes = length == kUnknownIdentity ? std::size_t{0} : std::size_t{length};
    if (bytes.size() - at < name_bytes + 4) return false;
    const auto name = bytes.subspan(at, name_bytes);
    for (std::size_t i = 0; i < name.size();) {
      const std::size_t size = utf8_char_size(name.subspan(i));
      if (size == 0) return false;
      i += size;
    }
    box.identity.emplace();
    box.identity->name.assign(name.begin(), name.end());
    box.identity->similarity = get_le_float(bytes.data() + at + name_bytes);
    at += name_bytes + 4;
  }
  return true;
}

}  // namespace

bool parse_boxes(std::span<const std::uint8_t> bytes, std::vector<MetadataBox>& boxes) {
  boxes.clear();
  if (bytes.size() < 8) return false;
  if (static_cast<std::int32_t>(get_be32(bytes.data())) != kDatumTypeBox) return false;
  const std::uint32_t count = get_be32(bytes.data() + 4);
  if (count > kMaxMetadataBoxes || bytes.size() - 8 != std::size_t{count} * kBoxBytes) return false;
  boxes.resize(count);
  const std::uint8_t* p = bytes.data() + 8;
  for (MetadataBox& box : boxes) {
    box.x1 = get_le_float(p);
    box.y1 = get_le_float(p + 4);
    box.x2 = get_le_float(p + 8);
    box.y2 = get_le_float(p + 12);
    box.score = get_le_float(p + 16);
    box.class_id = static_cast<std::int32_t>(get_be32(p + 20));
    box.track_id = static_cast<std::int32_t>(get_be32(p + 24));
    p += kBoxBytes;
  }
  return true;
}

bool parse_extensions(std::span<const std::uint8_t> bytes, std::vector<MetadataBox>& boxes) {
  // Each block at most once and in this order; anything else (an unknown tag, a byte too many) refuses the
  // whole payload, as does a message with neither (the writer sends none then).
  std::size_t at = 0;
  const bool keypoints = extension_header(bytes, at, kKeypointsTag, kKeypointsVersion);
  if (keypoints && !parse_keypoints(bytes, at, boxes)) return false;
  const bool identities = extension_header(bytes, at, kIdentityTag, kIdentityVersion);
  if (identities && !parse_identities(bytes, at, boxes)) return false;
  return (keypoints || identities) && at == bytes.size();
}

void base64_encode(std::span<const std::uint8_t> bytes, std::string& out) {
  out.reserve(out.size() + (bytes.size() + 2) / 3 * 4 + bytes.size() / 57 * 2);
  std::size_t i = 0;
  int line_length = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group =
        (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    out.push_back(kBase64Alphabet[(group >> 18) & 0x3f]);
    out.push_back(kBase64Alphabet[(group >> 12) & 0x3f]);
    out.push_back(kBase64Alphabet[(group >> 6) & 0x3f]);
    out.push_back(kBase64Alphabet[group & 0x3f]);
    // bm::base64_enc breaks lines after full groups only (the padded tail never gets one).
    line_length += 4;
    if (line_length == 76) {
      out += "\r\n";
      line_length = 0;
    }
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    out.push_back(kBase64Alphabet[bytes[i] >> 2]);
    out.push_back(kBase64Alphabet[(bytes[i] & 0x03) << 4]);
    out += "==";
  } else if (rest == 2) {
    out.push_back(kBase64Alphabet[bytes[i] >> 2]);
    out.push_back(kBase64Alphabet[((bytes[i] & 0x03) << 4) | (bytes[i + 1] >> 4)]);
    out.push_back(kBase64Alphabet[(bytes[i + 1] & 0x0f) << 2]);
    out.push_back('=');
  }
}

bool base64_decode(std::string_view text, std::vector<std::uint8_t>& out) {
  out.clear();
  out.reserve(text.size() / 4 * 3);
  std::uint32_t group = 0;
  int in_group = 0;
  int padding = 0;
  for (const char c : text) {
    if (c == '\r' || c == '\n') continue;
    int value = -1;
    if (c >= 'A' && c <= 'Z') {
      value = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      value = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      value = c - '0' + 52;
    } else if (c == '+') {
      value = 62;
    } else if (c == '/') {
      value = 63;
    } else if (c == '=') {
      if (in_group < 2) return false;
      ++padding;
      value = 0;
    } else {
      return false;
    }
    if (padding > 0 && c != '=') return false;  // data after padding
    group = (group << 6) | static_cast<std::uint32_t>(value);
    if (++in_group == 4) {
      if (padding > 2) return false;
      out.push_back(static_cast<std::uint8_t>(group >> 16));
      if (padding < 2) out.push_back(static_cast<std::uint8_t>(group >> 8));
      if (padding < 1) out.push_back(static_cast<std::uint8_t>(group));
      group = 0;
      in_group = 0;
      if (padding > 0) padding = 3;  // padding only ends the text: any further character fails
    }
  }
  return in_group == 0;
}

void append_sei_nal(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> user_data,
                    std::span<const std::uint8_t> extension, std::vector<std::uint8_t>& out) {
  const std::size_t start = out.size();
  if (framing.annex_b) {
    out.insert(out.end(), {0, 0, 0, 1});
  } else {
    out.resize(out.size() + static_cast<std::size_t>(framing.length_size));  // patched below
  }
  const std::size_t nal_begin = out.size();
  if (codec == VideoCodec::kH264) {
    out.push_back(kH264SeiType);  // forbidden_zero_bit 0, nal_ref_idc 0
  } else {
    out.push_back(kH265PrefixSeiType << 1);  // forbidden_zero_bit 0, nuh_layer_id 0
    out.push_back(1);                        // nuh_temporal_id_plus1
  }
  int zeros = 0;
  const auto message = [&](std::span<const std::uint8_t, 16> uuid, std::span<const std::uint8_t> data) {
    std::uint8_t byte = kUserDataUnregistered;
    append_escaped({&byte, 1}, zeros, out);
    for (std::size_t size = data.size() + uuid.size();; size -= 0xff) {
      byte = static_cast<std::uint8_t>(std::min<std::size_t>(size, 0xff));
      append_escaped({&byte, 1}, zeros, out);
      if (size < 0xff) break;
    }
    append_escaped(uuid, zeros, out);
    append_escaped(data, zeros, out);
  };
  message(kMetadataUuid, user_data);
  if (!extension.empty()) message(kExtensionUuid, extension);
  std::uint8_t byte = 0x80;  // rbsp_trailing_bits
  append_escaped({&byte, 1}, zeros, out);

  if (!framing.annex_b) {
    const std::size_t length = out.size() - nal_begin;
    const auto length_size = static_cast<std::size_t>(framing.length_size);
    if (length_size < 1 || length_size > 4 || (length_size < 4 && length >> (8 * length_size) != 0)) {
      out.resize(start);  // does not fit the stream's length prefix: no SEI rather than a broken packet
      return;
    }
    for (std::size_t i = 0; i < length_size; ++i) {
      out[start + i] = static_cast<std::uint8_t>(length >> (8 * (length_size - 1 - i)));
    }
  }
}

void insert_sei(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> access_unit,
                std::span<const std::uint8_t> sei_nal, std::vector<std::uint8_t>& out) {
  std::size_t at = 0;
  NalWalker walker(access_unit, framing);
  if (const auto first = walker.next(); first && first->end > first->begin) {
    const int aud = codec == VideoCodec::kH264 ? kH264AudType : kH265AudType;
    if (nal_type(codec, access_unit[first->begin]) == aud) {
      // Right after the delimiter, even when what follows is broken (found by fuzz/sei_fuzzer: the SEI
      // went to the end, behind the broken NAL, where no reader gets to it).
      const auto second = walker.next();
      at = second ? second->unit_begin : first->end;
    }
  }
  out.reserve(out.size() + access_unit.size() + sei_nal.size());
  out.insert(out.end(), access_unit.begin(), access_unit.begin() + static_cast<std::ptrdiff_t>(at));
  out.insert(out.end(), sei_nal.begin(), sei_nal.end());
  out.insert(out.end(), access_unit.begin() + static_cast<std::ptrdiff_t>(at), access_unit.end());
}

void to_elementary_stream(VideoCodec codec, std::span<const std::uint8_t> access_unit,
                          std::vector<std::uint8_t>& out) {
  const int aud = codec == VideoCodec::kH264 ? kH264AudType : kH265AudType;
  const int sei = codec == VideoCodec::kH264 ? kH264SeiType : kH265PrefixSeiType;
  std::vector<std::uint8_t> user_data;
  const auto append = [&](std::span<const std::uint8_t> nal) {
    out.insert(out.end(), {0, 0, 0, 1});
    out.insert(out.end(), nal.begin(), nal.end());
  };
  const auto nal_of = [&](const NalUnit& unit) {
    return access_unit.subspan(unit.begin, unit.end - unit.begin);
  };
  std::optional<NalUnit> ours;
  NalWalker walker(access_unit, NalFraming::annexb());
  while (const auto unit = walker.next()) {
    if (unit->end <= unit->begin || nal_type(codec, access_unit[unit->begin]) != sei) continue;
    const auto framed = access_unit.subspan(unit->unit_begin, unit->end - unit->unit_begin);
    if (read_user_data(codec, NalFraming::annexb(), framed, user_data) == SeiError::kNone) {
      ours = unit;
      break;
    }
  }
  out.reserve(out.size() + access_unit.size() + 16);
  if (ours) append(nal_of(*ours));
  NalWalker all(access_unit, NalFraming::annexb());
  while (const auto unit = all.next()) {
    if (unit->end <= unit->begin) continue;
    if (ours && unit->begin == ours->begin) continue;
    if (nal_type(codec, access_unit[unit->begin]) == aud) continue;
    append(nal_of(*unit));
  }
}

SeiError read_user_data(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> packet,
                        std::vector<std::uint8_t>& user_data) {
  return for_each_user_data(codec, framing, packet, [&](std::span<const std::uint8_t> data, auto) {
    user_data.assign(data.begin(), data.end());
    return SeiError::kNone;
  });
}

SeiReadResult read_metadata(VideoCodec codec, NalFraming framing, std::span<const std::uint8_t> packet) {
  SeiReadResult result;
  std::vector<std::uint8_t> decoded;
  result.error = for_each_user_data(
      codec, framing, packet,
      [&](std::span<const std::uint8_t> text, std::span<const std::uint8_t> extension) {
        if (!base64_decode(std::string_view(reinterpret_cast<const char*>(text.data()), text.size()),
                           decoded) ||
            !parse_boxes(decoded, result.boxes) ||
            (!extension.empty() && !parse_extensions(extension, result.boxes))) {
          return SeiError::kBadPayload;
        }
        return SeiError::kNone;
      });
  if (!result.ok()) result.boxes.clear();
  return result;
}

std::span<const std::uint8_t> SeiInserter::make_nal(std::span<const MetadataBox> boxes) {
  bytes_.clear();
  serialize_boxes(boxes, bytes_);
  text_.clear();
  base64_encode(bytes_, text_);
  extension_.clear();
  serialize_extensions(boxes, extension_);
  nal_.clear();
  append_sei_nal(codec_, framing_,
                 std::span(reinterpret_cast<const std::uint8_t*>(text_.data()), text_.size()), extension_,
                 nal_);
  return nal_;
}

std::span<const std::uint8_t> SeiInserter::insert(std::span<const std::uint8_t> access_unit,
                                                  std::span<const MetadataBox> boxes) {
  make_nal(boxes);
  out_.clear();
  insert_sei(codec_, framing_, access_unit, nal_, out_);
  return out_;
}

}  // namespace vapipe::io
