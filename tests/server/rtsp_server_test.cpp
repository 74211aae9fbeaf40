// The embedded RTSP server end to end, with real clients on loopback: `vapipe run` serving three channels
// (H.264 passthrough from MP4 with B-frames, H.265 passthrough, annotated x264) read by ffprobe, ffmpeg and
// GStreamer's rtspsrc with the SEI detections checked; two clients on one media with a late joiner; a TCP
// client that stalls while the pipeline's fps and another client are watched; Ctrl-C ending the clients'
// streams; a port in use.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <sstream>
#include <thread>

#include <sys/socket.h>

#include "io/test_clips.hpp"
#include "pipeline/pipeline_fixture.hpp"
#include "server/rtsp_server.hpp"
#include "server/services.hpp"
#include "support/media.hpp"
#include "support/process.hpp"
#include "support/rtsp_client.hpp"
#include "support/rtsp_server.hpp"
#include "support/rtsp_watch.hpp"

namespace vapipe::server::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using pipeline::test::model_cache;
using vapipe::test::Child;
using vapipe::test::copy_client;
using vapipe::test::log_of;
using vapipe::test::wait_until;

// vtest.avi at 10 fps, a key frame every second (a late client waits at most 1 s for one). The B-frame clip
// is the whole of vtest.avi (80 s), so it does not loop during a test: passthrough of a looping B-frame file
// loses its SEI after the first loop (a pipeline issue, reported; not the server's).
fs::path h264_bframes_clip() {
  return io::test::make_clip("rtsp-h264-bframes.mp4", "-an -c:v libx264 -preset veryfast -bf 2 -g 10", 795);
}
fs::path h264_clip() {
  return io::test::make_clip("rtsp-h264.mp4", "-an -c:v libx264 -preset veryfast -bf 0 -g 10");
}
fs::path h265_clip() {
  return io::test::make_clip(
      "rtsp-h265.mp4", "-an -c:v libx265 -preset ultrafast -g 10 -x265-params log-level=error:bframes=0");
}

struct Camera {
  fs::path clip;
  std::string model;  // "det": passthrough + SEI; "ann": annotated
};

// One channel per camera, looping paced files. YOLO-FastestV2 on every 3rd frame keeps a busy machine ahead
// of the 10 fps sources (the frames between carry the last detections).
nlohmann::json served_config(const std::vector<Camera>& cameras, int port) {
  nlohmann::json models = nlohmann::json::array();
  for (const std::string name : {"det", "ann"}) {
    if (std::none_of(cameras.begin(), cameras.end(), [&](const Camera& c) { return c.model == name; }))
      continue;
    models.push_back({{"name", name},
                      {"path", (vapipe::test::models_dir() / "yolofastestv2.onnx").string()},
                      {"obj_threshold", 0.25},
                      {"nms_threshold", 0.45},
                      {"class_threshold", 0.25},
                      {"skip_frame_num", 2},
                      {"output_mode", name == "ann" ? "annotated" : "passthrough"}});
  }
  nlohmann::json list = nlohmann::json::array();
  for (const auto& camera : cameras) {
    list.push_back({{"address", camera.clip.string()},
                    {"chan_num", 1},
                    {"model_names", {camera.model}},
                    {"loop", true},
                    {"pace", true}});
  }
  return {
      {"cards", {{{"devid", 0}, {"cameras", list}}}}, {"models", models}, {"rtsp_server", {{"port", port}}}};
}

std::string url(int port, const std::string& mount) {
  return fmt::format("rtsp://127.0.0.1:{}/{}", port, mount);
}

bool port_open(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool open = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return open;
}

struct Received {
  std::string codec;
  int frames = -1;             // decoded by ffprobe
  std::size_t with_boxes = 0;  // packets whose SEI carries at least one detection
  std::size_t with_sei = 0;    // packets with our SEI at all
};

Received inspect(const fs::path& file) {
  Received r;
  const auto probe = vapipe::test::probe(file);
  r.codec = probe.codec;
  r.frames = probe.frames;
  for (const auto& boxes : vapipe::test::read_back(file)) {
    r.with_sei += boxes.has_value() ? 1 : 0;
    r.with_boxes += boxes.has_value() && !boxes->empty() ? 1 : 0;
  }
  return r;
}

