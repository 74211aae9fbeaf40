// The web viewer's WebSockets against a real HttpServer and a real WebSocket client (Boost.Beast's client
// side) on loopback. A channel is played into the viewer's tap from a real clip, the way a channel's
// output thread does (records, then the packets they belong to); what clients receive is checked with
// ffprobe: fragments from a key frame on that decode completely, boxes' times that are the frames' own,
// JPEG pictures at the configured rate, and a client that stalls costing only itself.
#include "server/viewer.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/test_clips.hpp"
#include "pipeline/pipeline_fixture.hpp"
#include "server/http_client.hpp"
#include "server/http_server.hpp"
#include "server/services.hpp"
#include "support/media.hpp"
#include "support/process.hpp"

namespace vapipe::server {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using vapipe::test::ffprobe_frame_times;

constexpr auto kDeadline = std::chrono::seconds(20);

HttpServerOptions any_port() {
  HttpServerOptions options;
  options.port = 0;
  return options;
}

// A viewer on a started server, and the tap of one channel "det_0".
struct Fixture {
  explicit Fixture(ViewerOptions options = {}) : server(any_port()), viewer(server, options) {
    server.start();
    tap = viewer.tap_factory()(
        pipeline::ChannelInfo{0, "det_0", "det", "clip", pipeline::OutputMode::kPassthrough});
  }
  // Bounded wait for the server thread to register a client (it does so after the handshake answer).
  bool wait_watchers(std::size_t count) {
    const auto deadline = Clock::now() + kDeadline;
    while (viewer.watchers("det_0") != count) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }
  HttpServer server;
  Viewer viewer;
  std::shared_ptr<pipeline::ChannelTap> tap;
};

// Plays `packets` into the tap as the channel's output thread would: each frame's record (pts, a JSON
// line naming its index), then its packet. `loop` rounds shift the timestamps on; `interval` paces it.
// `before_packet(n)` runs before the n-th packet played (from 0), so a test can hold the tap to a reader.
void play(pipeline::ChannelTap& tap, const vapipe::test::Demuxed& clip, std::size_t first, int loops = 1,
          std::chrono::microseconds interval = std::chrono::microseconds(0),
          const std::function<void(int)>& before_packet = {}) {
  const std::int64_t span =
      clip.packets.back()->dts - clip.packets.front()->dts + clip.packets.back()->duration;
  int played = 0;
  for (int loop = 0; loop < loops; ++loop) {
    for (std::size_t i = loop == 0 ? first : 0; i < clip.packets.size(); ++i) {
      if (before_packet) before_packet(played++);
      io::PacketPtr packet = io::make_packet();
      av_packet_ref(packet.get(), clip.packets[i].get());
      packet->pts += loop * span;
      packet->dts += loop * span;
      pipeline::FrameRecord record;
      record.pts = packet->pts;
      record.pts_seconds = static_cast<double>(packet->pts) * av_q2d(clip.time_base);
      const std::string line = json{{"frame", i}, {"pts_time", record.pts_seconds}}.dump();
      tap.frame_done(record, line, nullptr);
      tap.video_packet(*packet);
      if (interval.count() > 0) std::this_thread::sleep_for(interval);
    }
  }
}

vapipe::test::Demuxed clip_with_gop(int gop) {
  const fs::path path = io::test::make_clip(
      fmt::format("gop{}.mp4", gop), fmt::format("-an -c:v libx264 -preset ultrafast -bf 2 -g {}", gop));
  if (path.empty()) return {};
  return vapipe::test::demux(path);
}

TEST(Viewer, AVideoClientGetsTheInitSegmentThenFragmentsFromTheNextKeyFrameWithTheirFramesBoxes) {
  VAPIPE_REQUIRE_FILE(io::test::vtest_avi());
  const auto clip = clip_with_gop(10);
  ASSERT_EQ(clip.packets.size(), 60u);
  Fixture fixture;
  fixture.tap->video_started(*clip.codec, clip.time_base, clip.frame_rate);
  vapipe::test::WebSocketClient client(fixture.server.port(), "/ws/video?channel=det_0");
  ASSERT_TRUE(fixture.wait_watchers(1));
  play(*fixture.tap, clip, 3);  // joins mid-GOP: the first fragment must be the key frame at 10

  const json init = json::parse(client.read());
  ASSERT_TRUE(client.last_was_text());
  EXPECT_EQ(init.at("type"), "init");
  EXPECT_EQ(init.at("codec").get<std::string>().rfind("avc1.", 0), 0u) << init.dump();
  EXPECT_EQ(init.at("width"), 768);
  const std::string init_segment = client.read();
  ASSERT_FALSE(client.last_was_text());
  EXPECT_NE(init_segment.find("moov"), std::string::npos);

  std::string stream = init_segment;
  int fragments = 0;
  std::set<long> frames_with_boxes;
  std::vector<double> box_times;
  while (fragments < 50 || box_times.size() < 50) {
    const std::string message = client.read();
    if (client.last_was_text()) {
      const json frame = json::parse(message);
      ASSERT_EQ(frame.at("type"), "frame");
      frames_with_boxes.insert(frame.at("record").at("frame").get<long>());
      box_times.push_back(frame.at("t").get<double>());
    } else {
      stream += message;
      ++fragments;
    }
  }
  EXPECT_EQ(fragments, 50);
  EXPECT_EQ(*frames_with_boxes.begin(), 10);  // records before the client's first key frame are not sent
  EXPECT_EQ(frames_with_boxes.size(), 50u);
  const fs::path file = io::test::clips_dir() / "viewer-client.mp4";
  std::ofstream(file, std::ios::binary) << stream;
  EXPECT_EQ(vapipe::test::probe(file).frames, 50);
  // Every frame's boxes carry the time at which a player presents that frame.
  auto played = ffprobe_frame_times(file);
  std::sort(box_times.begin(), box_times.end());
  ASSERT_EQ(played.size(), box_times.size());
  for (std::size_t i = 0; i < played.size(); ++i) EXPECT_NEAR(played[i], box_times[i], 1e-3) << i;

  fixture.tap->closed();
  for (;;) {  // what is still queued, then the close notice
    const std::string message = client.read();
    if (client.last_was_text() && json::parse(message).at("type") == "closed") break;
  }
}

TEST(Viewer, JpegClientsGetPicturesAtTheConfiguredRateOnTheVideosClock) {
  VAPIPE_REQUIRE_FILE(io::test::vtest_avi());
  const auto clip = clip_with_gop(10);
  ASSERT_EQ(clip.packets.size(), 60u);
  const double fps = av_q2d(clip.frame_rate);
  ASSERT_GT(fps, 0);
  ViewerOptions options;
  options.jpeg_fps = fps / 2;
  Fixture fixture(options);
  fixture.tap->video_started(*clip.codec, clip.time_base, clip.frame_rate);
  vapipe::test::WebSocketClient client(fixture.server.port(), "/ws/jpeg?channel=det_0");
  ASSERT_TRUE(fixture.wait_watchers(1));
  play(*fixture.tap, clip, 0);

  std::vector<double> times;
  std::string first_jpeg;
  while (times.size() < 28) {
    const std::string message = client.read();
    if (client.last_was_text()) {
      const json control = json::parse(message);
      if (control.at("type") == "hello") {
        EXPECT_EQ(control.at("width"), 768);
      }
      continue;
    }
    ASSERT_GT(message.size(), 8u + 1000u);
    double t = 0;
    std::memcpy(&t, message.data(), sizeof t);
    times.push_back(t);
    if (first_jpeg.empty()) first_jpeg = message.substr(8);
  }
  // The timeline starts at the first packet's dts: the first picture is the B-frame delay later.
  const double first_pts_s =
      static_cast<double>(clip.packets[0]->pts - clip.packets[0]->dts) * av_q2d(clip.time_base);
  EXPECT_NEAR(times.front(), first_pts_s, 1e-6);
  for (std::size_t i = 1; i < times.size(); ++i) EXPECT_NEAR(times[i] - times[i - 1], 2 / fps, 1e-3) << i;
  const fs::path file = io::test::clips_dir() / "viewer.jpg";
  std::ofstream(file, std::ios::binary) << first_jpeg;
  const auto back = vapipe::test::demux(file);
  ASSERT_NE(back.codec, nullptr);
  EXPECT_EQ(back.codec->codec_id, AV_CODEC_ID_MJPEG);
  EXPECT_EQ(back.codec->width, 768);
}

TEST(Viewer, AStalledClientLosesItsOwnFramesAndNobodyElses) {
  VAPIPE_REQUIRE_FILE(io::test::vtest_avi());
  const auto clip = clip_with_gop(10);
  ASSERT_EQ(clip.packets.size(), 60u);
  ViewerOptions options;
  options.stall_bytes = 256 * 1024;
  Fixture fixture(options);
  fixture.tap->video_started(*clip.codec, clip.time_base, clip.frame_rate);
  vapipe::test::WebSocketClient stalled(fixture.server.port(), "/ws/video?channel=det_0");
  stalled.set_receive_buffer(4096);
  vapipe::test::WebSocketClient reader(fixture.server.port(), "/ws/video?channel=det_0");
  ASSERT_TRUE(fixture.wait_watchers(2));

  constexpr int kLoops = 8;
  std::mutex mutex;
  std::condition_variable fragment_read;
  int fragments = 0;
  std::thread reading([&] {
    try {
      for (;;) {
        reader.read();
        if (reader.last_was_text()) continue;
        const std::lock_guard lock(mutex);
        ++fragments;
        fragment_read.notify_all();
      }
    } catch (const std::exception&) {  // closed at the end
    }
  });
  // The reader may trail the tap by a few frames, never by `stall_bytes`: a reader starved of CPU on a
  // loaded machine (CI run under ASan) would otherwise be a stalled client itself and rightly lose frames.
  // It waits on the reader's progress, so only the server holding the reader back slows the loop.
  constexpr int kReaderLead = 4;
  const auto reader_within_lead = [&](int packet) {
    std::unique_lock lock(mutex);
    fragment_read.wait_for(lock, std::chrono::seconds(20),
                           [&] { return fragments >= 1 + packet - kReaderLead; });
  };
  // 200 frames a second: a fast camera; the stalled client must not slow this loop or the reader.
  const auto started = Clock::now();
  play(*fixture.tap, clip, 0, kLoops, std::chrono::microseconds(5000), reader_within_lead);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  fixture.tap->closed();
  reading.join();
  EXPECT_EQ(fragments, 1 + 60 * kLoops);  // the init segment and every frame
  // What the server kept for the stalled client, read at full speed: through the 4 KiB window it took
  // ~110 s (delayed acknowledgements on a window that small), all of it idle time in CI.
  stalled.set_receive_buffer(1 << 20);
  int stalled_fragments = 0;
  try {
    for (;;) {
      stalled.read();
      if (!stalled.last_was_text()) ++stalled_fragments;
    }
  } catch (const std::exception&) {  // closed at the end
  }
  EXPECT_GT(stalled_fragments, 0);
  EXPECT_LT(stalled_fragments, 1 + 60 * kLoops) << "the stalled client lost nothing: it never stalled";
  EXPECT_LT(seconds, 60 * kLoops * 0.005 * 3 + 5) << "the tap calls waited";
}

// The first `binary` binary messages of a socket, and the types of the text messages before them.
struct Received {
  std::vector<std::string> types;
  int binary = 0;
};
Received read_socket(int port, const std::string& target, int binary) {
  vapipe::test::WebSocketClient client(port, target);
  Received received;
  while (received.binary < binary) {
    const std::string message = client.read();  // throws after 20 s without a message
    if (client.last_was_text()) {
      received.types.push_back(json::parse(message).at("type").get<std::string>());
    } else {
      ++received.binary;
    }
  }
  return received;
}

// A whole run (a real Pipeline and its Services) with an elementary-stream file, which has no timestamps,
// and the same video as MP4: both channels' video and JPEG sockets get their stream description, pictures
// and boxes. (The .h264 channel's sockets stayed silent: its packets had no pts.)
TEST(Viewer, ElementaryStreamAndMp4SourcesBothReachVideoAndJpegClients) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const fs::path es =
      io::test::make_clip("viewer.h264", "-an -c:v libx264 -preset ultrafast -bf 0 -g 10 -f h264");
  const fs::path mp4 = io::test::make_clip("viewer.mp4", "-an -c:v libx264 -preset ultrafast -bf 0 -g 10");
  if (es.empty() || mp4.empty()) GTEST_SKIP() << "ffmpeg cannot make the H.264 clips";
  json camera = {{"chan_num", 1}, {"model_names", {"det"}}, {"loop", true}, {"pace", true}};
  json cameras = json::array();
  for (const auto& clip : {es, mp4}) {
    camera["address"] = clip.string();
    cameras.push_back(camera);
  }
  const json config = {{"cards", {{{"devid", 0}, {"cameras", cameras}}}},
                       {"models",
                        {{{"name", "det"},
                          {"path", (vapipe::test::models_dir() / "yolofastestv2.onnx").string()},
                          {"obj_threshold", 0.25},
                          {"nms_threshold", 0.45},
                          {"class_threshold", 0.25},
                          {"skip_frame_num", 2}}}},
                       {"http", {{"port", 0}}}};
  pipeline::Pipeline pipeline(pipeline::parse_config(config.dump(), "test.json"),
                              pipeline::test::quiet_options());
  Services services(pipeline);
  std::thread runner([&] { pipeline.run(); });
  const int port = services.http()->port();
  for (const std::string channel : {"det_0", "det_1"}) {
    SCOPED_TRACE(channel);
    try {
      const Received video = read_socket(port, "/ws/video?channel=" + channel, 4);  // init segment + 3
      ASSERT_FALSE(video.types.empty());
      EXPECT_EQ(video.types.front(), "init");
      const Received jpeg = read_socket(port, "/ws/jpeg?channel=" + channel, 3);
      ASSERT_FALSE(jpeg.types.empty());
      EXPECT_EQ(jpeg.types.front(), "hello");
      EXPECT_NE(std::find(jpeg.types.begin(), jpeg.types.end(), "frame"), jpeg.types.end()) << "no boxes";
    } catch (const std::exception& error) {
      ADD_FAILURE() << "the socket went silent: " << error.what();
    }
  }
  pipeline.request_stop();
  runner.join();
}

