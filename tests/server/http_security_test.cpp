// HttpServer against what a hostile web page or a hostile local client can send (issue 17, items 8, 9
// and 12), on loopback with raw requests: what a browser would send for a cross-site form or fetch, a
// DNS-rebinding page, a foreign page opening the WebSockets; thousands of idle connections and bodies that
// trickle in. Every case here was accepted before the fix.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "server/http_client.hpp"
#include "server/http_server.hpp"
#include "server/loopback_options.hpp"
#include "support/log_capture.hpp"

namespace vapipe::server {
namespace {

using test::loopback_any_port;

using test::http_get;
using test::http_request;
using Clock = std::chrono::steady_clock;
using Headers = std::map<std::string, std::string>;

// A server with one state-changing route that counts its calls, and a read-only one.
struct CountingServer {
  explicit CountingServer(HttpServerOptions options = loopback_any_port()) : server(std::move(options)) {
    server.route("POST", "/api/channels", [this](const HttpRequest&) {
      ++calls;
      return HttpResponse{201, "application/json", "{}", {}};
    });
    server.route("DELETE", "/api/channels/", [this](const HttpRequest&) {
      ++calls;
      return HttpResponse{202, "application/json", "{}", {}};
    });
    server.route("GET", "/api/channels", [](const HttpRequest&) {
      return HttpResponse{200, "application/json", R"({"channels":[]})", {}};
    });
    WebSocketHandlers hello;
    hello.on_open = [](const std::shared_ptr<WebSocketConnection>& connection, const HttpRequest&) {
      connection->send_text("hello", false);
    };
    server.websocket("/ws/jpeg", std::move(hello));
    server.start();
    port = server.port();
    own = fmt::format("127.0.0.1:{}", port);
  }
  HttpServer server;
  std::atomic<int> calls{0};
  int port = 0;
  std::string own;  // this server's authority as a browser names it
};

const std::string kBody = R"({"address": "/etc/passwd", "model": "det"})";

TEST(HttpSecurity, CrossSiteFormsAndFetchesCannotChangeState) {
  CountingServer s;
  // What an HTML form or a no-CORS fetch() of a foreign page can send: refused before the handler.
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded",
                           "multipart/form-data; boundary=x", "application/json-patch+json", ""}) {
    const auto answer = http_request(s.port, "POST", "/api/channels", kBody, {{"Content-Type", type}});
    EXPECT_EQ(answer.status, 415) << type << ": " << answer.body;
    EXPECT_NE(answer.body.find("Content-Type: must be application/json"), std::string::npos) << answer.body;
  }
  // A foreign Origin, even with the right type (a CORS request the browser would send after a preflight
  // this server never grants, or a raw client replaying a browser): refused, on every state-changing route.
  for (const std::string& origin :
       {std::string("http://evil.example"), std::string("null"),
        fmt::format("http://127.0.0.1:{}", s.port + 1), fmt::format("https://evil.example:{}", s.port),
        fmt::format("http://127.0.0.1:{}.evil.example", s.port)}) {
    const auto post = http_request(s.port, "POST", "/api/channels", kBody, {{"Origin", origin}});
    EXPECT_EQ(post.status, 403) << origin << ": " << post.body;
    EXPECT_NE(post.body.find("is not this server's origin"), std::string::npos) << post.body;
    EXPECT_EQ(http_request(s.port, "DELETE", "/api/channels/0", "", {{"Origin", origin}}).status, 403)
        << origin;
  }
  EXPECT_EQ(s.calls.load(), 0);

  // The server's own page (Origin = its Host), and clients that send no Origin (curl, scripts), pass.
  EXPECT_EQ(http_request(s.port, "POST", "/api/channels", kBody, {{"Origin", "http://" + s.own}}).status,
            201);
  EXPECT_EQ(http_request(s.port, "POST", "/api/channels", kBody,
                         {{"Origin", fmt::format("http://LOCALHOST:{}", s.port)},
                          {"Host", fmt::format("localhost:{}", s.port)}})
                .status,
            201);
  EXPECT_EQ(http_request(s.port, "POST", "/api/channels", kBody,
                         {{"Content-Type", "Application/JSON; charset=utf-8"}})
                .status,
            201);
  EXPECT_EQ(http_request(s.port, "DELETE", "/api/channels/0", "", {{"Origin", "http://" + s.own}}).status,
            202);
  EXPECT_EQ(s.calls.load(), 4);
}

