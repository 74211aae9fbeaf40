#pragma once
// A real `mosquitto` broker on a loopback port, started from a config file of its own (never the system
// service), and `mosquitto_sub` as the consumer: both child processes, always reaped, bounded in time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "support/process.hpp"

namespace vapipe::test {

// True once something accepts TCP connections on 127.0.0.1:port.
inline bool port_accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

class MosquittoBroker {
 public:
  MosquittoBroker(fs::path dir, int port) : dir_(std::move(dir)), port_(port) {
    std::ofstream(dir_ / "mosquitto.conf") << "listener " << port_ << " 127.0.0.1\n"
                                           << "allow_anonymous true\n"
                                           << "persistence false\n";
  }
  // Only `user` with `password` may connect (mosquitto_passwd writes the hashed password file).
  bool require_password(const std::string& user, const std::string& password) {
    const fs::path file = dir_ / "passwords";
    const std::string command = "timeout 30 mosquitto_passwd -b -c '" + file.string() + "' '" + user + "' '" +
                                password + "' >/dev/null 2>&1";
    if (std::system(command.c_str()) != 0) return false;
    std::ofstream(dir_ / "mosquitto.conf") << "listener " << port_ << " 127.0.0.1\n"
                                           << "allow_anonymous false\n"
                                           << "password_file " << file.string() << "\n"
                                           << "persistence false\n";
    return true;
  }
  // Starts the broker and waits (bounded) until it accepts connections; false when it did not.
  bool start() {
    stop();
    child_ = std::make_unique<Child>(
        std::vector<std::string>{"mosquitto", "-c", (dir_ / "mosquitto.conf").string()},
        dir_ / fmt::format("mosquitto-{}.log", ++starts_));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (port_accepts(port_)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a child's port, not syncing
    }
    return false;
  }
  // SIGTERM, then SIGKILL if it is still there after 5 s.
  void stop() {
    if (!child_) return;
    child_->signal(SIGTERM);
    child_->wait_for(std::chrono::seconds(5));
    child_.reset();
  }
  // SIGSTOP / SIGCONT: a broker that hangs with its connections open, and recovers.
  bool freeze() { return child_ && kill(child_->pid(), SIGSTOP) == 0; }
  bool thaw() { return child_ && kill(child_->pid(), SIGCONT) == 0; }
  int port() const { return port_; }

 private:
  fs::path dir_;
  int port_;
  int starts_ = 0;
  std::unique_ptr<Child> child_;
};

// One message as `mosquitto_sub -v` prints it: "topic payload".
struct MqttMessage {
  std::string topic;
  std::string payload;
};

// `mosquitto_sub -v -C count -W timeout_s` on every topic under `filter`; the messages it printed once it
// exited (after `count` messages, or at the timeout with fewer).
class MosquittoSub {
 public:
  MosquittoSub(const fs::path& output, int port, const std::string& filter, int count, int timeout_s)
      : output_(output),
        timeout_s_(timeout_s),
        child_({"mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(port), "-t", filter, "-v", "-C",
                std::to_string(count), "-W", std::to_string(timeout_s)},
               output) {}

  // Waits for it to exit (it always does by its -W timeout) and parses what it printed.
  std::vector<MqttMessage> messages() {
    child_.wait_for(std::chrono::seconds(timeout_s_ + 5));
    std::vector<MqttMessage> result;
    std::ifstream in(output_);
    std::string line;
    while (std::getline(in, line)) {
      const auto space = line.find(' ');
      if (space == std::string::npos) continue;  // not a message (an error line shows in the test log)
      result.push_back({line.substr(0, space), line.substr(space + 1)});
    }
    return result;
  }
  std::string raw_output() const {
    std::ifstream in(output_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  fs::path output_;
  int timeout_s_;
  Child child_;
};

}  // namespace vapipe::test
