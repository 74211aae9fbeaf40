// Encoder and writer against real FFmpeg tools: files are checked with ffprobe and read back with
// libavformat; pushes go to ffmpeg listening on loopback, started as a child process with a time bound.
#include "io/stream_writer.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "io/sei_codec.hpp"
#include "io/video_encoder.hpp"
#include "support/media.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"

namespace vapipe::io {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using test::Child;
using test::demux;
using test::Demuxed;
using test::free_port;
using test::probe;
using test::Probe;
using test::read_back;
using test::run_capture;

// A raw H.264 elementary stream made from vtest.avi with the ffmpeg CLI (key frame every 25 frames).
// Raw streams carry no timestamps: with B-frames the writer can only number packets in decode order, so
// the live-push tests use a camera-like stream without them.
fs::path make_h264_clip(const fs::path& dir, int frames, bool b_frames = true) {
  const fs::path clip = dir / "clip.h264";
  const std::string command = "ffmpeg -v error -y -i '" + (test::opencv_data_dir() / "vtest.avi").string() +
                              "' -frames:v " + std::to_string(frames) +
                              " -vf scale=384:288 -c:v libx264 -preset veryfast -g 25 -pix_fmt yuv420p " +
                              (b_frames ? "" : "-bf 0 ") + "'" + clip.string() + "' </dev/null";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  return clip;
}

// What the passthrough writes into frame `index`.
std::vector<MetadataBox> boxes_for(int index) {
  std::vector<MetadataBox> boxes;
  for (int i = 0; i < index % 4; ++i) {
    const auto f = static_cast<float>(index * 10 + i);
    boxes.push_back({f, f + 1, f + 20, f + 40, 0.25f + 0.125f * static_cast<float>(i), i, index});
  }
  return boxes;
}

PacketPtr with_sei(SeiInserter& inserter, const AVPacket& source, std::span<const MetadataBox> boxes) {
  const auto bytes = inserter.insert(std::span(source.data, static_cast<std::size_t>(source.size)), boxes);
  PacketPtr packet = make_packet();
  EXPECT_EQ(av_new_packet(packet.get(), static_cast<int>(bytes.size())), 0);
  std::memcpy(packet->data, bytes.data(), bytes.size());
  av_packet_copy_props(packet.get(), &source);
  return packet;
}

// Synthetic BGR frames with motion (a bright square moving over a gradient).
std::vector<std::uint8_t> bgr_frame(int width, int height, int index) {
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const bool inside = x >= index * 4 && x < index * 4 + 40 && y >= 60 && y < 100;
      std::uint8_t* p = &pixels[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                                 static_cast<std::size_t>(x)) *
                                3];
      p[0] = static_cast<std::uint8_t>(inside ? 255 : x);
      p[1] = static_cast<std::uint8_t>(inside ? 255 : y);
      p[2] = static_cast<std::uint8_t>(inside ? 255 : (x + y) / 2);
    }
  }
  return pixels;
}

void drain(VideoEncoder& encoder, StreamWriter& writer, AVPacket& packet) {
  while (encoder.receive(packet) == EncodeStatus::kOk) writer.write(packet);
}

void encode_bgr(const fs::path& output, int frames) {
  constexpr int kWidth = 320;
  constexpr int kHeight = 240;
  EncoderOptions options;
  options.width = kWidth;
  options.height = kHeight;
  options.gop_size = 25;
  options.global_header = StreamWriter::needs_global_header(output.string());
  VideoEncoder encoder(options);
  AVCodecParameters* parameters = avcodec_parameters_alloc();
  ASSERT_GE(avcodec_parameters_from_context(parameters, &encoder.context()), 0);
  StreamWriter writer(output.string(), *parameters, encoder.time_base(), {25, 1});
  avcodec_parameters_free(&parameters);
  PacketPtr packet = make_packet();
  for (int i = 0; i < frames; ++i) {
    const auto pixels = bgr_frame(kWidth, kHeight, i);
    EncoderFrame frame;
    frame.width = kWidth;
    frame.height = kHeight;
    frame.planes[0] = pixels.data();
    frame.strides[0] = kWidth * 3;
    ASSERT_EQ(encoder.send(&frame), EncodeStatus::kOk);
    drain(encoder, writer, *packet);
  }
  encoder.send(nullptr);
  drain(encoder, writer, *packet);
  writer.close();
  EXPECT_EQ(writer.stats().packets_written, frames);
  EXPECT_EQ(writer.stats().packets_dropped, 0);
}

