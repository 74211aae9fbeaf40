// `vapipe run` through the real binary: config and model errors are one clear line and exit 1;
// Ctrl-C drains and closes every output (MP4s readable, every result line matches a video frame);
// passthrough outputs pushed to real servers (ffmpeg listening for RTSP ANNOUNCE/RECORD and on TCP)
// arrive with their SEI detections.
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/test_clips.hpp"
#include "support/media.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

fs::path model_cache() { return fs::temp_directory_path() / "vapipe-tests" / "model-cache"; }

nlohmann::json base_config(const std::string& address, int chan_num, const nlohmann::json& model_extra,
                           const nlohmann::json& camera_extra = nlohmann::json::object()) {
  nlohmann::json camera = {{"address", address}, {"chan_num", chan_num}, {"model_names", {"det"}}};
  camera.update(camera_extra);
  nlohmann::json model = {{"name", "det"},
                          {"path", (test::models_dir() / "yolov5n.onnx").string()},
                          {"obj_threshold", 0.25},
                          {"nms_threshold", 0.45},
                          {"class_threshold", 0.25}};
  model.update(model_extra);
  return {{"cards", {{{"devid", 0}, {"cameras", {camera}}}}}, {"models", {model}}};
}

fs::path write_config(const fs::path& dir, const nlohmann::json& config) {
  const fs::path path = dir / "cameras.json";
  std::ofstream(path) << config.dump(2);
  return path;
}

struct RunResult {
  int exit_code = -1;
  std::vector<std::string> stdout_lines;
  std::vector<std::string> stderr_lines;
};

std::vector<std::string> read_lines(const fs::path& file) {
  std::vector<std::string> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

RunResult run_vapipe(const fs::path& dir, const std::string& arguments, int timeout_s = 300) {
  const std::string command = fmt::format("timeout {} '{}' {} >'{}' 2>'{}'", timeout_s, VAPIPE_CLI, arguments,
                                          (dir / "stdout.txt").string(), (dir / "stderr.txt").string());
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_lines(dir / "stdout.txt"),
          read_lines(dir / "stderr.txt")};
}

// Exit 1, nothing on stdout, and the last stderr line is the one error, naming `key`.
void expect_config_error(const RunResult& result, const std::string& key) {
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(result.stdout_lines.empty()) << result.stdout_lines.front();
  ASSERT_FALSE(result.stderr_lines.empty());
  const std::string& last = result.stderr_lines.back();
  EXPECT_EQ(last.rfind("vapipe: error: ", 0), 0u) << last;
  EXPECT_NE(last.find(key), std::string::npos) << last;
  int errors = 0;
  for (const auto& line : result.stderr_lines) errors += line.find("error") != std::string::npos ? 1 : 0;
  EXPECT_EQ(errors, 1) << "one error line expected";
}

TEST(RunErrors, EachKindOfConfigErrorNamesItsKey) {
  const fs::path dir = test::scratch_dir();
  const std::string cache = fmt::format("--cache-dir '{}'", model_cache().string());
  const std::string clip = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
  struct Case {
    nlohmann::json config;
    std::string key;
  };
  std::vector<Case> cases;
  auto typo = base_config(clip, 1, nlohmann::json::object());
  typo["models"][0]["obj_treshold"] = 0.5;
  cases.push_back({typo, "models[0].obj_treshold: unknown key"});
  auto missing = base_config(clip, 1, nlohmann::json::object());
  missing["models"][0].erase("nms_threshold");
  cases.push_back({missing, "models[0]"});
  auto wrong_type = base_config(clip, 1, {{"skip_frame_num", "2"}});
  cases.push_back({wrong_type, "models[0].skip_frame_num"});
  auto unknown_model = base_config(clip, 1, nlohmann::json::object());
  unknown_model["cards"][0]["cameras"][0]["model_names"] = {"nope"};
  cases.push_back({unknown_model, "cards[0].cameras[0].model_names[0]"});
  auto duplicate = base_config(clip, 1, nlohmann::json::object());
  duplicate["models"].push_back(duplicate["models"][0]);
  cases.push_back({duplicate, "models[1].name"});
  cases.push_back({base_config(clip, 1, {{"path", (dir / "absent.onnx").string()}}), "models[0].path"});
  cases.push_back({base_config(clip, 1, {{"class_num", 91}}), "models[0].class_num"});
  cases.push_back({base_config(clip, 1, {{"model_type", "yolov8n"}}), "models[0].model_type"});
  for (std::size_t i = 0; i < cases.size(); ++i) {
    if (i >= 6 && !fs::exists(test::models_dir() / "yolov5n.onnx")) break;  // checks against the model
    SCOPED_TRACE(cases[i].key);
    const fs::path config = write_config(dir, cases[i].config);
    expect_config_error(run_vapipe(dir, fmt::format("run -c '{}' {}", config.string(), cache)), cases[i].key);
  }
  expect_config_error(run_vapipe(dir, "run -c /no/such/cameras.json"), "/no/such/cameras.json");
}

