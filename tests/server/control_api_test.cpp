// The control API and /metrics against an in-process Pipeline + Services on real clips and the real
// YOLOv5n, through a real HTTP client on loopback: list, add, remove while another channel keeps counting,
// errors naming the field, stats and history, metrics that parse and match the channels, the token, and
// camera credentials that never reach a response or a log line.
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "pipeline/pipeline_fixture.hpp"
#include "server/http_client.hpp"
#include "server/http_server.hpp"
#include "server/services.hpp"
#include "support/log_capture.hpp"
#include "support/process.hpp"

namespace vapipe::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pipeline::test::make_config;
using pipeline::test::quiet_options;
using Clock = std::chrono::steady_clock;

// Frames and closes seen by the taps of each channel (the factory applies to channels added at run time).
struct TapLog {
  std::mutex mutex;
  std::map<int, int> frames;
  std::map<int, bool> closed;
};

class CountingTap : public pipeline::ChannelTap {
 public:
  CountingTap(int channel, TapLog& log) : channel_(channel), log_(log) {}
  void frame_done(const pipeline::FrameRecord&, std::string_view, const AVFrame*) override {
    std::lock_guard lock(log_.mutex);
    ++log_.frames[channel_];
  }
  void closed() override {
    std::lock_guard lock(log_.mutex);
    log_.closed[channel_] = true;
  }

 private:
  int channel_;
  TapLog& log_;
};

// A pipeline running on its own thread with the services of its config; stopped and joined at the end.
class RunningPipeline {
 public:
  explicit RunningPipeline(const std::string& config_json, TapLog* taps = nullptr)
      : pipeline_(pipeline::parse_config(config_json, "test.json"), quiet_options()) {
    if (taps != nullptr) {
      pipeline_.add_tap_factory([taps](const pipeline::ChannelInfo& info) {
        return std::make_shared<CountingTap>(info.channel, *taps);
      });
    }
    services_ = std::make_unique<Services>(pipeline_);
    thread_ = std::thread([this] { summary_ = pipeline_.run(); });
  }
  ~RunningPipeline() { stop(); }
  const pipeline::RunSummary& stop() {
    pipeline_.request_stop();
    if (thread_.joinable()) thread_.join();
    return summary_;
  }
  int port() const { return services_->http()->port(); }
  pipeline::Pipeline& pipeline() { return pipeline_; }

 private:
  pipeline::Pipeline pipeline_;
  std::unique_ptr<Services> services_;
  pipeline::RunSummary summary_;
  std::thread thread_;
};

// Threads of this process (the pipeline runs in it).
std::size_t thread_count() {
  return static_cast<std::size_t>(
      std::distance(fs::directory_iterator("/proc/self/task"), fs::directory_iterator()));
}

json get_json(int port, const std::string& target, int expected_status = 200) {
  const auto response = test::http_get(port, target);
  EXPECT_EQ(response.status, expected_status) << target << ": " << response.body << response.error;
  return json::parse(response.body, nullptr, false);
}

// Polls `condition` (an HTTP query) until it holds or `timeout` passes; a test of a live system.
template <typename Condition>
bool eventually(Condition condition, std::chrono::seconds timeout = std::chrono::seconds(120)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling a live API, not syncing
  }
  return false;
}

std::uint64_t output_of(int port, int channel) {
  const json c = get_json(port, fmt::format("/api/channels/{}", channel));
  return c.is_object() ? c.at("counters").at("output").get<std::uint64_t>() : 0;
}

// 20 frames of vtest.avi (10 fps) in H.264: short, so the tests stay quick on a loaded machine.
constexpr int kClipFrames = 20;
fs::path short_clip() {
  return io::test::make_clip("short.mp4", "-an -c:v libx264 -preset ultrafast -g 10", kClipFrames);
}

// YOLO-FastestV2 (a fraction of YOLOv5n's work per frame): these tests are about the API, not detection
// quality, and must stay quick on a loaded machine.
fs::path fast_model() { return test::models_dir() / "yolofastestv2.onnx"; }

std::string config_with_http(const fs::path& clip, int chan_num, const json& camera_extra,
                             const json& http = json{{"port", 0}}) {
  json config =
      json::parse(make_config(clip.string(), chan_num, json{{"path", fast_model().string()}}, camera_extra));
  config["http"] = http;
  return config.dump();
}

