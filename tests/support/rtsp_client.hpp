#pragma once
// A hand-driven RTSP client for the server tests: plays a URL over TCP interleaved (RFC 2326 10.12) and
// then never reads again, as a viewer whose network or process hangs. Its receive buffer is made small so
// the server's side backs up within a second.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include <fmt/format.h>

namespace vapipe::test {

class StalledRtspClient {
 public:
  // DESCRIBE, SETUP (interleaved=0-1) and PLAY on rtsp://127.0.0.1:port/path; ok() tells whether all three
  // were answered 200 within `timeout` each.
  StalledRtspClient(int port, const std::string& path, std::chrono::milliseconds timeout)
      : url_(fmt::format("rtsp://127.0.0.1:{}/{}", port, path)), timeout_(timeout) {
    // CLOEXEC: a child started later (an ffmpeg client) must not hold the stalled connection open.
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    const int receive_buffer = 4096;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    if (connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return;

    const auto describe =
        request(fmt::format("DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n", url_));
    if (!describe || describe->find(" 200 ") == std::string::npos) return;
    // gst-rtsp-server names its one stream "stream=0" (a=control), relative to the URL.
    const auto setup = request(fmt::format(
        "SETUP {}/stream=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
        url_));
    if (!setup || setup->find(" 200 ") == std::string::npos) return;
    const std::size_t at = setup->find("Session: ");
    if (at == std::string::npos) return;
    const std::size_t end = setup->find_first_of(";\r", at + 9);
    const std::string session = setup->substr(at + 9, end - at - 9);
    const auto play =
        request(fmt::format("PLAY {} RTSP/1.0\r\nCSeq: 3\r\nSession: {}\r\n\r\n", url_, session));
    ok_ = play && play->find(" 200 ") != std::string::npos;
  }
  ~StalledRtspClient() {
    if (fd_ >= 0) close(fd_);
  }
  StalledRtspClient(const StalledRtspClient&) = delete;
  StalledRtspClient& operator=(const StalledRtspClient&) = delete;

  bool ok() const { return ok_; }

 private:
  // Sends `text` and reads one response: the header, then Content-Length bytes of body. Byte by byte,
  // so nothing after the response (interleaved RTP) is consumed.
  std::optional<std::string> request(const std::string& text) {
    if (send(fd_, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size()))
      return std::nullopt;
    std::string response;
    std::size_t body = 0;
    bool header_done = false;
    while (!header_done || body > 0) {
      pollfd readable{fd_, POLLIN, 0};
      if (poll(&readable, 1, static_cast<int>(timeout_.count())) <= 0) return std::nullopt;
      char byte = 0;
      if (recv(fd_, &byte, 1, 0) != 1) return std::nullopt;
      if (header_done) {
        --body;
        continue;
      }
      if (response.empty() && byte == '$') return std::nullopt;  // data before the answer: not expected
      response += byte;
      if (response.ends_with("\r\n\r\n")) {
        header_done = true;
        if (const std::size_t at = response.find("Content-Length: "); at != std::string::npos)
          body = static_cast<std::size_t>(std::stoul(response.substr(at + 16)));
      }
    }
    return response;
  }

  std::string url_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  bool ok_ = false;
};

}  // namespace vapipe::test