TEST(RunCommand, CtrlCDrainsAndClosesEveryOutput) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const fs::path results = dir / "out" / "det.jsonl";
  const fs::path config = write_config(dir, base_config(clip.string(), 2,
                                                        {{"output_path", (dir / "out" / "det.mp4").string()},
                                                         {"output_mode", "annotated"},
                                                         {"results_path", results.string()}},
                                                        {{"loop", true}, {"pace", true}}));
  test::Child run({VAPIPE_CLI, "run", "-c", config.string(), "--cache-dir", model_cache().string()},
                  dir / "run.log");
  // Looping forever: stop it once results flow (and a few stats lines were printed).
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (read_lines(results).size() < 60 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  run.signal(SIGINT);
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(60))) << "no exit within 60 s of SIGINT";
  EXPECT_EQ(run.exit_code(), 0);

  const auto log = read_lines(dir / "run.log");
  const std::regex stats_line(
      R"(^\[\d{4}-\d\d-\d\d:\d\d:\d\d:\d\d\] total fps =\d+\.\d,ch=0: speed=\d+\.\d$)");
  int stats_lines = 0;
  bool summary = false;
  for (const auto& line : log) {
    stats_lines += std::regex_match(line, stats_line) ? 1 : 0;
    summary |= line.rfind("vapipe run: ", 0) == 0;
  }
  EXPECT_GE(stats_lines, 2);
  EXPECT_TRUE(summary);

  std::map<int, int> lines_per_channel;
  for (const auto& line : read_lines(results))
    ++lines_per_channel[nlohmann::json::parse(line).at("channel").get<int>()];
  ASSERT_EQ(lines_per_channel.size(), 2u);
  for (const auto& [channel, lines] : lines_per_channel) {
    EXPECT_GE(lines, 30);
    const fs::path video = dir / "out" / fmt::format("det_{}.mp4", channel);
    const auto probe = test::probe(video);  // a drained MP4 has its index: ffprobe reads every frame
    EXPECT_EQ(probe.codec, "h264") << video;
    EXPECT_EQ(probe.frames, lines) << video << ": every result line is a frame of the video";
  }
}

