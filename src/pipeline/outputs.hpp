#pragma once
// Where a channel's outputs go, and the JSON Lines results file several channels share.
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "models/detection.hpp"

namespace vapipe::pipeline {

// The per-channel destination of a model's `output_path`, as sophon-pipeline names them:
//   rtsp://host:8554/live -> rtsp://host:8554/live_<ch>     rtmp://host/app/live -> rtmp://host/app/live_<ch>
//   tcp://host:9000       -> tcp://host:(9000 + ch)          udp://host:9000 -> udp://host:(9000 + ch)
//   out/det.mp4           -> out/det_<ch>.mp4                out/det -> out/det_<ch>
// Throws vapipe::Error when a tcp/udp URL has no port or the port plus the channel leaves 1-65535.
std::string channel_output_url(std::string_view output_path, int channel);

// One frame's results, the JSON Lines record (schema in docs/config.md, "results_path").
struct FrameRecord {
  int channel = 0;
  std::int64_t frame = 0;     // per channel, from 0, in output order
  std::int64_t pts = 0;       // source timestamp (time_base units); -1 when the source has none
  double pts_seconds = -1.0;  // pts in seconds; -1 when unknown
  int width = 0;              // source picture size
  int height = 0;
  bool inferred = true;  // false: skipped (skip_frame_num) or dropped, detections carried over
  std::span<const models::Detection> detections;
};

// Formats one record (no trailing newline). `label` maps a class id to its name.
template <typename LabelFn>
std::string format_record(const FrameRecord& record, LabelFn&& label);

// A results file (or stdout for "-") written by several channels: whole lines, one lock per line,
// flushed every line so a crash or a reader tailing the file loses nothing already output.
class ResultsFile {
 public:
  // Throws vapipe::Error naming `key_path` when the file cannot be created.
  ResultsFile(const std::string& path, const std::string& key_path);
  ~ResultsFile();
  ResultsFile(const ResultsFile&) = delete;
  ResultsFile& operator=(const ResultsFile&) = delete;

  // False when the write failed (disk full); the error is logged once per failure episode. After EPIPE
  // (the reader of a pipe exited) it stays false without writing.
  bool write_line(std::string_view line);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  bool owned_ = false;
  bool failing_ = false;
  bool reader_gone_ = false;  // EPIPE: a pipe's reader exited; never written again
  std::mutex mutex_;
};

}  // namespace vapipe::pipeline

#include "pipeline/outputs_inl.hpp"