TEST(VideoEncoder, FiftyBgrFramesBecomeAnH264Mp4) {
  const fs::path output = test::scratch_dir() / "encoded.mp4";
  encode_bgr(output, 50);
  const Probe result = probe(output);
  EXPECT_EQ(result.codec, "h264");
  EXPECT_EQ(result.frames, 50);
}

TEST(VideoEncoder, Nv12FramesBecomeARawH264Stream) {
  const fs::path output = test::scratch_dir() / "encoded.h264";
  constexpr int kWidth = 160;
  constexpr int kHeight = 96;
  EncoderOptions options;
  options.width = kWidth;
  options.height = kHeight;
  options.bitrate_kbps = 300;
  VideoEncoder encoder(options);
  AVCodecParameters* parameters = avcodec_parameters_alloc();
  ASSERT_GE(avcodec_parameters_from_context(parameters, &encoder.context()), 0);
  StreamWriter writer(output.string(), *parameters, encoder.time_base(), {25, 1});
  avcodec_parameters_free(&parameters);
  std::vector<std::uint8_t> y(kWidth * kHeight), uv(kWidth * kHeight / 2, 128);
  PacketPtr packet = make_packet();
  for (int i = 0; i < 12; ++i) {
    for (std::size_t p = 0; p < y.size(); ++p)
      y[p] = static_cast<std::uint8_t>(p + static_cast<std::size_t>(i) * 7);
    EncoderFrame frame;
    frame.format = EncoderPixelFormat::kNv12;
    frame.width = kWidth;
    frame.height = kHeight;
    frame.planes[0] = y.data();
    frame.planes[1] = uv.data();
    frame.strides[0] = kWidth;
    frame.strides[1] = kWidth;
    ASSERT_EQ(encoder.send(&frame), EncodeStatus::kOk);
    drain(encoder, writer, *packet);
  }
  encoder.send(nullptr);
  drain(encoder, writer, *packet);
  writer.close();
  const Probe result = probe(output);
  EXPECT_EQ(result.codec, "h264");
  EXPECT_EQ(result.frames, 12);
}

// NAL unit types (H.264) of an Annex-B packet, in order.
std::vector<int> nal_types(const AVPacket& packet) {
  std::vector<int> types;
  for (int i = 0; i + 3 < packet.size; ++i) {
    if (packet.data[i] == 0 && packet.data[i + 1] == 0 && packet.data[i + 2] == 1) {
      types.push_back(packet.data[i + 3] & 0x1f);
      i += 3;
    }
  }
  return types;
}

// Live outputs need both: extradata for fMP4/RTSP SDP and SPS/PPS in-band for clients joining later.
TEST(VideoEncoder, GlobalHeaderWithRepeatedHeadersHasSpsInExtradataAndBeforeEveryKeyFrame) {
  for (const bool repeat : {false, true}) {
    EncoderOptions options;
    options.width = 160;
    options.height = 96;
    options.gop_size = 5;
    options.global_header = true;
    options.repeat_headers = repeat;
    VideoEncoder encoder(options);
    EXPECT_GT(encoder.context().extradata_size, 0) << "repeat=" << repeat;
    std::vector<std::uint8_t> bgr = bgr_frame(160, 96, 0);
    PacketPtr packet = make_packet();
    int key_frames = 0, key_frames_with_sps = 0;
    for (int i = 0; i < 15; ++i) {
      EncoderFrame frame;
      frame.width = 160;
      frame.height = 96;
      frame.planes[0] = bgr.data();
      frame.strides[0] = 160 * 3;
      ASSERT_EQ(encoder.send(&frame), EncodeStatus::kOk);
      while (encoder.receive(*packet) == EncodeStatus::kOk) {
        if ((packet->flags & AV_PKT_FLAG_KEY) == 0) continue;
        ++key_frames;
        const auto types = nal_types(*packet);
        if (std::find(types.begin(), types.end(), 7) != types.end()) ++key_frames_with_sps;
      }
    }
    EXPECT_EQ(key_frames, 3) << "repeat=" << repeat;
    EXPECT_EQ(key_frames_with_sps, repeat ? 3 : 0) << "repeat=" << repeat;
  }
}

