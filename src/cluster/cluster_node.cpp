#include "cluster/cluster_node.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "io/url_redaction.hpp"
#include "server/control_api.hpp"
#include "server/http_server.hpp"

namespace vapipe::cluster {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using server::error_response;
using server::HttpRequest;
using server::HttpResponse;
using server::json_response;

constexpr std::string_view kChannelPrefix = "/api/channels/";

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

// Names that are etcd keys, MQTT topic levels and RTSP mounts as they are.
bool valid_name(std::string_view name) {
  return !name.empty() && name.size() <= 63 && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
  });
}

json channel_spec(const pipeline::ChannelRequest& request) {
  return {{"address", request.address},
          {"model", request.model},
          {"loop", request.loop},
          {"pace", request.pace},
          {"rtsp_transport", std::string(pipeline::to_string(request.rtsp_transport))}};
}

pipeline::ChannelRequest channel_request(const std::string& name, const json& spec) {
  pipeline::ChannelRequest request;
  request.name = name;
  request.address = spec.value("address", "");
  request.model = spec.value("model", "");
  request.loop = spec.value("loop", true);
  request.pace = spec.value("pace", true);
  request.rtsp_transport = spec.value("rtsp_transport", "tcp") == "udp" ? pipeline::RtspTransport::kUdp
                                                                        : pipeline::RtspTransport::kTcp;
  return request;
}

}  // namespace

std::map<std::string, std::string> config_section_hashes(const json& config) {
  std::map<std::string, std::string> sections;
  if (!config.is_object()) return sections;
  for (const auto& [key, value] : config.items()) {
    // Listeners and the statistics print are each node's own (a local recipe runs 3 nodes on one host).
    if (key == "http" || key == "rtsp_server" || key == "stats") continue;
    sections[key] = fmt::format("{:016x}", fnv1a(value.dump()));  // dump(): keys sorted, no whitespace
  }
  return sections;
}

std::string config_hash(const std::map<std::string, std::string>& sections) {
  std::string all;
  for (const auto& [key, hash] : sections) all += key + '=' + hash + ';';
  return fmt::format("{:016x}", fnv1a(all));
}

// Water-filling in rank order (node names sorted): T/N each, the first T%N one more, none above its
// capacity; what a full node cannot take goes to the others the same way.
std::map<std::string, int> fair_shares(const std::map<std::string, int>& capacities, std::size_t channels) {
  std::map<std::string, int> shares;
  for (const auto& [name, capacity] : capacities) shares[name] = 0;
  std::size_t left = channels;
  bool room = !shares.empty();
  while (left > 0 && room) {
    room = false;
    for (auto& [name, share] : shares) {
      if (left == 0) break;
      const int capacity = capacities.at(name);
      if (capacity > 0 && share >= capacity) continue;
      ++share;
      --left;
      room = true;
    }
  }
  return shares;
}

struct ClusterNode::View {
  std::int64_t revision = 0;
  struct Node {
    json info;
    std::int64_t lease = 0;
    std::int64_t create_revision = 0;
  };
  struct Claim {
    std::string node;
    std::int64_t lease = 0;
    std::int64_t create_revision = 0;
  };
  std::map<std::string, Node> nodes;
  std::map<std::string, json> channels;
  std::map<std::string, Claim> claims;

  std::size_t held_by(const std::string& node) const {
    return static_cast<std::size_t>(std::count_if(
        claims.begin(), claims.end(), [&](const auto& claim) { return claim.second.node == node; }));
  }
};

