#pragma once
// The `mqtt` section: every frame's results record published to "<topic>/<model>_<ch>" on an MQTT broker
// (libmosquitto), the payload byte for byte the frame's JSON Lines line, so consumers of either agree.
//
// Never blocks the pipeline. A channel's output thread copies the line into one of a fixed pool of buffers
// and hands it to the publisher thread (no allocation, two short queue locks per frame); when no buffer is
// free the frame is dropped and counted. The publisher thread passes messages to libmosquitto only while
// connected and while fewer than kMaxUnconfirmed are unconfirmed, so libmosquitto's own queue stays bounded
// when the broker is down or slow (it queues QoS 1/2 messages without limit otherwise). libmosquitto's
// network thread (mosquitto_loop_start) connects asynchronously and reconnects with exponential back-off;
// a host that does not resolve or refuses is retried, never fatal. One log line per state change
// (connected, refused, lost, reconnected); the password is never logged.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/bounded_queue.hpp"
#include "pipeline/channel_tap.hpp"
#include "pipeline/config.hpp"

struct mosquitto;

namespace vapipe::server {

// Messages waiting between the output threads and the publisher thread (all channels together).
inline constexpr std::size_t kMqttHandOverCapacity = 256;
// Messages handed to libmosquitto and not yet written (QoS 0) or acknowledged (QoS 1/2).
inline constexpr std::int64_t kMaxUnconfirmed = 1024;

struct MqttCounters {
  std::uint64_t published = 0;  // written to the broker (QoS 0) or acknowledged by it (QoS 1/2)
  std::uint64_t dropped = 0;    // not published: broker down or slow, or the hand-over full
  std::uint64_t connects = 0;   // successful connections (the first one and every reconnect)
  bool connected = false;
};

class MqttPublisher {
 public:
  // Starts the network thread and the first connection attempt; returns without waiting for it. Throws
  // vapipe::Error naming the `mqtt.*` key only for values libmosquitto refuses outright.
  explicit MqttPublisher(pipeline::MqttConfig config);
  // Publishes what is still handed over (while connected), disconnects (waits at most ~2 s for the
  // broker) and stops both threads. Taps that outlive the publisher drop what they are given.
  ~MqttPublisher();
  MqttPublisher(const MqttPublisher&) = delete;
  MqttPublisher& operator=(const MqttPublisher&) = delete;

  // For Pipeline::add_tap_factory: one tap per channel, publishing to "<topic>/<channel name>".
  pipeline::TapFactory tap_factory();

  // Thread-safe snapshot (for /metrics and tests).
  MqttCounters counters() const;
  const pipeline::MqttConfig& config() const { return config_; }

  // What the taps share with the publisher; defined in the .cpp.
  struct State;

 private:
  void publish_loop();

  pipeline::MqttConfig config_;
  std::shared_ptr<State> state_;
  std::thread publisher_thread_;
};

}  // namespace vapipe::server
