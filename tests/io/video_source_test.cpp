#include "io/video_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/test_clips.hpp"

namespace vapipe::io {
namespace {

SourceOptions options_with(bool loop, bool pace, int timeout_ms = 10000, std::string rtsp_transport = "tcp") {
  SourceOptions options;
  options.loop = loop;
  options.pace = pace;
  options.timeout_ms = timeout_ms;
  options.rtsp_transport = std::move(rtsp_transport);
  return options;
}

using Clock = std::chrono::steady_clock;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return {};
}

TEST(VideoSource, MissingFileErrorNamesThePath) {
  const std::string path = "/nonexistent/dir/clip.mp4";
  const auto message = error_of([&] { VideoSource source(path); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST(VideoSource, TruncatedMp4OpensOrFailsNamingTheFile) {
  const auto clip = test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const auto truncated = vapipe::test::scratch_dir() / "truncated.mp4";
  std::ifstream input(clip, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(input)), std::istreambuf_iterator<char>());
  std::ofstream(truncated, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
  try {
    VideoSource source(truncated.string());
    const auto result = test::decode_all(source);
    EXPECT_LT(result.frames, 60);
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(truncated.string()), std::string::npos) << error.what();
  }
}

TEST(VideoSource, NotAVideoFailsNamingTheFile) {
  const auto path = vapipe::test::scratch_dir() / "notes.txt";
  std::ofstream(path) << "hello, not a video";
  const auto message = error_of([&] { VideoSource source(path.string()); });
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
}

TEST(VideoSource, ReportsStreamParameters) {
  const auto clip = test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  VideoSource source(clip.string());
  EXPECT_EQ(source.info().codec_id, AV_CODEC_ID_H264);
  EXPECT_EQ(source.info().width, 768);
  EXPECT_EQ(source.info().height, 576);
  EXPECT_EQ(av_cmp_q(source.info().frame_rate, AVRational{10, 1}), 0);
  EXPECT_GT(source.info().time_base.den, 0);
  EXPECT_EQ(source.codec_parameters().codec_id, AV_CODEC_ID_H264);
  EXPECT_GT(source.codec_parameters().extradata_size, 0);  // avcC for a decoder or a passthrough muxer
  EXPECT_FALSE(source.is_live());
}

TEST(VideoSource, UnpacedFileWithoutLoopEnds) {
  const auto clip = test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  VideoSource source(clip.string());
  auto packet = make_packet();
  int packets = 0;
  const auto start = Clock::now();
  while (source.read(*packet)) ++packets;
  EXPECT_EQ(packets, 60);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));  // 6 s of video, not paced
  EXPECT_FALSE(source.read(*packet));
}

// A 2 s clip at 25 fps, looped and paced for ~3 s: about 75 packets, pts always increasing.
TEST(VideoSource, LoopsAndPacesAFileAtItsFrameRate) {
  const auto clip = test::make_clip("two-seconds.mp4", "-an -r 25 -c:v libx264 -preset ultrafast", 50);
  VAPIPE_REQUIRE_CLIP(clip, "2 s MP4");
  VideoSource source(clip.string(), options_with(true, true));
  auto packet = make_packet();
  std::vector<std::int64_t> pts;
  const auto start = Clock::now();
  while (Clock::now() - start < std::chrono::milliseconds(3000)) {
    ASSERT_TRUE(source.read(*packet));
    pts.push_back(packet->pts);
  }
  EXPECT_GE(source.loops(), 1);
  EXPECT_GE(pts.size(), 60u);
  EXPECT_LE(pts.size(), 90u);
  // pts are in presentation order only after decoding; sorted they must be strictly increasing with no
  // repeats across the loop boundary.
  std::sort(pts.begin(), pts.end());
  EXPECT_EQ(std::adjacent_find(pts.begin(), pts.end()), pts.end()) << "a pts repeats across the loop";
  const auto per_frame = av_rescale_q(1, AVRational{1, 25}, source.info().time_base);
  EXPECT_NEAR(static_cast<double>(pts.back() - pts.front()),
              static_cast<double>(per_frame * (pts.size() - 1)), static_cast<double>(per_frame * 4));
}

TEST(VideoSource, LoopsARawH264Stream) {
  const auto clip = test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  VideoSource source(clip.string(), options_with(true, false));
  const auto result = test::decode_all(source, 150);
  EXPECT_GE(result.frames, 150);
  EXPECT_EQ(result.errors, 0);
  EXPECT_GE(source.loops(), 2);
}

// A raw H.264 stream whose last NAL unit never ends (no further start code for 65 MiB) would grow one
// packet without bound: past kMaxPacketBytes the read fails naming the source and the size.
TEST(VideoSource, PacketLargerThanTheMaximumEndsTheStreamWithAClearError) {
  const auto clip = test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  const auto path = vapipe::test::scratch_dir() / "endless_nal.h264";
  std::filesystem::copy_file(clip, path, std::filesystem::copy_options::overwrite_existing);
  {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    const std::string chunk(1 << 20, '\x5a');
    for (int i = 0; i < (kMaxPacketBytes >> 20) + 1; ++i) out << chunk;
  }
  VideoSource source(path.string());
  auto packet = make_packet();
  long packets = 0;
  try {
    while (source.read(*packet)) ++packets;
    FAIL() << "a packet of more than " << kMaxPacketBytes << " bytes was returned";
  } catch (const Error& error) {
    const std::string text = error.what();
    EXPECT_EQ(text.find(path.string() + ": a packet of "), 0U) << text;
    EXPECT_NE(text.find("bytes is larger than the maximum (67108864 bytes)"), std::string::npos) << text;
  }
  EXPECT_GE(packets, 59);  // the clip's frames before the endless one all came through
  std::filesystem::remove(path);
}

TEST(VideoSource, ReadsAFolderOfImagesInNameOrder) {
  VAPIPE_REQUIRE_FILE(test::vtest_avi());
  const auto dir = vapipe::test::scratch_dir() / "images";
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(
      test::run_command(fmt::format("ffmpeg -nostdin -v error -y -i {} -frames:v 7 {}",
                                    test::quoted(test::vtest_avi()), test::quoted(dir / "frame_%03d.jpg"))));
  VideoSource source(dir.string());
  EXPECT_EQ(source.info().width, 768);
  const auto result = test::decode_all(source);
  EXPECT_EQ(result.frames, 7);
  EXPECT_TRUE(result.first_frame_varies);
  const auto empty = vapipe::test::scratch_dir() / "empty";
  std::filesystem::create_directories(empty);
  EXPECT_NE(error_of([&] { VideoSource empty_source(empty.string()); }).find(empty.string()),
            std::string::npos);
}

TEST(VideoSource, ConnectionRefusedFailsWithinTheTimeout) {
  const auto start = Clock::now();
  const auto message =
      error_of([] { VideoSource source("rtsp://127.0.0.1:1/none", options_with(false, false, 2000)); });
  EXPECT_NE(message.find("rtsp://127.0.0.1:1/none"), std::string::npos) << message;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(VideoSource, RejectsAnUnknownRtspTransport) {
  const auto message =
      error_of([] { VideoSource source("rtsp://127.0.0.1:1/x", options_with(false, false, 2000, "quic")); });
  EXPECT_NE(message.find("rtsp_transport"), std::string::npos) << message;
}

// A TCP server that accepts connections (the kernel completes the handshake) but never answers: the open
// must give up at the timeout instead of hanging, and name the URL. For RTSP, issue 17: the message was
// FFmpeg's "Invalid data found when processing input"; it says what happened, where, and for how long.
TEST(VideoSource, SilentServerTimesOut) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);
  for (const char* scheme : {"http", "rtsp"}) {
    const std::string url = fmt::format("{}://127.0.0.1:{}/stream", scheme, port);
    const auto start = Clock::now();
    const auto message = error_of([&] { VideoSource source(url, options_with(false, false, 1000)); });
    EXPECT_NE(message.find(url), std::string::npos) << message;
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(4)) << message;
    if (std::string(scheme) == "rtsp") {
      EXPECT_NE(message.find(fmt::format("no RTSP reply from 127.0.0.1:{} within 1 s", port)),
                std::string::npos)
          << message;
    }
  }
  // The password stays out of it.
  const std::string secret = fmt::format("rtsp://user:hunter2@127.0.0.1:{}/cam", port);
  const auto message = error_of([&] { VideoSource source(secret, options_with(false, false, 500)); });
  EXPECT_EQ(message.find("hunter2"), std::string::npos) << message;
  EXPECT_NE(message.find(fmt::format("no RTSP reply from 127.0.0.1:{} within 0.5 s", port)),
            std::string::npos)
      << message;
  close(listener);
}