// ffmpeg's own decoder over the whole file: what its decoders complain about, empty when every frame
// decodes cleanly. The null muxer's complaints are left out: RTP carries no DTS, so a B-frame stream read
// back from RTSP has guessed ones it calls "non monotonically increasing", which says nothing of the video.
std::string decode_errors(const fs::path& file) {
  const std::string log = vapipe::test::run_capture(
      fmt::format("timeout 60 ffmpeg -nostdin -v error -i '{}' -f null - 2>&1", file.string()));
  std::string errors;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("[null @") || line.find("Last message repeated") != std::string::npos) continue;
    errors += line + "\n";
  }
  return errors;
}

TEST(RtspServer, EveryChannelOfAVapipeRunIsReadByFfprobeFfmpegAndRtspsrcWithDetections) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const fs::path h264 = h264_bframes_clip();
  const fs::path h265 = h265_clip();
  if (h264.empty() || h265.empty()) GTEST_SKIP() << "ffmpeg cannot make the H.264/H.265 clips";
  const fs::path dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  {
    std::ofstream(dir / "cameras.json")
        << served_config({{h264, "det"}, {h265, "det"}, {h264, "ann"}}, port).dump(2);
  }
  Child vapipe({VAPIPE_CLI, "run", "-c", (dir / "cameras.json").string(), "--cache-dir",
                model_cache().string(), "--stats", "none"},
               dir / "vapipe.log");
  struct Mount {
    std::string name, codec, format, depay, parse;
  };
  const std::vector<Mount> mounts = {{"det_0", "h264", "h264", "rtph264depay", "h264parse"},
                                     {"det_1", "hevc", "hevc", "rtph265depay", "h265parse"},
                                     {"ann_2", "h264", "h264", "rtph264depay", "h264parse"}};
  // The server listens before the channels open and mount their paths; a client earlier than its channel
  // gets 404 (seen on a loaded CI machine), so the test waits until vapipe says every path is served.
  ASSERT_TRUE(wait_until(
      [&] {
        const std::string log = log_of(dir / "vapipe");
        return std::all_of(mounts.begin(), mounts.end(), [&](const Mount& m) {
          return log.find(m.name + ": served at rtsp://") != std::string::npos;
        });
      },
      180s))
      << "vapipe never served every channel:\n"
      << log_of(dir / "vapipe");
  ASSERT_TRUE(port_open(port)) << "vapipe does not listen on " << port;
  for (const auto& m : mounts) {
    const std::string probed = vapipe::test::run_capture(fmt::format(
        "timeout 60 ffprobe -v error -rtsp_transport tcp -select_streams v:0 -show_entries stream=codec_name "
        "-of default=nw=1:nk=1 '{}' 2>/dev/null",
        url(port, m.name)));
    EXPECT_EQ(probed, m.codec + "\n") << "ffprobe " << url(port, m.name);
  }

  // Every mount at once, and GStreamer's client beside ffmpeg on the passthrough one.
  std::vector<std::unique_ptr<Child>> clients;
  for (const auto& m : mounts)
    clients.push_back(copy_client(url(port, m.name), dir / (m.name + ".es"), m.format, 4));
  for (const auto& m : {mounts[0], mounts[1]}) {
    clients.push_back(std::make_unique<Child>(
        std::vector<std::string>{"gst-launch-1.0", "-q", "rtspsrc", "location=" + url(port, m.name),
                                 "protocols=tcp", "!", m.depay, "!", m.parse, "!", "identity", "eos-after=25",
                                 "!",
                                 fmt::format("video/x-{},stream-format=byte-stream,alignment=au",
                                             m.codec == "hevc" ? "h265" : "h264"),
                                 "!", "filesink", "location=" + (dir / (m.name + ".gst.es")).string()},
        dir / (m.name + ".gst.es.log")));
  }
  for (auto& client : clients) EXPECT_TRUE(client->wait_for(90s));
  for (const auto& m : mounts) {
    const fs::path file = dir / (m.name + ".es");
    const Received r = inspect(file);
    EXPECT_EQ(r.codec, m.codec) << file << ": " << log_of(file);
    // 4 s of a 10 fps stream; a busy machine slows the pipeline itself, never to nothing.
    EXPECT_GE(r.frames, 10) << file;
    EXPECT_EQ(decode_errors(file), "") << file;
    // Every frame carries it while the pipeline keeps up; a frame whose results come too late (a loaded
    // machine) goes out without.
    EXPECT_GE(r.with_sei, static_cast<std::size_t>(std::max(r.frames, 0)) / 2)
        << file << ": frames lack our SEI";
    EXPECT_GT(r.with_boxes, 0u) << file << ": no detections in the SEI";
  }
  for (const auto& m : {mounts[0], mounts[1]}) {
    const fs::path file = dir / (m.name + ".gst.es");
    const Received r = inspect(file);
    EXPECT_EQ(r.codec, m.codec) << file << ": " << log_of(file);
    EXPECT_GE(r.frames, 23) << file;  // of 25 access units: rtph26xdepay starts at a key frame
    EXPECT_GT(r.with_boxes, 0u) << file << ": rtspsrc got no detections";
  }

  // Ctrl-C: vapipe drains, and a client still watching sees its stream end (it exits by itself).
  auto watcher = copy_client(url(port, "det_0"), dir / "watcher.es", "h264", 0);
  ASSERT_TRUE(wait_until(
      [&] { return fs::exists(dir / "watcher.es") && fs::file_size(dir / "watcher.es") > 10'000; }, 60s));
  vapipe.signal(SIGINT);
  EXPECT_TRUE(vapipe.wait_for(60s)) << "vapipe did not exit after SIGINT";
  EXPECT_EQ(vapipe.exit_code(), 0);
  EXPECT_TRUE(watcher->wait_for(15s)) << "the client was not told the stream ended";
  EXPECT_GT(inspect(dir / "watcher.es").frames, 0);
  EXPECT_FALSE(port_open(port)) << "still listening after exit";
}

// A Pipeline and its Services in this process: its counters and the server's are visible.
struct InProcessRun {
  explicit InProcessRun(const nlohmann::json& config)
      : pipeline(pipeline::parse_config(config.dump(), "test.json"), pipeline::test::quiet_options()),
        services(pipeline),
        runner([this] { pipeline.run(); }) {}
  ~InProcessRun() { stop(); }
  void stop() {
    pipeline.request_stop();
    if (runner.joinable()) runner.join();
  }
  RtspServer& server() { return *services.rtsp_server(); }
  RtspMountStats mount(const std::string& path) {
    for (auto& m : server().stats().mounts)
      if (m.path == path) return m;
    return {};
  }

  pipeline::Pipeline pipeline;
  Services services;
  std::thread runner;
};

// One looping H.264 channel served by an in-process run.
class RtspServerOneChannel : public ::testing::Test {
 protected:
  void SetUp() override {
    VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
    const fs::path h264 = h264_clip();
    if (h264.empty()) GTEST_SKIP() << "ffmpeg cannot make the H.264 clip";
    dir = vapipe::test::scratch_dir();
    port = vapipe::test::free_port();
    run = std::make_unique<InProcessRun>(served_config({{h264, "det"}}, port));
    ASSERT_TRUE(wait_until([&] { return run->pipeline.counters(0).output.load() >= 20; }, 120s));
  }

  fs::path dir;
  int port = 0;
  std::unique_ptr<InProcessRun> run;
};

TEST_F(RtspServerOneChannel, TwoClientsAtOnceAndALateJoinerStartsAtAKeyFrame) {
  auto first = copy_client(url(port, "det_0"), dir / "first.es", "h264", 8);
  ASSERT_TRUE(wait_until([&] { return run->mount("/det_0").packets_served >= 10; }, 60s)) << "nothing served";
  // Joins a running media: 10+ packets in, most likely mid-GOP.
  const auto served_before = run->mount("/det_0").packets_served;
  ASSERT_TRUE(wait_until([&] { return run->mount("/det_0").packets_served >= served_before + 13; }, 30s));
  auto late = copy_client(url(port, "det_0"), dir / "late.es", "h264", 0, 30);
  int most_clients = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        most_clients = std::max(most_clients, run->mount("/det_0").clients);
        return late->wait_for(1ms);  // reaps it once it exited
      },
      60s));
  EXPECT_TRUE(first->wait_for(60s));
  EXPECT_EQ(most_clients, 2) << "the two clients were not counted on the mount";

  // Frame counts follow the pipeline's own rate, which a loaded machine cuts to a few fps: at least the
  // late client's first GOP, and more for the first. (The SEI is checked in the test above.)
  for (const char* name : {"first.es", "late.es"}) {
    const Received r = inspect(dir / name);
    EXPECT_EQ(r.codec, "h264") << name << ": " << log_of(dir / name);
    EXPECT_EQ(decode_errors(dir / name), "") << name << " does not decode cleanly";
  }
  EXPECT_GE(inspect(dir / "first.es").frames, 10);
  EXPECT_GE(inspect(dir / "late.es").frames, 3);
  const auto late_packets = vapipe::test::demux(dir / "late.es");
  ASSERT_FALSE(late_packets.packets.empty());
  EXPECT_TRUE(late_packets.packets.front()->flags & AV_PKT_FLAG_KEY)
      << "the late client did not start at a key frame";
  const auto stats = run->server().stats();
  EXPECT_GT(stats.packets_served, 0u);
}

