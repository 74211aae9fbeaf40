#include "io/sei_codec.hpp"

#include <cstring>
#include <random>

#include <gtest/gtest.h>

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

// Faces carry their landmarks after the box list: the box bytes a sophon reader takes (type, count, count
// boxes) are the very bytes of the same boxes without them, and ours reads both back.
TEST(SeiPayload, KeypointsFollowTheBoxListWhereSophonReadersStop) {
  std::vector<MetadataBox> boxes(3);
  for (int i = 0; i < 3; ++i) {
    boxes[static_cast<std::size_t>(i)] = {10.0f * i, 5.0f, 10.0f * i + 8, 20.0f, 0.9f, 0, i};
  }
  boxes[0].keypoints = {{1.5f, 2.5f, 1.0f}, {3.0f, 4.0f, 0.25f}};
  boxes[2].keypoints = {{7.0f, 8.0f, 0.5f}};
  Bytes with_points;
  serialize_boxes(boxes, with_points);
  std::vector<MetadataBox> plain = boxes;
  for (auto& box : plain) box.keypoints.clear();
  Bytes without_points;
  serialize_boxes(plain, without_points);
  ASSERT_GT(with_points.size(), without_points.size());
  EXPECT_TRUE(std::equal(without_points.begin(), without_points.end(), with_points.begin()));
  const Bytes tag(with_points.begin() + static_cast<std::ptrdiff_t>(without_points.size()),
                  with_points.begin() + static_cast<std::ptrdiff_t>(without_points.size()) + 8);
  EXPECT_EQ(tag, (Bytes{'V', 'P', 'K', 'P', 0, 0, 0, 1}));
  // 3 counts, 3 points of 3 floats.
  EXPECT_EQ(with_points.size() - without_points.size(), 8u + 3 * 4 + 3 * 12);

  std::vector<MetadataBox> parsed;
  ASSERT_TRUE(parse_boxes(with_points, parsed));
  EXPECT_EQ(parsed, boxes);
  ASSERT_TRUE(parse_boxes(without_points, parsed));
  EXPECT_EQ(parsed, plain);

  // Anything but one whole extension after the boxes is refused: cut short, a wrong tag, bytes after it.
  for (std::size_t cut = without_points.size() + 1; cut < with_points.size(); ++cut) {
    EXPECT_FALSE(parse_boxes(std::span(with_points).first(cut), parsed)) << "cut at " << cut;
  }
  Bytes wrong_tag = with_points;
  wrong_tag[without_points.size()] = 'X';
  EXPECT_FALSE(parse_boxes(wrong_tag, parsed));
  Bytes trailing = with_points;
  trailing.push_back(0);
  EXPECT_FALSE(parse_boxes(trailing, parsed));
  Bytes too_many = with_points;
  const std::size_t first_count = without_points.size() + 8;
  too_many[first_count] = 0x7f;  // 2^30 points claimed: refused before any allocation
  EXPECT_FALSE(parse_boxes(too_many, parsed));
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

TEST(SeiInsert, RoundTripInEveryCodecAndFraming) {
  for (const VideoCodec codec : {VideoCodec::kH264, VideoCodec::kH265}) {
    for (const bool annex_b : {true, false}) {
      for (const int count : {0, 1, 3, 100}) {
        const NalFraming framing = annex_b ? NalFraming::annexb() : NalFraming::length_prefixed();
        const Bytes au = annex_b ? h264_key_frame(false) : to_length_prefixed(h264_key_frame(false));
        SeiInserter inserter(codec, framing);
        const auto boxes = sample_boxes(count, count);
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
  const auto boxes = sample_boxes(4);
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