TEST(HttpSecurity, AHostThatIsNotANameOfTheServerIsRefused) {
  CountingServer s;
  // DNS rebinding: evil.example re-pointed at 127.0.0.1 is same-origin for its page; its Host gives it away.
  for (const std::string& host :
       {fmt::format("evil.example:{}", s.port), std::string("evil.example"),
        fmt::format("127.0.0.1.nip.io:{}", s.port), std::string("localhost.evil.example"),
        std::string("[::1"), fmt::format("127.0.0.1:{}x", s.port)}) {
    const auto post =
        http_request(s.port, "POST", "/api/channels", kBody, {{"Host", host}, {"Origin", "http://" + host}});
    EXPECT_EQ(post.status, 403) << host << ": " << post.body;
    EXPECT_EQ(http_get(s.port, "/api/channels", {{"Host", host}}).status, 403) << host;
    EXPECT_EQ(http_get(s.port, "/index.html", {{"Host", host}}).status, 403) << host;
  }
  EXPECT_NE(http_get(s.port, "/api/channels", {{"Host", "evil.example"}}).body.find("http.allowed_hosts"),
            std::string::npos);
  EXPECT_EQ(s.calls.load(), 0);
  // Two Host headers (which one a proxy used?) are a malformed request.
  const std::string twice = test::raw_exchange(
      s.port,
      fmt::format("GET /api/channels HTTP/1.1\r\nHost: {}\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
                  s.own));
  EXPECT_EQ(twice.rfind("HTTP/1.1 400", 0), 0u) << twice;

  // The names the server is reached under pass, with or without the port; so does a request with no Host
  // at all (HTTP/1.0: no browser sends one without).
  for (const std::string& host : {s.own, std::string("127.0.0.1"), fmt::format("LocalHost:{}", s.port),
                                  fmt::format("[::1]:{}", s.port), std::string("127.0.0.2")})
    EXPECT_EQ(http_get(s.port, "/api/channels", {{"Host", host}}).status, 200) << host;
  const std::string no_host = test::raw_exchange(s.port, "GET /api/channels HTTP/1.0\r\n\r\n");
  EXPECT_EQ(no_host.rfind("HTTP/1.0 200", 0), 0u) << no_host;
}

TEST(HttpSecurity, AllowedHostsAndAnUnspecifiedBindWidenTheHostCheck) {
  auto options = loopback_any_port();
  options.allowed_hosts = {"NVR.example.com", "proxy.lan:443"};
  CountingServer named(options);
  EXPECT_EQ(http_get(named.port, "/api/channels", {{"Host", "nvr.example.com:8443"}}).status, 200);
  EXPECT_EQ(http_get(named.port, "/api/channels", {{"Host", "proxy.lan"}}).status, 200);
  EXPECT_EQ(http_get(named.port, "/api/channels", {{"Host", "other.example.com"}}).status, 403);
  EXPECT_EQ(http_get(named.port, "/api/channels", {{"Host", "192.0.2.7"}}).status, 403);
  EXPECT_THROW(HttpServer([] {
                 auto bad = loopback_any_port();
                 bad.allowed_hosts = {"a b"};
                 return bad;
               }()),
               Error);

  // Bound to every address: any IP address is one of its own (and no DNS answer can re-point an IP).
  auto any = loopback_any_port();
  any.bind = "0.0.0.0";
  any.token = "t0ken";
  CountingServer everywhere(any);
  const Headers auth{{"Authorization", "Bearer t0ken"}};
  auto with = [&](Headers headers) {
    headers.insert(auth.begin(), auth.end());
    return headers;
  };
  EXPECT_EQ(http_get(everywhere.port, "/api/channels", with({{"Host", "192.0.2.7:1234"}})).status, 200);
  EXPECT_EQ(http_get(everywhere.port, "/api/channels", with({{"Host", "[2001:db8::1]"}})).status, 200);
  EXPECT_EQ(http_get(everywhere.port, "/api/channels", with({{"Host", "evil.example"}})).status, 403);
}

