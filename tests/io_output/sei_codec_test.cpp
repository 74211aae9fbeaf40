#include "io/sei_codec.hpp"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "support/pipeline_client.hpp"

namespace vapipe::io {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::vector<MetadataBox> sample_boxes(int count, int seed = 1) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::uniform_real_distribution<float> coord(0.0f, 1920.0f);
  std::vector<MetadataBox> boxes;
  for (int i = 0; i < count; ++i) {
    const float x = coord(rng);
    const float y = coord(rng);
    boxes.push_back({x, y, x + 50.5f, y + 80.25f, 0.5f + 0.001f * static_cast<float>(i), i % 80, i - 1});
  }
  return boxes;
}

// A plausible H.264 key frame access unit: SPS, PPS, IDR slice (contents are arbitrary bytes).
Bytes h264_key_frame(bool with_aud) {
  Bytes au;
  if (with_aud) au.insert(au.end(), {0, 0, 0, 1, 0x09, 0xf0});
  au.insert(au.end(), {0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9});
  au.insert(au.end(), {0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80});
  au.insert(au.end(), {0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff});
  return au;
}

Bytes to_length_prefixed(const Bytes& annex_b) {
  // Splits at 00 00 01 (test input has no emulation issues) and writes 4-byte lengths.
  Bytes out;
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i + 3 <= annex_b.size(); ++i) {
    if (annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1) starts.push_back(i + 3);
  }
  for (std::size_t k = 0; k < starts.size(); ++k) {
    std::size_t end = k + 1 < starts.size() ? starts[k + 1] - 3 : annex_b.size();
    while (end > starts[k] && annex_b[end - 1] == 0) --end;
    const auto length = static_cast<std::uint32_t>(end - starts[k]);
    out.insert(out.end(), {static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
                           static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)});
    out.insert(out.end(), annex_b.begin() + static_cast<std::ptrdiff_t>(starts[k]),
               annex_b.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return out;
}

TEST(SeiPayload, BoxBytesFollowSophonByteBuffer) {
  const MetadataBox box{1.0f, 2.0f, 3.0f, 4.0f, 0.5f, 7, -1};
  Bytes bytes;
  serialize_boxes(std::span(&box, 1), bytes);
  const Bytes expected = {0,    0,    0,    0,  // type Box, big-endian int32
                          0,    0,    0,    1,  // count, big-endian uint32
                          0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40,  // x1 y1 x2
                          0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0x00, 0x3f,  // y2 score: little-endian floats
                          0,    0,    0,    7,                             // class_id, big-endian
                          0xff, 0xff, 0xff, 0xff};                         // track_id -1
  EXPECT_EQ(bytes, expected);
  std::vector<MetadataBox> parsed;
  ASSERT_TRUE(parse_boxes(bytes, parsed));
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0], box);
}

// Boxes with everything the extension carries: landmarks, a known face (ASCII and multi-byte UTF-8 names),
// an unknown one, and boxes with neither.
std::vector<MetadataBox> boxes_with_extensions() {
  std::vector<MetadataBox> boxes = sample_boxes(4);
  boxes[0].keypoints = {{1.5f, 2.5f, 1.0f}, {3.0f, 4.0f, 0.25f}};
  boxes[0].identity = MetadataIdentity{"0016", 0.62f};
  boxes[1].identity = MetadataIdentity{"", 0.18f};  // unknown
  boxes[3].keypoints = {{7.0f, 8.0f, 0.5f}};
  boxes[3].identity = MetadataIdentity{"Zo\xc3\xab \xe6\x9d\x8e", -0.25f};  // "Zoë 李"
  return boxes;
}

std::vector<MetadataBox> without_extensions(std::vector<MetadataBox> boxes) {
  for (auto& box : boxes) {
    box.keypoints.clear();
    box.identity.reset();
  }
  return boxes;
}

