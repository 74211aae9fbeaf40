#pragma once
// A small synchronous HTTP/WebSocket client for the server tests (Boost.Beast, the library the server
// uses, but its client side: nothing of the server's code is shared). Every call is bounded in time.
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <map>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace vapipe::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

struct HttpResult {
  int status = 0;  // 0: no response (connection failed or closed)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string error;
};

constexpr auto kClientTimeout = std::chrono::seconds(20);

// One request on a fresh connection. `target` is sent as is (traversal tests send raw targets). Sends
// "Host: 127.0.0.1:<port>" and, with a body or for POST/PUT/PATCH, "Content-Type: application/json" as a
// browser or curl would; `headers` replace them, and an empty value leaves that header out.
inline HttpResult http_request(int port, const std::string& method, const std::string& target,
                               const std::string& body = {},
                               const std::map<std::string, std::string>& headers = {}) {
  HttpResult result;
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(kClientTimeout);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    http::request<http::string_body> request;
    request.method_string(method);
    request.target(target);
    request.version(11);
    request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
      request.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : headers) {
      if (value.empty())
        request.erase(name);
      else
        request.set(name, value);
    }
    request.body() = body;
    if (!body.empty() || method == "POST") request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    if (method == "HEAD") parser.skip(true);
    http::read(stream, buffer, parser);
    const auto& response = parser.get();
    result.status = static_cast<int>(response.result_int());
    result.body = response.body();
    for (const auto& field : response) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      result.headers[name] = std::string(field.value());
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  } catch (const std::exception& error) {
    result.error = error.what();
  }
  return result;
}

inline HttpResult http_get(int port, const std::string& target,
                           const std::map<std::string, std::string>& headers = {}) {
  return http_request(port, "GET", target, {}, headers);
}

// Raw bytes to the server, everything it answers until it closes or kClientTimeout (requests no client
// library would send).
inline std::string raw_exchange(int port, const std::string& bytes) {
  std::string answer;
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(kClientTimeout);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    asio::write(stream, asio::buffer(bytes));
    // Plain poll()/recv(): a synchronous read of Asio ignores the stream's deadline, and a server that
    // keeps the connection open (a WebSocket it should have refused) must fail the test, not hang it.
    const auto deadline = std::chrono::steady_clock::now() + kClientTimeout;
    const int fd = stream.socket().native_handle();
    char buffer[4096];
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd ready{fd, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) <= 0) break;
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      answer.append(buffer, static_cast<std::size_t>(n));
    }
  } catch (const std::exception&) {
  }
  return answer;
}

// A WebSocket client connection (synchronous; reads bounded by kClientTimeout).
class WebSocketClient {
 public:
  // Throws boost::system::system_error when the handshake fails (e.g. 401). `headers` are added to the
  // upgrade request (a browser's Origin); "host" replaces "127.0.0.1:<port>".
  WebSocketClient(int port, const std::string& target, const std::map<std::string, std::string>& headers = {})
      : stream_(io_) {
    beast::get_lowest_layer(stream_).expires_after(kClientTimeout);
    beast::get_lowest_layer(stream_).connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    std::string host = "127.0.0.1:" + std::to_string(port);
    std::map<std::string, std::string> extra = headers;
    if (const auto it = extra.find("host"); it != extra.end()) {
      host = it->second;
      extra.erase(it);
    }
    stream_.set_option(websocket::stream_base::decorator([extra](websocket::request_type& request) {
      for (const auto& [name, value] : extra) request.set(name, value);
    }));
    stream_.handshake(host, target);
    beast::get_lowest_layer(stream_).expires_never();
  }
  // The next message (text or binary); throws on close or after kClientTimeout.
  std::string read() {
    beast::get_lowest_layer(stream_).expires_after(kClientTimeout);
    beast::flat_buffer buffer;
    stream_.read(buffer);
    return beast::buffers_to_string(buffer.data());
  }
  bool last_was_text() const { return stream_.got_text(); }
  void write(const std::string& text) {
    stream_.text(true);
    stream_.write(asio::buffer(text));
  }
  // Shrinks the receive buffer so that a client that stops reading is seen as stalled quickly.
  void set_receive_buffer(int bytes) {
    beast::get_lowest_layer(stream_).socket().set_option(asio::socket_base::receive_buffer_size(bytes));
  }

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> stream_;
};

}  // namespace vapipe::test