ClusterNode::ClusterNode(const pipeline::PipelineConfig& config, const json& config_json,
                         ClusterOptions options)
    : options_(std::move(options)), client_(options_.endpoints) {
  if (!valid_name(options_.node_name))
    fail("--node-name: '{}' must be 1 to 63 letters, digits, '.', '_' or '-'", options_.node_name);
  if (options_.lease_ttl_s < 2)
    fail("--lease-ttl: {} s is below etcd's minimum lease of 2 s", options_.lease_ttl_s);
  sections_ = config_section_hashes(config_json);
  hash_ = config_hash(sections_);
  for (const auto& channel : pipeline::expand_channels(config)) {
    pipeline::ChannelRequest request;
    request.address = channel.camera->address;
    request.model = channel.model->name;
    request.loop = channel.camera->loop;
    request.pace = channel.camera->pace;
    request.rtsp_transport = channel.camera->rtsp_transport;
    configured_.emplace_back(fmt::format("{}_{}", channel.model->name, channel.channel),
                             channel_spec(request));
  }
  View view;
  try {
    view = read_view();
  } catch (const EtcdUnavailable& error) {
    fail(
        "--cluster: etcd at {} is unreachable ({}); start etcd first, or check the address (docs/cluster.md)",
        client_.endpoints_text(), error.what());
  }
  check_config_against(view, std::numeric_limits<std::int64_t>::max());
}

ClusterNode::~ClusterNode() { stop(); }

std::string ClusterNode::key(const char* kind, const std::string& name) const {
  return fmt::format("{}{}/{}", options_.prefix, kind, name);
}

ClusterNode::View ClusterNode::read_view() {
  View view;
  for (auto& kv : client_.range_prefix(options_.prefix, &view.revision)) {
    const std::string_view rest = std::string_view(kv.key).substr(options_.prefix.size());
    const std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos) continue;
    const std::string_view kind = rest.substr(0, slash);
    const std::string name(rest.substr(slash + 1));
    json value = json::parse(kv.value, nullptr, false);
    if (!value.is_object()) continue;  // not ours: ignored rather than trusted
    if (kind == "nodes") {
      view.nodes[name] = {std::move(value), kv.lease, kv.create_revision};
    } else if (kind == "channels") {
      view.channels[name] = std::move(value);
    } else if (kind == "claims") {
      view.claims[name] = {value.value("node", ""), kv.lease, kv.create_revision};
    }
  }
  return view;
}

// A node registered before `own_revision` with another config wins; so does every live node at start.
void ClusterNode::check_config_against(const View& view, std::int64_t own_revision) const {
  for (const auto& [name, node] : view.nodes) {
    if (name == options_.node_name || node.create_revision >= own_revision) continue;
    const std::string theirs = node.info.value("config_hash", "");
    if (theirs == hash_) continue;
    std::vector<std::string> differing;
    const json their_sections = node.info.value("config_sections", json::object());
    std::set<std::string> keys;
    for (const auto& [section, hash] : sections_) keys.insert(section);
    for (const auto& [section, hash] : their_sections.items()) keys.insert(section);
    for (const auto& section : keys) {
      const auto mine = sections_.find(section);
      const std::string here = mine == sections_.end() ? "" : mine->second;
      const std::string there = their_sections.value(section, "");
      if (here != there) differing.push_back(section);
    }
    fail(
        "--cluster: {} differs from the config node '{}' runs (in: {}; config hash {} here, {} there): every "
        "node of a cluster must run the same config (docs/cluster.md); this node does not join",
        options_.config_name, name, fmt::join(differing, ", "), hash_, theirs);
  }
}

void ClusterNode::register_routes(server::HttpServer& server) {
  server.route("GET", "/api/cluster", [this](const HttpRequest& r) { return get_cluster(r); });
  server.route("POST", "/api/channels", [this](const HttpRequest& r) { return add_channel(r); });
  server.route("DELETE", std::string(kChannelPrefix),
               [this](const HttpRequest& r) { return remove_channel(r); });
}

void ClusterNode::start(const std::string& http_url, const std::string& rtsp_url) {
  if (pipeline_ == nullptr) fail("ClusterNode::start: no pipeline attached");
  node_value_ = json{
      {"name", options_.node_name},
      {"http", http_url},
      {"rtsp", rtsp_url},
      {"capacity", options_.capacity},
      {"pid", static_cast<long>(::getpid())},
      {"config_hash", hash_},
      {"config_sections",
       sections_}}.dump();
  register_node();
  std::int64_t own_revision = 0;
  {
    const auto own = client_.get(key("nodes", options_.node_name));
    own_revision = own ? own->create_revision : 0;
  }
  try {
    check_config_against(read_view(), own_revision);
  } catch (const Error&) {
    stop();
    throw;
  }
  seed_channels();
  spdlog::info("cluster: node '{}' joined {} (lease TTL {} s, capacity {})", options_.node_name,
               client_.endpoints_text(), options_.lease_ttl_s,
               options_.capacity > 0 ? std::to_string(options_.capacity) : std::string("unlimited"));
  thread_ = std::thread([this] { loop(); });
}