using vapipe::test::LogCapture;

TEST(ControlApi, AddsAndRemovesChannelsAtRunTimeWhileTheOthersKeepCounting) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto clip = short_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264 MP4");
  TapLog taps;
  RunningPipeline run(config_with_http(clip, 1, {{"loop", true}, {"pace", true}}), &taps);
  const int port = run.port();

  const json listed = get_json(port, "/api/channels");
  ASSERT_EQ(listed.at("channels").size(), 1u);
  EXPECT_EQ(listed["channels"][0]["id"], 0);
  EXPECT_EQ(listed["channels"][0]["name"], "det_0");
  EXPECT_EQ(listed["channels"][0]["model"], "det");
  EXPECT_EQ(listed["channels"][0]["address"], clip.string());

  // The baseline is taken once channel 0 runs: thread pools that start with the first frames (oneDNN's
  // OpenMP team, the preprocessing helpers) are in it, so only the added channel's own threads differ.
  ASSERT_TRUE(eventually([&] { return output_of(port, 0) >= 5; }));
  const std::size_t threads_before = thread_count();
  const auto added =
      test::http_request(port, "POST", "/api/channels",
                         json{{"address", clip.string()}, {"model", "det"}, {"loop", true}}.dump());
  ASSERT_EQ(added.status, 201) << added.body;
  EXPECT_EQ(added.headers.at("location"), "/api/channels/1");
  const json channel = json::parse(added.body);
  EXPECT_EQ(channel.at("id"), 1);
  EXPECT_EQ(channel.at("name"), "det_1");
  EXPECT_EQ(get_json(port, "/api/channels").at("channels").size(), 2u);

  ASSERT_TRUE(eventually([&] { return output_of(port, 1) >= 5; }))
      << "the added channel never produced frames";
  ASSERT_TRUE(eventually([&] { return output_of(port, 0) >= 5; }));

  // Removal while channel 0 runs: it drains, closes, and channel 0's frames keep flowing throughout.
  const std::uint64_t before_removal = output_of(port, 0);
  const auto removed = test::http_request(port, "DELETE", "/api/channels/1");
  EXPECT_EQ(removed.status, 202) << removed.body;
  ASSERT_TRUE(eventually([&] { return get_json(port, "/api/channels/1").at("state") == "removed"; }));
  // Stats are sampled once a second; a removed channel must not wait for the next sample to leave them.
  const json stats_at_removal = get_json(port, "/api/stats");
  for (const auto& c : stats_at_removal.at("channels"))
    EXPECT_NE(c.at("id"), 1) << "a removed channel leaves the stats at once";
  const std::uint64_t at_removal = output_of(port, 0);
  EXPECT_GT(at_removal, before_removal) << "channel 0 stalled while channel 1 was drained";
  ASSERT_TRUE(eventually([&] { return output_of(port, 0) >= at_removal + 5; }))
      << "channel 0 stopped after the removal";
  const std::uint64_t removed_frames = output_of(port, 1);
  {
    std::lock_guard lock(taps.mutex);
    EXPECT_GT(taps.frames[1], 0) << "the tap factory applies to channels added at run time";
    EXPECT_EQ(static_cast<std::uint64_t>(taps.frames[1]), removed_frames);
    EXPECT_TRUE(taps.closed[1]) << "a removed channel's taps are closed";
    EXPECT_FALSE(taps.closed[0]);
  }
  EXPECT_EQ(output_of(port, 1), removed_frames) << "a removed channel counts no more frames";
  EXPECT_TRUE(eventually([&] { return thread_count() == threads_before; }, std::chrono::seconds(30)))
      << "the removed channel's threads are gone: " << thread_count() << " threads, " << threads_before
      << " before it was added";

  const json after = get_json(port, "/api/channels");
  ASSERT_EQ(after.at("channels").size(), 1u);
  EXPECT_EQ(after["channels"][0]["id"], 0);
  EXPECT_EQ(get_json(port, "/api/channels?all=1").at("channels").size(), 2u);
  EXPECT_EQ(test::http_request(port, "DELETE", "/api/channels/1").status, 409);
  EXPECT_EQ(test::http_request(port, "DELETE", "/api/channels/7").status, 404);
  EXPECT_EQ(test::http_get(port, "/api/channels/x").status, 404);

  // Ids are never reused within a run.
  const auto again = test::http_request(port, "POST", "/api/channels",
                                        json{{"address", clip.string()}, {"model", "det"}}.dump());
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(json::parse(again.body).at("id"), 2);
  ASSERT_TRUE(eventually([&] { return output_of(port, 2) >= 1; }));

  // Stats now and over time, for the viewer's charts: rates and per-frame times of the last second.
  ASSERT_TRUE(eventually([&] {
    const json stats = get_json(port, "/api/stats");
    for (const auto& c : stats.at("channels"))
      if (c.at("id") == 0 && c.at("fps").get<double>() > 0 && c.at("latency_ms").get<double>() > 0 &&
          c.at("stage_ms").at("infer").get<double>() > 0)
        return true;
    return false;
  })) << "channel 0 never showed fps, latency and inference time together";
  const json stats = get_json(port, "/api/stats");
  for (const auto& c : stats.at("channels")) {
    EXPECT_NE(c.at("id"), 1) << "removed channels leave the stats";
    for (const char* key : {"fps", "frames", "dropped", "queue_depth", "stage_ms", "latency_ms"})
      EXPECT_TRUE(c.contains(key)) << key;
    for (const char* stage : {"decode", "preprocess", "infer", "postprocess", "output"})
      EXPECT_TRUE(c.at("stage_ms").contains(stage)) << stage;
  }
  ASSERT_TRUE(eventually([&] { return get_json(port, "/api/stats/history").at("samples").size() >= 3; }));
  const json history = get_json(port, "/api/stats/history");
  EXPECT_EQ(history.at("interval_ms"), 1000);
  EXPECT_GE(history.at("samples").size(), 3u);
  EXPECT_LE(history.at("samples").size(), 300u);
  EXPECT_EQ(get_json(port, "/api/stats/history?seconds=2").at("samples").size(), 2u);
  EXPECT_EQ(test::http_get(port, "/api/stats/history?seconds=abc").status, 400);

  const auto& summary = run.stop();
  ASSERT_EQ(summary.channels.size(), 3u) << "the summary lists added and removed channels";
  EXPECT_EQ(summary.channels[1].state, "removed");
  EXPECT_EQ(summary.channels[1].output, removed_frames);
  EXPECT_GT(summary.channels[2].output, 0u);
}