TEST_F(RtspServerOneChannel, StalledTcpClientLowersNeitherThePipelineFpsNorAnotherClients) {
  const auto& counters = run->pipeline.counters(0);

  // The baseline: output frame rate with nobody watching, in this test, on this machine right now.
  auto fps_over = [&](std::chrono::seconds window) {
    const auto start_frames = counters.output.load();
    const auto start = Clock::now();
    std::this_thread::sleep_for(window);  // measuring a rate over a window, not waiting for an event
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return static_cast<double>(counters.output.load() - start_frames) / seconds;
  };
  const double baseline = fps_over(8s);
  ASSERT_GT(baseline, 2.0);

  // A client that plays over TCP and never reads; once its own media is blocked (the server drops for it),
  // a normal client joins and plays 20 s beside it. Each client has its own media, so nothing of the
  // stalled one reaches the pipeline or the other client; the margins are for a machine shared with other
  // work.
  vapipe::test::StalledRtspClient stalled(port, "det_0", 30s);
  ASSERT_TRUE(stalled.ok()) << "the stalled client could not start playing";
  ASSERT_TRUE(wait_until([&] { return run->mount("/det_0").packets_dropped > 0; }, 120s))
      << "the stalled client's media never filled";
  constexpr int kWatchSeconds = 20;
  auto watcher = copy_client(url(port, "det_0"), dir / "watcher.es", "h264", kWatchSeconds);
  const double with_stalled = fps_over(22s);
  EXPECT_TRUE(watcher->wait_for(60s));
  EXPECT_GE(with_stalled, 0.5 * baseline) << "baseline " << baseline << " fps";
  std::printf("pipeline fps: %.1f alone, %.1f with a stalled TCP client and a watcher\n", baseline,
              with_stalled);
  const Received r = inspect(dir / "watcher.es");
  EXPECT_GE(r.frames, static_cast<int>(0.4 * kWatchSeconds * baseline))
      << "the other client starved (baseline " << baseline << " fps): " << log_of(dir / "watcher.es");
  EXPECT_EQ(decode_errors(dir / "watcher.es"), "");
  // And shutting down with the stalled connection still open is bounded.
  const auto stop_started = Clock::now();
  run->stop();
  EXPECT_LT(Clock::now() - stop_started, 30s);
}

