#pragma once
// What travels between the pipeline's threads: one decoded frame from its channel's decoder, through the
// model's batcher, inference and post-processing, back to its channel's output thread.
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/ffmpeg_handles.hpp"
#include "models/detection.hpp"
#include "vision/letterbox.hpp"

namespace vapipe::pipeline {

using Clock = std::chrono::steady_clock;

enum class FrameOutcome : std::uint8_t {
  kInferred,  // went through the detector
  kSkipped,   // skip_frame_num: not sent to the detector, the last detections are carried over
  kDropped,   // not detected (drop_reason says why): the last detections are carried over, counted
};

// Why a frame is kDropped: the per-channel counters say it (ChannelCounters::dropped_queue_full, _failed,
// _stale).
enum class DropReason : std::uint8_t {
  kNone,
  kQueueFull,        // live source, non-blocking queue: the oldest waiting frame made room (or closed)
  kDetectionFailed,  // preprocessing (unreadable pixels) or inference failed for it
  kStale,            // live source: older than the model's max_latency_ms when its batch was formed
};

struct FrameTask {
  int channel = 0;
  std::int64_t frame_index = 0;  // per channel, decoder output order, from 0 (output reorders on it)
  std::int64_t packet_tag = -1;  // the packet it was decoded from (passthrough pairs SEI and packet)
  std::int64_t pts = AV_NOPTS_VALUE;
  int width = 0;
  int height = 0;
  io::FramePtr frame;        // the decoder's picture (a reference); released once nothing needs the pixels
  bool keep_pixels = false;  // the output draws on the picture (annotated mode)
  bool live = false;         // from a live source that may lose frames (queue full, stale)
  FrameOutcome outcome = FrameOutcome::kInferred;
  DropReason drop_reason = DropReason::kNone;
  vision::LetterboxTransform transform;
  std::vector<models::Detection> detections;  // source pixels after post-processing

  Clock::time_point decoded_at;
  // Time spent on this frame per stage (its share of the batch for inference).
  double decode_ms = 0.0;
  double preprocess_ms = 0.0;
  double infer_ms = 0.0;
  double postprocess_ms = 0.0;
};

using FrameTaskPtr = std::unique_ptr<FrameTask>;

inline double elapsed_ms(Clock::time_point since, Clock::time_point until = Clock::now()) {
  return std::chrono::duration<double, std::milli>(until - since).count();
}

}  // namespace vapipe::pipeline
