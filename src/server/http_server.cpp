#include "server/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/error.hpp"

namespace vapipe::server {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

using Clock = std::chrono::steady_clock;

// Headers of a legitimate request (browser, curl, Prometheus) fit in a few KiB; Beast's default is 8 KiB.
constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;
// Messages a WebSocket client may send us (the viewer sends small control messages only).
constexpr std::size_t kMaxWebSocketMessageBytes = 64 * 1024;
// After an error reply, how long and how much of the client's remaining upload is read and discarded.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr std::size_t kMaxLingerBytes = 16 << 20;
// A warning that a flood can trigger (refused connections, refused requests) is logged at most this often.
constexpr auto kWarningInterval = std::chrono::seconds(10);

HttpResponse json_error(int status, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = nlohmann::json{{"error", message}}.dump();
  return response;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 percent-decoding; `plus_is_space` for query strings (application/x-www-form-urlencoded).
// nullopt for a malformed escape or an encoded NUL (never a valid file name or parameter).
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int high = hex_digit(text[i + 1]);
      const int low = hex_digit(text[i + 2]);
      if (high < 0 || low < 0) return std::nullopt;
      const char decoded = static_cast<char>(high * 16 + low);
      if (decoded == '\0') return std::nullopt;
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> result;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const std::size_t eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value =
        percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
    if (key && value) result.emplace(std::move(*key), std::move(*value));
  }
  return result;
}

// Compares without an early exit, so response timing does not reveal how much of a guessed token matched.
bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

std::string_view mime_type(const std::filesystem::path& file) {
  static const std::map<std::string, std::string_view> kTypes{
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".ico", "image/x-icon"},
      {".webp", "image/webp"},
      {".wasm", "application/wasm"},
      {".mp4", "video/mp4"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
  };
  std::string extension = file.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const auto it = kTypes.find(extension);
  return it == kTypes.end() ? std::string_view("application/octet-stream") : it->second;
}

// Resolves a decoded request path to a regular file inside `root` (already canonical). Refused (403):
// any `..` segment, a backslash, and anything whose real path (symlinks resolved) leaves the root.
// Not found (404): everything else that is not a regular file.
HttpResponse serve_static(const std::filesystem::path& root, const std::string& path, bool head) {
  namespace fs = std::filesystem;
  std::string relative = path;
  while (!relative.empty() && relative.front() == '/') relative.erase(relative.begin());
  if (relative.find('\\') != std::string::npos) return json_error(403, "path outside the web root");
  for (std::size_t begin = 0; begin <= relative.size();) {
    const std::size_t end = std::min(relative.find('/', begin), relative.size());
    if (relative.compare(begin, end - begin, "..") == 0 && end - begin == 2)
      return json_error(403, "path outside the web root");
    begin = end + 1;
  }
  fs::path candidate = root / relative;
  std::error_code error;
  if (fs::is_directory(candidate, error)) candidate /= "index.html";
  const fs::path real = fs::canonical(candidate, error);
  if (error) return json_error(404, "not found");
  const auto [root_end, real_it] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  (void)real_it;
  if (root_end != root.end()) return json_error(403, "path outside the web root");
  if (!fs::is_regular_file(real, error)) return json_error(404, "not found");

  HttpResponse response;
  response.content_type = std::string(mime_type(real));
  if (!head) {
    std::ifstream in(real, std::ios::binary);
    if (!in) return json_error(404, "not found");
    response.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } else {
    response.headers["content-length"] = std::to_string(fs::file_size(real, error));
  }
  // The viewer's files change only with a new build; revalidating each load keeps them fresh.
  response.headers["cache-control"] = "no-cache";
  return response;
}

struct Route {
  std::string method;
  std::string path;
  HttpServer::Handler handler;
  bool requires_token = true;
};

struct WebSocketRoute {
  std::string path;
  WebSocketHandlers handlers;
  bool requires_token = true;
};

// State shared by the acceptor and every session; sessions keep it alive through a shared_ptr so that a
// WebSocketConnection held by other code past stop() finds a closed server, never a dangling one.

class Closeable {
 public:
  virtual ~Closeable() = default;
  virtual void shut() = 0;  // server thread: cancel I/O, release the socket
};

