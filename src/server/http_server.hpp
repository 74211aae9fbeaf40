#pragma once
// The HTTP/WebSocket server of `vapipe run` (Boost.Beast on one Asio io_context thread): static files of
// the web viewer, the REST control API, /metrics and the viewer's WebSockets all register here. Beast stays
// inside http_server.cpp; the rest of src/server sees only this interface.
//
// Security defaults (issue 5/6): binds 127.0.0.1 unless configured; with a token every /api/ route and
// every WebSocket requires it (`Authorization: Bearer T` or `?token=T`), and a bind address that is not
// loopback without a token is refused at start; static files are served only from inside the web root
// (no `..`, no symlink escapes); request bodies are bounded (HttpServerOptions::max_body_bytes).
// Against the browser as the attacker's way in (issue 17; docs/reliability.md, "Security model"):
// - Host: every request whose Host is not a name of this server is refused (403): DNS rebinding.
// - Origin: a route or WebSocket request whose Origin is not this server's own (http(s)://<its Host>) is
//   refused (403): cross-site requests and WebSocket hijacking.
// - Content-Type: a route request with a body (and every POST/PUT/PATCH) must be application/json (415):
//   what an HTML form or a no-CORS fetch can send never reaches a handler.
// - Connections: at most max_connections at once and max_connections_per_peer from one client address
//   (503 and closed, logged at most every 10 s); headers and bodies that trickle in are cut off.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vapipe::server {

struct HttpRequest {
  std::string method;                          // "GET", "POST", "DELETE", ...
  std::string path;                            // decoded path, without the query: "/api/channels/3"
  std::map<std::string, std::string> query;    // decoded query parameters
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;  // extra headers
};

// One open WebSocket. Sends never block the caller: messages are queued for the server thread, and a
// client whose queue is over `max_queued_bytes` loses the oldest *droppable* messages (a stalled viewer
// costs itself frames, never the pipeline). Thread-safe.
class WebSocketConnection {
 public:
  virtual ~WebSocketConnection() = default;
  // `droppable` = false for messages the client cannot do without (e.g. an MP4 init segment).
  virtual void send_text(std::string message, bool droppable = true) = 0;
  virtual void send_binary(std::string message, bool droppable = true) = 0;
  virtual void close() = 0;
  virtual bool is_open() const = 0;
  // Bytes queued and not yet written (for metrics and tests).
  virtual std::size_t queued_bytes() const = 0;
};

struct WebSocketHandlers {
  // Called on the server thread when the handshake succeeded.
  std::function<void(const std::shared_ptr<WebSocketConnection>&, const HttpRequest&)> on_open;
  // A text or binary message from the client (optional).
  std::function<void(const std::shared_ptr<WebSocketConnection>&, std::string_view message, bool binary)>
      on_message;
  std::function<void(const std::shared_ptr<WebSocketConnection>&)> on_close;
};

struct HttpServerOptions {
  std::string bind = "127.0.0.1";
  int port = 8080;  // 0: any free port (tests); port() tells which
  std::optional<std::string> token;
  std::optional<std::filesystem::path> web_root;  // static files; absent: none served
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_websocket_queue_bytes = 8 << 20;
  // Host names accepted besides localhost, loopback addresses and `bind` (any IP address when `bind` is
  // 0.0.0.0 or ::): a DNS name or a reverse proxy's name the clients use. Compared without the port.
  std::vector<std::string> allowed_hosts;
  // HTTP and WebSocket connections open at once, in all and from one client IP address. The viewer opens
  // one WebSocket per channel shown (up to 256), so one browser needs a few more than that.
  std::size_t max_connections = 1024;
  std::size_t max_connections_per_peer = 320;
  // A request's headers must be in within header_timeout of the connection being ready for it (idle
  // keep-alive included), its body within body_timeout of the headers.
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{10'000};
};

class HttpServer {
 public:
  // Binds and listens at once (throws vapipe::Error "http.port: ..." / "http.bind: ..." on failure).
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // stops: closes every connection and joins the thread
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Handlers run on the server thread: they must return quickly (work that takes long, e.g. opening a
  // camera for a new channel, is started and reported, not awaited).
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Routes match `method` exactly and `path` exactly, or as a prefix when it ends in '/'
  // ("/api/channels/" matches "/api/channels/3"); the longest match wins. Registering is thread-safe and
  // may happen before or after start(); a later registration of the same method and path does not replace
  // the first.
  // `requires_token`: refused with 401 when a token is configured and the request lacks it.
  void route(std::string method, std::string path, Handler handler, bool requires_token = true);
  void websocket(std::string path, WebSocketHandlers handlers, bool requires_token = true);

  void start();  // the server thread
  void stop();
  int port() const;
  const HttpServerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vapipe::server