TEST(VideoEncoder, BadOptionsAndFramesThrow) {
  EncoderOptions options;
  options.width = 321;
  options.height = 240;
  EXPECT_THROW(VideoEncoder{options}, Error);
  options.width = 320;
  options.preset = "no-such-preset";
  EXPECT_THROW(VideoEncoder{options}, Error);
  options.preset = "veryfast";
  VideoEncoder encoder(options);
  EncoderFrame empty;
  EXPECT_THROW(encoder.send(&empty), Error);
}

class Passthrough : public ::testing::TestWithParam<const char*> {};

TEST_P(Passthrough, EveryFrameCarriesItsDetections) {
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "vtest.avi");
  const fs::path dir = test::scratch_dir();
  constexpr int kFrames = 60;
  const Demuxed source = demux(make_h264_clip(dir, kFrames));
  ASSERT_NE(source.codec, nullptr);
  ASSERT_EQ(source.packets.size(), static_cast<std::size_t>(kFrames));

  const fs::path output = dir / (std::string("passthrough") + GetParam());
  {
    SeiInserter inserter(sei_codec_of(*source.codec), framing_of(*source.codec));
    StreamWriter writer(output.string(), *source.codec, source.time_base, source.frame_rate);
    for (int i = 0; i < kFrames; ++i) {
      const auto boxes = boxes_for(i);
      EXPECT_TRUE(writer.write(*with_sei(inserter, *source.packets[static_cast<std::size_t>(i)], boxes)));
    }
  }  // the destructor writes the trailer

  const Probe result = probe(output);
  EXPECT_EQ(result.codec, "h264");
  EXPECT_EQ(result.frames, kFrames);
  const auto metadata = read_back(output);
  ASSERT_EQ(metadata.size(), static_cast<std::size_t>(kFrames));
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_TRUE(metadata[static_cast<std::size_t>(i)].has_value()) << "frame " << i;
    EXPECT_EQ(*metadata[static_cast<std::size_t>(i)], boxes_for(i)) << "frame " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Containers, Passthrough, ::testing::Values(".h264", ".mp4", ".mkv", ".ts"),
                         [](const auto& param_info) { return std::string(param_info.param + 1); });

