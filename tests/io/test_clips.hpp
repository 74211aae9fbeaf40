#pragma once
// Clips for the io tests, made once per test process from Debian's vtest.avi with the ffmpeg CLI (time
// bounded), and small helpers around ffprobe and the decode loop.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "core/error.hpp"
#include "io/video_decoder.hpp"
#include "io/video_source.hpp"
#include "support/test_data.hpp"

namespace vapipe::io::test {

inline std::filesystem::path vtest_avi() { return vapipe::test::opencv_data_dir() / "vtest.avi"; }

// Per process (CTest runs each test in its own process), removed when the process exits.
inline std::filesystem::path clips_dir() {
  struct ScratchFolder {
    std::filesystem::path path = std::filesystem::temp_directory_path() / "vapipe-tests" /
                                 fmt::format("io-clips-{}", static_cast<long>(getpid()));
    ScratchFolder() {
      std::filesystem::remove_all(path);
      std::filesystem::create_directories(path);
    }
    ~ScratchFolder() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const ScratchFolder folder;
  return folder.path;
}

// Runs a shell command with a time limit; true when it exits 0.
inline bool run_command(const std::string& command, int timeout_s = 120) {
  const std::string bounded = fmt::format("timeout {} {}", timeout_s, command);
  return std::system(bounded.c_str()) == 0;
}

inline std::string quoted(const std::filesystem::path& path) { return fmt::format("'{}'", path.string()); }

// `name` -> file made with `ffmpeg_output_args` from the first 60 frames of vtest.avi (empty path when the
// encoder is missing). Cached for the process.
inline std::filesystem::path make_clip(const std::string& name, const std::string& ffmpeg_output_args,
                                       int frames = 60) {
  static std::map<std::string, std::filesystem::path> made;
  if (auto it = made.find(name); it != made.end()) return it->second;
  const auto path = clips_dir() / name;
  const std::string command = fmt::format("ffmpeg -nostdin -v error -y -i {} -frames:v {} {} {}",
                                          quoted(vtest_avi()), frames, ffmpeg_output_args, quoted(path));
  const bool ok = run_command(command);
  return made[name] = ok ? path : std::filesystem::path{};
}

inline std::filesystem::path h264_clip() {
  return make_clip("clip.h264", "-an -c:v libx264 -preset ultrafast -bsf:v h264_mp4toannexb -f h264");
}
inline std::filesystem::path h265_clip() {
  return make_clip("clip.h265", "-an -c:v libx265 -preset ultrafast -x265-params log-level=error -f hevc");
}
inline std::filesystem::path mp4_clip() {
  return make_clip("clip.mp4", "-an -c:v libx264 -preset ultrafast");
}
inline std::filesystem::path mkv_clip() {
  return make_clip("clip.mkv", "-an -c:v libx264 -preset ultrafast");
}

// Frames ffprobe decodes from the file's first video stream (-1 on failure).
inline long ffprobe_frame_count(const std::filesystem::path& path) {
  const std::string command = fmt::format(
      "timeout 120 ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames "
      "-of csv=p=0 {}",
      quoted(path));
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  long count = -1;
  if (std::fscanf(pipe, "%ld", &count) != 1) count = -1;
  pclose(pipe);
  return count;
}

struct DecodeResult {
  long frames = 0;
  std::int64_t errors = 0;
  int width = 0;
  int height = 0;
  bool first_frame_varies = false;  // the first frame's luma is not one constant value
};

// Reads and decodes `source` to its end (or `max_frames`), checking the first frame's pixels.
inline DecodeResult decode_all(VideoSource& source, long max_frames = -1) {
  VideoDecoder decoder(source.codec_parameters(), {.threads = 2}, source.url());
  DecodeResult result;
  auto packet = make_packet();
  auto frame = make_frame();
  auto take_frames = [&] {
    while (decoder.receive(*frame) == DecodeStatus::kOk) {
      if (result.frames == 0) {
        result.width = frame->width;
        result.height = frame->height;
        const std::uint8_t first = frame->data[0][0];
        for (int y = 0; y < frame->height && !result.first_frame_varies; ++y) {
          for (int x = 0; x < frame->width; ++x) {
            if (frame->data[0][y * frame->linesize[0] + x] != first) {
              result.first_frame_varies = true;
              break;
            }
          }
        }
      }
      ++result.frames;
    }
  };
  while ((max_frames < 0 || result.frames < max_frames) && source.read(*packet)) {
    while (decoder.send(packet.get()) == DecodeStatus::kAgain) take_frames();
    take_frames();
  }
  decoder.send(nullptr);
  take_frames();
  result.errors = decoder.errors();
  return result;
}

}  // namespace vapipe::io::test

#define VAPIPE_REQUIRE_CLIP(path, what)                                                         \
  do {                                                                                          \
    VAPIPE_REQUIRE_FILE(::vapipe::io::test::vtest_avi());                                       \
    if ((path).empty()) GTEST_SKIP() << "could not make the " << (what) << " clip with ffmpeg"; \
  } while (false)
