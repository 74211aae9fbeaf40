#pragma once
// A real etcd (Debian's etcd-server) for the cluster tests: one member on free loopback ports with its
// data in a scratch folder, stopped and started again on the same data (an etcd outage), always killed
// with the test.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "server/http_client.hpp"
#include "support/process.hpp"
#include "support/rtsp_watch.hpp"
#include "support/timing.hpp"

namespace vapipe::test {

class EtcdServer {
 public:
  explicit EtcdServer(const fs::path& dir) : dir_(dir), client_port_(free_port()), peer_port_(free_port()) {}
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Starts the member (on the data of a previous start, if any); false when it does not answer /health.
  bool start(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const std::string client = fmt::format("http://127.0.0.1:{}", client_port_);
    const std::string peer = fmt::format("http://127.0.0.1:{}", peer_port_);
    process_ = std::make_unique<Child>(
        std::vector<std::string>{"etcd", "--name", "test", "--data-dir", (dir_ / "etcd-data").string(),
                                 "--listen-client-urls", client, "--advertise-client-urls", client,
                                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                 "--initial-cluster", "test=" + peer},
        dir_ / fmt::format("etcd-{}.log", ++starts_));
    return wait_until(
        [&] { return http_get(client_port_, "/health").body.find("\"true\"") != std::string::npos; },
        scaled(limit));
  }
  // SIGTERM and wait: the data stays for the next start().
  void stop() {
    if (!process_) return;
    process_->signal(SIGTERM);
    if (!process_->wait_for(scaled(std::chrono::seconds(20)))) process_->signal(SIGKILL);
    process_.reset();
  }

  int port() const { return client_port_; }
  std::string url() const { return fmt::format("etcd://127.0.0.1:{}", client_port_); }

 private:
  fs::path dir_;
  int client_port_;
  int peer_port_;
  int starts_ = 0;
  std::unique_ptr<Child> process_;
};

// Skips when Debian's etcd-server is not installed.
#define VAPIPE_REQUIRE_ETCD()                                \
  do {                                                       \
    if (std::system("command -v etcd >/dev/null 2>&1") != 0) \
      GTEST_SKIP() << "etcd not installed "                  \
                      "(apt-get install etcd-server)";       \
  } while (false)

}  // namespace vapipe::test