// One warning per kWarningInterval at most, saying how many were held back: a flood of refused connections
// or requests must not flood the log as well. Thread-safe.
class RateLimitedWarning {
 public:
  void warn(const std::string& message) {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (last_ && now - *last_ < kWarningInterval) {
      ++held_back_;
      return;
    }
    if (held_back_ > 0)
      spdlog::warn("{} ({} more like it in the last {} s)", message, held_back_,
                   std::chrono::duration_cast<std::chrono::seconds>(now - *last_).count());
    else
      spdlog::warn("{}", message);
    last_ = now;
    held_back_ = 0;
  }

 private:
  std::mutex mutex_;
  std::optional<Clock::time_point> last_;
  std::uint64_t held_back_ = 0;
};

struct ServerState {
  HttpServerOptions options;
  asio::ip::address bind_address;
  std::vector<std::string> allowed_names;  // lower-case: "localhost" and options.allowed_hosts
  std::filesystem::path web_root;          // canonical; empty: none
  // Registration may happen while the server runs (a service that starts later); requests read them.
  std::shared_mutex routes_mutex;
  std::vector<Route> routes;
  std::vector<std::shared_ptr<const WebSocketRoute>> websockets;
  asio::io_context io;

  // Every live session, so stop() can close them.
  std::mutex sessions_mutex;
  std::set<std::shared_ptr<Closeable>> sessions;

  // Open connections (HTTP and WebSocket), in all and per client address: ConnectionSlot.
  std::mutex connections_mutex;
  std::size_t connections = 0;
  std::map<asio::ip::address, std::size_t> connections_per_peer;
  RateLimitedWarning connection_warnings;
  RateLimitedWarning request_warnings;
};

