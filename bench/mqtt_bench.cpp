// What the MQTT publisher costs a channel's output thread (the only part the pipeline waits for), with the
// broker absent and with a real mosquitto on loopback, and how many messages per second reach that broker:
//   vapipe_mqtt_bench --benchmark_filter=Mqtt
// Frames are offered as fast as the loop runs, far above any camera rate, so most are dropped by design:
// `published` is the publisher's throughput, `dropped` what did not fit.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

#include "server/mqtt_publisher.hpp"
#include "support/mosquitto.hpp"
#include "support/process.hpp"

namespace {

namespace fs = std::filesystem;
using vapipe::server::MqttPublisher;

// Args: broker running (0/1), record size in bytes.
void BM_MqttFrameDone(benchmark::State& state) {
  const bool with_broker = state.range(0) != 0;
  const fs::path dir = fs::temp_directory_path() / fmt::format("vapipe-mqtt-bench-{}", getpid());
  fs::create_directories(dir);
  const int port = vapipe::test::free_port();
  vapipe::test::MosquittoBroker broker(dir, port);
  if (with_broker && !broker.start()) {
    state.SkipWithError("mosquitto did not start");
    return;
  }
  vapipe::pipeline::MqttConfig config;
  config.host = "127.0.0.1";
  config.port = port;
  config.topic = "bench";
  auto publisher = std::make_unique<MqttPublisher>(config);
  const auto connect_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (with_broker && !publisher->counters().connected &&
         std::chrono::steady_clock::now() < connect_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // waiting for a connection, not syncing
  }
  vapipe::pipeline::ChannelInfo info;
  info.name = "det_0";
  const auto tap = publisher->tap_factory()(info);
  const std::string line(static_cast<std::size_t>(state.range(1)), 'x');
  const vapipe::pipeline::FrameRecord record;
  for (auto _ : state) tap->frame_done(record, line, nullptr);
  const auto counters = publisher->counters();
  state.counters["published"] =
      benchmark::Counter(static_cast<double>(counters.published), benchmark::Counter::kIsRate);
  state.counters["dropped"] =
      benchmark::Counter(static_cast<double>(counters.dropped), benchmark::Counter::kIsRate);
  publisher.reset();
  broker.stop();
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}
BENCHMARK(BM_MqttFrameDone)->Args({0, 600})->Args({1, 600})->Args({1, 8192})->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