// The extension payload, field by field: keypoints, then identities (length byte 0: none, 255: unknown).
TEST(SeiPayload, ExtensionLayoutIsKeypointsThenIdentities) {
  const std::vector<MetadataBox> boxes = boxes_with_extensions();
  Bytes bytes;
  serialize_extensions(boxes, bytes);
  const auto le = [](float value) {
    Bytes out(4);
    std::memcpy(out.data(), &value, 4);  // the test hosts are little-endian, as the wire format
    return out;
  };
  Bytes expected = {'V', 'P', 'K', 'P', 0, 0, 0, 1, 0, 0, 0, 2};
  for (float v : {1.5f, 2.5f, 1.0f, 3.0f, 4.0f, 0.25f}) {
    const Bytes b = le(v);
    expected.insert(expected.end(), b.begin(), b.end());
  }
  expected.insert(expected.end(), {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});  // boxes 1, 2: none; box 3: one
  for (float v : {7.0f, 8.0f, 0.5f}) {
    const Bytes b = le(v);
    expected.insert(expected.end(), b.begin(), b.end());
  }
  expected.insert(expected.end(), {'V', 'P', 'I', 'D', 0, 0, 0, 1, 4, '0', '0', '1', '6'});
  for (const Bytes& b : {le(0.62f), Bytes{255}, le(0.18f), Bytes{0},
                         Bytes{8, 'Z', 'o', 0xc3, 0xab, ' ', 0xe6, 0x9d, 0x8e}, le(-0.25f)}) {
    expected.insert(expected.end(), b.begin(), b.end());
  }
  EXPECT_EQ(bytes, expected);

  std::vector<MetadataBox> parsed = without_extensions(boxes);
  ASSERT_TRUE(parse_extensions(bytes, parsed));
  EXPECT_EQ(parsed, boxes);

  // Identities alone: the block starts the payload. Neither: no payload at all.
  std::vector<MetadataBox> ids_only = boxes;
  for (auto& box : ids_only) box.keypoints.clear();
  Bytes ids;
  serialize_extensions(ids_only, ids);
  ASSERT_GE(ids.size(), 8u);
  EXPECT_EQ(Bytes(ids.begin(), ids.begin() + 8), (Bytes{'V', 'P', 'I', 'D', 0, 0, 0, 1}));
  parsed = without_extensions(boxes);
  ASSERT_TRUE(parse_extensions(ids, parsed));
  EXPECT_EQ(parsed, ids_only);
  Bytes none;
  serialize_extensions(without_extensions(boxes), none);
  EXPECT_TRUE(none.empty());
}

// Anything but whole blocks in their order is refused: cut short, unknown or swapped tags, a byte after them,
// a count beyond the bound, a name that is not UTF-8, an empty payload.
TEST(SeiPayload, BrokenExtensionsAreRefused) {
  const std::vector<MetadataBox> boxes = boxes_with_extensions();
  const std::vector<MetadataBox> plain = without_extensions(boxes);
  Bytes bytes;
  serialize_extensions(boxes, bytes);
  std::vector<MetadataBox> points_only = boxes;
  for (auto& box : points_only) box.identity.reset();
  Bytes points;
  serialize_extensions(points_only, points);
  std::vector<MetadataBox> parsed = plain;
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    parsed = plain;
    const bool accepted = parse_extensions(std::span(bytes).first(cut), parsed);
    // Cut between the blocks: the keypoint block alone, which is a whole payload (the SEI message's own size
    // says where it ends).
    if (cut == points.size()) {
      EXPECT_TRUE(accepted);
      EXPECT_EQ(parsed, points_only);
    } else {
      EXPECT_FALSE(accepted) << "cut at " << cut;
    }
  }
  const auto refused = [&](const Bytes& broken) {
    parsed = plain;
    return !parse_extensions(broken, parsed);
  };
  Bytes unknown_tag = bytes;
  unknown_tag[3] = 'X';
  EXPECT_TRUE(refused(unknown_tag));
  Bytes trailing = bytes;
  trailing.push_back(0);
  EXPECT_TRUE(refused(trailing));
  Bytes other_version = bytes;
  other_version[7] = 2;
  EXPECT_TRUE(refused(other_version));
  // Identities before keypoints.
  Bytes swapped(bytes.begin() + static_cast<std::ptrdiff_t>(points.size()), bytes.end());
  swapped.insert(swapped.end(), points.begin(), points.end());
  EXPECT_TRUE(refused(swapped));
  Bytes too_many = bytes;
  too_many[8] = 0x7f;  // 2^30 points claimed: refused before any allocation
  EXPECT_TRUE(refused(too_many));
  // A name's byte that is not UTF-8 (the first name, "0016", starts after the identity block's header).
  Bytes not_utf8 = bytes;
  const std::size_t name = points.size() + 8 + 1;
  ASSERT_EQ(not_utf8[name], '0');
  not_utf8[name] = 0xff;
  EXPECT_TRUE(refused(not_utf8));
  not_utf8[name] = 0xc3;  // a lead byte without its continuation
  EXPECT_TRUE(refused(not_utf8));
  EXPECT_TRUE(refused(Bytes{}));
}

