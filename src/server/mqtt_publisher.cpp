#include "server/mqtt_publisher.hpp"

#include <mosquitto.h>
#include <pthread.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/error.hpp"

namespace vapipe::server {

namespace {

// libmosquitto's reconnect back-off (seconds): 1, 4, 9, ... (delay * (n+1)^2), at most 30.
constexpr unsigned kReconnectDelayS = 1;
constexpr unsigned kReconnectDelayMaxS = 30;
// How long shutdown waits for the broker to take the last messages and the DISCONNECT.
constexpr auto kShutdownGrace = std::chrono::seconds(2);
// A results line is ~100 bytes plus ~100 per detection; buffers grow once if a line is longer.
constexpr std::size_t kPayloadReserve = 2048;

// mosquitto_lib_init is not thread-safe and must run once per process before any client exists.
void ensure_library() {
  static const struct Library {
    Library() { mosquitto_lib_init(); }
    ~Library() { mosquitto_lib_cleanup(); }
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;
  } library;
}

struct MosquittoDeleter {
  void operator()(mosquitto* client) const { mosquitto_destroy(client); }
};
using MosquittoHandle = std::unique_ptr<mosquitto, MosquittoDeleter>;

// Our callbacks run on libmosquitto's network thread, which shutdown may cancel (mosquitto_loop_stop with
// force) when the broker does not answer: no cancellation inside them, so spdlog's and our locks are
// never left held.
class NoCancellation {
 public:
  NoCancellation() { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &previous_); }
  ~NoCancellation() { pthread_setcancelstate(previous_, nullptr); }
  NoCancellation(const NoCancellation&) = delete;
  NoCancellation& operator=(const NoCancellation&) = delete;

 private:
  int previous_ = 0;
};

std::string describe(int mosquitto_error, int saved_errno) {
  if (mosquitto_error == MOSQ_ERR_ERRNO) return std::strerror(saved_errno);
  if (mosquitto_error == MOSQ_ERR_EAI) return "the host name does not resolve";
  return mosquitto_strerror(mosquitto_error);
}

struct Message {
  const std::string* topic = nullptr;  // in State::topics, stable for the publisher's life
  std::string payload;
};

}  // namespace

struct MqttPublisher::State {
  State(int qos_level, std::string broker) : qos(qos_level), where(std::move(broker)) {
    for (std::size_t i = 0; i < kMqttHandOverCapacity; ++i) {
      Message message;
      message.payload.reserve(kPayloadReserve);
      free_buffers.try_push(std::move(message));
    }
  }

  const int qos;
  const std::string where;  // "host:port" for the log (never the credentials)

  // The hand-over: empty buffers wait in free_buffers, filled ones in ready in frame order. The pool size
  // is the bound; moving a Message moves its buffer, so nothing is allocated per frame.
  BoundedQueue<Message> free_buffers{kMqttHandOverCapacity};
  BoundedQueue<Message> ready{kMqttHandOverCapacity};

  std::mutex topics_mutex;
  std::deque<std::string> topics;  // a deque: references stay valid as channels are added

  MosquittoHandle client;
  std::atomic<bool> connected{false};
  std::atomic<std::int64_t> unconfirmed{0};
  std::atomic<std::uint64_t> published{0}, dropped{0}, connects{0};

  std::atomic<bool> failure_logged{false};  // "cannot connect" logged for this episode
  // Network thread only.
  int last_refusal = 0;
  std::uint64_t dropped_when_lost = 0;

  // Shutdown waits for the DISCONNECT we asked for.
  std::mutex disconnect_mutex;
  std::condition_variable disconnect_done;
  bool stopping = false;
  bool disconnected_on_request = false;

  void drop() { dropped.fetch_add(1, std::memory_order_relaxed); }

  static State& of(void* userdata) { return *static_cast<State*>(userdata); }

  static void on_connect(mosquitto* /*client*/, void* userdata, int rc) {
    const NoCancellation no_cancellation;
    State& s = of(userdata);
    if (rc != 0) {
      // The broker answered but refused (bad credentials, client id): libmosquitto retries with back-off.
      if (rc != s.last_refusal) {
        spdlog::warn("mqtt: {} refused the connection: {}; retrying", s.where, mosquitto_connack_string(rc));
      }
      s.last_refusal = rc;
      return;
    }
    // QoS 0 messages libmosquitto had not written yet were discarded when it reconnected, without a
    // callback: they are lost. QoS 1/2 messages are kept and resent, so they stay unconfirmed.
    if (s.qos == 0) {
      const std::int64_t lost = s.unconfirmed.exchange(0);
      if (lost > 0) s.dropped.fetch_add(static_cast<std::uint64_t>(lost), std::memory_order_relaxed);
    }
    if (s.connects.fetch_add(1) == 0) {
      spdlog::info("mqtt: connected to {}", s.where);
    } else {
      spdlog::info("mqtt: reconnected to {} ({} messages dropped while disconnected)", s.where,
                   s.dropped.load() - s.dropped_when_lost);
    }
    s.failure_logged = false;
    s.last_refusal = 0;
    s.connected = true;
  }