// One open connection counted against the caps; released when the session holding it (HTTP, then the
// WebSocket it was upgraded to) is destroyed.
class ConnectionSlot {
 public:
  // nullptr, and `refusal` says why, when the server or the peer is at its cap.
  static std::unique_ptr<ConnectionSlot> take(const std::shared_ptr<ServerState>& state,
                                              const asio::ip::address& peer, std::string* refusal) {
    std::lock_guard lock(state->connections_mutex);
    const auto& options = state->options;
    std::size_t& from_peer = state->connections_per_peer[peer];
    if (state->connections >= options.max_connections || from_peer >= options.max_connections_per_peer) {
      *refusal =
          state->connections >= options.max_connections
              ? fmt::format("{} connections are open (http.max_connections)", state->connections)
              : fmt::format("{} connections from that address are open (http.max_connections_per_peer)",
                            from_peer);
      if (from_peer == 0) state->connections_per_peer.erase(peer);
      return nullptr;
    }
    ++state->connections;
    ++from_peer;
    return std::unique_ptr<ConnectionSlot>(new ConnectionSlot(state, peer));
  }
  ~ConnectionSlot() {
    std::lock_guard lock(state_->connections_mutex);
    --state_->connections;
    const auto it = state_->connections_per_peer.find(peer_);
    if (--it->second == 0) state_->connections_per_peer.erase(it);
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;

  const std::string& peer() const { return peer_text_; }

 private:
  ConnectionSlot(std::shared_ptr<ServerState> state, asio::ip::address peer)
      : state_(std::move(state)), peer_(std::move(peer)), peer_text_(peer_.to_string()) {}
  std::shared_ptr<ServerState> state_;
  asio::ip::address peer_;
  std::string peer_text_;
};

// A connection over a cap gets a short 503 (a fresh socket's send buffer takes it whole, so the write does
// not block the server thread) and is closed.
void refuse_connection(tcp::socket& socket) {
  static const std::string kAnswer = [] {
    const std::string body = R"({"error":"too many connections, try again later"})";
    return fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nServer: vapipe\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\nRetry-After: 10\r\nConnection: close\r\n\r\n{}",
        body.size(), body);
  }();
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.write_some(asio::buffer(kAnswer), ignored);
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

// "name", "name:port", "[v6]", "[v6]:port" -> the name, lower-case ("[::1]" keeps its brackets); nullopt
// when it is none of these.
std::optional<std::string> host_name(std::string_view host) {
  std::string_view name = host;
  std::string_view port;
  if (host.starts_with('[')) {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    name = host.substr(0, close + 1);
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return std::nullopt;
    if (!rest.empty()) port = rest.substr(1);
  } else if (const std::size_t colon = host.find(':'); colon != std::string_view::npos) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
  }
  if (name.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

// DNS rebinding: a page of evil.example whose name the attacker re-points at 127.0.0.1 is same-origin
// with this server in the browser's eyes, but its requests say "Host: evil.example". Only the names the
// server is really reached under pass: an IP address (which no DNS answer can re-point) that is loopback
// or bound (every one when bound to 0.0.0.0 or ::), "localhost", and http.allowed_hosts.
bool host_allowed(const ServerState& state, const std::string& name) {
  std::string_view literal = name;
  if (literal.size() > 2 && literal.front() == '[' && literal.back() == ']')
    literal = literal.substr(1, literal.size() - 2);
  beast::error_code error;
  const auto address = asio::ip::make_address(std::string(literal), error);
  if (!error &&
      (address.is_loopback() || address == state.bind_address || state.bind_address.is_unspecified()))
    return true;
  return std::find(state.allowed_names.begin(), state.allowed_names.end(), name) != state.allowed_names.end();
}

// The browser's Origin of a same-origin request is the scheme and the authority the page was loaded from,
// which is the Host of this request: anything else (another port, another name, "null") is cross-site.
bool same_origin(std::string_view origin, std::string_view host) {
  for (const std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (origin.size() == scheme.size() + host.size() &&
        beast::iequals(origin.substr(0, scheme.size()), scheme) &&
        beast::iequals(origin.substr(scheme.size()), host))
      return true;
  }
  return false;
}

// Why a request from a browser page that is not this server's own is refused (403), nullopt when it is
// not. A Host that is not a name of this server (every request), an Origin other than the server's own
// (`check_origin`: routes and WebSockets; a request without Origin does not come from a cross-site page).
std::optional<std::string> refuse_foreign(const ServerState& state, const HttpRequest& request,
                                          bool check_origin) {
  const auto host = request.headers.find("host");
  if (host != request.headers.end()) {
    const auto name = host_name(host->second);
    if (!name || !host_allowed(state, *name))
      return fmt::format(
          "Host '{}' is not a name of this server (DNS rebinding?): names that clients use "
          "besides its addresses go in http.allowed_hosts",
          host->second);
  }
  if (!check_origin) return std::nullopt;
  const auto origin = request.headers.find("origin");
  if (origin != request.headers.end() &&
      (host == request.headers.end() || !same_origin(origin->second, host->second)))
    return fmt::format("Origin '{}' is not this server's origin: cross-site requests are refused",
                       origin->second);
  return std::nullopt;
}

// CSRF: an HTML form or a fetch() without CORS can send a body only as text/plain, form-urlencoded or
// multipart, so a route takes a body only as application/json (which needs a CORS preflight this server
// never grants). POST/PUT/PATCH count as having a body even when it is empty.
std::optional<HttpResponse> refuse_body_type(const HttpRequest& request) {
  const bool has_body = !request.body.empty() || request.method == "POST" || request.method == "PUT" ||
                        request.method == "PATCH";
  if (!has_body) return std::nullopt;
  const auto it = request.headers.find("content-type");
  std::string_view type = it == request.headers.end() ? std::string_view() : std::string_view(it->second);
  type = type.substr(0, type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  if (beast::iequals(type, "application/json")) return std::nullopt;
  return json_error(415, fmt::format("Content-Type: must be application/json (got '{}')",
                                     it == request.headers.end() ? "" : it->second));
}

bool authorized(const ServerState& state, const HttpRequest& request) {
  if (!state.options.token) return true;
  const std::string& token = *state.options.token;
  if (const auto it = request.headers.find("authorization"); it != request.headers.end()) {
    constexpr std::string_view kBearer = "Bearer ";
    const std::string_view value = it->second;
    if (value.size() > kBearer.size() && value.substr(0, kBearer.size()) == kBearer &&
        constant_time_equal(value.substr(kBearer.size()), token))
      return true;
  }
  if (const auto it = request.query.find("token"); it != request.query.end())
    return constant_time_equal(it->second, token);
  return false;
}

HttpResponse unauthorized() {
  HttpResponse response = json_error(401, "missing or wrong token (Authorization: Bearer <http.token>)");
  response.headers["www-authenticate"] = "Bearer";
  return response;
}

// Converts Beast's request to ours; nullopt when the target is malformed.
std::optional<HttpRequest> to_request(const http::request<http::string_body>& in) {
  HttpRequest request;
  request.method = std::string(in.method_string());
  const std::string_view target(in.target().data(), in.target().size());
  // Only origin-form targets ("/path?query"); absolute-form and "*" have no meaning for this server.
  if (target.empty() || target.front() != '/') return std::nullopt;
  // One value each: with two, which one a check reads and which one a proxy acted on could differ.
  for (const auto field : {http::field::host, http::field::origin, http::field::content_type})
    if (in.count(field) > 1) return std::nullopt;
  const std::size_t question = target.find('?');
  auto path = percent_decode(target.substr(0, question), false);
  if (!path) return std::nullopt;
  request.path = std::move(*path);
  if (question != std::string_view::npos) request.query = parse_query(target.substr(question + 1));
  for (const auto& field : in) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    request.headers[std::move(name)] = std::string(field.value());
  }
  request.body = in.body();
  return request;
}

const Route* find_route(const ServerState& state, const HttpRequest& request, bool* path_known) {
  // Caller holds routes_mutex.
  const Route* best = nullptr;
  *path_known = false;
  for (const auto& route : state.routes) {
    const bool matches =
        route.path == request.path || (!route.path.empty() && route.path.back() == '/' &&
                                       request.path.compare(0, route.path.size(), route.path) == 0);
    if (!matches) continue;
    *path_known = true;
    if (route.method != request.method) continue;
    if (best == nullptr || route.path.size() > best->path.size()) best = &route;
  }
  return best;
}

// `peer`: the client's address, for the log.
HttpResponse dispatch(ServerState& state, const HttpRequest& request, const std::string& peer) {
  bool path_known = false;
  std::optional<Route> route;
  {
    std::shared_lock lock(state.routes_mutex);
    if (const Route* found = find_route(state, request, &path_known)) route = *found;
  }
  if (const auto refusal = refuse_foreign(state, request, route.has_value())) {
    state.request_warnings.warn(
        fmt::format("http: refused {} {} from {}: {}", request.method, request.path, peer, *refusal));
    return json_error(403, *refusal);
  }
  if (route) {
    if (route->requires_token && !authorized(state, request)) return unauthorized();
    if (auto refusal = refuse_body_type(request)) return *refusal;
    try {
      return route->handler(request);
    } catch (const std::exception& error) {
      // A handler bug must not take the server down; the message is the handler's own (no request data).
      spdlog::error("http: {} {}: {}", request.method, route->path, error.what());
      return json_error(500, error.what());
    }
  }
  if (path_known) return json_error(405, "method not allowed");
  if ((request.method == "GET" || request.method == "HEAD") && !state.web_root.empty() &&
      request.path.rfind("/api/", 0) != 0)
    return serve_static(state.web_root, request.path, request.method == "HEAD");
  return json_error(404, "not found");
}

http::response<http::string_body> to_beast(HttpResponse response, unsigned version, bool keep_alive) {
  http::response<http::string_body> out{static_cast<http::status>(response.status), version};
  out.set(http::field::server, "vapipe");
  out.set(http::field::content_type, response.content_type);
  // Nothing here is meant to be framed or sniffed into another type.
  out.set("x-content-type-options", "nosniff");
  const auto length = response.headers.find("content-length");
  for (const auto& [name, value] : response.headers)
    if (name != "content-length") out.set(name, value);
  out.keep_alive(keep_alive);
  out.body() = std::move(response.body);
  if (length != response.headers.end())
    out.content_length(std::stoull(length->second));  // HEAD: the length of the body not sent
  else
    out.prepare_payload();
  return out;
}

// ---------------------------------------------------------------------------------------------------------

class WebSocketSession final : public WebSocketConnection,
                               public Closeable,
                               public std::enable_shared_from_this<WebSocketSession> {
 public:
  WebSocketSession(std::shared_ptr<ServerState> state, tcp::socket socket,
                   std::shared_ptr<const WebSocketRoute> route, std::unique_ptr<ConnectionSlot> slot)
      : state_(std::move(state)),
        slot_(std::move(slot)),
        stream_(std::move(socket)),
        route_(std::move(route)) {}

  void accept(http::request<http::string_body> request, HttpRequest parsed) {
    stream_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    stream_.read_message_max(kMaxWebSocketMessageBytes);
    stream_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& response) { response.set(http::field::server, "vapipe"); }));
    request_ = std::move(parsed);
    stream_.async_accept(request,
                         [self = shared_from_this()](beast::error_code error) { self->on_accept(error); });
  }

  void send_text(std::string message, bool droppable) override {
    enqueue(std::move(message), false, droppable);
  }
  void send_binary(std::string message, bool droppable) override {
    enqueue(std::move(message), true, droppable);
  }

  void close() override {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      closing_ = true;
    }
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->close_now(); });
  }

  bool is_open() const override {
    std::lock_guard lock(mutex_);
    return open_ && !closed_ && !closing_;
  }

  std::size_t queued_bytes() const override {
    std::lock_guard lock(mutex_);
    return queued_bytes_;
  }

  void shut() override {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    finish();  // on_close now: the server thread is about to stop, pending completions will not run
  }

 private:
  struct Message {
    std::string data;
    bool binary = false;
    bool droppable = true;
  };

  void on_accept(beast::error_code error) {
    if (error) return finish();
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    if (route_->handlers.on_open) route_->handlers.on_open(shared_from_this(), request_);
    read();
  }

  void read() {
    stream_.async_read(incoming_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      if (error) return self->finish();
      if (self->route_->handlers.on_message) {
        const auto data = self->incoming_.cdata();
        self->route_->handlers.on_message(
            self, std::string_view(static_cast<const char*>(data.data()), data.size()),
            !self->stream_.got_text());
      }
      self->incoming_.consume(self->incoming_.size());
      self->read();
    });
  }

  // Any thread. A slow client's queue is trimmed here, on the producer's side, so the queue never holds
  // more than the bound (plus one message that alone exceeds it).
  void enqueue(std::string data, bool binary, bool droppable) {
    bool start_write = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_ || closing_) return;
      queued_bytes_ += data.size();
      queue_.push_back(Message{std::move(data), binary, droppable});
      const std::size_t limit = state_->options.max_websocket_queue_bytes;
      for (auto it = queue_.begin(); queued_bytes_ > limit && it != queue_.end();) {
        // Never drop the newest message: it is what the client will want next.
        if (it->droppable && std::next(it) != queue_.end()) {
          queued_bytes_ -= it->data.size();
          ++dropped_;
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      if (open_ && !writing_) {
        writing_ = true;
        start_write = true;
      }
    }
    if (start_write) asio::post(stream_.get_executor(), [self = shared_from_this()] { self->write_next(); });
  }

  // Server thread.
  void write_next() {
    {
      std::lock_guard lock(mutex_);
      if (closed_ || queue_.empty()) {
        writing_ = false;
        return;
      }
      in_flight_ = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= in_flight_.data.size();
    }
    stream_.binary(in_flight_.binary);
    stream_.async_write(asio::buffer(in_flight_.data),
                        [self = shared_from_this()](beast::error_code error, std::size_t) {
                          if (error) {
                            std::lock_guard lock(self->mutex_);
                            self->writing_ = false;
                            return;  // the read side sees the failure too and finishes the session
                          }
                          self->write_next();
                        });
  }

  void close_now() {
    stream_.async_close(websocket::close_code::normal,
                        [self = shared_from_this()](beast::error_code) { self->finish(); });
  }

  // Server thread, once: the connection is over.
  void finish() {
    bool was_open = false;
    {
      std::lock_guard lock(mutex_);
      if (finished_) return;
      finished_ = true;
      was_open = open_;
      closed_ = true;
      queue_.clear();
      queued_bytes_ = 0;
    }
    if (was_open && route_->handlers.on_close) route_->handlers.on_close(shared_from_this());
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
    std::lock_guard lock(state_->sessions_mutex);
    state_->sessions.erase(shared_from_this());
  }

  std::shared_ptr<ServerState> state_;
  std::unique_ptr<ConnectionSlot> slot_;
  websocket::stream<beast::tcp_stream> stream_;
  std::shared_ptr<const WebSocketRoute> route_;
  HttpRequest request_;
  beast::flat_buffer incoming_;

  mutable std::mutex mutex_;
  std::deque<Message> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t dropped_ = 0;
  Message in_flight_;
  bool open_ = false, writing_ = false, closing_ = false, closed_ = false, finished_ = false;
};

