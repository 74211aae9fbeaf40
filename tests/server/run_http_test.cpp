// `vapipe run` (the real binary) with an `http` section: the API answers while it runs, a channel added
// over HTTP shows in the final summary, a public bind without a token is refused naming http.token, and a
// camera password appears nowhere: not in a response, the log, the stats or the summary.
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/test_clips.hpp"
#include "server/http_client.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

json config_for(const std::string& address, const json& http) {
  const json camera = {{"address", address}, {"chan_num", 1}, {"model_names", {"det"}}, {"loop", true}};
  const json model = {{"name", "det"},
                      {"path", (test::models_dir() / "yolofastestv2.onnx").string()},
                      {"obj_threshold", 0.25},
                      {"nms_threshold", 0.45},
                      {"class_threshold", 0.25}};
  return {{"cards", {{{"devid", 0}, {"cameras", {camera}}}}}, {"models", {model}}, {"http", http}};
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(RunHttp, TheApiOfARunningBinaryNeverShowsCameraPasswords) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto clip = io::test::mp4_clip();
  VAPIPE_REQUIRE_CLIP(clip, "MP4");
  const fs::path dir = test::scratch_dir();
  const int port = test::free_port();
  const std::string camera = fmt::format("rtsp://admin:hunter2secret@127.0.0.1:{}/cam", test::free_port());
  const fs::path config = dir / "cameras.json";
  std::ofstream(config) << config_for(clip.string(), {{"port", port}}).dump(2);
  const fs::path cache = fs::temp_directory_path() / "vapipe-tests" / "model-cache";
  test::Child run({VAPIPE_CLI, "run", "-c", config.string(), "--cache-dir", cache.string(), "--stats", "all",
                   "--duration", "60"},
                  dir / "run.log");

  // The server is up once the models are loaded.
  test::HttpResult listed;
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    listed = test::http_get(port, "/api/channels");
    if (listed.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // waiting for a child process to listen
  }
  ASSERT_EQ(listed.status, 200) << read_file(dir / "run.log");
  // Issue 17: a request from a DNS-rebinding page, its path carrying a newline and an ESC sequence: refused,
  // and the log line that says so shows them escaped (checked below).
  const auto rebound = test::http_get(port, "/api/x%0aforged-line%1b%5b2J", {{"Host", "evil.example"}});
  EXPECT_EQ(rebound.status, 403) << rebound.body;
  const auto added =
      test::http_request(port, "POST", "/api/channels", json{{"address", camera}, {"model", "det"}}.dump());
  ASSERT_EQ(added.status, 201) << added.body;
  std::string responses = listed.body + added.body;
  // Let the camera channel fail and retry a few times, then read everything the API has to say.
  bool waiting = false;
  while (Clock::now() < deadline && !waiting) {
    const auto channel = test::http_get(port, "/api/channels/1");
    responses += channel.body;
    waiting = json::parse(channel.body, nullptr, false).value("state", "") == "waiting";
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling a live API
  }
  EXPECT_TRUE(waiting);
  for (const char* target : {"/api/channels", "/api/stats", "/api/stats/history", "/metrics"})
    responses += test::http_get(port, target).body;
  run.signal(SIGINT);
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(60)));
  EXPECT_EQ(run.exit_code(), 0);

  const std::string log = read_file(dir / "run.log");
  EXPECT_NE(log.find(fmt::format("rtsp://admin:***@127.0.0.1")), std::string::npos) << log;
  EXPECT_NE(log.find("channel 1 added"), std::string::npos);
  // The final summary lists the channel added over HTTP, its address masked.
  const std::size_t summary = log.find("vapipe run: ");
  ASSERT_NE(summary, std::string::npos) << log;
  EXPECT_NE(log.find("rtsp://admin:***@127.0.0.1", summary), std::string::npos) << log.substr(summary);
  EXPECT_EQ(log.find("hunter2secret"), std::string::npos) << "a camera password reached the log:\n" << log;
  EXPECT_NE(log.find("http: refused GET /api/x\\nforged-line\\x1b[2J"), std::string::npos) << log;
  EXPECT_EQ(log.find("\nforged-line"), std::string::npos) << "a request forged a log line:\n" << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << "an ESC sequence reached the terminal:\n" << log;
  EXPECT_EQ(responses.find("hunter2secret"), std::string::npos) << "a camera password reached a response";
}

TEST(RunHttp, APublicBindWithoutATokenIsAConfigErrorNamingHttpToken) {
  const fs::path dir = test::scratch_dir();
  const fs::path config = dir / "cameras.json";
  std::ofstream(config) << config_for("/nonexistent.mp4", {{"bind", "0.0.0.0"}, {"port", 0}}).dump(2);
  test::Child run({VAPIPE_CLI, "run", "-c", config.string()}, dir / "run.log");
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(60)));
  EXPECT_EQ(run.exit_code(), 1);
  EXPECT_NE(read_file(dir / "run.log").find("http.token"), std::string::npos) << read_file(dir / "run.log");
}