TEST(HttpSecurity, WebSocketsRefuseAForeignOriginOrHostAndNeedTheTokenInTheQuery) {
  CountingServer s;
  // What a foreign page's `new WebSocket("ws://127.0.0.1:8080/ws/jpeg")` sends: its own Origin.
  const std::string upgrade = fmt::format(
      "GET /ws/jpeg?channel=det_0 HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {}\r\n\r\n",
      s.own, "http://evil.example");
  const std::string refused = test::raw_exchange(s.port, upgrade);
  EXPECT_EQ(refused.rfind("HTTP/1.1 403", 0), 0u) << refused;
  EXPECT_NE(refused.find("is not this server's origin"), std::string::npos) << refused;
  EXPECT_THROW(test::WebSocketClient(s.port, "/ws/jpeg", {{"Origin", "http://evil.example"}}),
               boost::system::system_error);
  EXPECT_THROW(test::WebSocketClient(s.port, "/ws/jpeg", {{"Origin", "null"}}), boost::system::system_error);
  EXPECT_THROW(test::WebSocketClient(s.port, "/ws/jpeg",
                                     {{"Host", fmt::format("evil.example:{}", s.port)},
                                      {"Origin", fmt::format("http://evil.example:{}", s.port)}}),
               boost::system::system_error);
  // The server's own page, and clients without Origin, are served.
  test::WebSocketClient own(s.port, "/ws/jpeg", {{"Origin", "http://" + s.own}});
  EXPECT_EQ(own.read(), "hello");
  test::WebSocketClient plain(s.port, "/ws/jpeg");
  EXPECT_EQ(plain.read(), "hello");

  // With a token: a browser cannot set headers on a WebSocket, so it comes as ?token= (what web/viewer.js
  // sends); the Origin check still applies to a client that has it.
  auto options = loopback_any_port();
  options.token = "s3cr3t";
  CountingServer guarded(options);
  const std::string origin = "http://" + guarded.own;
  EXPECT_THROW(test::WebSocketClient(guarded.port, "/ws/jpeg", {{"Origin", origin}}),
               boost::system::system_error);
  EXPECT_THROW(
      test::WebSocketClient(guarded.port, "/ws/jpeg?token=s3cr3t", {{"Origin", "http://evil.example"}}),
      boost::system::system_error);
  test::WebSocketClient authorized(guarded.port, "/ws/jpeg?token=s3cr3t", {{"Origin", origin}});
  EXPECT_EQ(authorized.read(), "hello");
}