// A name is written as UTF-8 of at most 254 bytes: cut before the character that does not fit, a byte that
// is not UTF-8 as '?'. What the reader gets back is what a second write writes again.
TEST(SeiPayload, NamesAreWrittenAsBoundedUtf8) {
  std::vector<MetadataBox> boxes = sample_boxes(2);
  std::string long_name;
  for (int i = 0; i < 200; ++i) long_name += "\xc3\xa9";  // 'é', 400 bytes
  boxes[0].identity = MetadataIdentity{long_name, 0.5f};
  boxes[1].identity = MetadataIdentity{"a\xff\xc3z", 0.5f};
  Bytes bytes;
  serialize_extensions(boxes, bytes);
  std::vector<MetadataBox> parsed = without_extensions(boxes);
  ASSERT_TRUE(parse_extensions(bytes, parsed));
  EXPECT_EQ(parsed[0].identity->name, long_name.substr(0, kMaxIdentityNameBytes));
  EXPECT_EQ(parsed[1].identity->name, "a??z");
  Bytes again;
  serialize_extensions(parsed, again);
  EXPECT_EQ(again, bytes);
}

TEST(SeiPayload, Base64MatchesSophonLineBreaks) {
  std::string text;
  base64_encode(Bytes{'M', 'a', 'n'}, text);
  EXPECT_EQ(text, "TWFu");
  text.clear();
  base64_encode(Bytes{'M', 'a'}, text);
  EXPECT_EQ(text, "TWE=");
  // bm::base64_enc breaks the line after every 19 full groups (76 characters), the tail excluded.
  text.clear();
  base64_encode(Bytes(58, 0xfb), text);
  ASSERT_EQ(text.size(), 76u + 2u + 4u);
  EXPECT_EQ(text.substr(76, 2), "\r\n");
  EXPECT_EQ(text.substr(78), "+w==");
  Bytes back;
  ASSERT_TRUE(base64_decode(text, back));
  EXPECT_EQ(back, Bytes(58, 0xfb));
  for (const char* bad : {"TWF", "TW=u", "T===", "TWFu=", "TW\x01u", "TWE=TWFu"}) {
    EXPECT_FALSE(base64_decode(bad, back)) << bad;
  }
}

TEST(SeiNal, H264LayoutIsSophonPipelines) {
  const Bytes user_data = {'a', 'b', 'c'};
  Bytes nal;
  append_sei_nal(VideoCodec::kH264, NalFraming::annexb(), user_data, nal);
  Bytes expected = {0, 0, 0, 1, 0x06, 0x05, 16 + 3};
  expected.insert(expected.end(), kMetadataUuid.begin(), kMetadataUuid.end());
  expected.insert(expected.end(), {'a', 'b', 'c', 0x80});
  EXPECT_EQ(nal, expected);

  Bytes hevc;
  append_sei_nal(VideoCodec::kH265, NalFraming::annexb(), user_data, hevc);
  ASSERT_GT(hevc.size(), 7u);
  EXPECT_EQ(hevc[4], 39 << 1);  // prefix SEI
  EXPECT_EQ(hevc[5], 1);
  EXPECT_EQ(hevc[6], 5);
}

TEST(SeiNal, LongPayloadSizeIsFfCoded) {
  const Bytes user_data(300, 'x');
  Bytes nal;
  append_sei_nal(VideoCodec::kH264, NalFraming::annexb(), user_data, nal);
  // 316 = 255 + 61
  EXPECT_EQ(nal[6], 0xff);
  EXPECT_EQ(nal[7], 61);
  Bytes back;
  ASSERT_EQ(read_user_data(VideoCodec::kH264, NalFraming::annexb(), nal, back), SeiError::kNone);
  EXPECT_EQ(back, user_data);
}

