#include "io/video_decoder.hpp"

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "io/frame_view.hpp"
#include "io/test_clips.hpp"

namespace vapipe::io {
namespace {

void expect_decodes_every_frame(const std::filesystem::path& clip) {
  const long expected = test::ffprobe_frame_count(clip);
  ASSERT_GT(expected, 0) << "ffprobe could not count " << clip;
  VideoSource source(clip.string());
  EXPECT_EQ(source.info().width, 768);
  EXPECT_EQ(source.info().height, 576);
  const auto result = test::decode_all(source);
  EXPECT_EQ(result.frames, expected) << clip;
  EXPECT_EQ(result.errors, 0);
  EXPECT_EQ(result.width, 768);
  EXPECT_EQ(result.height, 576);
  EXPECT_TRUE(result.first_frame_varies) << "first frame of " << clip << " is one flat colour";
}

TEST(VideoDecoder, DecodesAnH264ElementaryStream) {
  const auto clip = test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  expect_decodes_every_frame(clip);
  VideoSource source(clip.string());
  EXPECT_EQ(source.info().codec_id, AV_CODEC_ID_H264);
}

TEST(VideoDecoder, DecodesAnH265ElementaryStream) {
  const auto clip = test::h265_clip();
  if (clip.empty()) GTEST_SKIP() << "ffmpeg has no libx265 encoder here; H.265 decoding not tested";
  expect_decodes_every_frame(clip);
  VideoSource source(clip.string());
  EXPECT_EQ(source.info().codec_id, AV_CODEC_ID_HEVC);
}

TEST(VideoDecoder, DecodesMp4AndMkv) {
  const auto mp4 = test::mp4_clip();
  const auto mkv = test::mkv_clip();
  VAPIPE_REQUIRE_CLIP(mp4, "MP4");
  VAPIPE_REQUIRE_CLIP(mkv, "MKV");
  expect_decodes_every_frame(mp4);
  expect_decodes_every_frame(mkv);
}

TEST(VideoDecoder, DecodesTheOriginalAviMpeg4) { expect_decodes_every_frame(test::vtest_avi()); }

// Seeded damage: random byte flips across the stream and whole chunks cut out (NAL units lost).
TEST(VideoDecoder, SurvivesCorruptH264) {
  const auto clip = test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  std::ifstream input(clip, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(input)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 10000u);
  std::mt19937 random(1234);
  // Keep the first 2 KB (SPS/PPS) intact so the stream still opens; damage the rest.
  std::uniform_int_distribution<std::size_t> position(2048, bytes.size() - 1);
  for (int i = 0; i < 400; ++i) bytes[position(random)] = static_cast<char>(random() & 0xff);
  for (int cut = 0; cut < 6; ++cut) {
    const std::size_t at = position(random) % (bytes.size() - 5000);
    bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(at, 2048)),
                bytes.begin() + static_cast<std::ptrdiff_t>(std::max<std::size_t>(at, 2048) + 3000));
  }
  const auto corrupt = vapipe::test::scratch_dir() / "corrupt.h264";
  std::ofstream(corrupt, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));

  const long total = test::ffprobe_frame_count(clip);
  VideoSource source(corrupt.string());
  const auto result = test::decode_all(source);
  EXPECT_GT(result.frames, 0);
  EXPECT_TRUE(result.errors > 0 || result.frames < total)
      << result.frames << " frames of " << total << ", " << result.errors << " errors";
}

TEST(VideoDecoder, GarbagePacketsAreCountedNotFatal) {
  const auto clip = test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  VideoSource source(clip.string());
  VideoDecoder decoder(source.codec_parameters());
  auto packet = make_packet();
  ASSERT_EQ(av_new_packet(packet.get(), 64), 0);
  for (int i = 0; i < 64; ++i) packet->data[i] = static_cast<std::uint8_t>(i * 37);
  packet->data[0] = 0, packet->data[1] = 0, packet->data[2] = 1, packet->data[3] = 0x65;  // bogus IDR slice
  auto frame = make_frame();
  for (int i = 0; i < 5; ++i) {
    decoder.send(packet.get());
    while (decoder.receive(*frame) == DecodeStatus::kOk) {
    }
  }
  decoder.send(nullptr);
  while (decoder.receive(*frame) == DecodeStatus::kOk) {
  }
  EXPECT_GT(decoder.errors(), 0);
  EXPECT_EQ(decoder.receive(*frame), DecodeStatus::kEndOfStream);
  // reset() makes the decoder usable again, and real packets decode.
  decoder.reset();
  long frames = 0;
  while (source.read(*packet) && frames < 5) {
    decoder.send(packet.get());
    while (decoder.receive(*frame) == DecodeStatus::kOk) ++frames;
  }
  EXPECT_GT(frames, 0);
}