class HttpSession final : public Closeable, public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<ServerState> state, tcp::socket socket, std::unique_ptr<ConnectionSlot> slot)
      : state_(std::move(state)), slot_(std::move(slot)), stream_(std::move(socket)) {}

  void start() { read(); }

  void shut() override {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(state_->options.max_body_bytes);
    // Slowloris: the deadline covers the whole header (and the idle keep-alive wait before it), not each
    // read, so a client trickling a byte at a time is cut off as surely as a silent one.
    stream_.expires_after(state_->options.header_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code error, std::size_t) { self->on_header(error); });
  }

  void on_header(beast::error_code header_error) {
    if (header_error || parser_->is_done()) return on_read(header_error);
    // The body, chunked or not, has its own deadline: a 1-byte/s upload does not hold the connection.
    stream_.expires_after(state_->options.body_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code error, std::size_t) { self->on_read(error); });
  }

  void on_read(beast::error_code error) {
    if (error == http::error::end_of_stream || error == beast::error::timeout ||
        error == asio::error::operation_aborted || error == asio::error::connection_reset)
      return finish();
    if (error == http::error::body_limit)
      return reply(json_error(413, fmt::format("request body over {} bytes", state_->options.max_body_bytes)),
                   11, false);
    if (error == http::error::header_limit)
      return reply(json_error(431, "request headers too large"), 11, false);
    if (error) return reply(json_error(400, "malformed HTTP request"), 11, false);

    http::request<http::string_body> request = parser_->release();
    auto parsed = to_request(request);
    if (!parsed) return reply(json_error(400, "malformed request target"), request.version(), false);

    if (websocket::is_upgrade(request)) return upgrade(std::move(request), std::move(*parsed));
    const bool keep_alive = request.keep_alive();
    reply(dispatch(*state_, *parsed, slot_->peer()), request.version(), keep_alive);
  }

  void upgrade(http::request<http::string_body> request, HttpRequest parsed) {
    std::shared_ptr<const WebSocketRoute> route;
    {
      std::shared_lock lock(state_->routes_mutex);
      for (const auto& candidate : state_->websockets)
        if (candidate->path == parsed.path) route = candidate;
    }
    // WebSocket hijacking: a browser lets any page open a WebSocket to any server (no CORS), sending the
    // page's Origin; only this server's own page may watch the cameras.
    if (const auto refusal = refuse_foreign(*state_, parsed, true)) {
      state_->request_warnings.warn(
          fmt::format("http: refused WebSocket {} from {}: {}", parsed.path, slot_->peer(), *refusal));
      return reply(json_error(403, *refusal), request.version(), false);
    }
    if (!route) return reply(json_error(404, "no WebSocket at this path"), request.version(), false);
    if (route->requires_token && !authorized(*state_, parsed))
      return reply(unauthorized(), request.version(), false);
    stream_.expires_never();  // the WebSocket has its own timeouts (pings)
    auto session = std::make_shared<WebSocketSession>(state_, stream_.release_socket(), std::move(route),
                                                      std::move(slot_));
    {
      std::lock_guard lock(state_->sessions_mutex);
      state_->sessions.insert(session);
    }
    session->accept(std::move(request), std::move(parsed));
    finish();
  }

  void reply(HttpResponse response, unsigned version, bool keep_alive) {
    response_ = to_beast(std::move(response), version, keep_alive);
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code error, std::size_t) {
      if (error) return self->finish();
      if (!self->response_.keep_alive()) return self->linger();
      self->read();
    });
  }

  // Closing a socket with unread input makes the kernel send RST, which can destroy the response before
  // the client read it (e.g. a 413 while the client is still uploading): say FIN, read and discard what
  // the client still sends for a bounded time and size, then close.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTimeout);
    linger_read();
  }
  void linger_read() {
    stream_.async_read_some(asio::buffer(discard_),
                            [self = shared_from_this()](beast::error_code error, std::size_t bytes) {
                              self->discarded_bytes_ += bytes;
                              if (error || self->discarded_bytes_ > kMaxLingerBytes) return self->finish();
                              self->linger_read();
                            });
  }

  void finish() {
    std::lock_guard lock(state_->sessions_mutex);
    state_->sessions.erase(shared_from_this());
  }

  std::shared_ptr<ServerState> state_;
  std::unique_ptr<ConnectionSlot> slot_;  // moves to the WebSocketSession on upgrade
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::array<char, 16 * 1024> discard_{};
  std::size_t discarded_bytes_ = 0;
};

}  // namespace