  static void on_disconnect(mosquitto* /*client*/, void* userdata, int rc) {
    const NoCancellation no_cancellation;
    State& s = of(userdata);
    const int saved_errno = errno;
    const bool was_connected = s.connected.exchange(false);
    {
      std::lock_guard lock(s.disconnect_mutex);
      if (s.stopping && rc == MOSQ_ERR_SUCCESS) {
        s.disconnected_on_request = true;
        s.disconnect_done.notify_all();
        return;
      }
    }
    if (was_connected) {
      s.dropped_when_lost = s.dropped.load();
      spdlog::warn("mqtt: connection to {} lost ({}); reconnecting", s.where, describe(rc, saved_errno));
    } else if (s.last_refusal == 0 && !s.failure_logged.exchange(true)) {
      spdlog::warn("mqtt: cannot connect to {} ({}); retrying", s.where, describe(rc, saved_errno));
    }
  }

  static void on_publish(mosquitto* /*client*/, void* userdata, int /*mid*/) {
    State& s = of(userdata);
    s.unconfirmed.fetch_sub(1, std::memory_order_relaxed);
    s.published.fetch_add(1, std::memory_order_relaxed);
  }
};

namespace {

class MqttTap final : public pipeline::ChannelTap {
 public:
  MqttTap(std::shared_ptr<MqttPublisher::State> state, const std::string* topic, std::string record_prefix)
      : state_(std::move(state)), topic_(topic), record_prefix_(std::move(record_prefix)) {}

  // On the channel's output thread: never waits. No free buffer means the publisher is behind.
  void frame_done(const pipeline::FrameRecord& /*record*/, std::string_view json_line,
                  const AVFrame* /*picture*/) override {
    std::optional<Message> message = state_->free_buffers.try_pop();
    if (!message) {
      state_->drop();
      return;
    }
    message->topic = topic_;
    if (!record_prefix_.empty() && json_line.starts_with('{')) {
      // {"node":"N","name":"C", then the record's own keys: the buffer's capacity is reused.
      message->payload.assign(record_prefix_);
      message->payload.append(json_line.substr(1));
    } else {
      message->payload.assign(json_line);
    }
    if (!state_->ready.try_push(std::move(*message))) state_->drop();  // the publisher has stopped
  }

 private:
  std::shared_ptr<MqttPublisher::State> state_;
  const std::string* topic_;
  std::string record_prefix_;  // {"node":"N","name":"C", on a cluster node; empty without
};

}  // namespace

MqttPublisher::MqttPublisher(pipeline::MqttConfig config) : config_(std::move(config)) {
  ensure_library();
  if (config_.host.empty()) fail("mqtt.host: must not be empty");
  if (mosquitto_pub_topic_check(config_.topic.c_str()) != MOSQ_ERR_SUCCESS) {
    fail("mqtt.topic: \"{}\" is not a topic that can be published to", config_.topic);
  }
  if (config_.password && !config_.username) {
    fail("mqtt.password: needs mqtt.username (MQTT sends a password only with a user name)");
  }
  const std::string where = config_.host.find(':') != std::string::npos
                                ? fmt::format("[{}]:{}", config_.host, config_.port)
                                : fmt::format("{}:{}", config_.host, config_.port);
  state_ = std::make_shared<State>(config_.qos, where);
  State& s = *state_;

  // A clean session: after a restart the broker holds nothing for us, and we resend nothing old.
  s.client.reset(mosquitto_new(config_.client_id ? config_.client_id->c_str() : nullptr, true, &s));
  if (!s.client) {
    if (errno == EINVAL)
      fail("mqtt.client_id: \"{}\" is not a valid client id", config_.client_id.value_or(""));
    fail("mqtt: cannot create a client: {}", std::strerror(errno));
  }
  mosquitto* client = s.client.get();
  if (config_.username) {
    const int rc = mosquitto_username_pw_set(client, config_.username->c_str(),
                                             config_.password ? config_.password->c_str() : nullptr);
    if (rc != MOSQ_ERR_SUCCESS) fail("mqtt.username: {}", mosquitto_strerror(rc));
  }
  mosquitto_connect_callback_set(client, &State::on_connect);
  mosquitto_disconnect_callback_set(client, &State::on_disconnect);
  mosquitto_publish_callback_set(client, &State::on_publish);
  mosquitto_reconnect_delay_set(client, kReconnectDelayS, kReconnectDelayMaxS, true);

  spdlog::info("mqtt: publishing each frame's results to {}/<model>_<ch> on {} (qos {})", config_.topic,
               where, config_.qos);
  // The network thread first: libmosquitto 2.0 leaves a client whose very first CONNECT could not be sent
  // (a refused port) in its "new" state, which that thread never retries. Started first, the thread
  // sends the CONNECT itself, and every failure goes through its reconnect back-off.
  const int loop_rc = mosquitto_loop_start(client);
  if (loop_rc != MOSQ_ERR_SUCCESS) {
    fail("mqtt: cannot start the network thread: {}", mosquitto_strerror(loop_rc));
  }
  // Resolves the host and starts a non-blocking connect; a failure is retried by the network thread.
  const int rc = mosquitto_connect_async(client, config_.host.c_str(), config_.port, config_.keepalive_s);
  const int saved_errno = errno;
  if (rc == MOSQ_ERR_INVAL) fail("mqtt: libmosquitto refused host/port/keepalive_s of {}", where);
  if (rc != MOSQ_ERR_SUCCESS && !s.failure_logged.exchange(true)) {
    spdlog::warn("mqtt: cannot connect to {} ({}); retrying", where, describe(rc, saved_errno));
  }
  publisher_thread_ = std::thread([this] { publish_loop(); });
}