TEST(SeiNal, EmulationPreventionIsInsertedAndRemoved) {
  const Bytes user_data = {0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0};
  for (const VideoCodec codec : {VideoCodec::kH264, VideoCodec::kH265}) {
    Bytes nal;
    append_sei_nal(codec, NalFraming::annexb(), user_data, nal);
    // No 00 00 00, 00 00 01 or 00 00 02 after the start code (00 00 03 is the escape itself).
    for (std::size_t i = 4; i + 2 < nal.size(); ++i) {
      EXPECT_FALSE(nal[i] == 0 && nal[i + 1] == 0 && nal[i + 2] <= 2) << "at " << i;
    }
    EXPECT_EQ(nal.size(), 4 + (codec == VideoCodec::kH264 ? 1u : 2u) + 2 + 16 + user_data.size() + 4 + 1);
    Bytes back;
    ASSERT_EQ(read_user_data(codec, NalFraming::annexb(), nal, back), SeiError::kNone);
    EXPECT_EQ(back, user_data);
  }
}

// Keypoints and identities ride in a second SEI message (vapipe's UUID) after sophon's, in the same NAL unit:
// sophon's message is byte for byte the one of the same boxes without them, and pipeline_client (its
// fromByteBuffer reads track ids only when the payload is exactly the box list) reads every box and track id.
TEST(SeiNal, ExtensionIsASecondMessageSophonReadersNeverSee) {
  const std::vector<MetadataBox> boxes = boxes_with_extensions();
  const std::vector<MetadataBox> plain = without_extensions(boxes);
  for (const VideoCodec codec : {VideoCodec::kH264, VideoCodec::kH265}) {
    SeiInserter inserter(codec, NalFraming::annexb());
    const auto made = inserter.make_nal(plain);
    const Bytes plain_nal(made.begin(), made.end());
    const auto with = inserter.make_nal(boxes);
    const Bytes nal(with.begin(), with.end());
    ASSERT_GT(nal.size(), plain_nal.size());
    // Everything up to the plain NAL's rbsp_trailing_bits is the same: sophon's message comes first, whole.
    EXPECT_TRUE(std::equal(plain_nal.begin(), plain_nal.end() - 1, nal.begin()));
    const Bytes uuid(nal.begin() + static_cast<std::ptrdiff_t>(plain_nal.size()) + 1,
                     nal.begin() + static_cast<std::ptrdiff_t>(plain_nal.size()) + 17);
    EXPECT_EQ(uuid, Bytes(kExtensionUuid.begin(), kExtensionUuid.end()));

    const SeiReadResult read = read_metadata(codec, NalFraming::annexb(), nal);
    ASSERT_TRUE(read.ok()) << to_string(read.error);
    EXPECT_EQ(read.boxes, boxes);
    const auto client = vapipe::test::client_read_sei(codec, nal);
    ASSERT_TRUE(client.has_value());
    EXPECT_EQ(*client, plain);

    // Bytes that run on into our NAL unit (a packet without its start code, found by fuzz/sei_fuzzer) neither
    // spoil our message nor pass for an extension, even one that would parse: only the message right after
    // ours is one, and without one our rbsp_trailing_bits byte comes there.
    Bytes run_on = plain_nal;
    run_on.insert(run_on.end(), {0x00, 0x05, 16 + 8 + 4 * 5});
    run_on.insert(run_on.end(), kExtensionUuid.begin(), kExtensionUuid.end());
    run_on.insert(run_on.end(), {'V', 'P', 'I', 'D', 0, 0, 0, 1});
    for (int box = 0; box < 4; ++box)
      run_on.insert(run_on.end(), {255, 0x00, 0x00, 0x80, 0x3f});  // unknown, 1.0
    const SeiReadResult ran_on = read_metadata(codec, NalFraming::annexb(), run_on);
    ASSERT_TRUE(ran_on.ok()) << to_string(ran_on.error);
    EXPECT_EQ(ran_on.boxes, plain);
    run_on.resize(plain_nal.size() + 2);  // cut inside a message: ours still stands
    EXPECT_EQ(read_metadata(codec, NalFraming::annexb(), run_on).boxes, plain);
  }
  // Why not after the box list in sophon's own payload: pipeline_client would lose every track id and read
  // the boxes after the first 4 bytes early.
  Bytes payload;
  serialize_boxes(plain, payload);
  serialize_extensions(boxes, payload);
  const auto misread = vapipe::test::client_from_byte_buffer(payload);
  ASSERT_TRUE(misread.has_value());
  ASSERT_EQ(misread->size(), plain.size());
  EXPECT_EQ((*misread)[0].track_id, 0);
  EXPECT_NE((*misread)[1].x1, plain[1].x1);
  // An extension that does not parse spoils the frame's metadata (read as one payload), not the reader.
  Bytes broken = {'V', 'P', 'I', 'D', 0, 0, 0, 1, 7};
  std::string text;
  Bytes list;
  serialize_boxes(plain, list);
  base64_encode(list, text);
  Bytes bad;
  append_sei_nal(VideoCodec::kH264, NalFraming::annexb(),
                 std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), broken, bad);
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::annexb(), bad).error, SeiError::kBadPayload);
  EXPECT_EQ(vapipe::test::client_read_sei(VideoCodec::kH264, bad), plain);
}