TEST(ControlApi, BadRequestsAreRefusedWithTheFieldNamed) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto clip = short_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264 MP4");
  RunningPipeline run(config_with_http(clip, 1, {{"loop", true}}));
  const int port = run.port();
  const std::string address = clip.string();
  const std::vector<std::pair<std::string, std::string>> cases{
      {"{not json", "body"},
      {"[1, 2]", "body"},
      {json{{"model", "det"}}.dump(), "address"},
      {json{{"address", address}}.dump(), "model"},
      {json{{"address", address}, {"model", "nope"}}.dump(), "model"},
      {json{{"address", 5}, {"model", "det"}}.dump(), "address"},
      {json{{"address", "/no/such/clip.mp4"}, {"model", "det"}}.dump(), "address"},
      {json{{"address", address}, {"model", "det"}, {"loop", "yes"}}.dump(), "loop"},
      {json{{"address", address}, {"model", "det"}, {"rtsp_transport", "sctp"}}.dump(), "rtsp_transport"},
      {json{{"address", address}, {"model", "det"}, {"colour", 1}}.dump(), "colour"},
      // Issue 17: the config file's strict parser (a duplicate key is an error, not "last one wins"), no
      // control characters in an address (forged log lines, terminal escapes), a file: URL refused at once
      // rather than accepted and failing when the channel opens.
      {fmt::format(R"({{"address": "{}", "model": "det", "address": "rtsp://10.0.0.1/x"}})", address),
       "body"},
      {json{{"address", "rtsp://10.0.0.1/x\n[2026-12-06 00:00:00.000] [info] forged"}, {"model", "det"}}
           .dump(),
       "address"},
      {json{{"address", "rtsp://10.0.0.1/x\x1b]0;owned\x07\x1b[2J"}, {"model", "det"}}.dump(), "address"},
      {json{{"address", "file://" + address}, {"model", "det"}}.dump(), "address"},
  };
  for (const auto& [body, field] : cases) {
    SCOPED_TRACE(body);
    const auto response = test::http_request(port, "POST", "/api/channels", body);
    EXPECT_EQ(response.status, 400);
    const json error = json::parse(response.body, nullptr, false);
    ASSERT_TRUE(error.is_object());
    EXPECT_EQ(error.at("error").get<std::string>().rfind(field + ":", 0), 0u) << error.dump();
  }
  const auto duplicate =
      test::http_request(port, "POST", "/api/channels",
                         fmt::format(R"({{"address": "{}", "model": "det", "model": "det"}})", address));
  EXPECT_EQ(duplicate.body, R"({"error":"body: model: duplicate key"})");
  const auto file_url = test::http_request(port, "POST", "/api/channels",
                                           json{{"address", "file://" + address}, {"model", "det"}}.dump());
  EXPECT_NE(file_url.body.find("give the file as a path"), std::string::npos) << file_url.body;
  const auto oversize = test::http_request(port, "POST", "/api/channels", std::string(2 << 20, ' '));
  EXPECT_EQ(oversize.status, 413);
  EXPECT_EQ(get_json(port, "/api/channels").at("channels").size(), 1u) << "nothing was added";
}

