// The MQTT publisher against a real mosquitto broker on loopback: what mosquitto_sub receives is the JSON
// Lines output record for record; a broker that is absent, stopped, frozen or restarted costs messages
// (counted), never frames.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pipeline/pipeline_fixture.hpp"
#include "server/mqtt_publisher.hpp"
#include "server/server_fixture.hpp"
#include "server/services.hpp"
#include "support/mosquitto.hpp"
#include "support/process.hpp"
#include "support/test_data.hpp"

namespace vapipe::server {
namespace {

namespace fs = std::filesystem;
using vapipe::test::MosquittoBroker;
using vapipe::test::MosquittoSub;
using vapipe::test::MqttMessage;
using Clock = std::chrono::steady_clock;

// Polls `condition` (state owned by other threads and processes) until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling, not synchronization
  }
  return condition();
}

pipeline::MqttConfig mqtt_config(int port, int qos = 0) {
  pipeline::MqttConfig config;
  config.host = "127.0.0.1";
  config.port = port;
  config.topic = "vapipe";
  config.qos = qos;
  return config;
}

std::shared_ptr<pipeline::ChannelTap> tap_for(MqttPublisher& publisher, int channel) {
  pipeline::ChannelInfo info;
  info.channel = channel;
  info.model = "det";
  info.name = fmt::format("det_{}", channel);
  return publisher.tap_factory()(info);
}

// A results line as the channel formats it (the payload only has to be passed on unchanged).
std::string line_for(int channel, int frame) {
  return fmt::format(R"({{"channel":{},"frame":{},"pts":{},"detections":[]}})", channel, frame, frame * 100);
}

void send_frame(pipeline::ChannelTap& tap, int channel, int frame) {
  const std::string line = line_for(channel, frame);
  pipeline::FrameRecord record;
  record.channel = channel;
  record.frame = frame;
  tap.frame_done(record, line, nullptr);
}

// Offers `frames` frames on a new tap of `publisher`: all of them must come back as dropped, none published.
void expect_every_frame_dropped(MqttPublisher& publisher, int channel, int frames) {
  const auto tap = tap_for(publisher, channel);
  for (int frame = 0; frame < frames; ++frame) send_frame(*tap, channel, frame);
  EXPECT_TRUE(eventually([&] { return publisher.counters().dropped == static_cast<std::uint64_t>(frames); },
                         std::chrono::seconds(10)))
      << "dropped " << publisher.counters().dropped;
  EXPECT_EQ(publisher.counters().published, 0u);
  EXPECT_FALSE(publisher.counters().connected);
}

TEST(MqttPublisher, ABrokerThatIsNotThereYetCostsMessagesThenIsConnectedToWhenItStarts) {
  const auto dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  MqttPublisher publisher(mqtt_config(port));
  // Nobody listens: every frame is dropped and counted, none waits.
  expect_every_frame_dropped(publisher, 0, 2000);
  const auto tap = tap_for(publisher, 0);

  // The broker comes up on that port: the back-off reconnects and frames flow.
  MosquittoBroker broker(dir, port);
  ASSERT_TRUE(broker.start());
  ASSERT_TRUE(eventually([&] { return publisher.counters().connected; }, std::chrono::seconds(40)));
  EXPECT_EQ(publisher.counters().connects, 1u);

  MosquittoSub sub(dir / "sub.txt", port, "vapipe/#", 5, 30);
  int frame = 2000;
  std::atomic<bool> done{false};
  std::thread feeder([&] {
    // Until the subscriber has its messages: it subscribes at a moment we cannot see.
    while (!done) {
      send_frame(*tap, 0, frame++);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a 50 fps camera
    }
  });
  const std::vector<MqttMessage> messages = sub.messages();
  done = true;
  feeder.join();
  ASSERT_EQ(messages.size(), 5u) << sub.raw_output();
  const int first = nlohmann::json::parse(messages[0].payload).at("frame").get<int>();
  for (std::size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(messages[i].topic, "vapipe/det_0");
    EXPECT_EQ(messages[i].payload, line_for(0, first + static_cast<int>(i)));
  }
  EXPECT_GE(publisher.counters().published, 5u);
}

TEST(MqttPublisher, AHostThatDoesNotResolveIsNotFatal) {
  pipeline::MqttConfig config = mqtt_config(1883);
  config.host = "no-such-broker.invalid";
  MqttPublisher publisher(config);
  expect_every_frame_dropped(publisher, 3, 100);
  // Destruction stops the retrying network thread (the test would hang, then time out, otherwise).
}

TEST(MqttPublisher, BadValuesAreErrorsNamingTheKey) {
  pipeline::MqttConfig config = mqtt_config(1883);
  config.password = "pw";
  EXPECT_THROW(
      {
        try {
          MqttPublisher publisher(config);
        } catch (const Error& e) {
          EXPECT_STREQ(e.what(),
                       "mqtt.password: needs mqtt.username (MQTT sends a password only with a user name)");
          throw;
        }
      },
      Error);
  config = mqtt_config(1883);
  config.username = std::string("bad\xff utf8");
  try {
    MqttPublisher publisher(config);
    ADD_FAILURE() << "an invalid UTF-8 username was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(std::string(e.what()).starts_with("mqtt.username: ")) << e.what();
  }
}