void ClusterNode::register_node() {
  const std::int64_t lease = client_.grant_lease(options_.lease_ttl_s);
  // A node restarted within its TTL finds its previous registration still there: it waits for that lease
  // to expire; a registration that outlives two TTLs is another live process of the same name.
  const auto deadline = Clock::now() + std::chrono::seconds(2 * options_.lease_ttl_s + 1);
  bool told = false;
  while (!client_.create(key("nodes", options_.node_name), node_value_, lease)) {
    if (Clock::now() > deadline) {
      try {
        client_.revoke_lease(lease);
      } catch (const Error&) {
      }
      fail("--node-name: node '{}' is already live in the cluster at {}: give each node its own name",
           options_.node_name, client_.endpoints_text());
    }
    if (!told) {
      spdlog::info("cluster: waiting for the previous registration of node '{}' to expire (TTL {} s)",
                   options_.node_name, options_.lease_ttl_s);
      told = true;
    }
    client_.keep_alive(lease);
    std::unique_lock lock(wake_mutex_);
    if (wake_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping_; })) {
      lock.unlock();
      client_.revoke_lease(lease);
      fail("cluster: node '{}' stopped before it could register", options_.node_name);
    }
  }
  std::lock_guard lock(mutex_);
  lease_ = lease;
}

void ClusterNode::seed_channels() {
  // Once per config (its hash): a channel removed through the API is not brought back by a node restart.
  const std::string marker = key("seeded", hash_);
  constexpr std::size_t kOpsPerTxn = 100;  // etcd's --max-txn-ops is 128 by default
  std::vector<TxnOp> ops{{TxnOp::Kind::kPut, marker, json{{"node", options_.node_name}}.dump(), 0}};
  std::size_t next = 0;
  for (; next < configured_.size() && ops.size() < kOpsPerTxn; ++next)
    ops.push_back(
        {TxnOp::Kind::kPut, key("channels", configured_[next].first), configured_[next].second.dump(), 0});
  if (!client_.txn({{TxnCompare::Target::kCreateRevision, marker, 0}}, ops)) return;
  while (next < configured_.size()) {
    ops.clear();
    for (; next < configured_.size() && ops.size() < kOpsPerTxn; ++next)
      ops.push_back(
          {TxnOp::Kind::kPut, key("channels", configured_[next].first), configured_[next].second.dump(), 0});
    client_.txn({}, ops);
  }
  spdlog::info("cluster: the {} channel(s) of {} are now keys of the cluster", configured_.size(),
               options_.config_name);
}

void ClusterNode::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::int64_t lease = 0;
  {
    std::lock_guard lock(mutex_);
    lease = std::exchange(lease_, 0);
  }
  if (lease == 0) return;
  // The other nodes claim this node's channels at their next round instead of after the TTL.
  try {
    client_.revoke_lease(lease);
    spdlog::info("cluster: node '{}' left (lease revoked)", options_.node_name);
  } catch (const Error& error) {
    spdlog::warn("cluster: node '{}' left without revoking its lease ({}): its channels move after the TTL",
                 options_.node_name, error.what());
  }
}

void ClusterNode::loop() {
  for (;;) {
    std::chrono::milliseconds next{250};
    try {
      next = round();
    } catch (const std::exception& error) {
      // A reply that could not be used: the next round starts over from a fresh read.
      spdlog::warn("cluster: round failed: {}", error.what());
    }
    std::unique_lock lock(wake_mutex_);
    if (wake_.wait_for(lock, next, [this] { return stopping_; })) return;
  }
}

