// Fragmented MP4 for the web viewer, checked with real FFmpeg tools: what a client receives (the init
// segment, then fragments from a key frame on) must be a file ffprobe decodes completely, with the
// presentation times the muxer reported.
#include "io/fmp4_muxer.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "io/test_clips.hpp"
#include "support/media.hpp"
#include "support/process.hpp"

namespace vapipe::io {
namespace {

namespace fs = std::filesystem;
using test::clips_dir;
using test::make_clip;
using vapipe::test::ffprobe_frame_times;

struct Muxed {
  std::string init;
  std::string codec;
  std::vector<Fmp4Fragment> fragments;
};

Muxed mux_all(const vapipe::test::Demuxed& demuxed, const AVCodecParameters& parameters) {
  Fmp4Muxer muxer(parameters, demuxed.time_base, demuxed.frame_rate, "test");
  Muxed result;
  for (const auto& packet : demuxed.packets) {
    if (auto fragment = muxer.write(*packet)) result.fragments.push_back(std::move(*fragment));
  }
  result.init = muxer.init_segment();
  result.codec = muxer.codec_string();
  return result;
}

// What a client that starts at fragment `first` receives, as a file.
fs::path client_file(const Muxed& muxed, std::size_t first, const std::string& name) {
  const fs::path path = clips_dir() / name;
  std::ofstream out(path, std::ios::binary);
  out << muxed.init;
  for (std::size_t i = first; i < muxed.fragments.size(); ++i) out << muxed.fragments[i].bytes;
  return path;
}

TEST(Fmp4Muxer, BFramesPlayWithTheReportedPresentationTimes) {
  const fs::path clip = make_clip("bframes.mp4", "-an -c:v libx264 -preset fast -bf 2 -g 20");
  VAPIPE_REQUIRE_CLIP(clip, "H.264 with B-frames");
  const auto demuxed = vapipe::test::demux(clip);
  ASSERT_NE(demuxed.codec, nullptr);
  const Muxed muxed = mux_all(demuxed, *demuxed.codec);

  ASSERT_EQ(muxed.fragments.size(), 60u);  // one per frame
  EXPECT_TRUE(muxed.fragments.front().key);
  EXPECT_EQ(std::count_if(muxed.fragments.begin(), muxed.fragments.end(), [](auto& f) { return f.key; }), 3);
  EXPECT_EQ(muxed.codec.rfind("avc1.64", 0), 0u) << muxed.codec;  // High profile, from the avcC record

  const fs::path file = client_file(muxed, 0, "all.mp4");
  const auto probed = vapipe::test::probe(file);
  EXPECT_EQ(probed.codec, "h264");
  EXPECT_EQ(probed.frames, 60);
  // The boxes of a frame are shown at the time its fragment was reported at: it must be where a player
  // presents that frame.
  std::vector<double> reported;
  for (const auto& f : muxed.fragments) reported.push_back(f.media_time_s);
  std::sort(reported.begin(), reported.end());
  const auto played = ffprobe_frame_times(file);
  ASSERT_EQ(played.size(), reported.size());
  for (std::size_t i = 0; i < played.size(); ++i) EXPECT_NEAR(played[i], reported[i], 1e-3) << "frame " << i;
}

TEST(Fmp4Muxer, AClientJoiningAtALaterKeyFrameDecodesEverythingFromThere) {
  const fs::path clip = make_clip("gop12.mp4", "-an -c:v libx264 -preset ultrafast -g 12");
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  const auto demuxed = vapipe::test::demux(clip);
  ASSERT_NE(demuxed.codec, nullptr);
  const Muxed muxed = mux_all(demuxed, *demuxed.codec);
  ASSERT_EQ(muxed.fragments.size(), 60u);
  ASSERT_TRUE(muxed.fragments[12].key);
  ASSERT_FALSE(muxed.fragments[13].key);
  const auto probed = vapipe::test::probe(client_file(muxed, 12, "joined.mp4"));
  EXPECT_EQ(probed.frames, 48);
  const auto played = ffprobe_frame_times(client_file(muxed, 12, "joined.mp4"));
  ASSERT_FALSE(played.empty());
  EXPECT_NEAR(played.front(), muxed.fragments[12].media_time_s, 1e-3);  // the timeline is not restarted
}

TEST(Fmp4Muxer, AnnexBWithoutExtradataTakesItFromTheFirstKeyFrame) {
  const fs::path clip = test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "Annex-B H.264");
  const auto demuxed = vapipe::test::demux(clip);
  ASSERT_NE(demuxed.codec, nullptr);
  CodecParametersPtr bare = copy_codec_parameters(*demuxed.codec);
  av_freep(&bare->extradata);
  bare->extradata_size = 0;
  // Raw H.264 has no timestamps of its own beyond the demuxer's guess: number the frames.
  Fmp4Muxer muxer(*bare, AVRational{1, 25}, AVRational{25, 1}, "annexb");
  EXPECT_TRUE(muxer.init_segment().empty());
  std::vector<Fmp4Fragment> fragments;
  std::int64_t n = 0;
  for (const auto& packet : demuxed.packets) {
    PacketPtr copy = make_packet();
    ASSERT_EQ(av_packet_ref(copy.get(), packet.get()), 0);
    copy->pts = copy->dts = n++;
    copy->duration = 0;  // the demuxer's, in its own time base
    if (auto fragment = muxer.write(*copy)) fragments.push_back(std::move(*fragment));
  }
  ASSERT_FALSE(muxer.init_segment().empty());
  EXPECT_EQ(muxer.codec_string().rfind("avc1.", 0), 0u);
  Muxed muxed{muxer.init_segment(), muxer.codec_string(), std::move(fragments)};
  const auto probed = vapipe::test::probe(client_file(muxed, 0, "annexb.mp4"));
  EXPECT_EQ(probed.codec, "h264");
  EXPECT_EQ(probed.frames, 60);
}

// The viewer skips a stalled client (or a full queue) to the next key frame: the muxer then sees a gap,
// which must not shift the timeline of what follows.
TEST(Fmp4Muxer, AGapInTheInputKeepsTheTimeline) {
  const fs::path clip = make_clip("gop20.mp4", "-an -c:v libx264 -preset ultrafast -g 20");
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  const auto demuxed = vapipe::test::demux(clip);
  ASSERT_NE(demuxed.codec, nullptr);
  Fmp4Muxer muxer(*demuxed.codec, demuxed.time_base, demuxed.frame_rate, "gap");
  Muxed muxed;
  for (std::size_t i = 0; i < demuxed.packets.size(); ++i) {
    if (i >= 20 && i < 40) continue;
    if (auto fragment = muxer.write(*demuxed.packets[i])) muxed.fragments.push_back(std::move(*fragment));
  }
  muxed.init = muxer.init_segment();
  ASSERT_EQ(muxed.fragments.size(), 40u);
  const fs::path file = client_file(muxed, 0, "gap.mp4");
  EXPECT_EQ(vapipe::test::probe(file).frames, 40);
  const auto played = ffprobe_frame_times(file);
  ASSERT_EQ(played.size(), 40u);
  EXPECT_NEAR(played[20], muxed.fragments[20].media_time_s, 1e-3);
  EXPECT_NEAR(played[39], muxed.fragments[39].media_time_s, 1e-3);
  EXPECT_NEAR(muxed.fragments[20].media_time_s - muxed.fragments[19].media_time_s,
              21 * av_q2d(av_inv_q(demuxed.frame_rate)), 1e-3);
}

TEST(Fmp4Muxer, OtherCodecsAreRefusedByName) {
  CodecParametersPtr mpeg4(avcodec_parameters_alloc());
  mpeg4->codec_type = AVMEDIA_TYPE_VIDEO;
  mpeg4->codec_id = AV_CODEC_ID_MPEG4;
  try {
    Fmp4Muxer muxer(*mpeg4, AVRational{1, 25}, AVRational{25, 1}, "channel 3");
    FAIL() << "mpeg4 accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("channel 3"), std::string::npos) << error.what();
    EXPECT_NE(std::string(error.what()).find("mpeg4"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace vapipe::io