TEST(Viewer, AnUnknownChannelIsAnsweredByNameAndClosed) {
  Fixture fixture;
  vapipe::test::WebSocketClient client(fixture.server.port(), "/ws/video?channel=nope_7");
  const json error = json::parse(client.read());
  EXPECT_EQ(error.at("type"), "error");
  EXPECT_NE(error.at("error").get<std::string>().find("nope_7"), std::string::npos);
  EXPECT_THROW(client.read(), std::exception);  // closed by the server
}

// Issue 17: any page could watch every camera; the viewer's sockets take only the server's own page.
TEST(Viewer, ASocketFromAForeignPageIsRefused) {
  Fixture fixture;
  const int port = fixture.server.port();
  for (const char* path : {"/ws/video?channel=det_0", "/ws/jpeg?channel=det_0"}) {
    EXPECT_THROW(vapipe::test::WebSocketClient(port, path, {{"Origin", "http://evil.example"}}),
                 boost::system::system_error)
        << path;
    EXPECT_THROW(vapipe::test::WebSocketClient(port, path,
                                               {{"Host", fmt::format("evil.example:{}", port)},
                                                {"Origin", fmt::format("http://evil.example:{}", port)}}),
                 boost::system::system_error)
        << path;
    EXPECT_NO_THROW(
        vapipe::test::WebSocketClient(port, path, {{"Origin", fmt::format("http://127.0.0.1:{}", port)}}))
        << path;
  }
}

TEST(Viewer, DefaultWebRootHoldsThePage) {
  const fs::path root = default_web_root();
  EXPECT_TRUE(fs::is_regular_file(root / "index.html")) << root;
  EXPECT_TRUE(fs::is_regular_file(root / "viewer.js")) << root;
}

}  // namespace
}  // namespace vapipe::server