// Two raw H.264 streams of different sizes back to back: the decoder follows the new SPS and each frame
// reports its own size.
TEST(VideoDecoder, FollowsAResolutionChangeMidStream) {
  VAPIPE_REQUIRE_FILE(test::vtest_avi());
  const auto dir = vapipe::test::scratch_dir();
  const auto encode = [&](const char* filter, const char* name) {
    return test::run_command(
        fmt::format("ffmpeg -nostdin -v error -y -i {} -frames:v 20 {} -an -c:v libx264 -preset ultrafast "
                    "-bsf:v h264_mp4toannexb -f h264 {}",
                    test::quoted(test::vtest_avi()), filter, test::quoted(dir / name)));
  };
  ASSERT_TRUE(encode("", "a.h264"));
  ASSERT_TRUE(encode("-vf scale=320:240", "b.h264"));
  ASSERT_TRUE(test::run_command(fmt::format("cat {} {} > {}", test::quoted(dir / "a.h264"),
                                            test::quoted(dir / "b.h264"), test::quoted(dir / "ab.h264"))));
  VideoSource source((dir / "ab.h264").string());
  VideoDecoder decoder(source.codec_parameters());
  auto packet = make_packet();
  auto frame = make_frame();
  FrameViewer viewer;
  int big = 0;
  int small = 0;
  auto count = [&] {
    while (decoder.receive(*frame) == DecodeStatus::kOk) {
      const auto view = viewer.view(*frame);
      EXPECT_EQ(view.width, frame->width);
      if (frame->width == 768) {
        ++big;
      } else {
        ++small;
        EXPECT_EQ(frame->height, 240);
      }
    }
  };
  while (source.read(*packet)) {
    while (decoder.send(packet.get()) == DecodeStatus::kAgain) count();
    count();
  }
  decoder.send(nullptr);
  count();
  EXPECT_EQ(big, 20);
  EXPECT_EQ(small, 20);
}

// The luma planes of every frame of `clip`, decoded with `options`.
std::vector<std::vector<std::uint8_t>> decode_luma(const std::filesystem::path& clip,
                                                   DecoderOptions options) {
  VideoSource source(clip.string());
  VideoDecoder decoder(source.codec_parameters(), options);
  auto packet = make_packet();
  auto frame = make_frame();
  std::vector<std::vector<std::uint8_t>> planes;
  auto drain = [&] {
    while (decoder.receive(*frame) == DecodeStatus::kOk) {
      auto& plane = planes.emplace_back();
      for (int y = 0; y < frame->height; ++y) {
        const std::uint8_t* row = frame->data[0] + static_cast<std::ptrdiff_t>(y) * frame->linesize[0];
        plane.insert(plane.end(), row, row + frame->width);
      }
    }
  };
  while (source.read(*packet)) {
    while (decoder.send(packet.get()) == DecodeStatus::kAgain) drain();
    drain();
  }
  decoder.send(nullptr);
  drain();
  return planes;
}