std::chrono::milliseconds ClusterNode::round() {
  // A round a fifth of the TTL: the lease is renewed several times per TTL, and a failed node's channels
  // are claimed within TTL + one round.
  const auto period = std::chrono::milliseconds(std::clamp(options_.lease_ttl_s * 200, 200, 1000));
  const auto retry = std::chrono::milliseconds(200);
  std::int64_t lease = 0;
  {
    std::lock_guard lock(mutex_);
    lease = lease_;
  }
  std::int64_t ttl = 0;
  View view;
  try {
    if (lease == 0) {
      register_node();
      std::lock_guard lock(mutex_);
      lease = lease_;
      spdlog::info("cluster: node '{}' registered again (lease {:x})", options_.node_name, lease);
    }
    ttl = client_.keep_alive(lease);
    if (ttl > 0) view = read_view();
  } catch (const Error& error) {
    // Down, partitioned, or without a leader: nobody can claim anything now, so what runs here stays.
    if (etcd_state_ == EtcdState::kUp) {
      std::size_t held = 0;
      {
        std::lock_guard lock(mutex_);
        held = held_.size();
      }
      spdlog::warn("cluster: {}: keeping the {} channel(s) this node runs until etcd answers", error.what(),
                   held);
      etcd_state_ = EtcdState::kUnreachable;
    }
    return retry;
  }
  if (etcd_state_ == EtcdState::kUnreachable) {
    spdlog::info("cluster: etcd answers again: reconciling");
    etcd_state_ = EtcdState::kUp;
  }
  if (ttl == 0) {
    // The lease expired while this node could not renew it (paused, or cut off from etcd): others may run
    // its channels already. Fencing: stop every one of them now, then register again.
    drop_all("this node's lease expired (it could not renew it within the TTL)");
    {
      std::lock_guard lock(mutex_);
      lease_ = 0;
    }
    return std::chrono::milliseconds(0);
  }

  // Fencing by claim: a channel runs here only while its claim carries our lease and claim revision.
  std::vector<std::pair<std::string, Held>> held;
  {
    std::lock_guard lock(mutex_);
    held.assign(held_.begin(), held_.end());
  }
  for (const auto& [name, mine] : held) {
    const auto claim = view.claims.find(name);
    if (claim == view.claims.end() || claim->second.lease != lease ||
        claim->second.create_revision != mine.claim_revision) {
      drop(name,
           claim == view.claims.end() ? std::string("its claim is gone")
                                      : fmt::format("its claim is now node '{}''s", claim->second.node),
           false);
      view.claims.erase(name);
    } else if (!view.channels.contains(name)) {
      drop(name, "removed from the cluster", true);
      view.claims.erase(name);
    }
  }
  if (paused_) return period;

  const auto shares = targets(view);
  const auto share = shares.find(options_.node_name);
  const std::size_t target = share == shares.end() ? 0 : static_cast<std::size_t>(share->second);
  const std::size_t holding = view.held_by(options_.node_name);
  if (holding < target) {
    below_share_rounds_ = 0;
    claim(view, static_cast<int>(target - holding));
  } else if (holding > target) {
    // What the nodes below their share still miss once the free channels are theirs, and what every node
    // above its share has too many: this node gives up its part of that deficit, no more, so each moved
    // channel stops once.
    std::size_t deficit = 0, excess = 0, unclaimed = 0;
    for (const auto& [name, node_share] : shares) {
      const std::size_t has = view.held_by(name);
      const auto wants = static_cast<std::size_t>(node_share);
      if (has < wants) deficit += wants - has;
      if (has > wants) excess += has - wants;
    }
    for (const auto& [name, spec] : view.channels)
      if (!view.claims.contains(name)) ++unclaimed;
    const std::size_t missing = deficit > unclaimed ? deficit - unclaimed : 0;
    below_share_rounds_ = missing > 0 ? below_share_rounds_ + 1 : 0;
    if (below_share_rounds_ >= 2) {
      const std::size_t mine = holding - target;
      release(std::min(mine, (missing * mine + excess - 1) / excess));
      below_share_rounds_ = 0;
    }
  } else {
    below_share_rounds_ = 0;
  }
  return period;
}

std::map<std::string, int> ClusterNode::targets(const View& view) const {
  std::map<std::string, int> capacities;
  for (const auto& [name, node] : view.nodes) capacities[name] = node.info.value("capacity", 0);
  return fair_shares(capacities, view.channels.size());
}