// A client socket from `source` (any 127/8 address is this host) to the server; -1 when it fails.
int connect_from(const char* source, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// How many of `fds` the server has answered or closed (readable), waiting until `want` are or `timeout`.
std::size_t count_answered(const std::vector<int>& fds, std::size_t want, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<pollfd> polls;
  for (const int fd : fds) polls.push_back({fd, POLLIN, 0});
  for (;;) {
    for (auto& p : polls) p.revents = 0;
    ::poll(polls.data(), polls.size(), 0);
    const auto answered = static_cast<std::size_t>(
        std::count_if(polls.begin(), polls.end(), [](const pollfd& p) { return p.revents != 0; }));
    if (answered >= want || Clock::now() >= deadline) return answered;
    ::poll(nullptr, 0, 20);  // waiting for the server thread to accept and answer: no event to wait on
  }
}

std::string read_some(int fd) {
  char buffer[512];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

TEST(HttpSecurity, IdleConnectionsAreCappedPerPeerAndInAllAndTimeOut) {
  constexpr std::size_t kPerPeer = 50, kTotal = 80, kIdle = 2000;
  auto options = loopback_any_port();
  options.max_connections_per_peer = kPerPeer;
  options.max_connections = kTotal;
  // Long enough for the 2000 connections to be made and counted on a loaded machine (or under a
  // sanitizer) before the kept ones expire; the test waits for that expiry once, at its end.
  options.header_timeout = std::chrono::seconds(10);
  test::LogCapture log;
  CountingServer s(options);

  // 2000 idle connections from one address: the server keeps kPerPeer, answers the others 503 and closes.
  std::vector<int> idle;
  for (std::size_t i = 0; i < kIdle; ++i) {
    const int fd = connect_from("127.0.0.1", s.port);
    ASSERT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
    idle.push_back(fd);
  }
  EXPECT_EQ(count_answered(idle, kIdle - kPerPeer, std::chrono::seconds(10)), kIdle - kPerPeer);
  std::size_t busy = 0;
  for (const int fd : idle) busy += read_some(fd).rfind("HTTP/1.1 503 Service Unavailable", 0) == 0 ? 1 : 0;
  EXPECT_EQ(busy, kIdle - kPerPeer);
  // Another client address is still served: one peer cannot take the server.
  {
    const int other = connect_from("127.0.0.2", s.port);
    ASSERT_GE(other, 0);
    const std::string request =
        fmt::format("GET /api/channels HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", s.own);
    ASSERT_EQ(::send(other, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    ASSERT_EQ(count_answered({other}, 1, std::chrono::seconds(10)), 1u);
    EXPECT_EQ(read_some(other).rfind("HTTP/1.1 200", 0), 0u);
    ::close(other);
  }
  // The total cap: other addresses fill it up to kTotal, the next one is refused whatever its address.
  std::vector<int> more;
  for (std::size_t i = 0; i < kTotal - kPerPeer; ++i)
    more.push_back(connect_from(fmt::format("127.0.0.{}", 3 + i % 8).c_str(), s.port));
  const int over = connect_from("127.0.0.20", s.port);
  ASSERT_GE(over, 0);
  ASSERT_EQ(count_answered({over}, 1, std::chrono::seconds(10)), 1u);
  EXPECT_EQ(read_some(over).rfind("HTTP/1.1 503", 0), 0u);
  ::close(over);
  // Refusals are logged, not flooded: one line per 10 s for the 1951 refused (a few on a slow machine).
  EXPECT_GE(log.count("http: refused a connection from 127.0.0.1", "http.max_connections_per_peer"), 1)
      << log.text();
  EXPECT_LE(log.count("http: refused a connection"), 3) << log.text();

  // The idle ones that were kept are closed when their header time is up; then new clients are served.
  EXPECT_EQ(count_answered(idle, kIdle, std::chrono::seconds(20)), kIdle);
  for (const int fd : idle) ::close(fd);
  for (const int fd : more) ::close(fd);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (Clock::now() < deadline && (status = http_get(s.port, "/api/channels").status) != 200)
    ::poll(nullptr, 0, 50);  // the server notices the closed sockets on its own thread
  EXPECT_EQ(status, 200);
}

TEST(HttpSecurity, BodiesAndHeadersThatTrickleInAreCutOff) {
  auto options = loopback_any_port();
  options.header_timeout = std::chrono::milliseconds(1500);
  options.body_timeout = std::chrono::milliseconds(1500);
  CountingServer s(options);
  // A chunked body at one byte every 200 ms (each read alone is quick; the body never ends), and headers
  // at one line every 200 ms: both are closed near their deadline, not after minutes.
  const std::vector<std::pair<std::string, std::string>> trickles{
      {fmt::format("POST /api/channels HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n",
                   s.own),
       "1\r\n \r\n"},
      {"GET /api/channels HTTP/1.1\r\n", "X-Slow: y\r\n"}};
  for (const auto& [start_bytes, drip] : trickles) {
    const int fd = connect_from("127.0.0.1", s.port);
    ASSERT_GE(fd, 0);
    const auto start = Clock::now();
    ASSERT_GT(::send(fd, start_bytes.data(), start_bytes.size(), MSG_NOSIGNAL), 0);
    bool closed = false;
    while (!closed && Clock::now() - start < std::chrono::seconds(15)) {
      if (::send(fd, drip.data(), drip.size(), MSG_NOSIGNAL) < 0) break;  // EPIPE/ECONNRESET: closed
      closed = count_answered({fd}, 1, std::chrono::milliseconds(200)) == 1;
    }
    const auto held = Clock::now() - start;
    EXPECT_LT(held, std::chrono::seconds(5)) << start_bytes;
    EXPECT_GE(held, std::chrono::milliseconds(1400)) << start_bytes;
    ::close(fd);
  }
  EXPECT_EQ(s.calls.load(), 0);
}

}  // namespace
}  // namespace vapipe::server
