// libFuzzer target: the SEI metadata reader (src/io/sei_codec.*), which parses whatever a network peer
// sends. The first byte picks codec and NAL framing; the rest is the packet. Besides "no crash", two
// properties are checked: metadata read back is written and read again unchanged, and an SEI inserted
// in front of the packet is the one found first, whatever the packet holds.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "io/sei_codec.hpp"

using namespace vapipe::io;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const VideoCodec codec = (data[0] & 1) != 0 ? VideoCodec::kH265 : VideoCodec::kH264;
  static constexpr int kLengthSizes[] = {1, 2, 4};
  const NalFraming framing = (data[0] & 2) != 0
                                 ? NalFraming::annexb()
                                 : NalFraming::length_prefixed(kLengthSizes[(data[0] >> 2) % 3]);
  const std::span<const std::uint8_t> packet(data + 1, size - 1);

  const SeiReadResult result = read_metadata(codec, framing, packet);
  std::vector<std::uint8_t> user_data;
  (void)read_user_data(codec, framing, packet, user_data);
  std::vector<std::uint8_t> decoded;
  (void)base64_decode({reinterpret_cast<const char*>(packet.data()), packet.size()}, decoded);
  std::vector<MetadataBox> boxes;
  (void)parse_boxes(packet, boxes);
  // The extension payload (keypoints, identities) for as many boxes as the box list had (none when it
  // failed: then only the block headers are read).
  (void)parse_extensions(packet, boxes);

  // Whatever was read back, written again, reads back the same. Compared as written bytes, not as boxes:
  // a peer's float fields may be NaN, which never equals itself.
  if (result.ok()) {
    SeiInserter inserter(codec, framing);
    const auto nal_span = inserter.make_nal(result.boxes);
    const std::vector<std::uint8_t> nal(nal_span.begin(),
                                        nal_span.end());  // the span is the inserter's buffer
    const SeiReadResult again = read_metadata(codec, framing, nal);
    if (!again.ok()) __builtin_trap();
    const auto rewritten = inserter.make_nal(again.boxes);
    if (!std::equal(nal.begin(), nal.end(), rewritten.begin(), rewritten.end())) __builtin_trap();
  }
  // Our SEI in front of any access unit is the one a reader finds.
  const std::vector<MetadataBox> ours = {{1, 2, 3, 4, 0.5F, 7, 9}};
  SeiInserter inserter(codec, framing);
  const auto with_sei = inserter.insert(packet, ours);
  const SeiReadResult found = read_metadata(codec, framing, with_sei);
  if (!found.ok() || found.boxes != ours) __builtin_trap();
  return 0;
}