void ClusterNode::claim(const View& view, int wanted) {
  const auto now = Clock::now();
  std::erase_if(failed_, [&](const auto& entry) { return entry.second <= now; });
  std::vector<std::string> open;
  for (const auto& [name, spec] : view.channels)
    if (!view.claims.contains(name) && !failed_.contains(name)) open.push_back(name);
  // Rendezvous order: each node tries the free channels in its own order, so nodes claiming in the same
  // round rarely compete for one key.
  std::sort(open.begin(), open.end(), [this](const std::string& a, const std::string& b) {
    return fnv1a(a + '/' + options_.node_name) < fnv1a(b + '/' + options_.node_name);
  });
  std::int64_t lease = 0;
  {
    std::lock_guard lock(mutex_);
    lease = lease_;
  }
  const std::string value = json{{"node", options_.node_name}}.dump();
  for (const auto& name : open) {
    if (wanted <= 0) break;
    std::int64_t revision = 0;
    if (!client_.create(key("claims", name), value, lease, &revision)) continue;  // another node was first
    --wanted;
    try {
      const int id = pipeline_->add_channel(channel_request(name, view.channels.at(name)));
      {
        std::lock_guard lock(mutex_);
        held_[name] = {id, revision, Clock::now()};
      }
      spdlog::info("cluster: channel {} claimed (claim revision {}): runs here as channel {}", name, revision,
                   id);
    } catch (const Error& error) {
      spdlog::warn(
          "cluster: channel {} cannot run on this node ({}); released for the others, retried here in 30 s",
          name, error.what());
      failed_[name] = Clock::now() + std::chrono::seconds(30);
      client_.txn({{TxnCompare::Target::kCreateRevision, key("claims", name), revision}},
                  {{TxnOp::Kind::kDelete, key("claims", name), {}, 0}});
    }
  }
}

void ClusterNode::release(std::size_t count) {
  // The channels claimed last go first: the ones that ran longest here stay.
  std::vector<std::pair<Clock::time_point, std::string>> by_age;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, held] : held_) by_age.emplace_back(held.since, name);
  }
  std::sort(by_age.rbegin(), by_age.rend());
  for (std::size_t i = 0; i < count && i < by_age.size(); ++i)
    drop(by_age[i].second, "rebalancing: another node is below its share", true);
}

void ClusterNode::drop(const std::string& name, const std::string& why, bool delete_claim) {
  Held held;
  {
    std::lock_guard lock(mutex_);
    const auto it = held_.find(name);
    if (it == held_.end()) return;
    held = it->second;
    held_.erase(it);
  }
  try {
    pipeline_->remove_channel(held.local_id);
  } catch (const Error&) {
    // The run is draining: the channel stops with every other one.
  }
  spdlog::warn("cluster: channel {} stopped here (channel {}): {}", name, held.local_id, why);
  if (!delete_claim) return;
  try {
    client_.txn({{TxnCompare::Target::kCreateRevision, key("claims", name), held.claim_revision}},
                {{TxnOp::Kind::kDelete, key("claims", name), {}, 0}});
  } catch (const Error& error) {
    spdlog::warn("cluster: channel {}: its claim stays until this node's lease ends ({})", name,
                 error.what());
  }
}

void ClusterNode::drop_all(const char* why) {
  std::vector<std::string> names;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [name, held] : held_) names.push_back(name);
  }
  for (const auto& name : names) drop(name, why, false);
}

