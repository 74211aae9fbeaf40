// HttpServer against a real client on loopback: routes, static files and traversal attempts, the token,
// bounded bodies, keep-alive, WebSockets and their bounded queues for a stalled client.
#include "server/http_server.hpp"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "server/http_client.hpp"
#include "server/loopback_options.hpp"

namespace vapipe::server {
namespace {

using test::loopback_any_port;

namespace fs = std::filesystem;
using test::http_get;
using test::http_request;

constexpr std::string_view kSecret = "TOP-SECRET-CONTENT-4711";

class ScratchDir {
 public:
  ScratchDir() : path_(fs::temp_directory_path() / "vapipe-tests" / fmt::format("http-{}", getpid())) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

TEST(HttpServer, RoutesMatchExactlyOrByLongestPrefixAndReportUnknownPathsAsJson) {
  HttpServer server(loopback_any_port());
  server.route("GET", "/api/things", [](const HttpRequest&) {
    return HttpResponse{200, "application/json", "list", {}};
  });
  server.route("GET", "/api/things/", [](const HttpRequest& request) {
    return HttpResponse{200, "text/plain", "one:" + request.path + ":" + request.query.at("x"), {}};
  });
  server.route("GET", "/api/things/special/", [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "special", {}};
  });
  server.route("POST", "/api/things", [](const HttpRequest& request) {
    return HttpResponse{201, "text/plain", request.body, {}};
  });
  server.start();
  const int port = server.port();
  ASSERT_GT(port, 0);

  EXPECT_EQ(http_get(port, "/api/things").body, "list");
  EXPECT_EQ(http_get(port, "/api/things/7?x=a%20b+c").body, "one:/api/things/7:a b c");
  EXPECT_EQ(http_get(port, "/api/things/special/1").body, "special");
  const auto posted = http_request(port, "POST", "/api/things", R"({"a":1})");
  EXPECT_EQ(posted.status, 201);
  EXPECT_EQ(posted.body, R"({"a":1})");