struct HttpServer::Impl {
  std::shared_ptr<ServerState> state = std::make_shared<ServerState>();
  tcp::acceptor acceptor{state->io};
  std::thread thread;
  std::atomic<bool> running{false};
  int port = 0;

  void accept() {
    acceptor.async_accept(asio::make_strand(state->io), [this](beast::error_code error, tcp::socket socket) {
      if (error == asio::error::operation_aborted || !acceptor.is_open()) return;
      beast::error_code peer_error;
      const auto peer = error ? asio::ip::address() : socket.remote_endpoint(peer_error).address();
      std::string refusal;
      auto slot = error || peer_error ? nullptr : ConnectionSlot::take(state, peer, &refusal);
      if (!error && !peer_error && !slot) {
        state->connection_warnings.warn(
            fmt::format("http: refused a connection from {}: {}", peer.to_string(), refusal));
        refuse_connection(socket);
      }
      if (slot) {
        auto session = std::make_shared<HttpSession>(state, std::move(socket), std::move(slot));
        {
          std::lock_guard lock(state->sessions_mutex);
          state->sessions.insert(session);
        }
        session->start();
      }
      accept();
    });
  }
};

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>()) {
  ServerState& state = *impl_->state;
  state.options = std::move(options);
  const auto& opts = state.options;
  beast::error_code error;
  const auto address = asio::ip::make_address(opts.bind, error);
  if (error) fail("http.bind: '{}' is not an IP address", opts.bind);
  state.bind_address = address;
  state.allowed_names.emplace_back("localhost");
  for (const auto& name : opts.allowed_hosts) {
    const auto parsed = host_name(name);
    if (!parsed || parsed->find_first_of(" /@") != std::string::npos)
      fail("http.allowed_hosts: '{}' is not a host name", name);
    state.allowed_names.push_back(*parsed);
  }
  if (opts.max_connections == 0 || opts.max_connections_per_peer == 0)
    fail("http.max_connections: must be at least 1");
  if (!address.is_loopback() && !opts.token)
    fail("http.token: required when http.bind ({}) is not a loopback address", opts.bind);
  if (opts.port < 0 || opts.port > 65535) fail("http.port: {} is not a port number", opts.port);
  if (opts.web_root) {
    std::error_code fs_error;
    state.web_root = std::filesystem::canonical(*opts.web_root, fs_error);
    if (fs_error || !std::filesystem::is_directory(state.web_root))
      fail("http.web_root: '{}' is not a directory", opts.web_root->string());
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(opts.port));
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (error) fail("http.port: cannot listen on {}:{}: {}", opts.bind, opts.port, error.message());
  acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) fail("http.port: cannot listen on {}:{}: {}", opts.bind, opts.port, error.message());
  impl_->port = acceptor.local_endpoint().port();
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(std::string method, std::string path, Handler handler, bool requires_token) {
  std::unique_lock lock(impl_->state->routes_mutex);
  impl_->state->routes.push_back(
      Route{std::move(method), std::move(path), std::move(handler), requires_token});
}