TEST(SeiInsert, RoundTripInEveryCodecAndFraming) {
  for (const VideoCodec codec : {VideoCodec::kH264, VideoCodec::kH265}) {
    for (const bool annex_b : {true, false}) {
      for (const int count : {0, 1, 3, 100}) {
        const NalFraming framing = annex_b ? NalFraming::annexb() : NalFraming::length_prefixed();
        const Bytes au = annex_b ? h264_key_frame(false) : to_length_prefixed(h264_key_frame(false));
        SeiInserter inserter(codec, framing);
        auto boxes = sample_boxes(count, count);
        if (count == 3) {  // keypoints and identities too: the extension message (binary, so escaped)
          boxes[0].keypoints = {{0.0f, 0.0f, 0.0f}, {1.0f, 2.0f, 3.0f}};
          boxes[2].identity = MetadataIdentity{"0016", 0.62f};
        }
        const auto packet = inserter.insert(au, boxes);
        const SeiReadResult read = read_metadata(codec, framing, packet);
        ASSERT_TRUE(read.ok()) << to_string(read.error);
        EXPECT_EQ(read.boxes, boxes);
        // The access unit follows the SEI unchanged.
        ASSERT_GE(packet.size(), au.size());
        EXPECT_TRUE(std::equal(au.begin(), au.end(), packet.end() - static_cast<std::ptrdiff_t>(au.size())));
      }
    }
  }
}

TEST(SeiInsert, SeiGoesFirstOrAfterTheDelimiter) {
  SeiInserter inserter(VideoCodec::kH264, NalFraming::annexb());
  const auto boxes = sample_boxes(2);
  const auto plain = inserter.insert(h264_key_frame(false), boxes);
  // First in the packet: sophon-pipeline's reader checks 00 00 00 01 06 at the start.
  EXPECT_EQ(Bytes(plain.begin(), plain.begin() + 5), (Bytes{0, 0, 0, 1, 6}));

  const Bytes with_aud = h264_key_frame(true);
  const Bytes packet(inserter.insert(with_aud, boxes).begin(), inserter.insert(with_aud, boxes).end());
  EXPECT_EQ(Bytes(packet.begin(), packet.begin() + 6), (Bytes{0, 0, 0, 1, 0x09, 0xf0}));
  EXPECT_EQ(Bytes(packet.begin() + 6, packet.begin() + 11), (Bytes{0, 0, 0, 1, 6}));
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::annexb(), packet).boxes, boxes);
}

