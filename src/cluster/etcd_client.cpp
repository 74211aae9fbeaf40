#include "cluster/etcd_client.hpp"

#include <algorithm>
#include <charconv>
#include <span>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/sei_codec.hpp"

namespace vapipe::cluster {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

std::string base64(std::string_view text) {
  std::string out;
  io::base64_encode(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()), out);
  std::erase_if(out, [](char c) { return c == '\r' || c == '\n'; });  // io's encoder wraps lines
  return out;
}

std::string unbase64(const json& value, std::string_view what) {
  if (!value.is_string()) return {};
  std::vector<std::uint8_t> bytes;
  if (!io::base64_decode(value.get<std::string>(), bytes)) fail("etcd: {} is not base64", what);
  return {bytes.begin(), bytes.end()};
}

// The gateway writes 64-bit integers as strings ("revision": "12"); absent means 0 (proto3 defaults).
std::int64_t integer(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (!it->is_string()) return 0;
  const std::string& text = it->get_ref<const std::string&>();
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// The end of the range of every key that starts with `prefix` (etcd's "prefix" range_end).
std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

KeyValue key_value(const json& kv) {
  return {unbase64(kv.value("key", json()), "a key"), unbase64(kv.value("value", json()), "a value"),
          integer(kv, "create_revision"), integer(kv, "mod_revision"), integer(kv, "lease")};
}

json op_json(const TxnOp& op) {
  if (op.kind == TxnOp::Kind::kDelete) return {{"request_delete_range", {{"key", base64(op.key)}}}};
  json put{{"key", base64(op.key)}, {"value", base64(op.value)}};
  if (op.lease != 0) put["lease"] = std::to_string(op.lease);
  return {{"request_put", std::move(put)}};
}

// Runs the io_context until `done` or the stream's deadline cancels the operation.
template <typename Start>
beast::error_code run_step(asio::io_context& io, Start start) {
  beast::error_code result = asio::error::would_block;
  start([&result](beast::error_code error, auto&&...) { result = error; });
  io.restart();
  io.run();
  return result;
}

}  // namespace

std::string EtcdEndpoint::to_string() const { return fmt::format("http://{}:{}", host, port); }

std::vector<EtcdEndpoint> parse_etcd_url(std::string_view url, std::string_view option) {
  constexpr std::string_view kScheme = "etcd://";
  if (!url.starts_with(kScheme))
    fail("{}: '{}' must be etcd://HOST:PORT[,HOST:PORT...] (etcd's client port, 2379 by default)", option,
         url);
  std::vector<EtcdEndpoint> endpoints;
  std::string_view rest = url.substr(kScheme.size());
  while (!rest.empty() || endpoints.empty()) {
    const std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (item.ends_with('/')) item.remove_suffix(1);
    EtcdEndpoint endpoint;
    const std::size_t colon = item.rfind(':');
    endpoint.host = std::string(item.substr(0, colon));
    if (colon != std::string_view::npos) {
      const std::string_view port = item.substr(colon + 1);
      const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), endpoint.port);
      if (error != std::errc() || end != port.data() + port.size() || endpoint.port <= 0 ||
          endpoint.port > 65535)
        fail("{}: '{}' in '{}' is not a port", option, port, url);
    }
    if (endpoint.host.empty() || endpoint.host.find_first_of("/@?# ") != std::string::npos)
      fail("{}: '{}' in '{}' is not HOST:PORT", option, item, url);
    endpoints.push_back(std::move(endpoint));
    if (comma == std::string_view::npos) break;
  }
  return endpoints;
}

EtcdClient::EtcdClient(std::vector<EtcdEndpoint> endpoints, std::chrono::milliseconds timeout)
    : endpoints_(std::move(endpoints)), timeout_(timeout) {
  if (endpoints_.empty()) fail("etcd: no endpoint given");
}

std::string EtcdClient::endpoints_text() const {
  std::string text;
  for (const auto& endpoint : endpoints_) text += (text.empty() ? "" : ",") + endpoint.to_string();
  return text;
}

std::string EtcdClient::call(std::string_view path, const std::string& body) {
  std::size_t first = 0;
  {
    std::lock_guard lock(mutex_);
    first = preferred_;
  }
  std::string errors;
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    const std::size_t index = (first + i) % endpoints_.size();
    const EtcdEndpoint& endpoint = endpoints_[index];
    asio::io_context io;
    beast::tcp_stream stream(io);
    tcp::resolver resolver(io);
    beast::error_code error;
    const auto resolved = resolver.resolve(endpoint.host, std::to_string(endpoint.port), error);
    http::response<http::string_body> response;
    if (!error) {
      stream.expires_after(timeout_);
      error = run_step(io, [&](auto handler) { stream.async_connect(resolved, handler); });
    }
    if (!error) {
      http::request<http::string_body> request{http::verb::post, std::string(path), 11};
      request.set(http::field::host, fmt::format("{}:{}", endpoint.host, endpoint.port));
      request.set(http::field::content_type, "application/json");
      request.body() = body;
      request.prepare_payload();
      error = run_step(io, [&](auto handler) { http::async_write(stream, request, handler); });
      if (!error) {
        beast::flat_buffer buffer;
        error = run_step(io, [&](auto handler) { http::async_read(stream, buffer, response, handler); });
      }
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    if (error) {
      errors +=
          fmt::format("{}{}: {}", errors.empty() ? "" : "; ", endpoint.to_string(),
                      error == beast::error::timeout ? "no answer within the timeout" : error.message());
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      preferred_ = index;
    }
    if (response.result() != http::status::ok) {
      // The gateway's error body: {"error": "etcdserver: ...", "code": N}.
      const json parsed = json::parse(response.body(), nullptr, false);
      const std::string message =
          parsed.is_object() ? parsed.value("error", response.body()) : response.body();
      fail("etcd {}{}: {}", endpoint.to_string(), path, message);
    }
    return std::move(response.body());
  }
  throw EtcdUnavailable(fmt::format("etcd unreachable: {}", errors));
}

