// `vapipe run --cluster` end to end: real `vapipe run` processes sharing the channels of one config through
// a real etcd on loopback, YOLO-FastestV2 on a short paced clip. What each node runs is read from its own
// REST API (GET /api/channels: the pipeline's channels, not the claims), so "on exactly one node" is
// what the processes do. Every wait polls a state, bounded in time; the lease TTL is etcd's minimum (2 s)
// to keep failovers short.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/http_client.hpp"
#include "support/etcd.hpp"
#include "support/mosquitto.hpp"
#include "support/process.hpp"
#include "support/rtsp_watch.hpp"
#include "support/test_data.hpp"
#include "support/timing.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kTtlS = 2;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

struct Node {
  std::string name;
  int http_port = 0;
  int rtsp_port = 0;
  fs::path log;
  std::unique_ptr<test::Child> process;
};

using Placement = std::map<std::string, std::set<std::string>>;  // node -> channels it runs

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VAPIPE_REQUIRE_ETCD();
    VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
    dir_ = test::scratch_dir();
    // 4 s at 5 fps, a key frame a second, looped by every channel: little work per channel.
    clip_ = dir_ / "clip.mp4";
    ASSERT_EQ(test::run_shell(fmt::format("timeout 60 ffmpeg -nostdin -v error -f lavfi -i "
                                          "testsrc=size=320x240:rate=5 -t 4 -c:v libx264 -preset ultrafast "
                                          "-g 5 -pix_fmt yuv420p '{}' 2>&1",
                                          clip_.string()))
                  .exit_code,
              0);
    etcd_ = std::make_unique<test::EtcdServer>(dir_);
    ASSERT_TRUE(etcd_->start()) << read_file(dir_ / "etcd-1.log");
  }

  // The config every node reads; only the listeners' ports differ (they are not part of the config's hash).
  json config(int channels, int http_port, int rtsp_port, double obj_threshold = 0.25) const {
    json site = {
        {"cards",
         {{{"devid", 0},
           {"cameras", {{{"address", clip_.string()}, {"chan_num", channels}, {"model_names", {"det"}}}}}}}},
        {"models",
         {{{"name", "det"},
           {"path", (test::models_dir() / "yolofastestv2.onnx").string()},
           {"skip_frame_num", 2},
           {"obj_threshold", obj_threshold},
           {"nms_threshold", 0.45},
           {"class_threshold", 0.25}}}},
        {"http", {{"port", http_port}}},
        {"rtsp_server", {{"port", rtsp_port}}}};
    if (mqtt_port_ > 0) site["mqtt"] = {{"host", "127.0.0.1"}, {"port", mqtt_port_}, {"topic", "site"}};
    return site;
  }

  Node& start_node(const std::string& name, int channels, double obj_threshold = 0.25) {
    auto node = std::make_unique<Node>();
    node->name = name;
    node->http_port = test::free_port();
    node->rtsp_port = test::free_port();
    const fs::path file = dir_ / (name + ".json");
    std::ofstream(file) << config(channels, node->http_port, node->rtsp_port, obj_threshold).dump(2);
    node->log = dir_ / fmt::format("{}-{}.log", name, ++starts_[name]);
    const fs::path cache = fs::temp_directory_path() / "vapipe-tests" / "model-cache";
    node->process = std::make_unique<test::Child>(
        std::vector<std::string>{VAPIPE_CLI, "run", "-c", file.string(), "--cache-dir", cache.string(),
                                 "--cluster", etcd_->url(), "--node-name", name, "--lease-ttl",
                                 std::to_string(kTtlS), "--stats", "none", "--threads", "1"},
        node->log);
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }

  // Node 0 first (it compiles the model into the shared cache if no test did yet), then the others.
  std::vector<Node*> start_nodes(int count, int channels) {
    std::vector<Node*> started;
    for (int i = 0; i < count; ++i) {
      Node& node = start_node(fmt::format("n{}", i), channels);
      started.push_back(&node);
      if (i == 0) {
        EXPECT_TRUE(test::wait_until([&] { return running(node).has_value(); }, test::scaled(seconds(120))))
            << read_file(node.log);
      }
    }
    return started;
  }

  // The channels a node's pipeline runs (neither removed nor draining); nullopt when its API does not answer.
  static std::optional<std::set<std::string>> running(const Node& node) {
    const auto listed = test::http_get(node.http_port, "/api/channels");
    if (listed.status != 200) return std::nullopt;
    std::set<std::string> names;
    const json body = json::parse(listed.body);  // named: a range over a temporary's member dangles
    for (const auto& channel : body.at("channels"))
      if (channel.at("state") != "removing") names.insert(channel.at("name").get<std::string>());
    return names;
  }

  static std::optional<Placement> placement(const std::vector<Node*>& nodes) {
    Placement result;
    for (const Node* node : nodes) {
      auto names = running(*node);
      if (!names) return std::nullopt;
      result[node->name] = std::move(*names);
    }
    return result;
  }

  // Every one of `channels` runs on exactly one of `nodes`, and the nodes' counts differ by at most
  // `spread` (fair shares: T/N each, within one).
  static bool settled(const Placement& placed, std::size_t channels, std::size_t spread = 1) {
    std::multiset<std::string> all;
    std::size_t low = channels, high = 0;
    for (const auto& [node, names] : placed) {
      all.insert(names.begin(), names.end());
      low = std::min(low, names.size());
      high = std::max(high, names.size());
    }
    const std::set<std::string> distinct(all.begin(), all.end());
    return all.size() == channels && distinct.size() == channels && high - low <= spread;
  }

  bool wait_settled(const std::vector<Node*>& nodes, std::size_t channels, milliseconds limit,
                    Placement* last = nullptr) {
    return test::wait_until(
        [&] {
          const auto placed = placement(nodes);
          if (placed && last != nullptr) *last = *placed;
          return placed && settled(*placed, channels);
        },
        test::scaled(limit));
  }

  std::string describe(const Placement& placed) const {
    std::string text;
    for (const auto& [node, names] : placed) text += fmt::format("{}: {}\n", node, fmt::join(names, " "));
    for (const auto& node : nodes_)
      text += fmt::format("--- {} ---\n{}\n", node->log.string(), read_file(node->log));
    return text;
  }

  fs::path dir_;
  fs::path clip_;
  int mqtt_port_ = 0;
  std::unique_ptr<test::EtcdServer> etcd_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::map<std::string, int> starts_;
};