void HttpServer::websocket(std::string path, WebSocketHandlers handlers, bool requires_token) {
  std::unique_lock lock(impl_->state->routes_mutex);
  impl_->state->websockets.push_back(std::make_shared<const WebSocketRoute>(
      WebSocketRoute{std::move(path), std::move(handlers), requires_token}));
}

void HttpServer::start() {
  if (impl_->running.exchange(true)) return;
  impl_->accept();
  impl_->thread = std::thread([state = impl_->state] {
    // A handler that throws is caught in dispatch(); anything escaping here is a server bug: log, go on.
    for (;;) {
      try {
        state->io.run();
        return;
      } catch (const std::exception& error) {
        spdlog::error("http: server thread: {}", error.what());
      }
    }
  });
}

void HttpServer::stop() {
  if (!impl_->thread.joinable()) {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    return;
  }
  // On the server thread: no more connections, every session closed (WebSockets report on_close), then
  // the loop stops. A WebSocket's ping timer would otherwise keep run() going for minutes.
  asio::post(impl_->state->io, [this] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    std::set<std::shared_ptr<Closeable>> sessions;
    {
      std::lock_guard lock(impl_->state->sessions_mutex);
      sessions = impl_->state->sessions;
    }
    for (const auto& session : sessions) session->shut();
    impl_->state->io.stop();
  });
  impl_->thread.join();
  {
    std::lock_guard lock(impl_->state->sessions_mutex);
    impl_->state->sessions.clear();
  }
  // The completions of the closed sockets (operation_aborted) release the sessions they hold.
  impl_->state->io.restart();
  impl_->state->io.poll();
}

int HttpServer::port() const { return impl_->port; }

const HttpServerOptions& HttpServer::options() const { return impl_->state->options; }

}  // namespace vapipe::server