// The raw elementary stream of tcp:// and udp:// outputs: our SEI first, then the parameter sets and the
// picture, delimiters dropped, every NAL unit after 00 00 00 01 (the 3-byte start code of the IDR too).
TEST(SeiElementaryStream, OurSeiFirstNoDelimiterFourByteStartCodes) {
  SeiInserter inserter(VideoCodec::kH264, NalFraming::annexb());
  const auto boxes = sample_boxes(3);
  const Bytes sei(inserter.make_nal(boxes).begin(), inserter.make_nal(boxes).end());
  // x264's own SEI (another UUID) in front of ours, the delimiter first: the order a muxer or an encoder
  // may leave.
  Bytes foreign = {0, 0, 0, 1, 0x06, 0x05, 17};
  for (int i = 0; i < 17; ++i) foreign.push_back(static_cast<std::uint8_t>(0x10 + i));
  foreign.push_back(0x80);
  Bytes au = {0, 0, 0, 1, 0x09, 0xf0};
  au.insert(au.end(), foreign.begin(), foreign.end());
  au.insert(au.end(), sei.begin(), sei.end());
  const Bytes key = h264_key_frame(false);
  au.insert(au.end(), key.begin(), key.end());

  Bytes out;
  to_elementary_stream(VideoCodec::kH264, au, out);
  Bytes expected = sei;
  expected.insert(expected.end(), foreign.begin(), foreign.end());
  expected.insert(expected.end(), {0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9});
  expected.insert(expected.end(), {0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80});
  expected.insert(expected.end(), {0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x33, 0xff});
  EXPECT_EQ(out, expected);
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::annexb(), out).boxes, boxes);

  // Without our SEI: the order stays, the delimiter goes.
  out.clear();
  to_elementary_stream(VideoCodec::kH264, h264_key_frame(true), out);
  Bytes plain = h264_key_frame(false);
  plain.insert(plain.end() - 9, 0);  // the IDR's start code becomes 4 bytes
  EXPECT_EQ(out, plain);

  // H.265: the prefix SEI (type 39) moves in front of the VPS; the delimiter (type 35) goes.
  SeiInserter h265(VideoCodec::kH265, NalFraming::annexb());
  const Bytes sei265(h265.make_nal(boxes).begin(), h265.make_nal(boxes).end());
  Bytes au265 = {0, 0, 0, 1, 35 << 1, 1, 0x50};
  au265.insert(au265.end(), {0, 0, 0, 1, 32 << 1, 1, 0x0c});  // VPS
  au265.insert(au265.end(), sei265.begin(), sei265.end());
  au265.insert(au265.end(), {0, 0, 1, 19 << 1, 1, 0xaf});  // IDR_W_RADL
  out.clear();
  to_elementary_stream(VideoCodec::kH265, au265, out);
  Bytes expected265 = sei265;
  expected265.insert(expected265.end(), {0, 0, 0, 1, 32 << 1, 1, 0x0c, 0, 0, 0, 1, 19 << 1, 1, 0xaf});
  EXPECT_EQ(out, expected265);
}

// Found by fuzz/sei_fuzzer: an access unit delimiter followed by a broken NAL (a length prefix past the
// end) put the SEI at the very end, behind the broken part, where no reader finds it. It goes right after
// the delimiter, and the rest is copied unchanged.
TEST(SeiInsert, AfterTheDelimiterEvenWhenTheRestIsBroken) {
  const NalFraming framing = NalFraming::length_prefixed(1);
  SeiInserter inserter(VideoCodec::kH264, framing);
  const auto boxes = sample_boxes(2);
  const Bytes broken = {0x01, 0x09, 0x60, 0x65, 0x88};  // AUD (1 byte), then 96 bytes announced, 2 there
  const Bytes packet(inserter.insert(broken, boxes).begin(), inserter.insert(broken, boxes).end());
  EXPECT_EQ(Bytes(packet.begin(), packet.begin() + 2), (Bytes{0x01, 0x09}));
  EXPECT_EQ(Bytes(packet.end() - 3, packet.end()), (Bytes{0x60, 0x65, 0x88}));
  const auto read = read_metadata(VideoCodec::kH264, framing, packet);
  EXPECT_TRUE(read.ok()) << to_string(read.error);
  EXPECT_EQ(read.boxes, boxes);
}

TEST(SeiRead, ForeignSeiAndPlainFramesHaveNoMetadata) {
  // x264's own user_data_unregistered SEI (another UUID) is skipped.
  Bytes packet = {0, 0, 0, 1, 0x06, 0x05, 17};
  for (int i = 0; i < 17; ++i) packet.push_back(static_cast<std::uint8_t>(0x10 + i));
  packet.push_back(0x80);
  packet.insert(packet.end(), {0, 0, 1, 0x41, 0x9a, 0x02});
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::annexb(), packet).error, SeiError::kNoMetadata);
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::annexb(), h264_key_frame(true)).error,
            SeiError::kNoMetadata);
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::annexb(), Bytes{}).error, SeiError::kNoMetadata);
}