// A broker that refuses the credentials: logged, retried in the background, messages dropped; the
// right password is accepted.
TEST(MqttPublisher, RefusedCredentialsAreNotFatalAndTheRightOnesConnect) {
  const auto dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  MosquittoBroker broker(dir, port);
  ASSERT_TRUE(broker.require_password("camera-site", "right"));
  ASSERT_TRUE(broker.start());

  pipeline::MqttConfig config = mqtt_config(port);
  config.username = "camera-site";
  config.password = "wrong";
  {
    MqttPublisher refused(config);
    expect_every_frame_dropped(refused, 0, 50);
    EXPECT_EQ(refused.counters().connects, 0u);
  }
  config.password = "right";
  MqttPublisher accepted(config);
  EXPECT_TRUE(eventually([&] { return accepted.counters().connected; }, std::chrono::seconds(20)));
}

// A broker that stops answering (SIGSTOP) with the connection still open: QoS 1 messages wait for their
// PUBACK, and libmosquitto would queue every later one. The publisher stops handing messages over at
// kMaxUnconfirmed, so memory stays bounded; every frame is either published or counted as dropped.
TEST(MqttPublisher, AFrozenBrokerBoundsTheBacklogAndEveryFrameIsAccountedFor) {
  const auto dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  MosquittoBroker broker(dir, port);
  ASSERT_TRUE(broker.start());
  MqttPublisher publisher(mqtt_config(port, 1));
  ASSERT_TRUE(eventually([&] { return publisher.counters().connected; }, std::chrono::seconds(20)));
  const auto tap = tap_for(publisher, 1);

  ASSERT_TRUE(broker.freeze());
  constexpr int kFrames = 20000;
  for (int frame = 0; frame < kFrames; ++frame) {
    send_frame(*tap, 1, frame);
    if (frame % 200 == 199) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let it hand over
  }
  // At most kMaxUnconfirmed are with libmosquitto (none acknowledged): the rest is dropped.
  ASSERT_TRUE(eventually([&] { return publisher.counters().dropped >= kFrames - kMaxUnconfirmed; },
                         std::chrono::seconds(20)))
      << "dropped " << publisher.counters().dropped;
  const MqttCounters frozen = publisher.counters();
  EXPECT_EQ(frozen.published, 0u);

  // Awake again: the acknowledgements come and every frame is published or dropped, none in limbo.
  ASSERT_TRUE(broker.thaw());
  ASSERT_TRUE(eventually(
      [&] {
        const MqttCounters c = publisher.counters();
        return c.published + c.dropped == static_cast<std::uint64_t>(kFrames);
      },
      std::chrono::seconds(60)))
      << "published " << publisher.counters().published << " dropped " << publisher.counters().dropped;
  EXPECT_GT(publisher.counters().published, 0u);
  EXPECT_LE(publisher.counters().published, static_cast<std::uint64_t>(kMaxUnconfirmed));
}

// A frozen broker with QoS 0: the socket buffers fill up, then libmosquitto would queue every later
// message in memory; past kMaxUnconfirmed they are dropped instead. Shutdown gives such a broker a short
// grace for the DISCONNECT, then cancels the network thread: stopping vapipe never hangs on the broker
// (the bound below is a hang detector, not a speed check).
TEST(MqttPublisher, AFrozenBrokerWithQos0BoundsTheBacklogAndShutdownDoesNotHang) {
  const auto dir = vapipe::test::scratch_dir();
  const int port = vapipe::test::free_port();
  MosquittoBroker broker(dir, port);
  ASSERT_TRUE(broker.start());
  auto publisher = std::make_unique<MqttPublisher>(mqtt_config(port, 0));
  ASSERT_TRUE(eventually([&] { return publisher->counters().connected; }, std::chrono::seconds(20)));
  const auto tap = tap_for(*publisher, 0);
  ASSERT_TRUE(broker.freeze());
  // 64 KiB records (many detections): 4000 of them are far more than loopback socket buffers hold.
  const std::string big(64 * 1024, 'x');
  constexpr int kFrames = 4000;
  for (int frame = 0; frame < kFrames; ++frame) {
    pipeline::FrameRecord record;
    tap->frame_done(record, big, nullptr);
    if (frame % 100 == 99) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let it hand over
  }
  ASSERT_TRUE(eventually(
      [&] {
        const MqttCounters c = publisher->counters();
        return c.published + c.dropped + static_cast<std::uint64_t>(kMaxUnconfirmed) >= kFrames;
      },
      std::chrono::seconds(30)))
      << "published " << publisher->counters().published << " dropped " << publisher->counters().dropped;
  EXPECT_GT(publisher->counters().dropped, 0u);

  std::promise<void> destroyed;
  std::future<void> done = destroyed.get_future();
  std::thread stopper([&] {
    publisher.reset();
    destroyed.set_value();
  });
  const bool returned = done.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  EXPECT_TRUE(returned) << "the publisher's destructor hangs on a frozen broker";
  if (returned) {
    stopper.join();
  } else {
    stopper.detach();  // the failure is reported; do not hang the test binary as well
  }
  broker.thaw();
  // The tap outlives the publisher (channels close after the services stop): it drops, never crashes.
  send_frame(*tap, 0, kFrames);
}