// A camera (an RTSP source: Annex-B, parameter sets only in its SDP) that goes away and comes back: the
// channel reconnects, the mount stays, and a client after the restart gets a clean stream with detections.
TEST(RtspServer, MountOutlivesACameraThatGoesAwayAndComesBack) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const fs::path h264 = h264_clip();
  if (h264.empty()) GTEST_SKIP() << "ffmpeg cannot make the H.264 clip";
  const std::string launch = fmt::format(
      "( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 )", h264.string());
  auto camera = std::make_unique<vapipe::test::LoopbackRtspServer>(launch);
  ASSERT_TRUE(camera->running());
  const int camera_port = camera->port();
  const fs::path dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  nlohmann::json config = served_config({{h264, "det"}}, port);
  config["cards"][0]["cameras"][0]["address"] = camera->url();
  InProcessRun run(config);
  const auto& counters = run.pipeline.counters(0);
  ASSERT_TRUE(wait_until([&] { return counters.output.load() >= 10; }, 120s));

  auto before = copy_client(url(port, "det_0"), dir / "before.es", "h264", 3);
  EXPECT_TRUE(before->wait_for(60s));
  EXPECT_GE(inspect(dir / "before.es").frames, 10) << log_of(dir / "before.es");

  camera.reset();  // switched off
  const auto reconnects = counters.reconnects.load();
  camera = std::make_unique<vapipe::test::LoopbackRtspServer>(launch, camera_port);
  ASSERT_TRUE(camera->running());
  ASSERT_TRUE(wait_until([&] { return counters.reconnects.load() > reconnects; }, 60s)) << "no reconnect";
  const auto decoded = counters.decoded.load();
  ASSERT_TRUE(wait_until([&] { return counters.decoded.load() >= decoded + 10; }, 60s));
  EXPECT_TRUE(run.mount("/det_0").streaming) << "the mount did not come back to life";

  auto after = copy_client(url(port, "det_0"), dir / "after.es", "h264", 3);
  EXPECT_TRUE(after->wait_for(60s));
  const Received r = inspect(dir / "after.es");
  EXPECT_GE(r.frames, 10) << log_of(dir / "after.es");
  EXPECT_EQ(decode_errors(dir / "after.es"), "");
  // Not asserted: detections in the SEI after the reconnect. The channel's passthrough sends packets without
  // SEI once a reconnect (or a B-frame file's loop) left packets whose frames never came out (reported on
  // the pipeline; the file outputs show it too).
  std::printf("after the restart: %zu of %d frames with our SEI\n", r.with_sei, r.frames);
}