// One sample line: name{labels} value (exposition format 0.0.4).
const std::regex kSampleLine(
    R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*)?\})? (-?[0-9.eE+-]+|\+Inf|NaN)$)");
const std::regex kCommentLine(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Sample> parse_metrics(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream in(text);
  const std::regex label(R"lbl(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")lbl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      EXPECT_TRUE(std::regex_match(line, kCommentLine)) << line;
      continue;
    }
    std::smatch match;
    EXPECT_TRUE(std::regex_match(line, match, kSampleLine)) << line;
    if (match.empty()) continue;
    Sample sample;
    sample.name = match[1];
    const std::string labels = match[3];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label); it != std::sregex_iterator();
         ++it)
      sample.labels[(*it)[1]] = (*it)[2];
    sample.value = match[7] == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(match[7]);
    samples.push_back(std::move(sample));
  }
  return samples;
}

double value_of(const std::vector<Sample>& samples, const std::string& name,
                const std::map<std::string, std::string>& labels) {
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : labels) all = all && s.labels.contains(k) && s.labels.at(k) == v;
    if (all) return s.value;
  }
  ADD_FAILURE() << "no sample " << name;
  return -1;
}

TEST(ControlApi, MetricsParseAndMatchTheChannels) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto clip = short_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264 MP4");
  // Two channels of a clip played once: when run() returned the counters are final, so /metrics and
  // /api/channels must agree exactly.
  pipeline::Pipeline pipeline(
      pipeline::parse_config(config_with_http(clip, 2, {{"loop", false}, {"pace", false}}), "test.json"),
      quiet_options());
  Services services(pipeline);
  const int port = services.http()->port();
  const auto summary = pipeline.run();
  ASSERT_EQ(summary.channels.size(), 2u);

  const auto response = test::http_get(port, "/metrics");
  ASSERT_EQ(response.status, 200);
  EXPECT_EQ(response.headers.at("content-type").rfind("text/plain; version=0.0.4", 0), 0u);
  const auto samples = parse_metrics(response.body);
  ASSERT_FALSE(samples.empty());
  EXPECT_EQ(value_of(samples, "vapipe_channels", {}), 2);

  const json channels = get_json(port, "/api/channels").at("channels");
  ASSERT_EQ(channels.size(), 2u);
  for (const auto& channel : channels) {
    const std::map<std::string, std::string> labels{{"channel", std::to_string(channel.at("id").get<int>())},
                                                    {"name", channel.at("name")},
                                                    {"model", "det"}};
    const json& c = channel.at("counters");
    EXPECT_EQ(c.at("output"), kClipFrames);
    for (const auto& [metric, key] : std::vector<std::pair<std::string, std::string>>{
             {"vapipe_frames_decoded_total", "decoded"},
             {"vapipe_frames_output_total", "output"},
             {"vapipe_frames_inferred_total", "inferred"},
             {"vapipe_frames_skipped_total", "skipped"},
             {"vapipe_frames_dropped_total", "dropped"},
             {"vapipe_frames_dropped_queue_full_total", "dropped_queue_full"},
             {"vapipe_frames_dropped_failed_total", "dropped_failed"},
             {"vapipe_frames_dropped_stale_total", "dropped_stale"},
             {"vapipe_decode_errors_total", "decode_errors"},
             {"vapipe_reconnects_total", "reconnects"},
             {"vapipe_packets_written_total", "packets_written"},
             {"vapipe_packets_dropped_total", "packets_dropped"}}) {
      EXPECT_EQ(value_of(samples, metric, labels), c.at(key).get<double>()) << metric;
    }
    EXPECT_EQ(value_of(samples, "vapipe_channel_queue_depth", labels), 0);
    // Histograms: cumulative buckets, +Inf == count == the frames the stage saw, a positive sum.
    for (const auto& [stage, frames] :
         std::vector<std::pair<std::string, std::string>>{{"decode", "inferred"},
                                                          {"infer", "inferred"},
                                                          {"postprocess", "inferred"},
                                                          {"output", "output"},
                                                          {"end_to_end", "output"}}) {
      SCOPED_TRACE(stage);
      auto stage_labels = labels;
      stage_labels["stage"] = stage;
      double previous = 0;
      int buckets = 0;
      for (const auto& s : samples) {
        if (s.name != "vapipe_stage_latency_seconds_bucket" ||
            s.labels.at("channel") != labels.at("channel") || s.labels.at("stage") != stage)
          continue;
        EXPECT_GE(s.value, previous) << s.labels.at("le");
        previous = s.value;
        ++buckets;
      }
      EXPECT_GE(buckets, 10);
      const double count = value_of(samples, "vapipe_stage_latency_seconds_count", stage_labels);
      EXPECT_EQ(previous, count) << "+Inf bucket";
      EXPECT_EQ(count, c.at(frames).get<double>());
      EXPECT_GT(value_of(samples, "vapipe_stage_latency_seconds_sum", stage_labels), 0.0);
    }
  }
}

