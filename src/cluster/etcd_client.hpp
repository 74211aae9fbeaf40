#pragma once
// A small client of etcd's v3 API through its JSON gateway (etcd 3.4: POST /v3/kv/range, /v3/kv/txn,
// /v3/lease/grant, ...; keys and values base64, 64-bit integers as strings), over HTTP/1.1 with Boost.Beast,
// the HTTP library already in the tree. Why not gRPC: Debian 12 packages no etcd v3 C++ client, and the
// calls a cluster node makes (a range read, a compare-and-create, a lease keep-alive, about one a second)
// need none of gRPC's streaming; the gateway is part of every etcd server (docs/cluster.md).
//
// Every call is synchronous and bounded by `timeout` per endpoint; endpoints are tried in order, the one
// that answered last first. Errors throw EtcdUnavailable (no endpoint answered: a network error) or
// vapipe::Error (etcd answered with an error, e.g. "etcdserver: requested lease not found"), both naming
// the endpoint. Thread-safe: each call opens its own connection.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace vapipe::cluster {

// No endpoint could be reached (connection refused, timeout): etcd is down or partitioned away.
class EtcdUnavailable : public Error {
 public:
  using Error::Error;
};

struct EtcdEndpoint {
  std::string host;
  int port = 2379;
  std::string to_string() const;  // "http://HOST:PORT"
};

// "etcd://HOST:PORT[,HOST:PORT...]" (a port left out is 2379). Throws vapipe::Error naming `option` for
// anything else.
std::vector<EtcdEndpoint> parse_etcd_url(std::string_view url, std::string_view option = "--cluster");

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;  // 0: none
};

// One operation of a transaction (put with an optional lease, or delete of one key).
struct TxnOp {
  enum class Kind : std::uint8_t { kPut, kDelete } kind = Kind::kPut;
  std::string key;
  std::string value;
  std::int64_t lease = 0;
};

// One comparison of a transaction; all must hold for the success branch.
struct TxnCompare {
  enum class Target : std::uint8_t { kCreateRevision, kModRevision, kLease } target = Target::kCreateRevision;
  std::string key;
  std::int64_t value = 0;  // create_revision 0: the key does not exist
};

class EtcdClient {
 public:
  explicit EtcdClient(std::vector<EtcdEndpoint> endpoints,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

  // Every key under `prefix`, in key order, and the store's revision they were read at.
  std::vector<KeyValue> range_prefix(std::string_view prefix, std::int64_t* revision = nullptr);
  std::optional<KeyValue> get(std::string_view key);
  void put(std::string_view key, std::string_view value, std::int64_t lease = 0);
  // Deletes one key; returns how many were deleted (0 or 1).
  std::int64_t erase(std::string_view key);
  // Atomically: if every comparison holds, the success operations, else the failure ones. True when they
  // held. A put with a lease that does not exist (expired) fails the whole call with a vapipe::Error.
  // `revision`: the store's revision after the call (a key put by it has this create/mod revision).
  bool txn(const std::vector<TxnCompare>& compares, const std::vector<TxnOp>& success,
           const std::vector<TxnOp>& failure = {}, std::int64_t* revision = nullptr);
  // Creates `key` if it does not exist (a claim); false when it does. `revision` as txn's.
  bool create(std::string_view key, std::string_view value, std::int64_t lease = 0,
              std::int64_t* revision = nullptr);

  // A lease of `ttl_s` seconds; returns its id.
  std::int64_t grant_lease(int ttl_s);
  // Refreshes the lease; returns its TTL in seconds, 0 when etcd no longer has it (expired or revoked).
  std::int64_t keep_alive(std::int64_t lease);
  void revoke_lease(std::int64_t lease);

  // The endpoints, as "http://HOST:PORT,...", for messages.
  std::string endpoints_text() const;

 private:
  // POSTs `body` (JSON) to `path` on the first endpoint that answers; returns the response body.
  std::string call(std::string_view path, const std::string& body);

  std::vector<EtcdEndpoint> endpoints_;
  std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::size_t preferred_ = 0;  // the endpoint that answered last
};

}  // namespace vapipe::cluster