// Issue 23: 3 nodes, 12 channels: each runs on one node, 4 each; /api/cluster of any node shows where,
// with the RTSP URL that serves it; results reach the shared broker with the node in the record; a channel
// added or removed through one node's API reaches the whole cluster.
TEST_F(ClusterTest, ThreeNodesRunTwelveChannelsEachOnExactlyOneNode) {
  mqtt_port_ = test::free_port();
  test::MosquittoBroker broker(dir_, mqtt_port_);
  ASSERT_TRUE(broker.start());
  const auto nodes = start_nodes(3, 12);
  Placement placed;
  ASSERT_TRUE(wait_settled(nodes, 12, seconds(60), &placed)) << describe(placed);
  for (const auto& [node, names] : placed) EXPECT_EQ(names.size(), 4u) << node;

  const auto cluster = test::http_get(nodes[1]->http_port, "/api/cluster");
  ASSERT_EQ(cluster.status, 200) << cluster.body;
  const json view = json::parse(cluster.body);
  EXPECT_EQ(view.at("nodes").size(), 3u);
  ASSERT_EQ(view.at("channels").size(), 12u);
  std::string served;
  for (const auto& channel : view.at("channels")) {
    const std::string name = channel.at("name");
    ASSERT_TRUE(channel.at("node").is_string()) << channel.dump();
    EXPECT_TRUE(placed.at(channel.at("node").get<std::string>()).contains(name)) << channel.dump() << "\n"
                                                                                 << describe(placed);
    EXPECT_FALSE(channel.value("lease", "").empty()) << channel.dump();
    const Node& owner =
        **std::find_if(nodes.begin(), nodes.end(), [&](Node* n) { return n->name == channel.at("node"); });
    EXPECT_EQ(channel.value("rtsp", ""), fmt::format("rtsp://127.0.0.1:{}/{}", owner.rtsp_port, name));
    if (served.empty()) served = channel.value("rtsp", "");
  }
  // The URL serves the channel (ffprobe, a real RTSP client).
  const std::string probe = test::run_capture(
      fmt::format("timeout 30 ffprobe -v error -rtsp_transport tcp -select_streams v:0 -show_entries "
                  "stream=codec_name -of csv=p=0 '{}' 2>&1",
                  served));
  EXPECT_NE(probe.find("h264"), std::string::npos) << served << ": " << probe;

  // Results: every record names the node that runs its channel.
  test::MosquittoSub sub(dir_ / "sub.txt", mqtt_port_, "site/#", 24, 20);
  const auto messages = sub.messages();
  ASSERT_EQ(messages.size(), 24u) << sub.raw_output();
  for (const auto& message : messages) {
    const std::string channel = message.topic.substr(std::string("site/").size());
    const json record = json::parse(message.payload);
    ASSERT_TRUE(record.contains("node")) << message.payload;
    EXPECT_EQ(record.value("name", ""), channel) << message.payload;
    EXPECT_TRUE(placed.at(record.at("node").get<std::string>()).contains(channel))
        << message.topic << " " << message.payload;
  }

  // Through one node's API into etcd, then to whichever node claims it.
  const auto added =
      test::http_request(nodes[2]->http_port, "POST", "/api/channels",
                         json{{"address", clip_.string()}, {"model", "det"}, {"name", "extra"}}.dump());
  ASSERT_EQ(added.status, 201) << added.body;
  ASSERT_TRUE(wait_settled(nodes, 13, seconds(30), &placed)) << describe(placed);
  const auto removed = test::http_request(nodes[0]->http_port, "DELETE", "/api/channels/det_0");
  ASSERT_EQ(removed.status, 202) << removed.body;
  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto now = placement(nodes);
        if (!now) return false;
        placed = *now;
        return settled(*now, 12) && std::none_of(now->begin(), now->end(), [](const auto& node) {
                 return node.second.contains("det_0");
               });
      },
      test::scaled(seconds(30))))
      << describe(placed);
  EXPECT_EQ(test::http_request(nodes[0]->http_port, "DELETE", "/api/channels/det_0").status, 404);
}