// Issue 17: control characters in a config address (a NUL cut the path short, a newline forged log lines)
// are refused at start, and the error line shows them escaped: one line, no ESC for the terminal.
TEST(RunHttp, AConfigAddressWithControlCharactersIsRefusedInOneEscapedLine) {
  const fs::path dir = test::scratch_dir();
  const fs::path config = dir / "cameras.json";
  std::ofstream(config) << config_for("/v/a.mp4\nvapipe: forged\x1b]0;owned\x07", {{"port", 0}}).dump(2);
  test::Child run({VAPIPE_CLI, "run", "-c", config.string()}, dir / "run.log");
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(60)));
  EXPECT_EQ(run.exit_code(), 1);
  const std::string log = read_file(dir / "run.log");
  EXPECT_NE(log.find("cards[0].cameras[0].address: control character U+000A at byte 8"), std::string::npos)
      << log;
  EXPECT_EQ(log.find("\nvapipe: forged"), std::string::npos) << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << log;
}

// Face recognition over the API: GET /api/gallery lists what the gallery folder gave (a corrupt photo reported
// by name), a photo added to the folder is picked up by POST /api/gallery/reload, and the running channel then
// names that person in its results (her track's earlier "unknown" votes dropped with the old gallery).
TEST(RunHttp, AGalleryReloadedOverTheApiNamesANewPerson) {
  VAPIPE_REQUIRE_MODEL("scrfd_500m_bnkps.onnx");
  VAPIPE_REQUIRE_MODEL("mobilefacenet.onnx");
  const fs::path faces = test::models_dir() / ".." / "data" / "faces";
  if (!fs::exists(faces / "video_chunk_6s.mp4")) GTEST_SKIP() << "no face video in " << faces;
  const fs::path dir = test::scratch_dir();
  const std::string log_file = (dir / "build.log").string();
  for (const char* name : {"scrfd_500m_bnkps", "mobilefacenet"}) {
    ASSERT_EQ(test::run_shell(fmt::format("'{}' compile '{}' -o '{}' >>'{}' 2>&1", VAPIPE_CLI,
                                          (test::models_dir() / (std::string(name) + ".onnx")).string(),
                                          (dir / (std::string(name) + ".vpk")).string(), log_file))
                  .exit_code,
              0)
        << read_file(log_file);
  }
  ASSERT_EQ(test::run_shell(fmt::format("'{}' combine '{}' '{}' -o '{}' >>'{}' 2>&1", VAPIPE_CLI,
                                        (dir / "scrfd_500m_bnkps.vpk").string(),
                                        (dir / "mobilefacenet.vpk").string(), (dir / "face.vpk").string(),
                                        log_file))
                .exit_code,
            0)
      << read_file(log_file);
  const fs::path gallery = dir / "gallery";
  fs::create_directories(gallery);
  fs::copy_file(faces / "0001.jpg", gallery / "alice.jpg");
  std::ofstream(gallery / "broken.jpg") << "not a jpeg";
  const int port = test::free_port();
  json config = config_for((faces / "video_chunk_6s.mp4").string(), {{"port", port}});
  config["models"][0] = {{"name", "det"},
                         {"path", (dir / "face.vpk").string()},
                         {"nms_threshold", 0.4},
                         {"gallery", gallery.string()}};
  std::ofstream(dir / "cameras.json") << config.dump(2);
  const fs::path results = dir / "results.jsonl";
  test::Child run({VAPIPE_CLI, "run", "-c", (dir / "cameras.json").string(), "--results", results.string(),
                   "--duration", "120"},
                  dir / "run.log");

  test::HttpResult listed;
  const auto deadline = Clock::now() + std::chrono::seconds(100);
  while (Clock::now() < deadline) {
    listed = test::http_get(port, "/api/gallery");
    if (listed.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // waiting for a child process to listen
  }
  ASSERT_EQ(listed.status, 200) << listed.body << read_file(dir / "run.log");
  const json before = json::parse(listed.body);
  EXPECT_EQ(before.at("identities"), json::array({"alice"}));
  ASSERT_EQ(before.at("skipped").size(), 1U) << listed.body;
  EXPECT_EQ(before.at("skipped")[0].at("file"), "broken.jpg");

  // 0025 is the person on the left of the face video (0026 is her too).
  fs::copy_file(faces / "0025.jpg", gallery / "carol.jpg");
  const auto reloaded = test::http_request(port, "POST", "/api/gallery/reload", "");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body;
  EXPECT_EQ(json::parse(reloaded.body).at("identities"), json::array({"alice", "carol"})) << reloaded.body;
  // The channel loops over the video: carol shows up in the results once her track has voted again.
  bool named = false;
  while (Clock::now() < deadline && !named) {
    std::ifstream in(results);
    for (std::string line; !named && std::getline(in, line);)
      named = line.find(R"("identity":{"name":"carol")") != std::string::npos;
    if (!named) std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling a growing file
  }
  EXPECT_TRUE(named) << "no face named carol after the reload";
  run.signal(SIGINT);
  ASSERT_TRUE(run.wait_for(std::chrono::seconds(60)));
  EXPECT_EQ(run.exit_code(), 0) << read_file(dir / "run.log");
  EXPECT_NE(read_file(dir / "run.log").find("'broken.jpg' skipped: cannot be decoded"), std::string::npos);
}

}  // namespace
}  // namespace vapipe
