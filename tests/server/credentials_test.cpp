// Camera and broker credentials stay out of everything `vapipe run` shows outside HTTP: its log and
// statistics, the JSON Lines, the MQTT payloads, and what the live servers are told about a channel
// (the RTSP server mounts and the viewer show ChannelInfo).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pipeline/pipeline_fixture.hpp"
#include "server/server_fixture.hpp"
#include "server/services.hpp"
#include "support/mosquitto.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"

namespace vapipe::server {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSecret = "secret";

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A file channel that produces results, and an RTSP camera with a password in its URL on a port where
// nothing listens (so it is retried and logged); an MQTT broker with a password.
nlohmann::json config_with_secrets(const fs::path& clip, int closed_port, int broker_port,
                                   const fs::path& results) {
  auto config = test::results_config(clip.string(), 1, results);
  config["cards"][0]["cameras"].push_back(
      {{"address", fmt::format("rtsp://user:{}@127.0.0.1:{}/x", kSecret, closed_port)},
       {"chan_num", 1},
       {"model_names", {"det"}}});
  config["mqtt"] = {{"host", "127.0.0.1"},
                    {"port", broker_port},
                    {"topic", "vapipe"},
                    {"username", "user"},
                    {"password", kSecret}};
  return config;
}

TEST(Credentials, VapipeRunNeverShowsThemInItsLogResultsOrMqttPayloads) {
  VAPIPE_REQUIRE_MODEL(test::kLightModel);
  const auto clip = pipeline::test::bframes_mp4();
  ASSERT_FALSE(clip.empty());
  const auto dir = vapipe::test::scratch_dir();
  const int closed_port = vapipe::test::free_port();
  vapipe::test::MosquittoBroker broker(dir, vapipe::test::free_port());
  ASSERT_TRUE(broker.start());
  const auto results = dir / "results.jsonl";
  const auto config_file = dir / "cameras.json";
  std::ofstream(config_file) << config_with_secrets(clip, closed_port, broker.port(), results).dump(2);

  vapipe::test::MosquittoSub sub(dir / "sub.txt", broker.port(), "vapipe/#", 10, 120);
  // -v: the debug log too; --stats all: the per-channel table with the addresses.
  const std::string command = fmt::format(
      "timeout 300 '{}' -v run --config '{}' --duration 8 --stats all --cache-dir '{}' >'{}' 2>'{}'",
      VAPIPE_CLI, config_file.string(), pipeline::test::model_cache().string(), (dir / "stdout.txt").string(),
      (dir / "stderr.txt").string());
  const int status = std::system(command.c_str());
  const auto messages = sub.messages();
  const std::string out = read_file(dir / "stdout.txt");
  const std::string err = read_file(dir / "stderr.txt");
  const std::string jsonl = read_file(results);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;

  // Not vacuous: the RTSP channel was logged and tabled (address without the password), results came out,
  // the broker took the password and the payloads reached the subscriber.
  const std::string redacted = fmt::format("127.0.0.1:{}/x", closed_port);
  EXPECT_NE(err.find(redacted), std::string::npos) << err;
  EXPECT_NE(out.find(redacted), std::string::npos) << out;
  EXPECT_NE(err.find("mqtt: connected to"), std::string::npos) << err;
  EXPECT_FALSE(jsonl.empty());
  ASSERT_EQ(messages.size(), 10u) << sub.raw_output();

  EXPECT_EQ(out.find(kSecret), std::string::npos) << out;
  EXPECT_EQ(err.find(kSecret), std::string::npos) << err;
  EXPECT_EQ(jsonl.find(kSecret), std::string::npos);
  for (const auto& message : messages) {
    EXPECT_EQ(message.topic.find(kSecret), std::string::npos) << message.topic;
    EXPECT_EQ(message.payload.find(kSecret), std::string::npos) << message.payload;
  }
}

// What the RTSP server mounts and the viewer lists: the channel's name and its address, both without the
// password.
TEST(Credentials, TheChannelInfoServersShowCarriesNoPassword) {
  VAPIPE_REQUIRE_MODEL(test::kLightModel);
  const auto clip = pipeline::test::bframes_mp4();
  ASSERT_FALSE(clip.empty());
  const auto dir = vapipe::test::scratch_dir();
  const auto config =
      config_with_secrets(clip, vapipe::test::free_port(), vapipe::test::free_port(), dir / "results.jsonl");
  pipeline::Pipeline pipeline(pipeline::parse_config(config.dump(), "test.json"),
                              pipeline::test::quiet_options());
  ASSERT_EQ(pipeline.channel_count(), 2u);
  const pipeline::ChannelInfo camera = pipeline.channel_info(1);
  EXPECT_EQ(camera.name, "det_1");
  EXPECT_EQ(camera.address.find(kSecret), std::string::npos) << camera.address;
  EXPECT_NE(camera.address.find("127.0.0.1"), std::string::npos) << camera.address;
}

}  // namespace
}  // namespace vapipe::server