TEST(ControlApi, TokenIsRequiredAndCameraCredentialsNeverShow) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto clip = short_clip();
  VAPIPE_REQUIRE_CLIP(clip, "H.264 MP4");
  LogCapture log;
  // A camera that needs a password and is not there (nothing listens on the port): the channel keeps
  // reconnecting, and its address shows everywhere, without the password.
  const int dead_port = test::free_port();
  const std::string camera = fmt::format("rtsp://admin:hunter2secret@127.0.0.1:{}/stream", dead_port);
  RunningPipeline run(config_with_http(clip, 1, {{"loop", true}}, {{"port", 0}, {"token", "t0ken"}}));
  const int port = run.port();
  const std::map<std::string, std::string> auth{{"Authorization", "Bearer t0ken"}};

  EXPECT_EQ(test::http_get(port, "/api/channels").status, 401);
  EXPECT_EQ(test::http_get(port, "/metrics").status, 401);
  EXPECT_EQ(
      test::http_request(port, "POST", "/api/channels", json{{"address", camera}, {"model", "det"}}.dump())
          .status,
      401);
  const auto added = test::http_request(port, "POST", "/api/channels?token=t0ken",
                                        json{{"address", camera}, {"model", "det"}}.dump());
  ASSERT_EQ(added.status, 201) << added.body;
  EXPECT_EQ(json::parse(added.body).at("address"),
            fmt::format("rtsp://admin:***@127.0.0.1:{}/stream", dead_port));
  ASSERT_TRUE(eventually([&] {
    const json c = json::parse(test::http_get(port, "/api/channels/1", auth).body, nullptr, false);
    return c.is_object() && c.at("state") == "waiting";
  })) << "the channel never tried to connect";

  std::string everything = added.body;
  for (const char* target :
       {"/api/channels", "/api/channels/1", "/api/stats", "/api/stats/history", "/metrics"}) {
    const auto response = test::http_get(port, target, auth);
    EXPECT_EQ(response.status, 200) << target;
    everything += response.body;
  }
  EXPECT_EQ(test::http_request(port, "DELETE", "/api/channels/1", "", auth).status, 202);
  const auto& summary = run.stop();
  for (const auto& c : summary.channels) everything += c.address;
  everything += log.text();
  EXPECT_NE(log.text().find("127.0.0.1"), std::string::npos) << "the channel's attempts were logged";
  EXPECT_EQ(everything.find("hunter2secret"), std::string::npos)
      << "a camera password leaked into a response, the summary or the log";
}

}  // namespace
}  // namespace vapipe::server