TEST(RunCommand, PassthroughReachesAnRtspServerAndATcpListenerWithSei) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  const auto clip = io::test::mp4_clip();  // no B-frames, one key frame: the servers must listen first
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const int rtsp_port = test::free_port();
  const int tcp_port = test::free_port();
  const fs::path rtsp_received = dir / "rtsp.mkv";
  const fs::path tcp_received = dir / "tcp.ts";
  test::Child rtsp_server(
      {"ffmpeg", "-nostdin", "-v", "error", "-y", "-rtsp_flags", "listen", "-timeout", "60", "-i",
       fmt::format("rtsp://127.0.0.1:{}/live_0", rtsp_port), "-c", "copy", rtsp_received.string()},
      dir / "rtsp.log");
  // Channel 1 of a tcp:// output goes to base port + 1.
  test::Child tcp_server({"ffmpeg", "-nostdin", "-v", "error", "-y", "-i",
                          fmt::format("tcp://127.0.0.1:{}?listen=1&listen_timeout=60000", tcp_port + 1), "-c",
                          "copy", tcp_received.string()},
                         dir / "tcp.log");
  std::this_thread::sleep_for(std::chrono::seconds(1));

  nlohmann::json config = base_config(clip.string(), 1,
                                      {{"output_path", fmt::format("rtsp://127.0.0.1:{}/live", rtsp_port)},
                                       {"results_path", (dir / "rtsp.jsonl").string()}},
                                      {{"loop", false}, {"pace", true}});
  auto tcp_model = config["models"][0];
  tcp_model["name"] = "det_tcp";
  tcp_model["output_path"] = fmt::format("tcp://127.0.0.1:{}", tcp_port);
  tcp_model["results_path"] = (dir / "tcp.jsonl").string();
  config["models"].push_back(tcp_model);
  config["cards"][0]["cameras"].push_back({{"address", clip.string()},
                                           {"chan_num", 1},
                                           {"model_names", {"det_tcp"}},
                                           {"loop", false},
                                           {"pace", true}});
  const fs::path config_file = write_config(dir, config);
  const auto result = run_vapipe(dir, fmt::format("run -c '{}' --cache-dir '{}' --stats none",
                                                  config_file.string(), model_cache().string()));
  ASSERT_EQ(result.exit_code, 0);
  ASSERT_TRUE(rtsp_server.wait_for(std::chrono::seconds(30))) << "ffmpeg (RTSP) did not finish";
  ASSERT_TRUE(tcp_server.wait_for(std::chrono::seconds(30))) << "ffmpeg (TCP) did not finish";

  for (const auto& [received, results] :
       {std::pair{rtsp_received, dir / "rtsp.jsonl"}, std::pair{tcp_received, dir / "tcp.jsonl"}}) {
    SCOPED_TRACE(received.string());
    const auto probe = test::probe(received);
    EXPECT_EQ(probe.codec, "h264");
    EXPECT_EQ(probe.frames, 60);
    const auto metadata = test::read_back(received);
    const auto lines = read_lines(results);
    ASSERT_EQ(lines.size(), 60u);
    ASSERT_EQ(metadata.size(), 60u);
    // No B-frames: packet order is frame order.
    for (std::size_t i = 0; i < 60; ++i) {
      ASSERT_TRUE(metadata[i].has_value()) << "packet " << i << " has no SEI";
      const auto record = nlohmann::json::parse(lines[i]);
      ASSERT_EQ(metadata[i]->size(), record.at("detections").size()) << "frame " << i;
      for (std::size_t d = 0; d < metadata[i]->size(); ++d) {
        EXPECT_EQ((*metadata[i])[d].x1, record["detections"][d]["box"][0].get<float>());
        EXPECT_EQ((*metadata[i])[d].track_id, record["detections"][d]["track_id"].get<int>());
      }
    }
  }
}

// The pipeline computes YOLOv5's heads only where its decoder reads them (HeadGate, on by default):
// every frame's detections must be those of the whole heads (VAPIPE_HEAD_GATE=0), up to float rounding.
TEST(RunCommand, GatedHeadsGiveTheDetectionsOfWholeHeads) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  std::map<std::string, std::vector<nlohmann::json>> frames;  // per run: every result line, by frame
  for (const std::string gate : {"1", "0"}) {
    const fs::path results = dir / ("gate-" + gate + ".jsonl");
    const fs::path config = write_config(
        dir, base_config(clip.string(), 1, {{"output_mode", "results"}, {"results_path", results.string()}},
                         {{"loop", false}, {"pace", false}}));
    ::setenv("VAPIPE_HEAD_GATE", gate.c_str(), 1);  // inherited by the CLI std::system starts
    const RunResult run = run_vapipe(
        dir,
        fmt::format("run -c '{}' --stats none --cache-dir '{}'", config.string(), model_cache().string()),
        300);
    ::unsetenv("VAPIPE_HEAD_GATE");
    ASSERT_EQ(run.exit_code, 0) << (run.stderr_lines.empty() ? "" : run.stderr_lines.back());
    for (const auto& line : read_lines(results)) frames[gate].push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(frames["1"].size(), frames["0"].size());
  ASSERT_GE(frames["1"].size(), 30U);
  std::size_t boxes = 0;
  for (std::size_t f = 0; f < frames["1"].size(); ++f) {
    const auto& gated = frames["1"][f].at("detections");
    const auto& whole = frames["0"][f].at("detections");
    ASSERT_EQ(frames["1"][f].at("frame"), frames["0"][f].at("frame"));
    ASSERT_EQ(gated.size(), whole.size()) << "frame " << f;
    for (std::size_t d = 0; d < gated.size(); ++d) {
      EXPECT_EQ(gated[d].at("class_id"), whole[d].at("class_id")) << "frame " << f;
      EXPECT_NEAR(gated[d].at("score").get<double>(), whole[d].at("score").get<double>(), 1e-4)
          << "frame " << f;
      for (std::size_t k = 0; k < 4; ++k) {
        EXPECT_NEAR(gated[d].at("box")[k].get<double>(), whole[d].at("box")[k].get<double>(), 1e-2)
            << "frame " << f;
      }
      ++boxes;
    }
  }
  EXPECT_GE(boxes, 100U) << "vtest's pedestrians: the comparison must see detections";
}

}  // namespace
}  // namespace vapipe