// An elementary-stream file (.h264: no timestamps at all) at vtest.avi's 10 fps.
fs::path h264_elementary_clip() {
  return io::test::make_clip("rtsp-es.h264", "-an -c:v libx264 -preset veryfast -bf 0 -g 10 -f h264");
}

// Packet presentation times (s) of ffmpeg's framecrc listing (`-c copy -f framecrc`), in packet order.
std::vector<double> framecrc_times(const fs::path& file) {
  std::ifstream in(file);
  std::vector<double> times;
  AVRational time_base{0, 1};
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("#tb 0:")) {
      std::sscanf(line.c_str(), "#tb 0: %d/%d", &time_base.num, &time_base.den);
      continue;
    }
    if (line.empty() || line[0] == '#' || time_base.den == 0) continue;
    long long stream = 0, dts = 0, pts = 0;
    if (std::sscanf(line.c_str(), "%lld, %lld, %lld", &stream, &dts, &pts) == 3 && stream == 0)
      times.push_back(static_cast<double>(pts) * av_q2d(time_base));
  }
  return times;
}

// The times of the packets after the first (ffmpeg's RTSP demuxer gives the first packet, received before
// the RTCP sync, the time of the second): strictly increasing, and one frame of `fps` apart (±5 %) for at
// least 80 % of them and the median. The others are the server re-anchoring its clock after a pipeline
// stall (a loaded machine), a jump forward by design (rtsp_server.cpp, stamp()). The failure, or "".
std::string check_frame_times(std::vector<double> times, double fps) {
  if (times.size() < 10) return fmt::format("only {} packets", times.size());
  times.erase(times.begin());
  std::vector<double> intervals;
  for (std::size_t i = 1; i < times.size(); ++i) {
    if (times[i] <= times[i - 1])
      return fmt::format("packet {} at {:.4f} s after packet {} at {:.4f} s", i + 1, times[i], i,
                         times[i - 1]);
    intervals.push_back(times[i] - times[i - 1]);
  }
  const auto at_rate = [&](double interval) { return std::abs(interval * fps - 1.0) <= 0.05; };
  const auto good = std::count_if(intervals.begin(), intervals.end(), at_rate);
  std::nth_element(intervals.begin(), intervals.begin() + static_cast<std::ptrdiff_t>(intervals.size() / 2),
                   intervals.end());
  const double median = intervals[intervals.size() / 2];
  if (!at_rate(median) || static_cast<double>(good) < 0.8 * static_cast<double>(intervals.size()))
    return fmt::format("median interval {:.4f} s, {} of {} intervals at {:.4f} s", median, good,
                       intervals.size(), 1.0 / fps);
  return "";
}