// Feeds the clip (looped, SEI per frame) until `done` says so or `timeout` passes; returns the boxes
// written, in order.
template <typename Done>
std::vector<std::vector<MetadataBox>> push_until(StreamWriter& writer, const Demuxed& source, Done done,
                                                 std::chrono::milliseconds timeout) {
  SeiInserter inserter(sei_codec_of(*source.codec), framing_of(*source.codec));
  std::vector<std::vector<MetadataBox>> written;
  const auto deadline = Clock::now() + timeout;
  for (int sent = 0; !done() && Clock::now() < deadline; ++sent) {
    const auto& packet = *source.packets[static_cast<std::size_t>(sent) % source.packets.size()];
    const auto boxes = boxes_for(sent);
    const auto start = Clock::now();
    if (writer.write(*with_sei(inserter, packet, boxes))) written.push_back(boxes);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(4)) << "write blocked";
    if (writer.stats().packets_written == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return written;
}

TEST(StreamWriter, RtspPushReachesAListeningServer) {
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "vtest.avi");
  const fs::path dir = test::scratch_dir();
  const Demuxed source = demux(make_h264_clip(dir, 50, false));
  ASSERT_NE(source.codec, nullptr);
  const int port = free_port();
  const std::string url = "rtsp://127.0.0.1:" + std::to_string(port) + "/live";
  const fs::path received = dir / "received.mp4";
  Child server({"ffmpeg", "-v", "error", "-y", "-rtsp_flags", "listen", "-i", url, "-c", "copy", "-t", "10",
                received.string()},
               dir / "ffmpeg.log");

  StreamWriterOptions options;
  options.reconnect.initial_delay = std::chrono::milliseconds(50);
  options.reconnect.max_delay = std::chrono::milliseconds(200);
  std::vector<std::vector<MetadataBox>> written;
  {
    StreamWriter writer(url, *source.codec, source.time_base, source.frame_rate, options);
    // Until ffmpeg listens, opens are refused and retried at the next key frames.
    written = push_until(
        writer, source, [&] { return writer.stats().packets_written >= 100; }, std::chrono::seconds(20));
    EXPECT_EQ(writer.stats().packets_written, 100);
    EXPECT_EQ(writer.stats().opens, 1);
  }  // TEARDOWN: ffmpeg finishes the file
  ASSERT_TRUE(server.wait_for(std::chrono::seconds(20))) << "ffmpeg did not finish";

  const Probe result = probe(received);
  EXPECT_EQ(result.codec, "h264");
  EXPECT_EQ(result.frames, 100);
  const auto metadata = read_back(received);
  ASSERT_EQ(metadata.size(), written.size());
  for (std::size_t i = 0; i < metadata.size(); ++i) {
    ASSERT_TRUE(metadata[i].has_value()) << "frame " << i;
    EXPECT_EQ(*metadata[i], written[i]) << "frame " << i;
  }
}

TEST(StreamWriter, DeadDestinationsFailSoftlyAndRecover) {
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "vtest.avi");
  const fs::path dir = test::scratch_dir();
  const Demuxed source = demux(make_h264_clip(dir, 50));
  ASSERT_NE(source.codec, nullptr);
  StreamWriterOptions options;
  options.reconnect.initial_delay = std::chrono::milliseconds(50);
  options.reconnect.max_delay = std::chrono::milliseconds(200);

  // Nothing listens: every open is refused at once, nothing throws, drops are counted.
  for (const std::string scheme : {"rtsp", "tcp", "rtmp"}) {
    const std::string url = scheme + "://127.0.0.1:" + std::to_string(free_port()) + "/live";
    StreamWriter writer(url, *source.codec, source.time_base, source.frame_rate, options);
    std::size_t count = 0;
    push_until(
        writer, source, [&] { return ++count > 150; }, std::chrono::seconds(10));
    EXPECT_EQ(writer.stats().packets_written, 0) << url;
    EXPECT_EQ(writer.stats().packets_dropped, 150) << url;
    EXPECT_GE(writer.stats().open_failures, 2) << url;  // retried at later key frames
    EXPECT_EQ(writer.state(), ConnectionState::kWaiting) << url;
  }
  {
    StreamWriter writer((dir / "no-such-dir" / "out.mp4").string(), *source.codec, source.time_base,
                        source.frame_rate, options);
    EXPECT_FALSE(writer.write(*source.packets[0]));
    EXPECT_EQ(writer.stats().open_failures, 1);
  }

  // A server that appears later gets the stream from the next key frame on ; the server leaves by
  // itself after 4 s of stream (-t 4), and the writer notices. How many packets the writer got into the
  // socket before ffmpeg closed it depends on both processes' speed (a sanitizer build under load wrote 82
  // before the reset), so the check is the one that cannot depend on timing: every frame the server kept
  // was counted as written, and the server kept at least one second of stream (below).
  const int port = free_port();
  const std::string url = "tcp://127.0.0.1:" + std::to_string(port);
  StreamWriter writer(url, *source.codec, source.time_base, source.frame_rate, options);
  std::size_t count = 0;
  push_until(
      writer, source, [&] { return ++count > 60; }, std::chrono::seconds(10));
  EXPECT_EQ(writer.stats().packets_written, 0);
  // tcp:// carries the raw H.264 stream (as sophon-pipeline's outputs): read and kept as such.
  const fs::path received = dir / "received.h264";
  Child server({"ffmpeg", "-v", "error", "-y", "-f", "h264", "-i", url + "?listen=1&listen_timeout=20000",
                "-t", "4", "-c", "copy", "-f", "h264", received.string()},
               dir / "ffmpeg.log");
  const auto written = push_until(
      writer, source,
      [&] { return writer.stats().packets_written >= 200 || writer.stats().write_failures > 0; },
      std::chrono::seconds(20));
  const std::int64_t written_to_first_server = writer.stats().packets_written;
  EXPECT_GT(written_to_first_server, 0);
  EXPECT_EQ(writer.stats().opens, 1);
  {
    // The server goes away mid-stream: writes start failing (counted, nothing thrown), and a new server is
    // fed again from a key frame.
    ASSERT_TRUE(server.wait_for(std::chrono::seconds(20))) << "ffmpeg did not stop after -t 4";
    push_until(
        writer, source, [&] { return writer.stats().write_failures >= 1; }, std::chrono::seconds(20));
    EXPECT_GE(writer.stats().write_failures, 1);
    const fs::path again = dir / "again.h264";
    Child restarted({"ffmpeg", "-v", "error", "-y", "-f", "h264", "-i",
                     url + "?listen=1&listen_timeout=20000", "-c", "copy", "-f", "h264", again.string()},
                    dir / "ffmpeg-again.log");
    const std::int64_t before = writer.stats().packets_written;
    push_until(
        writer, source, [&] { return writer.stats().packets_written >= before + 50; },
        std::chrono::seconds(20));
    EXPECT_EQ(writer.stats().opens, 2);
    writer.close();
    ASSERT_TRUE(restarted.wait_for(std::chrono::seconds(20))) << "ffmpeg did not finish";
    const Probe result = probe(again);
    EXPECT_EQ(result.codec, "h264");
    EXPECT_EQ(result.frames, 50);
  }

  const Probe result = probe(received);
  EXPECT_EQ(result.codec, "h264");
  EXPECT_GE(result.frames, 25);  // ffmpeg -t counts from its own start
  EXPECT_GE(written_to_first_server, result.frames);
  const auto metadata = read_back(received);
  ASSERT_EQ(metadata.size(), static_cast<std::size_t>(result.frames));
  for (std::size_t i = 0; i < metadata.size() && i < written.size(); ++i) {
    ASSERT_TRUE(metadata[i].has_value()) << "frame " << i;
    EXPECT_EQ(*metadata[i], written[i]) << "frame " << i;
  }
}