HttpResponse ClusterNode::get_cluster(const HttpRequest&) {
  View view;
  try {
    view = read_view();
  } catch (const Error& error) {
    return error_response(503, fmt::format("cluster: {}", error.what()));
  }
  std::map<std::string, Held> held;
  std::int64_t lease = 0;
  {
    std::lock_guard lock(mutex_);
    held = held_;
    lease = lease_;
  }
  const auto shares = targets(view);
  json nodes = json::array();
  for (const auto& [name, node] : view.nodes) {
    json channels = json::array();
    for (const auto& [channel, claim] : view.claims)
      if (claim.node == name) channels.push_back(channel);
    nodes.push_back({{"name", name},
                     {"http", node.info.value("http", "")},
                     {"rtsp", node.info.value("rtsp", "")},
                     {"capacity", node.info.value("capacity", 0)},
                     {"lease", fmt::format("{:x}", node.lease)},
                     {"share", shares.contains(name) ? shares.at(name) : 0},
                     {"channels", std::move(channels)}});
  }
  json channels = json::array();
  for (const auto& [name, spec] : view.channels) {
    json channel{{"name", name},
                 {"model", spec.value("model", "")},
                 {"address", io::redact_credentials(spec.value("address", ""))},
                 {"node", nullptr}};
    if (const auto claim = view.claims.find(name); claim != view.claims.end()) {
      channel["node"] = claim->second.node;
      channel["lease"] = fmt::format("{:x}", claim->second.lease);
      channel["claim_revision"] = claim->second.create_revision;
      if (const auto node = view.nodes.find(claim->second.node); node != view.nodes.end()) {
        const std::string rtsp = node->second.info.value("rtsp", "");
        const std::string http = node->second.info.value("http", "");
        if (!rtsp.empty()) channel["rtsp"] = rtsp + "/" + name;
        if (!http.empty()) channel["viewer"] = http + "/";
      }
    }
    if (const auto here = held.find(name); here != held.end()) {
      channel["local_id"] = here->second.local_id;
      channel["state"] =
          pipeline::to_string(pipeline_->channel_state(static_cast<std::size_t>(here->second.local_id)));
    }
    channels.push_back(std::move(channel));
  }
  return json_response(200, json{{"node", options_.node_name},
                                 {"lease", fmt::format("{:x}", lease)},
                                 {"lease_ttl_s", options_.lease_ttl_s},
                                 {"etcd", client_.endpoints_text()},
                                 {"revision", view.revision},
                                 {"config_hash", hash_},
                                 {"nodes", std::move(nodes)},
                                 {"channels", std::move(channels)}});
}

HttpResponse ClusterNode::add_channel(const HttpRequest& request) {
  std::string problem;
  auto parsed = server::parse_channel_request(request.body, true, problem);
  if (!parsed) return error_response(400, problem);
  pipeline::ChannelRequest& channel = *parsed;
  if (channel.address.empty()) return error_response(400, "address: must not be empty");
  if (const auto why = pipeline::address_problem(channel.address))
    return error_response(400, "address: " + *why);
  if (!pipeline_->has_model(channel.model))
    return error_response(400,
                          fmt::format("model: '{}' is not a model the cluster's config runs", channel.model));
  if (!channel.name.empty() && !valid_name(channel.name))
    return error_response(
        400, fmt::format("name: '{}' must be 1 to 63 letters, digits, '.', '_' or '-'", channel.name));
  const std::string spec = channel_spec(channel).dump();
  try {
    if (!channel.name.empty()) {
      if (!client_.create(key("channels", channel.name), spec))
        return error_response(409, fmt::format("name: the cluster has a channel '{}' already", channel.name));
    } else {
      // "<model>_<n>" with the first n free after the config's channels.
      for (std::size_t n = configured_.size();; ++n) {
        const std::string name = fmt::format("{}_{}", channel.model, n);
        if (client_.create(key("channels", name), spec)) {
          channel.name = name;
          break;
        }
      }
    }
  } catch (const Error& error) {
    return error_response(503, fmt::format("cluster: {}", error.what()));
  }
  wake_.notify_all();
  spdlog::info("cluster: channel {} added through the API ({}, model '{}')", channel.name,
               io::redact_credentials(channel.address), channel.model);
  HttpResponse response = json_response(201, json{{"name", channel.name},
                                                  {"model", channel.model},
                                                  {"address", io::redact_credentials(channel.address)}});
  response.headers["location"] = "/api/cluster";
  return response;
}

HttpResponse ClusterNode::remove_channel(const HttpRequest& request) {
  const std::string name = request.path.substr(kChannelPrefix.size());
  try {
    if (client_.erase(key("channels", name)) == 0)
      return error_response(404, fmt::format("no cluster channel '{}' (GET /api/cluster lists them)", name));
  } catch (const Error& error) {
    return error_response(503, fmt::format("cluster: {}", error.what()));
  }
  wake_.notify_all();
  spdlog::info("cluster: channel {} removed through the API", name);
  return json_response(202, json{{"name", name}, {"state", "removing"}});
}

}  // namespace vapipe::cluster