// An elementary-stream source has no timestamps: the channel numbers its frames by the frame rate, so the
// server's clients get a clock that advances (it sent pts 0 for every frame: `ffmpeg -t 5` never ended).
TEST(RtspServer, ElementaryStreamSourceIsServedWithTimestampsAtItsFrameRate) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const fs::path es = h264_elementary_clip();
  if (es.empty()) GTEST_SKIP() << "ffmpeg cannot make the H.264 clip";
  const fs::path dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  InProcessRun run(served_config({{es, "det"}}, port));
  ASSERT_TRUE(wait_until([&] { return run.pipeline.counters(0).output.load() >= 20; }, 120s));

  const auto started = Clock::now();
  Child client({"ffmpeg", "-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i", url(port, "det_0"), "-t",
                "5", "-c", "copy", "-f", "framecrc", "-y", (dir / "served.crc").string()},
               dir / "served.log");
  const bool ended = client.wait_for(60s);
  const double took = std::chrono::duration<double>(Clock::now() - started).count();
  ASSERT_TRUE(ended) << "ffmpeg -t 5 never ended: " << log_of(dir / "served.crc");
  // The issue's bound is 10 s; 15 s leaves room for a loaded machine (10.1 s seen with four test sessions
  // on two cores). Before the fix it never ended: the clock of every packet was 0.
  EXPECT_LT(took, 15.0) << "ffmpeg -t 5 took " << took << " s";
  const auto times = framecrc_times(dir / "served.crc");
  EXPECT_EQ(check_frame_times(times, 10.0), "");
  std::printf("served: %zu packets over %.2f s, ffmpeg -t 5 took %.1f s\n", times.size(),
              times.empty() ? 0.0 : times.back() - times.front(), took);
}

// The same timeline through an RTSP push (ANNOUNCE/RECORD) to `ffmpeg -rtsp_flags listen`.
TEST(RtspServer, ElementaryStreamSourcePushedOverRtspKeepsItsFrameRate) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const fs::path es = h264_elementary_clip();
  if (es.empty()) GTEST_SKIP() << "ffmpeg cannot make the H.264 clip";
  const fs::path dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  Child listener({"ffmpeg", "-nostdin", "-v", "error", "-rtsp_flags", "listen", "-timeout", "60", "-i",
                  url(port, "live_0"), "-c", "copy", "-f", "framecrc", "-y", (dir / "pushed.crc").string()},
                 dir / "pushed.log");
  ASSERT_TRUE(wait_until([&] { return vapipe::test::port_bound(port, false); }, 30s));
  nlohmann::json config = served_config({{es, "det"}}, 0);
  config.erase("rtsp_server");
  config["cards"][0]["cameras"][0]["loop"] = false;
  config["models"][0]["output_path"] = url(port, "live");
  pipeline::Pipeline run(pipeline::parse_config(config.dump(), "test.json"), pipeline::test::quiet_options());
  run.run();  // the 6 s file, paced, to its end
  ASSERT_TRUE(listener.wait_for(30s)) << "the listener did not see the end (TEARDOWN)";
  const auto times = framecrc_times(dir / "pushed.crc");
  EXPECT_EQ(times.size(), 60u);
  EXPECT_EQ(check_frame_times(times, 10.0), "");
}

TEST(RtspServer, PortInUseIsAnErrorNamingTheConfigKey) {
  auto taken = std::make_unique<vapipe::test::LoopbackListener>();
  const int port = taken->port();
  try {
    RtspServer server(RtspServerOptions{.bind = "127.0.0.1", .port = port});
    ADD_FAILURE() << "a second listener on " << port << " started";
  } catch (const Error& error) {
    EXPECT_EQ(std::string(error.what()).rfind(fmt::format("rtsp_server.port: {} is in use", port), 0), 0u)
        << error.what();
  }
  try {
    RtspServer server(RtspServerOptions{.bind = "192.0.2.1", .port = 0});  // TEST-NET-1: no such interface
    ADD_FAILURE() << "listening on an address of no interface";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("rtsp_server.bind"), std::string::npos) << error.what();
  }
  taken.reset();
  // The port is free again: the server starts, and stops at once with nobody connected.
  RtspServer server(RtspServerOptions{.bind = "127.0.0.1", .port = port});
  EXPECT_EQ(server.port(), port);
  EXPECT_TRUE(port_open(port));
  server.stop();
  EXPECT_FALSE(port_open(port));
}

}  // namespace
}  // namespace vapipe::server::test
