// JPEG fallback of the web viewer: pictures decoded from a real clip come out as JPEG files that FFmpeg
// reads back at the expected size and with the same picture (mean luma).
#include "io/jpeg_encoder.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "io/test_clips.hpp"
#include "io/video_decoder.hpp"
#include "support/media.hpp"
#include "support/process.hpp"

namespace vapipe::io {
namespace {

namespace fs = std::filesystem;

FramePtr first_frame(const fs::path& clip) {
  const auto demuxed = vapipe::test::demux(clip);
  VideoDecoder decoder(*demuxed.codec, {}, clip.string());
  FramePtr frame = make_frame();
  for (const auto& packet : demuxed.packets) {
    decoder.send(packet.get());
    if (decoder.receive(*frame) == DecodeStatus::kOk) return frame;
  }
  decoder.send(nullptr);
  if (decoder.receive(*frame) == DecodeStatus::kOk) return frame;
  return nullptr;
}

double mean_luma(const AVFrame& frame) {
  double sum = 0;
  for (int y = 0; y < frame.height; ++y)
    for (int x = 0; x < frame.width; ++x) sum += frame.data[0][y * frame.linesize[0] + x];
  return sum / (static_cast<double>(frame.width) * frame.height);
}

TEST(JpegEncoder, DecodedPicturesBecomeJpegFilesOfTheSamePicture) {
  const fs::path clip = test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264 MP4");
  const FramePtr frame = first_frame(clip);
  ASSERT_TRUE(frame);

  JpegEncoder encoder;
  ASSERT_GT(encoder.encode(*frame).size(), 1000u);  // a stream of pictures, not just one
  const std::string jpeg = encoder.encode(*frame);
  ASSERT_GT(jpeg.size(), 1000u);
  EXPECT_EQ(static_cast<unsigned char>(jpeg[0]), 0xFF);  // SOI
  EXPECT_EQ(static_cast<unsigned char>(jpeg[1]), 0xD8);
  const fs::path file = test::clips_dir() / "frame.jpg";
  std::ofstream(file, std::ios::binary) << jpeg;

  const auto back = vapipe::test::demux(file);
  ASSERT_NE(back.codec, nullptr);
  EXPECT_EQ(back.codec->codec_id, AV_CODEC_ID_MJPEG);
  EXPECT_EQ(back.codec->width, frame->width);
  EXPECT_EQ(back.codec->height, frame->height);
  const FramePtr decoded = first_frame(file);
  ASSERT_TRUE(decoded);
  // Limited-range source, full-range JPEG: compare in the source's range.
  const double jpeg_luma_limited = 16.0 + mean_luma(*decoded) * 219.0 / 255.0;
  EXPECT_NEAR(jpeg_luma_limited, mean_luma(*frame), 3.0);
}

TEST(JpegEncoder, WidePicturesAreScaledDownAndSizeChangesAreFollowed) {
  const fs::path clip = test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264 MP4");
  const FramePtr frame = first_frame(clip);
  ASSERT_TRUE(frame);
  JpegEncoder encoder(320);
  const fs::path small = test::clips_dir() / "small.jpg";
  std::ofstream(small, std::ios::binary) << encoder.encode(*frame);
  const auto back = vapipe::test::demux(small);
  ASSERT_NE(back.codec, nullptr);
  EXPECT_EQ(back.codec->width, 320);
  EXPECT_EQ(back.codec->height, 320 * frame->height / frame->width);

  // A reconnect to a smaller stream: the next JPEG has the new size.
  FramePtr half = make_frame();
  half->format = AV_PIX_FMT_YUV420P;
  half->width = 160;
  half->height = 120;
  ASSERT_EQ(av_frame_get_buffer(half.get(), 0), 0);
  for (int p = 0; p < 3; ++p)
    for (int y = 0; y < (p == 0 ? 120 : 60); ++y)
      std::fill_n(half->data[p] + y * half->linesize[p], p == 0 ? 160 : 80, static_cast<std::uint8_t>(128));
  const fs::path smaller = test::clips_dir() / "smaller.jpg";
  std::ofstream(smaller, std::ios::binary) << encoder.encode(*half);
  const auto back2 = vapipe::test::demux(smaller);
  ASSERT_NE(back2.codec, nullptr);
  EXPECT_EQ(back2.codec->width, 160);
  EXPECT_EQ(back2.codec->height, 120);
}

}  // namespace
}  // namespace vapipe::io