// Issue 17: the I/O deadline armed for network sources also fired for local files when the CPU was
// starved (256 channels of one file), and its AVERROR_EXIT stayed stuck ("read failed: Immediate exit
// requested"). Files have no deadline: a 1 ms timeout, far shorter than probing 60 frames takes, changes
// nothing, and every packet arrives.
TEST(VideoSource, ALocalFileHasNoDeadlineAndLosesNothing) {
  const auto clip = test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  auto options = options_with(false, false, 1);
  options.format_options = {{"analyzeduration", "100000000"}, {"probesize", "100000000"}};
  VideoSource source(clip.string(), options);
  const auto decoded = test::decode_all(source);
  EXPECT_EQ(decoded.frames, test::ffprobe_frame_count(clip));
  EXPECT_EQ(decoded.errors, 0);
}

// A FIFO made in the test's scratch folder (removed with it).
std::filesystem::path make_fifo(const std::string& name) {
  const auto path = vapipe::test::scratch_dir() / name;
  std::filesystem::remove(path);
  if (::mkfifo(path.c_str(), 0600) != 0) return {};
  return path;
}

// Opens `path` in a thread and waits at most `limit` for the constructor to return or throw. On a hang
// (the bug) it unblocks the open by writing to the FIFO itself, so the test fails instead of hanging.
std::string open_error_within(const std::filesystem::path& path, const SourceOptions& options,
                              std::chrono::seconds limit, double* seconds) {
  std::promise<std::string> result;
  auto future = result.get_future();
  const auto started = Clock::now();
  std::thread opener(
      [&] { result.set_value(error_of([&] { VideoSource source(path.string(), options); })); });
  if (future.wait_for(limit) != std::future_status::ready) {
    const int fd = ::open(path.c_str(), O_WRONLY);  // a writer that closes at once: the open returns
    if (fd >= 0) ::close(fd);
    opener.join();
    ADD_FAILURE() << path << ": the open did not return within " << limit.count() << " s";
    return future.get();
  }
  *seconds = std::chrono::duration<double>(Clock::now() - started).count();
  opener.join();
  return future.get();
}