// skip_loop_filter (a camera key): the same frames without H.264's deblocking, so they differ from the
// normal decode a little (x264's default deblocks; its ultrafast preset would not) and stay close to it.
TEST(VideoDecoder, SkippingTheLoopFilterChangesPicturesLittle) {
  VAPIPE_REQUIRE_FILE(test::vtest_avi());
  const auto clip = vapipe::test::scratch_dir() / "deblocked.h264";
  ASSERT_TRUE(test::run_command(
      fmt::format("ffmpeg -nostdin -v error -y -i {} -frames:v 30 -an -c:v libx264 -preset veryfast -crf 30 "
                  "-g 15 -f h264 {}",
                  test::quoted(test::vtest_avi()), test::quoted(clip))));
  const auto filtered = decode_luma(clip, {});
  const auto unfiltered = decode_luma(clip, {.skip_loop_filter = true});
  ASSERT_EQ(filtered.size(), 30u);
  ASSERT_EQ(unfiltered.size(), filtered.size());
  double total_difference = 0.0;
  for (std::size_t f = 0; f < filtered.size(); ++f) {
    ASSERT_EQ(filtered[f].size(), unfiltered[f].size());
    double difference = 0.0;
    for (std::size_t i = 0; i < filtered[f].size(); ++i)
      difference += std::abs(static_cast<int>(filtered[f][i]) - static_cast<int>(unfiltered[f][i]));
    difference /= static_cast<double>(filtered[f].size());
    EXPECT_LT(difference, 4.0) << "frame " << f << ": mean |difference| in grey levels";
    total_difference += difference;
  }
  EXPECT_GT(total_difference / static_cast<double>(filtered.size()), 0.05)
      << "skip_loop_filter changed nothing: the option did not reach the decoder";
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

// A stream wider than the default maximum (8192) is refused when the decoder opens, naming the stream and
// its size, before any frame is allocated.
TEST(VideoDecoder, RefusesAStreamLargerThanTheMaximumResolution) {
  VAPIPE_REQUIRE_FILE(test::vtest_avi());
  const auto path = vapipe::test::scratch_dir() / "wide.h264";
  ASSERT_TRUE(test::run_command(
      fmt::format("ffmpeg -nostdin -v error -y -i {} -frames:v 2 -vf scale=8208:16 -an -c:v libx264 "
                  "-preset ultrafast -f h264 {}",
                  test::quoted(test::vtest_avi()), test::quoted(path))));
  VideoSource source(path.string());
  EXPECT_EQ(error_of([&] { VideoDecoder decoder(source.codec_parameters(), {}, "channel 3"); }),
            "channel 3: the stream is 8208x16, larger than the maximum resolution 8192x8192");
}

// The stream opens at 320x240 within the bound, then switches to 768x576 beyond it: the first frame over
// the bound stops decoding with an error naming the size (FFmpeg never allocates it).
TEST(VideoDecoder, RefusesAFrameLargerThanTheMaximumMidStream) {
  VAPIPE_REQUIRE_FILE(test::vtest_avi());
  const auto dir = vapipe::test::scratch_dir();
  const auto encode = [&](const char* filter, const char* name) {
    return test::run_command(
        fmt::format("ffmpeg -nostdin -v error -y -i {} -frames:v 5 {} -an -c:v libx264 -preset ultrafast "
                    "-bsf:v h264_mp4toannexb -f h264 {}",
                    test::quoted(test::vtest_avi()), filter, test::quoted(dir / name)));
  };
  ASSERT_TRUE(encode("-vf scale=320:240", "small.h264"));
  ASSERT_TRUE(encode("", "big.h264"));
  ASSERT_TRUE(test::run_command(fmt::format("cat {} {} > {}", test::quoted(dir / "small.h264"),
                                            test::quoted(dir / "big.h264"), test::quoted(dir / "sb.h264"))));
  VideoSource source((dir / "sb.h264").string());
  // The probe looks ahead and reports the larger size; a live camera announces its first one (SDP).
  auto announced = copy_codec_parameters(source.codec_parameters());
  announced->width = 320;
  announced->height = 240;
  VideoDecoder decoder(*announced, {.max_width = 640, .max_height = 480}, "cam1");
  auto packet = make_packet();
  auto frame = make_frame();
  int small_frames = 0;
  const std::string error = error_of([&] {
    while (source.read(*packet)) {
      while (decoder.send(packet.get()) == DecodeStatus::kAgain) {
        while (decoder.receive(*frame) == DecodeStatus::kOk) ++small_frames;
      }
      while (decoder.receive(*frame) == DecodeStatus::kOk) {
        EXPECT_EQ(frame->width, 320);
        ++small_frames;
      }
    }
  });
  EXPECT_EQ(error, "cam1: a frame is 768x576, larger than the maximum resolution 640x480");
  EXPECT_EQ(small_frames, 5);
}

TEST(FrameView, ViewsYuv420InPlaceAndConvertsOthersToBgr) {
  auto frame = make_frame();
  frame->format = AV_PIX_FMT_YUV420P;
  frame->width = 33;
  frame->height = 17;
  ASSERT_EQ(av_frame_get_buffer(frame.get(), 0), 0);
  const auto view = direct_view(*frame);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->format, vision::PixelFormat::kI420);
  EXPECT_EQ(view->planes[0], frame->data[0]);  // no copy
  EXPECT_EQ(view->planes[2], frame->data[2]);
  EXPECT_EQ(view->strides[1], frame->linesize[1]);

  auto nv12 = make_frame();
  nv12->format = AV_PIX_FMT_NV12;
  nv12->width = 32;
  nv12->height = 16;
  ASSERT_EQ(av_frame_get_buffer(nv12.get(), 0), 0);
  EXPECT_EQ(direct_view(*nv12)->format, vision::PixelFormat::kNv12);
  EXPECT_EQ(direct_view(*nv12)->planes[1], nv12->data[1]);

  // RGB24 has no direct view: swscale converts it to BGR (channel order swapped).
  auto rgb = make_frame();
  rgb->format = AV_PIX_FMT_RGB24;
  rgb->width = 8;
  rgb->height = 4;
  ASSERT_EQ(av_frame_get_buffer(rgb.get(), 0), 0);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 8; ++x) {
      std::uint8_t* pixel = rgb->data[0] + y * rgb->linesize[0] + x * 3;
      pixel[0] = 200, pixel[1] = 100, pixel[2] = 10;
    }
  }
  EXPECT_FALSE(direct_view(*rgb).has_value());
  FrameViewer viewer;
  const auto bgr = viewer.view(*rgb);
  EXPECT_EQ(bgr.format, vision::PixelFormat::kBgr24);
  EXPECT_EQ(bgr.width, 8);
  EXPECT_EQ(bgr.height, 4);
  EXPECT_NEAR(bgr.planes[0][0], 10, 2);
  EXPECT_NEAR(bgr.planes[0][1], 100, 2);
  EXPECT_NEAR(bgr.planes[0][2], 200, 2);
  const std::uint8_t* buffer = bgr.planes[0];
  EXPECT_EQ(viewer.view(*rgb).planes[0], buffer);  // same size and format: the buffer is reused
}

}  // namespace
}  // namespace vapipe::io
