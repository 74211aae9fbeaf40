#include "pipeline/outputs.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"

namespace vapipe::pipeline {

namespace {

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::string with_port_offset(std::string_view url, int channel) {
  // scheme://host:port[/path][?query]
  const std::size_t authority = url.find("://") + 3;
  const std::size_t end = url.find_first_of("/?", authority);
  const std::string_view host_port =
      url.substr(authority, end == std::string_view::npos ? url.npos : end - authority);
  const std::size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string_view::npos ||
      std::from_chars(host_port.data() + colon + 1, host_port.data() + host_port.size(), port).ec !=
          std::errc()) {
    fail("output_path '{}': a tcp:// or udp:// output needs host:port (channel {} uses port + {})", url,
         channel, channel);
  }
  const int channel_port = port + channel;
  if (port < 1 || channel_port > 65535) {
    fail("output_path '{}': port {} + channel {} is outside 1-65535", url, port, channel);
  }
  return fmt::format("{}{}:{}{}", url.substr(0, authority), host_port.substr(0, colon), channel_port,
                     end == std::string_view::npos ? std::string_view() : url.substr(end));
}

std::string with_name_suffix(std::string_view url, int channel) {
  // The suffix goes on the last path segment, before any query.
  const std::size_t query = url.find('?');
  const std::string_view path = url.substr(0, query);
  const std::string_view rest = query == std::string_view::npos ? std::string_view() : url.substr(query);
  return fmt::format("{}_{}{}", path, channel, rest);
}

}  // namespace

std::string channel_output_url(std::string_view output_path, int channel) {
  if (starts_with(output_path, "tcp://") || starts_with(output_path, "udp://"))
    return with_port_offset(output_path, channel);
  if (output_path.find("://") != std::string_view::npos) return with_name_suffix(output_path, channel);
  const std::filesystem::path file(output_path);
  std::filesystem::path named = file.parent_path() / fmt::format("{}_{}", file.stem().string(), channel);
  named += file.extension();
  return named.string();
}

ResultsFile::ResultsFile(const std::string& path, const std::string& key_path) : path_(path) {
  if (path == "-") {
    file_ = stdout;
    return;
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  file_ = std::fopen(path.c_str(), "w");
  if (file_ == nullptr)
    fail("{}: cannot create the results file '{}': {}", key_path, path, std::strerror(errno));
  owned_ = true;
}

ResultsFile::~ResultsFile() {
  if (owned_) std::fclose(file_);
}

bool ResultsFile::write_line(std::string_view line) {
  std::lock_guard lock(mutex_);
  if (reader_gone_) return false;
  errno = 0;
  const bool ok = std::fwrite(line.data(), 1, line.size(), file_) == line.size() &&
                  std::fputc('\n', file_) != EOF && std::fflush(file_) == 0;
  if (!ok && errno == EPIPE) {
    // The pipe's reader exited (`| head`): nothing written from now on can arrive, so this output stops
    // for good; the lines it does not take are counted (res_drop) and the other outputs go on.
    reader_gone_ = true;
    spdlog::error(
        "results '{}': the reader closed the pipe (EPIPE); no more results are written there, "
        "the run and its other outputs go on",
        path_);
    return false;
  }
  if (!ok && !failing_) spdlog::error("results '{}': write failed: {}", path_, std::strerror(errno));
  if (ok && failing_) spdlog::info("results '{}': writing again", path_);
  failing_ = !ok;
  return ok;
}

}  // namespace vapipe::pipeline