// Issue 23: `kill -9` of a node: its channels run on the others within TTL + 3 s; restarted, it takes its
// share back, and no channel of the others is stopped more than once for that.
TEST_F(ClusterTest, AKilledNodesChannelsRunElsewhereWithinTheTtlAndItTakesAShareBackOnRestart) {
  const auto nodes = start_nodes(3, 12);
  Placement placed;
  ASSERT_TRUE(wait_settled(nodes, 12, seconds(60), &placed)) << describe(placed);

  const auto killed_at = Clock::now();
  nodes[2]->process->signal(SIGKILL);
  ASSERT_TRUE(nodes[2]->process->wait_for(seconds(10)));
  const std::vector<Node*> survivors{nodes[0], nodes[1]};
  ASSERT_TRUE(wait_settled(survivors, 12, seconds(30), &placed)) << describe(placed);
  const auto failover = std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at);
  std::printf("failover after kill -9: %lld ms (lease TTL %d s)\n", static_cast<long long>(failover.count()),
              kTtlS);
  EXPECT_LE(failover, test::scaled(seconds(kTtlS + 3)));

  std::map<std::string, std::size_t> log_before;
  for (const Node* node : survivors) log_before[node->name] = read_file(node->log).size();
  Node& restarted = start_node("n2", 12);
  const std::vector<Node*> all{nodes[0], nodes[1], &restarted};
  ASSERT_TRUE(wait_settled(all, 12, seconds(60), &placed)) << describe(placed);
  EXPECT_EQ(placed.at("n2").size(), 4u);
  // Each channel that moved back was stopped once on its survivor, and only those moved.
  std::size_t stopped = 0;
  for (const Node* node : survivors) {
    const std::string log = read_file(node->log).substr(log_before[node->name]);
    for (int channel = 0; channel < 12; ++channel) {
      const std::size_t stops = count_of(log, fmt::format("cluster: channel det_{} stopped here", channel));
      EXPECT_LE(stops, 1u) << node->name << " det_" << channel << "\n" << log;
      stopped += stops;
    }
  }
  EXPECT_EQ(stopped, 4u) << describe(placed);
}

// Issue 23: etcd stopped for 10 s: every node keeps running what it holds (and says so once), then
// reconciles with nothing moved.
TEST_F(ClusterTest, WhileEtcdIsDownNodesKeepTheirChannelsThenReconcile) {
  const auto nodes = start_nodes(3, 6);
  Placement before;
  ASSERT_TRUE(wait_settled(nodes, 6, seconds(60), &before)) << describe(before);
  std::map<std::string, std::size_t> log_before;  // the settling before the outage moved channels
  for (const Node* node : nodes) log_before[node->name] = read_file(node->log).size();
  etcd_->stop();
  const auto outage_end = Clock::now() + seconds(10);
  // The outage's length is the scenario; the nodes are checked all along it.
  while (Clock::now() < outage_end) {
    const auto now = placement(nodes);
    ASSERT_TRUE(now) << "a node stopped answering during the etcd outage";
    ASSERT_EQ(*now, before) << describe(*now);
    std::this_thread::sleep_for(milliseconds(500));  // sampling the nodes through the outage
  }
  ASSERT_TRUE(etcd_->start()) << read_file(dir_ / "etcd-2.log");
  ASSERT_TRUE(test::wait_until(
      [&] {
        for (const Node* node : nodes)
          if (read_file(node->log).find("cluster: etcd answers again") == std::string::npos) return false;
        return true;
      },
      test::scaled(seconds(20))))
      << describe(before);
  // Leases survive an etcd restart (the leader refreshes them): nothing moved, nothing was stopped.
  Placement after;
  ASSERT_TRUE(wait_settled(nodes, 6, seconds(10), &after)) << describe(after);
  EXPECT_EQ(after, before) << describe(after);
  for (const Node* node : nodes) {
    const std::string log = read_file(node->log);
    EXPECT_EQ(count_of(log, "until etcd answers"), 1u) << log;  // once per state change, not per retry
    EXPECT_EQ(count_of(log.substr(log_before[node->name]), "stopped here"), 0u) << log;
  }
}