TEST(StreamWriter, UnknownContainerThrowsAtConstruction) {
  AVCodecParameters* parameters = avcodec_parameters_alloc();
  parameters->codec_type = AVMEDIA_TYPE_VIDEO;
  parameters->codec_id = AV_CODEC_ID_H264;
  EXPECT_THROW(StreamWriter("out.unknown-extension", *parameters, {1, 25}), Error);
  EXPECT_EQ(StreamWriter::guess_format("rtsp://h:8554/a"), "rtsp");
  EXPECT_EQ(StreamWriter::guess_format("rtmp://h/app/a"), "flv");
  // As sophon-pipeline: the elementary stream itself over UDP and TCP.
  EXPECT_EQ(StreamWriter::guess_format("udp://127.0.0.1:5000"), "h264");
  EXPECT_EQ(StreamWriter::guess_format("tcp://127.0.0.1:5000", AV_CODEC_ID_HEVC), "hevc");
  // A raw stream of the other codec is refused at once.
  parameters->codec_id = AV_CODEC_ID_HEVC;
  EXPECT_THROW(StreamWriter("out.h264", *parameters, {1, 25}), Error);
  parameters->codec_id = AV_CODEC_ID_H264;
  EXPECT_EQ(StreamWriter::guess_format("a/b.H265"), "hevc");
  EXPECT_TRUE(StreamWriter::needs_global_header("x.mp4"));
  EXPECT_FALSE(StreamWriter::needs_global_header("x.h264"));
  avcodec_parameters_free(&parameters);
}

}  // namespace
}  // namespace vapipe::io