TEST(SeiRead, TruncatedAndCorruptInputIsRejected) {
  SeiInserter inserter(VideoCodec::kH264, NalFraming::annexb());
  const auto boxes = sample_boxes(5);
  const Bytes nal(inserter.make_nal(boxes).begin(), inserter.make_nal(boxes).end());
  // Every cut inside the message (the trailing 0x80 aside) is refused.
  for (std::size_t size = 0; size + 1 < nal.size(); ++size) {
    const SeiReadResult read =
        read_metadata(VideoCodec::kH264, NalFraming::annexb(), std::span(nal.data(), size));
    EXPECT_FALSE(read.ok()) << "cut at " << size;
    EXPECT_TRUE(read.boxes.empty());
  }
  // A box count that disagrees with the payload size.
  Bytes payload;
  serialize_boxes(boxes, payload);
  payload[7] = 6;
  std::string text;
  base64_encode(payload, text);
  Bytes bad;
  append_sei_nal(VideoCodec::kH264, NalFraming::annexb(),
                 std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), bad);
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::annexb(), bad).error, SeiError::kBadPayload);
  // A huge count is refused before anything is allocated.
  payload = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  std::vector<MetadataBox> parsed;
  EXPECT_FALSE(parse_boxes(payload, parsed));
  // A length prefix running past the packet.
  const Bytes avcc = {0, 0, 0x10, 0x00, 0x06, 0x05};
  EXPECT_EQ(read_metadata(VideoCodec::kH264, NalFraming::length_prefixed(), avcc).error,
            SeiError::kMalformedNal);
}

TEST(SeiRead, SeededRandomBuffersNeverCrash) {
  std::mt19937 rng(20240607);
  SeiInserter inserter(VideoCodec::kH265, NalFraming::annexb());
  const auto boxes = boxes_with_extensions();  // mutations reach the extension message too
  const Bytes valid(inserter.insert(h264_key_frame(false), boxes).begin(),
                    inserter.insert(h264_key_frame(false), boxes).end());
  std::uniform_int_distribution<int> byte(0, 255);
  int accepted = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    Bytes buffer;
    if (iteration % 2 == 0) {
      // Pure noise, biased towards the bytes that matter (zeros, start codes, 0xff runs, SEI types).
      const int size = std::uniform_int_distribution<int>(0, 300)(rng);
      static constexpr std::uint8_t kInteresting[] = {0, 0, 0, 1, 3, 5, 6, 0x4e, 0xff, 0x80};
      for (int i = 0; i < size; ++i) {
        buffer.push_back(byte(rng) < 128 ? kInteresting[byte(rng) % 10]
                                         : static_cast<std::uint8_t>(byte(rng)));
      }
    } else {
      // A valid packet with a few bytes changed and a random cut.
      buffer = valid;
      for (int flips = std::uniform_int_distribution<int>(1, 4)(rng); flips > 0; --flips) {
        buffer[static_cast<std::size_t>(byte(rng)) % buffer.size()] = static_cast<std::uint8_t>(byte(rng));
      }
      buffer.resize(std::uniform_int_distribution<std::size_t>(0, buffer.size())(rng));
    }
    for (const VideoCodec codec : {VideoCodec::kH264, VideoCodec::kH265}) {
      for (const NalFraming framing : {NalFraming::annexb(), NalFraming::length_prefixed(4),
                                       NalFraming::length_prefixed(2), NalFraming::length_prefixed(1)}) {
        const SeiReadResult read = read_metadata(codec, framing, buffer);
        EXPECT_LE(read.boxes.size(), kMaxMetadataBoxes);
        if (read.ok()) ++accepted;
      }
    }
  }
  // Some mutated packets keep a valid SEI (flips landing in the slice), so the parser is exercised on
  // success paths too.
  EXPECT_GT(accepted, 0);
}

}  // namespace
}  // namespace vapipe::io