// End to end: two file channels through the real pipeline (YOLOv5n), JSON Lines to a file and MQTT to a
// broker that is stopped and restarted mid-run.
TEST(MqttPublisher, PipelineResultsMatchJsonLinesAndSurviveABrokerRestart) {
  VAPIPE_REQUIRE_MODEL(test::kLightModel);
  const auto clip = pipeline::test::bframes_mp4();
  ASSERT_FALSE(clip.empty());
  const auto dir = vapipe::test::scratch_dir();
  const auto results = dir / "results.jsonl";
  const int port = vapipe::test::free_port();
  MosquittoBroker broker(dir, port);
  ASSERT_TRUE(broker.start());

  auto json = test::results_config(clip.string(), 2, results);
  json["mqtt"] = {{"host", "127.0.0.1"}, {"port", port}, {"topic", "vapipe"}};
  pipeline::Pipeline pipeline(pipeline::parse_config(json.dump(), "test.json"),
                              pipeline::test::quiet_options());
  auto services = std::make_unique<Services>(pipeline);
  ASSERT_NE(services->mqtt(), nullptr);
  const MqttPublisher& mqtt = *services->mqtt();
  std::thread runner([&] { pipeline.run(); });
  const auto stop = [&] {
    pipeline.request_stop();
    if (runner.joinable()) runner.join();
  };
  const auto count_lines = [&] {
    std::ifstream in(results);
    std::size_t lines = 0;
    std::string line;
    while (std::getline(in, line)) ++lines;
    return lines;
  };

  MosquittoSub before(dir / "sub-before.txt", port, "vapipe/#", 20, 120);
  const std::vector<MqttMessage> first = before.messages();

  // The broker goes away: frames keep coming out, messages are dropped and counted.
  broker.stop();
  ASSERT_TRUE(eventually([&] { return !mqtt.counters().connected; }, std::chrono::seconds(20)));
  const std::size_t lines_at_stop = count_lines();
  const std::uint64_t dropped_at_stop = mqtt.counters().dropped;
  const bool kept_running = eventually(
      [&] { return count_lines() >= lines_at_stop + 20 && mqtt.counters().dropped >= dropped_at_stop + 20; },
      std::chrono::seconds(60));
  const std::size_t lines_after_wait = count_lines();
  const std::uint64_t dropped_after_wait = mqtt.counters().dropped;

  // Back on the same port: the publisher reconnects by itself and new frames arrive.
  ASSERT_TRUE(broker.start());
  const bool reconnected =
      eventually([&] { return mqtt.counters().connects >= 2; }, std::chrono::seconds(60));
  MosquittoSub after(dir / "sub-after.txt", port, "vapipe/#", 20, 120);
  const std::vector<MqttMessage> second = after.messages();
  stop();
  services.reset();

  EXPECT_TRUE(kept_running) << "JSON Lines " << lines_at_stop << " -> " << lines_after_wait
                            << " lines, dropped " << dropped_at_stop << " -> " << dropped_after_wait;
  EXPECT_TRUE(reconnected);
  ASSERT_EQ(first.size(), 20u) << before.raw_output();
  ASSERT_EQ(second.size(), 20u) << after.raw_output();

  // Every payload is a JSON Lines line as is, on its channel's topic; per channel, consecutive frames.
  std::set<std::string> lines;
  {
    std::ifstream in(results);
    std::string line;
    while (std::getline(in, line)) lines.insert(line);
  }
  std::map<int, std::int64_t> last_frame_before;
  for (const auto* messages : {&first, &second}) {
    std::map<int, std::int64_t> previous;
    for (const auto& message : *messages) {
      EXPECT_TRUE(lines.contains(message.payload)) << "not in the JSON Lines: " << message.payload;
      const auto record = nlohmann::json::parse(message.payload);
      const int channel = record.at("channel").get<int>();
      const auto frame = record.at("frame").get<std::int64_t>();
      EXPECT_EQ(message.topic, fmt::format("vapipe/det_{}", channel));
      if (previous.contains(channel)) {
        EXPECT_EQ(frame, previous[channel] + 1) << "channel " << channel;
      }
      if (messages == &second && last_frame_before.contains(channel)) {
        EXPECT_GT(frame, last_frame_before[channel]) << "channel " << channel;
      }
      previous[channel] = frame;
    }
    if (messages == &first) last_frame_before = previous;
  }
  EXPECT_EQ(last_frame_before.size(), 2u) << "both channels publish";
}

}  // namespace
}  // namespace vapipe::server
