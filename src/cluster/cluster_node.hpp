#pragma once
// `vapipe run --cluster etcd://...`: one node of a site whose nodes share its cameras through etcd
// (docs/cluster.md). Every node reads the same config; each channel is a key under <prefix>channels/;
// a node claims a channel by creating <prefix>claims/<channel> under its lease (a compare-and-create
// transaction, so one node wins), then runs it through Pipeline::add_channel, the path the REST API uses.
//
// Fencing: every round the node renews its lease and reads the claims; a channel whose claim is gone or
// no longer carries this node's lease and claim revision is removed at once (Pipeline::remove_channel),
// and a lease etcd no longer has (the node was paused, or cut off, past its TTL) stops every channel
// before the node registers again. While etcd cannot be reached at all the node keeps what it runs: no
// other node can claim anything then either, since claims go through etcd (the partition caveat is in
// docs/cluster.md).
//
// Shares: with N live nodes and T channels, node ranks (by name) get T/N each and the first T%N one more,
// within each node's capacity; a node below its share claims free channels; a node above it releases its
// part of what the others miss beyond the free channels, and only after two rounds in a row saw them miss
// it (hysteresis: a channel moves once, and never while the cluster is still settling).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/etcd_client.hpp"
#include "pipeline/pipeline.hpp"

namespace vapipe::server {
class HttpServer;
struct HttpRequest;
struct HttpResponse;
}  // namespace vapipe::server

namespace vapipe::cluster {

struct ClusterOptions {
  std::vector<EtcdEndpoint> endpoints;
  std::string node_name;  // [A-Za-z0-9._-], at most 63 characters
  int capacity = 0;       // channels this node runs at most; 0: no limit
  int lease_ttl_s = 5;    // etcd's minimum is about 2 s (1.5 election timeouts)
  std::string prefix = "/vapipe/";
  std::string config_name;  // the config file as given, for messages
};

// The parts of a config that must be equal on every node, hashed per top-level key: everything but the
// node-local listeners (`http`, `rtsp_server`) and `stats`. FNV-1a 64 of each key's canonical JSON, in hex.
std::map<std::string, std::string> config_section_hashes(const nlohmann::json& config);
// One hash of those sections.
std::string config_hash(const std::map<std::string, std::string>& sections);

// Each node's share of `channels` (node name -> capacity in channels, 0: no limit): nodes ranked by name
// get channels / N each and the first channels % N one more, none above its capacity, what a full node
// cannot take going to the others the same way. The shares add up to min(channels, total capacity).
std::map<std::string, int> fair_shares(const std::map<std::string, int>& capacities, std::size_t channels);

class ClusterNode {
 public:
  // Checks what can fail before the models load: the node name, etcd reachable (throws vapipe::Error
  // "--cluster: etcd at ... is unreachable: ..."), and `config_json` (the file's JSON) equal to every live
  // node's (throws naming the node and the differing keys). Starts nothing.
  ClusterNode(const pipeline::PipelineConfig& config, const nlohmann::json& config_json,
              ClusterOptions options);
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // The pipeline (started with RunOptions::standby) the node runs its channels on; before anything below.
  void attach(pipeline::Pipeline& pipeline) { pipeline_ = &pipeline; }
  // GET /api/cluster, POST /api/channels (through etcd) and DELETE /api/channels/<name>; before the
  // control API registers its own routes of the same paths (server::Services's `routes`).
  void register_routes(server::HttpServer& server);
  // Registers the node (its lease, its URLs), seeds the config's channels once per config, and starts
  // the claim rounds. `http_url`/`rtsp_url` may be empty (no such section). Throws vapipe::Error.
  void start(const std::string& http_url, const std::string& rtsp_url);
  // No more claims (the run is draining); returns at once. Thread-safe.
  void pause_claims() { paused_ = true; }
  // Ends the rounds and revokes the lease, so the other nodes claim this node's channels at once.
  void stop();

 private:
  struct Held {
    int local_id = -1;                // the pipeline's channel id
    std::int64_t claim_revision = 0;  // create_revision of our claim: the fencing token
    std::chrono::steady_clock::time_point since;
  };
  struct View;  // one consistent read of the cluster's keys

  void loop();
  // One round; returns when the next should start.
  std::chrono::milliseconds round();
  void register_node();
  void check_config_against(const View& view, std::int64_t own_revision) const;
  void seed_channels();
  View read_view();
  void drop_all(const char* why);
  void drop(const std::string& name, const std::string& why, bool delete_claim);
  void claim(const View& view, int wanted);
  void release(std::size_t count);
  std::map<std::string, int> targets(const View& view) const;

  server::HttpResponse get_cluster(const server::HttpRequest& request);
  server::HttpResponse add_channel(const server::HttpRequest& request);
  server::HttpResponse remove_channel(const server::HttpRequest& request);

  std::string key(const char* kind, const std::string& name) const;

  pipeline::Pipeline* pipeline_ = nullptr;
  ClusterOptions options_;
  EtcdClient client_;
  std::map<std::string, std::string> sections_;
  std::string hash_;
  std::vector<std::pair<std::string, nlohmann::json>> configured_;  // name, spec of each config channel
  std::string node_value_;                                          // our <prefix>nodes/<name> value

  std::mutex mutex_;  // held_, lease_ (read by the HTTP thread)
  std::map<std::string, Held> held_;
  std::int64_t lease_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> failed_;  // add_channel refused: retry later

  enum class EtcdState : std::uint8_t { kUp, kUnreachable };
  EtcdState etcd_state_ = EtcdState::kUp;
  int below_share_rounds_ = 0;  // rounds in a row that saw others miss channels while this node had extra
  std::atomic<bool> paused_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace vapipe::cluster