// Issue 17: a camera address that is a FIFO nobody writes blocked open() forever (no timeout, and the
// drain of the whole run waited for it). The open is bounded by the timeout and says a timeout fired.
TEST(VideoSource, AFifoNobodyWritesTimesOutNamingTheTimeout) {
  const auto fifo = make_fifo("silent.fifo");
  ASSERT_FALSE(fifo.empty()) << "mkfifo failed";
  double seconds = 0;
  const std::string error =
      open_error_within(fifo, options_with(false, false, 300), std::chrono::seconds(20), &seconds);
  EXPECT_NE(error.find("silent.fifo: open timed out"), std::string::npos) << error;
  EXPECT_NE(error.find("300 ms"), std::string::npos) << error;
  EXPECT_LT(seconds, 10.0);
}

// The owner's stop flag ends an open that is still waiting (the drain of `vapipe run`), long before the
// timeout.
TEST(VideoSource, TheStopFlagEndsAnOpenWaitingForAFifoWriter) {
  const auto fifo = make_fifo("stopped.fifo");
  ASSERT_FALSE(fifo.empty()) << "mkfifo failed";
  std::atomic<bool> stop{false};
  auto options = options_with(false, false, 600'000);
  options.stop = &stop;
  std::thread stopper([&] {
    // Before or during the open, the flag must end it: the pause only makes "during" the likely case.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
  });
  double seconds = 0;
  const std::string error = open_error_within(fifo, options, std::chrono::seconds(20), &seconds);
  stopper.join();
  EXPECT_FALSE(error.empty());
  EXPECT_LT(seconds, 10.0) << "the stop flag did not end the open";
}

// A FIFO another process writes (the normal use) is read to its end, every frame.
TEST(VideoSource, AFifoWithAWriterIsReadToItsEnd) {
  const auto clip = test::h264_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264");
  const auto fifo = make_fifo("fed.fifo");
  ASSERT_FALSE(fifo.empty()) << "mkfifo failed";
  std::thread writer([&] {
    test::run_command(fmt::format("sh -c \"cat {} > {}\"", test::quoted(clip), test::quoted(fifo)), 60);
  });
  long frames = -1;
  const std::string error = error_of([&] {
    VideoSource source(fifo.string(), options_with(false, false, 20000));
    frames = test::decode_all(source).frames;
  });
  writer.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(frames, test::ffprobe_frame_count(clip));
}

}  // namespace
}  // namespace vapipe::io
