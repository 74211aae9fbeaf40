#pragma once
// One model's shared detection service for all the channels that use it (sophon-pipeline's per-model
// worker set): a bounded frame queue fed by every channel, batcher threads that fill batches of up to the
// largest compiled stage across channels (or run a partial one when batch_timeout_ms passes) while
// preprocessing each frame straight into its slot of a pooled input tensor, inference threads each with
// its own ExecutionContext, and post-processing threads (decode + NMS + map back to source pixels) that
// hand every frame back to its channel.
//
//   channels ─► frames_ (per channel, round robin) ─► batcher ─► [pooled Batch] ─► inference_ ─► inference ─► post_ ─► post ─► deliver
//                                  ◄──────────────────── free_ (batches return to the pool) ◄───────┘
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "core/bounded_queue.hpp"
#include "models/post_processor.hpp"
#include "pipeline/config.hpp"
#include "pipeline/fair_queue.hpp"
#include "pipeline/frame_task.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"

namespace vapipe::pipeline {

struct DetectorOptions {
  StageConfig preprocess;  // batcher threads and the frame queue
  StageConfig inference;
  StageConfig postprocess;
  int context_threads = 0;  // oneDNN threads per ExecutionContext (0: every core)
  // The package chains a top-down network (pose) after this detector: sophon's openpose demo reads only
  // nms_threshold, so obj/class_threshold fall back to the detector's defaults when absent.
  bool feeds_secondary = false;
};

struct DetectorCounters {
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> frames{0};
  std::atomic<std::uint64_t> dropped{0};  // dropped from the frame queue (drop-oldest policy)
};

class Detector {
 public:
  // Receives every frame that was submitted (inferred or dropped), from the detector's threads.
  using Deliver = std::function<void(FrameTaskPtr)>;

  // Checks that the network and the config fit together (one [N,3,H,W] input, model_type, class_num,
  // class names in class_thresholds); throws vapipe::Error naming the config key.
  Detector(const ModelConfig& config, std::string key_path, std::shared_ptr<const Network> network,
           DetectorOptions options, Deliver deliver);
  ~Detector();
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  void start();
  // A frame to detect. `may_drop`: when the queue is full, the oldest queued frame is dropped (handed to
  // Deliver as kDropped) instead of waiting. Returns false when the detector is closed (the frame is then
  // delivered as kDropped too, so its channel never waits for it).
  void submit(FrameTaskPtr task, bool may_drop);
  // No more frames: the threads finish what is queued and in flight, then end. join() waits for that.
  void close();
  void join();
  // A channel removed at run time whose frames have all been delivered: frees its place in the queue.
  void forget_channel(int channel) { frames_.forget_channel(channel); }

  const std::string& name() const { return config_.name; }
  const models::PostProcessor& labels() const { return *labels_; }
  std::size_t queue_depth() const { return frames_.size(); }
  const DetectorCounters& counters() const { return counters_; }
  std::int64_t max_batch() const { return max_batch_; }

 private:
  struct Batch;
  using BatchPtr = std::unique_ptr<Batch>;

  void batcher_loop();
  void inference_loop();
  void postprocess_loop();
  models::PostprocessOptions postprocess_options() const;
  HeadGate head_gate() const;
  // A live frame that will have waited longer than config_.max_latency_ms when its batch starts: delivered
  // as dropped (kStale).
  bool drop_if_stale(FrameTaskPtr& task, Clock::time_point now);

  ModelConfig config_;
  std::string key_path_;
  std::shared_ptr<const Network> network_;
  DetectorOptions options_;
  Deliver deliver_;
  std::int64_t max_batch_ = 1;
  int input_height_ = 0;
  int input_width_ = 0;
  vision::PreprocessOptions preprocess_;
  std::unique_ptr<models::PostProcessor> labels_;  // class names for outputs; never run

  FairQueue<FrameTaskPtr> frames_;  // per channel, round robin
  BoundedQueue<BatchPtr> free_;
  BoundedQueue<BatchPtr> inference_;
  BoundedQueue<BatchPtr> post_;
  std::vector<std::thread> batchers_;
  std::vector<std::thread> inferers_;
  std::vector<std::thread> posters_;
  std::atomic<int> batchers_running_{0};
  std::atomic<int> inferers_running_{0};
  // Batches that may be formed and waiting for an inference thread: one per inference thread.
  std::counting_semaphore<64> formation_slots_;
  // steady_clock nanoseconds at which the running batch started (0: none runs), and the recent batches'
  // mean time (exponentially weighted): a batch being formed waits that long for the running one.
  std::atomic<std::int64_t> running_since_ns_{0};
  std::atomic<double> batch_ms_{0.0};
  DetectorCounters counters_;
};

}  // namespace vapipe::pipeline