namespace {

json parse_reply(const std::string& text, std::string_view path) {
  json reply = json::parse(text, nullptr, false);
  if (!reply.is_object()) fail("etcd {}: the reply is not a JSON object", path);
  return reply;
}

}  // namespace

std::vector<KeyValue> EtcdClient::range_prefix(std::string_view prefix, std::int64_t* revision) {
  const json request{{"key", base64(prefix)}, {"range_end", base64(prefix_end(prefix))}};
  const json reply = parse_reply(call("/v3/kv/range", request.dump()), "/v3/kv/range");
  if (revision != nullptr) *revision = integer(reply.value("header", json::object()), "revision");
  std::vector<KeyValue> result;
  for (const auto& kv : reply.value("kvs", json::array())) result.push_back(key_value(kv));
  return result;
}

std::optional<KeyValue> EtcdClient::get(std::string_view key) {
  const json request{{"key", base64(key)}};
  const json reply = parse_reply(call("/v3/kv/range", request.dump()), "/v3/kv/range");
  const json kvs = reply.value("kvs", json::array());
  if (kvs.empty()) return std::nullopt;
  return key_value(kvs.front());
}

void EtcdClient::put(std::string_view key, std::string_view value, std::int64_t lease) {
  json request{{"key", base64(key)}, {"value", base64(value)}};
  if (lease != 0) request["lease"] = std::to_string(lease);
  call("/v3/kv/put", request.dump());
}

std::int64_t EtcdClient::erase(std::string_view key) {
  const json request{{"key", base64(key)}};
  return integer(parse_reply(call("/v3/kv/deleterange", request.dump()), "/v3/kv/deleterange"), "deleted");
}

bool EtcdClient::txn(const std::vector<TxnCompare>& compares, const std::vector<TxnOp>& success,
                     const std::vector<TxnOp>& failure, std::int64_t* revision) {
  json request{{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (const auto& compare : compares) {
    json item{{"key", base64(compare.key)}, {"result", "EQUAL"}};
    switch (compare.target) {
      case TxnCompare::Target::kCreateRevision:
        item["target"] = "CREATE";
        item["create_revision"] = std::to_string(compare.value);
        break;
      case TxnCompare::Target::kModRevision:
        item["target"] = "MOD";
        item["mod_revision"] = std::to_string(compare.value);
        break;
      case TxnCompare::Target::kLease:
        item["target"] = "LEASE";
        item["lease"] = std::to_string(compare.value);
        break;
    }
    request["compare"].push_back(std::move(item));
  }
  for (const auto& op : success) request["success"].push_back(op_json(op));
  for (const auto& op : failure) request["failure"].push_back(op_json(op));
  const json reply = parse_reply(call("/v3/kv/txn", request.dump()), "/v3/kv/txn");
  if (revision != nullptr) *revision = integer(reply.value("header", json::object()), "revision");
  return reply.value("succeeded", false);
}

bool EtcdClient::create(std::string_view key, std::string_view value, std::int64_t lease,
                        std::int64_t* revision) {
  return txn({{TxnCompare::Target::kCreateRevision, std::string(key), 0}},
             {{TxnOp::Kind::kPut, std::string(key), std::string(value), lease}}, {}, revision);
}

std::int64_t EtcdClient::grant_lease(int ttl_s) {
  const json reply = parse_reply(call("/v3/lease/grant", json{{"TTL", ttl_s}}.dump()), "/v3/lease/grant");
  const std::int64_t id = integer(reply, "ID");
  if (id == 0) fail("etcd /v3/lease/grant: no lease granted: {}", reply.value("error", reply.dump()));
  return id;
}

std::int64_t EtcdClient::keep_alive(std::int64_t lease) {
  // A streaming call in gRPC; through the gateway one request gets one {"result": {...}} line. A lease
  // etcd no longer has comes back without "TTL" (0).
  const std::string text = call("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump());
  const json reply = parse_reply(text.substr(0, text.find('\n')), "/v3/lease/keepalive");
  if (reply.contains("error")) fail("etcd /v3/lease/keepalive: {}", reply["error"].dump());
  return integer(reply.value("result", json::object()), "TTL");
}

void EtcdClient::revoke_lease(std::int64_t lease) {
  call("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump());
}

}  // namespace vapipe::cluster