  const auto wrong_method = http_request(port, "DELETE", "/api/things");
  EXPECT_EQ(wrong_method.status, 405);
  const auto unknown = http_get(port, "/api/nothing");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.headers.at("content-type"), "application/json");
  EXPECT_NE(unknown.body.find("\"error\""), std::string::npos);
}

TEST(HttpServer, HandlerExceptionsBecome500AndTheServerGoesOn) {
  HttpServer server(loopback_any_port());
  server.route("GET", "/api/boom",
               [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("kaputt"); });
  server.route("GET", "/api/ok", [](const HttpRequest&) {
    return HttpResponse{200, "text/plain", "ok", {}};
  });
  server.start();
  const auto boom = http_get(server.port(), "/api/boom");
  EXPECT_EQ(boom.status, 500);
  EXPECT_NE(boom.body.find("kaputt"), std::string::npos);
  EXPECT_EQ(http_get(server.port(), "/api/ok").body, "ok");
}

TEST(HttpServer, ServesStaticFilesWithTheirMimeTypes) {
  ScratchDir dir;
  const fs::path root = dir.path() / "www";
  write_file(root / "index.html", "<html>viewer</html>");
  write_file(root / "js" / "app.js", "console.log(1);");
  write_file(root / "style.css", "body{}");
  write_file(root / "logo.svg", "<svg/>");
  auto options = loopback_any_port();
  options.web_root = root;
  HttpServer server(options);
  server.start();
  const int port = server.port();

  const auto index = http_get(port, "/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<html>viewer</html>");
  EXPECT_EQ(index.headers.at("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(http_get(port, "/index.html").body, "<html>viewer</html>");
  const auto script = http_get(port, "/js/app.js");
  EXPECT_EQ(script.body, "console.log(1);");
  EXPECT_EQ(script.headers.at("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(http_get(port, "/style.css").headers.at("content-type"), "text/css; charset=utf-8");
  EXPECT_EQ(http_get(port, "/logo.svg").headers.at("content-type"), "image/svg+xml");
  EXPECT_EQ(http_get(port, "/missing.js").status, 404);
  const auto head = http_request(port, "HEAD", "/js/app.js");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.at("content-length"), "15");
}

TEST(HttpServer, RefusesEveryPathOutsideTheWebRoot) {
  ScratchDir dir;
  const fs::path root = dir.path() / "www";
  write_file(root / "index.html", "ok");
  write_file(root / "sub" / "page.html", "sub");
  write_file(dir.path() / "secret.txt", kSecret);
  fs::create_symlink(dir.path() / "secret.txt", root / "link.txt");
  fs::create_directory_symlink(dir.path(), root / "escape");
  auto options = loopback_any_port();
  options.web_root = root;
  HttpServer server(options);
  server.start();
  const int port = server.port();

  const std::string secret_path = (dir.path() / "secret.txt").string();
  for (const std::string& target : std::vector<std::string>{
           "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
           "/sub/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/..\\secret.txt", "/link.txt",
           "/escape/secret.txt", "/escape/www/index.html/../../secret.txt", "/" + secret_path,
           "//" + secret_path, "/%00secret.txt", "/sub/page.html%00.js", secret_path.substr(1),
           "http://127.0.0.1" + secret_path, "/%2"}) {
    SCOPED_TRACE(target);
    const auto response = http_get(port, target);
    EXPECT_TRUE(response.status == 400 || response.status == 403 || response.status == 404)
        << response.status << " " << response.error;
    EXPECT_EQ(response.body.find(kSecret), std::string::npos);
  }
  // Inside the root, `..` is refused too rather than resolved, and the server still serves afterwards.
  EXPECT_EQ(http_get(port, "/sub/../index.html").status, 403);
  EXPECT_EQ(http_get(port, "/sub/page.html").body, "sub");
}

TEST(HttpServer, TokenGuardsRoutesAndWebSocketsButNotStaticFiles) {
  ScratchDir dir;
  write_file(dir.path() / "index.html", "page");
  auto options = loopback_any_port();
  options.token = "s3cr3t";
  options.web_root = dir.path();
  HttpServer server(options);
  server.route("GET", "/api/x", [](const HttpRequest&) { return HttpResponse{200, "text/plain", "x", {}}; });
  server.route(
      "GET", "/open",
      [](const HttpRequest&) {
        return HttpResponse{200, "text/plain", "open", {}};
      },
      false);
  server.websocket("/ws", WebSocketHandlers{});
  server.start();
  const int port = server.port();

  const auto missing = http_get(port, "/api/x");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.body.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(http_get(port, "/api/x", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(http_get(port, "/api/x", {{"Authorization", "Bearer s3cr3t"}}).body, "x");
  EXPECT_EQ(http_get(port, "/api/x", {{"Authorization", "Bearer s3cr3tX"}}).status, 401);
  EXPECT_EQ(http_get(port, "/api/x?token=s3cr3t").body, "x");
  EXPECT_EQ(http_get(port, "/api/x?token=s3cr3").status, 401);
  EXPECT_EQ(http_get(port, "/open").body, "open");
  EXPECT_EQ(http_get(port, "/").body, "page");

  EXPECT_THROW(test::WebSocketClient(port, "/ws"), boost::system::system_error);
  EXPECT_NO_THROW(test::WebSocketClient(port, "/ws?token=s3cr3t"));
}

TEST(HttpServer, OversizeBodiesAreRefusedWith413AndHugeHeadersWith431) {
  auto options = loopback_any_port();
  options.max_body_bytes = 1000;
  HttpServer server(options);
  std::atomic<int> calls{0};
  server.route("POST", "/api/echo", [&](const HttpRequest& request) {
    ++calls;
    return HttpResponse{200, "text/plain", request.body, {}};
  });
  server.start();
  const int port = server.port();
  EXPECT_EQ(http_request(port, "POST", "/api/echo", std::string(1000, 'a')).status, 200);
  const auto big = http_request(port, "POST", "/api/echo", std::string(5 << 20, 'a'));
  EXPECT_EQ(big.status, 413) << big.error;
  EXPECT_EQ(calls.load(), 1);
  // Announced with a length under the limit but a chunked body over it: refused while reading.
  std::string chunked = "POST /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 4; ++i) chunked += "200\r\n" + std::string(512, 'c') + "\r\n";
  chunked += "0\r\n\r\n";
  EXPECT_EQ(test::raw_exchange(port, chunked).rfind("HTTP/1.1 413", 0), 0u);
  EXPECT_EQ(calls.load(), 1);
  const std::string answer = test::raw_exchange(
      port,
      "GET /api/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: " + std::string(20 * 1024, 'h') + "\r\n\r\n");
  EXPECT_EQ(answer.rfind("HTTP/1.1 431", 0), 0u) << answer.substr(0, 80);
  EXPECT_EQ(http_request(port, "POST", "/api/echo", "still up").body, "still up");
}

TEST(HttpServer, KeepsConnectionsAliveAcrossRequests) {
  HttpServer server(loopback_any_port());
  std::atomic<int> calls{0};
  server.route("GET", "/api/n", [&](const HttpRequest&) {
    return HttpResponse{200, "text/plain", std::to_string(++calls), {}};
  });
  server.start();
  test::asio::io_context io;
  test::beast::tcp_stream stream(io);
  stream.expires_after(test::kClientTimeout);
  stream.connect(test::tcp::endpoint(test::asio::ip::make_address("127.0.0.1"),
                                     static_cast<unsigned short>(server.port())));
  for (int i = 1; i <= 3; ++i) {
    test::http::request<test::http::empty_body> request{test::http::verb::get, "/api/n", 11};
    request.set(test::http::field::host, "127.0.0.1");
    test::http::write(stream, request);
    test::beast::flat_buffer buffer;
    test::http::response<test::http::string_body> response;
    test::http::read(stream, buffer, response);
    EXPECT_EQ(response.body(), std::to_string(i));
    EXPECT_TRUE(response.keep_alive());
  }
}

TEST(HttpServer, WebSocketExchangesMessagesAndReportsClose) {
  HttpServer server(loopback_any_port());
  std::mutex mutex;
  std::condition_variable changed;
  bool closed = false;
  std::string query_value;
  WebSocketHandlers handlers;
  handlers.on_open = [&](const std::shared_ptr<WebSocketConnection>& connection, const HttpRequest& request) {
    {
      std::lock_guard lock(mutex);
      query_value = request.query.count("channel") ? request.query.at("channel") : "";
    }
    connection->send_text("hello", false);
    connection->send_binary(std::string("\x00\x01\x02", 3), false);
  };
  handlers.on_message = [](const std::shared_ptr<WebSocketConnection>& connection, std::string_view message,
                           bool binary) {
    connection->send_text(fmt::format("echo:{}:{}", message, binary));
  };
  handlers.on_close = [&](const std::shared_ptr<WebSocketConnection>&) {
    std::lock_guard lock(mutex);
    closed = true;
    changed.notify_all();
  };
  server.websocket("/ws/live", handlers);
  server.start();
  {
    test::WebSocketClient client(server.port(), "/ws/live?channel=3");
    EXPECT_EQ(client.read(), "hello");
    EXPECT_TRUE(client.last_was_text());
    EXPECT_EQ(client.read(), std::string("\x00\x01\x02", 3));
    EXPECT_FALSE(client.last_was_text());
    client.write("ping");
    EXPECT_EQ(client.read(), "echo:ping:false");
  }
  std::unique_lock lock(mutex);
  EXPECT_TRUE(changed.wait_for(lock, std::chrono::seconds(20), [&] { return closed; }));
  EXPECT_EQ(query_value, "3");
  EXPECT_EQ(http_get(server.port(), "/ws/other", {{"Upgrade", "websocket"}}).status, 404);
}

// A client that stops reading: the server keeps at most max_websocket_queue_bytes queued for it by
// dropping the oldest droppable messages; messages marked not droppable all arrive, in order.
TEST(HttpServer, StalledWebSocketClientLosesOldestDroppableMessagesOnly) {
  auto options = loopback_any_port();
  options.max_websocket_queue_bytes = 256 * 1024;
  HttpServer server(options);
  std::promise<std::shared_ptr<WebSocketConnection>> opened;
  WebSocketHandlers handlers;
  handlers.on_open = [&](const std::shared_ptr<WebSocketConnection>& connection, const HttpRequest&) {
    opened.set_value(connection);
  };
  server.websocket("/ws", handlers);
  server.start();

  test::WebSocketClient client(server.port(), "/ws");
  auto future = opened.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const auto connection = future.get();
  constexpr int kMessages = 3000;
  constexpr std::size_t kMessageBytes = 16 * 1024;
  std::size_t max_queued = 0;
  for (int i = 0; i < kMessages; ++i) {
    std::string message = fmt::format("{:08}", i);
    message.resize(kMessageBytes, 'x');
    const bool keep = i % 500 == 0;  // e.g. init segments
    if (keep) message[8] = 'K';
    connection->send_binary(std::move(message), !keep);
    max_queued = std::max(max_queued, connection->queued_bytes());
  }
  connection->send_text("END", false);
  // Bound: the limit plus the non-droppable messages, which are never dropped.
  EXPECT_LE(max_queued, options.max_websocket_queue_bytes + 7 * kMessageBytes);

  int received = 0, previous = -1, kept = 0;
  for (;;) {
    const std::string message = client.read();
    if (message == "END") break;
    const int index = std::stoi(message.substr(0, 8));
    EXPECT_GT(index, previous);
    previous = index;
    if (message[8] == 'K') ++kept;
    ++received;
  }
  EXPECT_EQ(kept, kMessages / 500);
  EXPECT_EQ(previous, kMessages - 1);  // the newest is never dropped
  EXPECT_LT(received, kMessages);      // the stalled client lost some
}

TEST(HttpServer, StopClosesOpenWebSocketsAndLaterSendsAreHarmless) {
  auto server = std::make_unique<HttpServer>(loopback_any_port());
  std::promise<std::shared_ptr<WebSocketConnection>> opened;
  std::atomic<bool> closed{false};
  WebSocketHandlers handlers;
  handlers.on_open = [&](const std::shared_ptr<WebSocketConnection>& c, const HttpRequest&) {
    opened.set_value(c);
  };
  handlers.on_close = [&](const std::shared_ptr<WebSocketConnection>&) { closed = true; };
  server->websocket("/ws", handlers);
  server->start();
  test::WebSocketClient client(server->port(), "/ws");
  auto future = opened.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const auto connection = future.get();
  const auto stop_started = std::chrono::steady_clock::now();
  server.reset();  // joins the server thread
  // Stopping must not wait for a WebSocket's ping timeout (minutes): generous bound, a hang fails.
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, std::chrono::seconds(10));
  EXPECT_TRUE(closed.load());
  EXPECT_FALSE(connection->is_open());
  connection->send_text("after stop");
  EXPECT_EQ(connection->queued_bytes(), 0u);
  EXPECT_ANY_THROW(client.read());
}

TEST(HttpServer, StartErrorsNameTheConfigKey) {
  HttpServerOptions public_without_token;
  public_without_token.bind = "0.0.0.0";
  public_without_token.port = 0;
  try {
    HttpServer server(public_without_token);
    FAIL() << "a public bind without a token must be refused";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("http.token"), std::string::npos) << error.what();
  }

  HttpServer first(loopback_any_port());
  auto taken = loopback_any_port();
  taken.port = first.port();
  try {
    HttpServer second(taken);
    FAIL() << "a port in use must be refused";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("http.port"), std::string::npos) << error.what();
  }

  auto bad_bind = loopback_any_port();
  bad_bind.bind = "localhost:80";
  EXPECT_THROW(HttpServer{bad_bind}, Error);
}

}  // namespace
}  // namespace vapipe::server
