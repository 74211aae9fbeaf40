#pragma once
// A UDP receiver for tests: bound before the sender starts, it appends every datagram's payload to a file
// until stop(), which first drains what the kernel still holds. An elementary stream sent over UDP (as
// sophon-pipeline's stream_pusher does) arrives as that stream. Unlike ffmpeg's udp:// input, nothing ends
// it but stop(): ffmpeg's read timeout also runs before the first packet, so a sender slow to start under
// load left the file empty (SophonStream/udpH265 failed that way beside busy loops).
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace vapipe::test {

class UdpCapture {
 public:
  UdpCapture(int port, const std::filesystem::path& file) : out_(file, std::ios::binary) {
    socket_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    wake_ = ::eventfd(0, EFD_CLOEXEC);
    if (socket_ < 0 || wake_ < 0 || !out_) throw std::runtime_error("UdpCapture: socket/eventfd/file");
    const int buffer = 16 << 20;  // the whole clip fits: no datagram is dropped while the reader waits
    ::setsockopt(socket_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(socket_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0)
      throw std::runtime_error("UdpCapture: cannot bind port " + std::to_string(port));
    reader_ = std::thread([this] { read_until_stopped(); });
  }
  UdpCapture(const UdpCapture&) = delete;
  UdpCapture& operator=(const UdpCapture&) = delete;
  ~UdpCapture() {
    stop();
    ::close(socket_);
    ::close(wake_);
  }

  // Call after the sender has exited: every datagram it sent is in the socket by then.
  void stop() {
    if (!reader_.joinable()) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_, &one, sizeof(one));
    reader_.join();
    out_.flush();
  }
  std::size_t datagrams() const { return datagrams_; }

 private:
  void read_until_stopped() {
    std::vector<char> datagram(65536);
    for (;;) {
      pollfd fds[2] = {{socket_, POLLIN, 0}, {wake_, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
      const bool stopping = (fds[1].revents & POLLIN) != 0;
      // Drain what is queued now (all of it when stopping: the sender is gone).
      for (;;) {
        const auto size = ::recv(socket_, datagram.data(), datagram.size(), MSG_DONTWAIT);
        if (size < 0) break;
        out_.write(datagram.data(), size);
        ++datagrams_;
      }
      if (stopping) return;
    }
  }

  int socket_ = -1;
  int wake_ = -1;
  std::ofstream out_;
  std::size_t datagrams_ = 0;
  std::thread reader_;
};

}  // namespace vapipe::test