// Issue 23: a node paused (SIGSTOP) past its TTL: the others take its channels; resumed, it stops them
// within 1 s, and from then on no channel runs on two nodes.
TEST_F(ClusterTest, APausedNodeStopsItsLostChannelsWithinASecondOfResuming) {
  const auto nodes = start_nodes(3, 6);
  Placement placed;
  ASSERT_TRUE(wait_settled(nodes, 6, seconds(60), &placed)) << describe(placed);
  const std::set<std::string> held = placed.at("n0");
  ASSERT_FALSE(held.empty());
  nodes[0]->process->signal(SIGSTOP);
  const std::vector<Node*> others{nodes[1], nodes[2]};
  ASSERT_TRUE(wait_settled(others, 6, seconds(30), &placed)) << describe(placed);
  nodes[0]->process->signal(SIGCONT);
  const auto resumed_at = Clock::now();
  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto names = running(*nodes[0]);
        return names && std::none_of(held.begin(), held.end(),
                                     [&](const auto& name) { return names->contains(name); });
      },
      test::scaled(seconds(5))));
  const auto stopped_after = std::chrono::duration_cast<milliseconds>(Clock::now() - resumed_at);
  std::printf("paused node stopped its lost channels %lld ms after resuming\n",
              static_cast<long long>(stopped_after.count()));
  EXPECT_LE(stopped_after, test::scaled(seconds(1))) << read_file(nodes[0]->log);
  // It rejoins with a share; every sample from here on has each channel on one node at most.
  ASSERT_TRUE(test::wait_until(
      [&] {
        const auto now = placement(nodes);
        if (!now) return false;
        std::multiset<std::string> all;
        for (const auto& [node, names] : *now) all.insert(names.begin(), names.end());
        for (const auto& name : all) EXPECT_EQ(all.count(name), 1u) << name << "\n" << describe(*now);
        placed = *now;
        return settled(*now, 6);
      },
      test::scaled(seconds(30))))
      << describe(placed);
}

// Issue 23: a node whose config differs from the cluster's is refused, naming the node it differs from
// and the config key; the running node is not disturbed.
TEST_F(ClusterTest, ANodeWithAnotherConfigIsRefusedNamingTheNodeAndTheKey) {
  const auto nodes = start_nodes(1, 2);
  Placement placed;
  ASSERT_TRUE(wait_settled(nodes, 2, seconds(60), &placed)) << describe(placed);
  Node& other = start_node("n1", 2, /*obj_threshold=*/0.5);
  ASSERT_TRUE(other.process->wait_for(test::scaled(seconds(60))));
  EXPECT_EQ(other.process->exit_code(), 1);
  const std::string log = read_file(other.log);
  EXPECT_NE(log.find("differs from the config node 'n0' runs (in: models;"), std::string::npos) << log;
  EXPECT_EQ(count_of(log, "vapipe: error:"), 1u) << log;
  ASSERT_TRUE(wait_settled(nodes, 2, seconds(5), &placed)) << describe(placed);
}

// Issue 23: no etcd at the address: one clear error, before the models load.
TEST(ClusterStart, AnUnreachableEtcdIsOneClearErrorBeforeTheModelsLoad) {
  const fs::path dir = test::scratch_dir();
  const int port = test::free_port();
  // A valid config (its checks come first) whose model and camera need not exist: nothing loads them.
  std::ofstream(dir / "site.json") << R"({
      "cards": [{"devid": 0, "cameras": [{"address": "/nonexistent/cam.mp4", "chan_num": 1,
                                          "model_names": ["det"]}]}],
      "models": [{"name": "det", "path": "/nonexistent/det.onnx", "obj_threshold": 0.25,
                  "nms_threshold": 0.45, "class_threshold": 0.25}]})";
  test::Child run({VAPIPE_CLI, "run", "-c", (dir / "site.json").string(), "--cluster",
                   fmt::format("etcd://127.0.0.1:{}", port), "--node-name", "n0"},
                  dir / "run.log");
  ASSERT_TRUE(run.wait_for(test::scaled(seconds(30))));
  EXPECT_EQ(run.exit_code(), 1);
  const std::string log = read_file(dir / "run.log");
  EXPECT_NE(
      log.find(fmt::format("vapipe: error: --cluster: etcd at http://127.0.0.1:{} is unreachable", port)),
      std::string::npos)
      << log;
  EXPECT_EQ(count_of(log, "\n"), 1u) << log;  // that line alone: nothing loaded, nothing retried
}

}  // namespace
}  // namespace vapipe