MqttPublisher::~MqttPublisher() {
  State& s = *state_;
  s.ready.close();  // the publisher thread publishes what is left, then ends
  if (publisher_thread_.joinable()) publisher_thread_.join();

  mosquitto* client = s.client.get();
  {
    std::lock_guard lock(s.disconnect_mutex);
    s.stopping = true;
  }
  // The DISCONNECT is queued behind the messages still unwritten, so they reach the broker first.
  const bool was_connected = s.connected.load();
  const int rc = mosquitto_disconnect(client);
  bool clean = false;
  if (was_connected && rc == MOSQ_ERR_SUCCESS) {
    std::unique_lock lock(s.disconnect_mutex);
    clean = s.disconnect_done.wait_for(lock, kShutdownGrace, [&] { return s.disconnected_on_request; });
  }
  // Not cleanly disconnected: the network thread may be in a blocking connect or resolve; cancel it.
  mosquitto_loop_stop(client, !clean);
  s.connected = false;
  s.client.reset();
}

pipeline::TapFactory MqttPublisher::tap_factory() {
  return [state = state_, prefix = config_.topic, node = config_.node](
             const pipeline::ChannelInfo& channel) -> std::shared_ptr<pipeline::ChannelTap> {
    std::string topic = prefix + "/" + channel.name;
    if (mosquitto_pub_topic_check(topic.c_str()) != MOSQ_ERR_SUCCESS) {
      fail("mqtt: channel {} cannot be published to topic \"{}\" (+ or # in the model name \"{}\")",
           channel.channel, topic, channel.model);
    }
    const std::string* stable = nullptr;
    {
      std::lock_guard lock(state->topics_mutex);
      stable = &state->topics.emplace_back(std::move(topic));
    }
    // A cluster node's records say which node ran them and the channel's cluster-wide name ("channel" is
    // this process's id for it).
    std::string record_prefix;
    if (!node.empty())
      record_prefix = fmt::format("{{\"node\":{},\"name\":{},", nlohmann::json(node).dump(),
                                  nlohmann::json(channel.name).dump());
    return std::make_shared<MqttTap>(state, stable, std::move(record_prefix));
  };
}

MqttCounters MqttPublisher::counters() const {
  MqttCounters counters;
  counters.published = state_->published.load(std::memory_order_relaxed);
  counters.dropped = state_->dropped.load(std::memory_order_relaxed);
  counters.connects = state_->connects.load(std::memory_order_relaxed);
  counters.connected = state_->connected.load();
  return counters;
}

void MqttPublisher::publish_loop() {
  State& s = *state_;
  mosquitto* client = s.client.get();
  int last_error = MOSQ_ERR_SUCCESS;
  while (std::optional<Message> message = s.ready.pop()) {
    // Only while connected and below the bound: libmosquitto would otherwise queue QoS 1/2 messages
    // without limit while the broker is away.
    if (!s.connected.load() || s.unconfirmed.load(std::memory_order_relaxed) >= kMaxUnconfirmed) {
      s.drop();
    } else {
      s.unconfirmed.fetch_add(1, std::memory_order_relaxed);  // before: on_publish may come first
      const int rc =
          mosquitto_publish(client, nullptr, message->topic->c_str(),
                            static_cast<int>(message->payload.size()), message->payload.data(), s.qos, false);
      if (rc != MOSQ_ERR_SUCCESS) {
        s.unconfirmed.fetch_sub(1, std::memory_order_relaxed);
        s.drop();
        // Losing the connection is logged by on_disconnect; anything else once per kind of error.
        if (rc != MOSQ_ERR_NO_CONN && rc != last_error) {
          spdlog::warn("mqtt: publishing to {} failed: {}", *message->topic, mosquitto_strerror(rc));
        }
        last_error = rc;
      } else {
        last_error = MOSQ_ERR_SUCCESS;
      }
    }
    message->payload.clear();
    s.free_buffers.try_push(std::move(*message));
  }
}

}  // namespace vapipe::server
