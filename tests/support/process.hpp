#pragma once
// Child processes for integration tests (ffmpeg/ffprobe as real clients and servers on loopback), always
// reaped and bounded in time, a free loopback port, and whether a port is bound.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace vapipe::test {

namespace fs = std::filesystem;

struct CommandResult {
  int exit_code = -1;  // -1: could not start, or killed by a signal
  std::string out;     // what it wrote to stdout
};

// Runs a shell command (redirect stderr inside it: "2>&1", "2>'log'") and captures its stdout.
inline CommandResult run_shell(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) result.out += buffer;
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

// Output of a shell command (stdout), empty when it cannot start.
inline std::string run_capture(const std::string& command) { return run_shell(command).out; }

struct Probe {
  std::string codec;
  int frames = -1;
};

// ffprobe decodes every frame (-count_frames), so a broken stream shows up as a short count.
inline Probe probe(const fs::path& file) {
  const std::string output = run_capture(
      "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
      "stream=codec_name,nb_read_frames -of default=nw=1 '" +
      file.string() + "' 2>/dev/null");
  Probe result;
  std::size_t at = output.find("codec_name=");
  if (at != std::string::npos) result.codec = output.substr(at + 11, output.find('\n', at) - at - 11);
  at = output.find("nb_read_frames=");
  if (at != std::string::npos) result.frames = std::atoi(output.c_str() + at + 15);
  return result;
}

// A child process (ffmpeg) that is always reaped: killed on destruction if it is still running.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const fs::path& log) {
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      const int null_fd = ::open("/dev/null", O_RDONLY);
      if (null_fd >= 0) dup2(null_fd, 0);  // ffmpeg must not read keys from the terminal
      std::vector<char*> args;
      for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Whether the child has exited (without waiting).
  bool exited() {
    if (!exited_ && waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    return exited_;
  }
  // Waits up to `timeout` for the child to exit by itself.
  bool wait_for(std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (waitpid(pid_, &status_, WNOHANG) == pid_) return exited_ = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a child process, not syncing
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool exited_ = false;

 public:
  pid_t pid() const { return pid_; }
  // Sends `signal` (SIGINT, SIGTERM) to the child.
  void signal(int signal_number) const {
    if (pid_ > 0 && !exited_) kill(pid_, signal_number);
  }
  // Exit code once exited (-1 if killed by a signal or still running).
  int exit_code() const { return exited_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }
};

// A TCP listener on a free loopback port (the kernel completes handshakes, nobody answers): a port in use.
class LoopbackListener {
 public:
  LoopbackListener() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 && listen(fd_, 4) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0)
      port_ = ntohs(address.sin_port);
  }
  ~LoopbackListener() { close(fd_); }
  LoopbackListener(const LoopbackListener&) = delete;
  LoopbackListener& operator=(const LoopbackListener&) = delete;
  int port() const { return port_; }  // 0 when it could not listen

 private:
  int fd_;
  int port_ = 0;
};

// Whether a socket of this machine is bound to `port`: a TCP listener, or any UDP socket. Read from /proc,
// so the check takes nothing from a listener that accepts one connection only (ffmpeg's ?listen).
inline bool port_bound(int port, bool udp) {
  std::ifstream table(udp ? "/proc/net/udp" : "/proc/net/tcp");
  const std::string local = fmt::format(":{:04X}", port);
  std::string line;
  std::getline(table, line);  // header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local_address, remote_address, state;
    fields >> slot >> local_address >> remote_address >> state;
    if (local_address.ends_with(local) && (udp || state == "0A")) return true;
  }
  return false;
}

inline int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

}  // namespace vapipe::test
