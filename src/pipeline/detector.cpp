#include "pipeline/detector.hpp"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string_view>
#include <tuple>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "io/frame_view.hpp"

namespace vapipe::pipeline {

// A pooled batch: the input tensor for the largest stage and one buffer per output, allocated once.
struct Detector::Batch {
  std::vector<float> input;
  std::vector<std::vector<float>> outputs;
  std::vector<FrameTaskPtr> frames;
  std::int64_t stage = 0;
  std::vector<TensorInfo> output_infos;  // of the stage that ran
};

namespace {

std::size_t element_bytes(const TensorInfo& info) {
  return static_cast<std::size_t>(shape_volume(info.shape)) * dtype_size(info.dtype);
}

}  // namespace

Detector::Detector(const ModelConfig& config, std::string key_path, std::shared_ptr<const Network> network,
                   DetectorOptions options, Deliver deliver)
    : config_(config),
      key_path_(std::move(key_path)),
      network_(std::move(network)),
      options_(options),
      deliver_(std::move(deliver)),
      frames_(static_cast<std::size_t>(options.preprocess.queue_size)),
      // Batches are large (a [4,3,640,640] f32 input is 19.7 MB), so the pool is small: one per thread
      // of the three stages plus one ready for inference while the current one runs (double buffering).
      // The inference and post-processing queues hold at most what the pool has, so pushes never wait.
      free_(static_cast<std::size_t>(options.preprocess.thread_num + options.inference.thread_num +
                                     options.postprocess.thread_num + 1)),
      inference_(free_.capacity()),
      post_(free_.capacity()),
      formation_slots_(options.inference.thread_num) {
  max_batch_ = network_->max_batch();
  const auto inputs = network_->inputs(max_batch_);
  if (inputs.size() != 1 || inputs[0].shape.size() != 4 || inputs[0].shape[1] != 3 ||
      inputs[0].dtype != DType::kF32) {
    fail("{}.path: network '{}' needs one f32 [N, 3, H, W] image input, it has {} input(s){}", key_path_,
         network_->name(), inputs.size(),
         inputs.empty() ? "" : fmt::format(", the first {}", shape_to_string(inputs[0].shape)));
  }
  input_height_ = static_cast<int>(inputs[0].shape[2]);
  input_width_ = static_cast<int>(inputs[0].shape[3]);
  preprocess_ = vision::PreprocessOptions::from_metadata(network_->metadata());
  preprocess_.width = input_width_;
  preprocess_.height = input_height_;

  const std::string metadata_type = network_->metadata().value("model_type", std::string());
  if (config_.model_type) {
    const std::string_view family = model_family(*config_.model_type);
    if (!metadata_type.empty() && family != metadata_type) {
      fail("{}.model_type: \"{}\" decodes as {}, but the model '{}' is a {} network", key_path_,
           *config_.model_type, family, config_.path, metadata_type);
    }
  }
  if (!options_.feeds_secondary) config_.check_thresholds_for(metadata_type, key_path_);
  labels_ = std::make_unique<models::PostProcessor>(network_->metadata(), network_->outputs(max_batch_),
                                                    postprocess_options());
  if (config_.class_num && *config_.class_num != labels_->num_classes()) {
    fail("{}.class_num: {} but the model '{}' has {} classes", key_path_, *config_.class_num, config_.path,
         labels_->num_classes());
  }

  for (int i = 0; i < static_cast<int>(free_.capacity()); ++i) {
    auto batch = std::make_unique<Batch>();
    batch->input.resize(static_cast<std::size_t>(max_batch_ * 3 * input_height_ * input_width_));
    const auto outputs = network_->outputs(max_batch_);
    batch->outputs.resize(outputs.size());
    for (std::int64_t stage : network_->stage_batches()) {
      const auto infos = network_->outputs(stage);
      for (std::size_t o = 0; o < infos.size(); ++o) {
        const std::size_t floats = (element_bytes(infos[o]) + sizeof(float) - 1) / sizeof(float);
        if (batch->outputs[o].size() < floats) batch->outputs[o].resize(floats);
      }
    }
    batch->frames.reserve(static_cast<std::size_t>(max_batch_));
    free_.push(std::move(batch));
  }
}

Detector::~Detector() {
  close();
  join();
}

models::PostprocessOptions Detector::postprocess_options() const {
  models::PostprocessOptions post = models::PostprocessOptions::from_metadata(network_->metadata());
  // Class names may be needed to resolve class_thresholds by name: read them from the metadata directly
  // (the PostProcessor that would know them is built from these options).
  std::vector<std::string> names;
  if (const auto it = network_->metadata().find("class_names");
      it != network_->metadata().end() && it->is_array()) {
    for (const auto& name : *it) names.push_back(name.is_string() ? name.get<std::string>() : std::string());
  }
  try {
    const bool task_model =
        models::find_task(network_->metadata().value("model_type", std::string())) != nullptr;
    post.thresholds = config_.score_thresholds(names, task_model, post.thresholds);
  } catch (const Error& error) {
    fail("{}.class_thresholds: {}", key_path_, error.what());
  }
  post.nms.iou_threshold = config_.nms_threshold;
  return post;
}

void Detector::start() {
  batchers_running_ = options_.preprocess.thread_num;
  inferers_running_ = options_.inference.thread_num;
  for (int i = 0; i < options_.preprocess.thread_num; ++i) batchers_.emplace_back([this] { batcher_loop(); });
  for (int i = 0; i < options_.inference.thread_num; ++i)
    inferers_.emplace_back([this] { inference_loop(); });
  for (int i = 0; i < options_.postprocess.thread_num; ++i)
    posters_.emplace_back([this] { postprocess_loop(); });
}

void Detector::submit(FrameTaskPtr task, bool may_drop) {
  auto give_back = [this](FrameTaskPtr dropped) {
    dropped->outcome = FrameOutcome::kDropped;
    dropped->drop_reason = DropReason::kQueueFull;
    if (!dropped->keep_pixels) dropped->frame.reset();
    counters_.dropped.fetch_add(1, std::memory_order_relaxed);
    deliver_(std::move(dropped));
  };
  const int channel = task->channel;
  task->live = may_drop;
  auto result = frames_.push(channel, std::move(task), may_drop);
  if (result.dropped) give_back(std::move(*result.dropped));
  if (!result.pushed) give_back(std::move(task));  // closed: push leaves the task with us
}

void Detector::close() { frames_.close(); }

void Detector::join() {
  for (auto* threads : {&batchers_, &inferers_, &posters_}) {
    for (auto& thread : *threads) {
      if (thread.joinable()) thread.join();
    }
    threads->clear();
  }
}

bool Detector::drop_if_stale(FrameTaskPtr& task, Clock::time_point now) {
  if (!task->live || config_.max_latency_ms <= 0) return false;
  // What the frame still waits before its batch starts: the rest of the running batch (formation_slots_
  // keeps batches from queueing behind it), estimated from the recent batches' mean time.
  double wait_ms = 0.0;
  if (const auto running = running_since_ns_.load(std::memory_order_relaxed); running != 0) {
    const double ran_ms = static_cast<double>(now.time_since_epoch().count() - running) / 1e6;
    wait_ms = std::max(0.0, batch_ms_.load(std::memory_order_relaxed) - ran_ms);
  }
  if (elapsed_ms(task->decoded_at, now) + wait_ms <= static_cast<double>(config_.max_latency_ms))
    return false;
  task->outcome = FrameOutcome::kDropped;
  task->drop_reason = DropReason::kStale;
  if (!task->keep_pixels) task->frame.reset();
  counters_.dropped.fetch_add(1, std::memory_order_relaxed);
  deliver_(std::move(task));
  return true;
}

void Detector::batcher_loop() {
  // Per thread: one preprocessor per source size and pixel format (tables computed once per stream).
  std::map<std::tuple<int, int, int>, std::unique_ptr<vision::FusedPreprocessor>> preprocessors;
  io::FrameViewer viewer;
  const std::size_t image_floats = static_cast<std::size_t>(3 * input_height_ * input_width_);
  const auto timeout = std::chrono::milliseconds(config_.batch_timeout_ms);

  // Preprocesses straight into the batch's next slot and adds the frame to the batch. A frame whose
  // pixels cannot be read is delivered as dropped instead (logged by the caller's counters).
  auto add_frame = [&](Batch& batch, FrameTaskPtr task) {
    const auto started = Clock::now();
    if (drop_if_stale(task, started)) return;
    try {
      const vision::ImageView view = viewer.view(*task->frame);
      const auto key = std::make_tuple(static_cast<int>(view.format), view.width, view.height);
      if (preprocessors.size() > 16 && !preprocessors.contains(key)) preprocessors.clear();
      auto& preprocessor = preprocessors[key];
      if (!preprocessor) {
        preprocessor =
            std::make_unique<vision::FusedPreprocessor>(view.format, view.width, view.height, preprocess_);
      }
      preprocessor->run(view, batch.input.data() + batch.frames.size() * image_floats);
      task->transform = preprocessor->transform();
    } catch (const Error& error) {
      spdlog::warn("channel {}: frame {} not detected: {}", task->channel, task->frame_index, error.what());
      task->outcome = FrameOutcome::kDropped;
      task->drop_reason = DropReason::kDetectionFailed;
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
      deliver_(std::move(task));
      return;
    }
    if (!task->keep_pixels) task->frame.reset();  // back to the decoder's pool: only the output draws
    task->preprocess_ms = elapsed_ms(started);
    batch.frames.push_back(std::move(task));
  };

  for (;;) {
    // One batch formed ahead of each inference thread, no more: a frame put into a batch then waits for
    // the running batch only, which is what lets drop_if_stale bound its latency (and what keeps the
    // channels' frames fair: a batch formed further ahead would wait longer than its neighbours).
    formation_slots_.acquire();
    auto first = frames_.pop();
    if (!first) {
      formation_slots_.release();
      break;
    }
    auto batch = free_.pop();
    if (!batch) break;  // cannot happen: free_ is never closed
    (*batch)->frames.clear();
    add_frame(**batch, std::move(*first));
    const auto deadline = Clock::now() + timeout;
    while (static_cast<std::int64_t>((*batch)->frames.size()) < max_batch_) {
      auto next = frames_.pop_until(deadline);
      if (!next) break;
      add_frame(**batch, std::move(*next));
    }
    if ((*batch)->frames.empty()) {
      free_.push(std::move(*batch));
      formation_slots_.release();
      continue;
    }
    inference_.push(std::move(*batch));
  }
  if (--batchers_running_ == 0) inference_.close();
}

// The heads computed only where the decoder reads them (HeadGate): on unless VAPIPE_HEAD_GATE=0, which
// benchmarks use to measure what it saves (docs/performance.md).
HeadGate Detector::head_gate() const {
  const char* setting = std::getenv("VAPIPE_HEAD_GATE");
  if (setting != nullptr && std::string_view(setting) == "0") return {};
  return labels_->head_gate();
}

void Detector::inference_loop() {
  ExecutionContext context(network_, {.threads = options_.context_threads, .head_gate = head_gate()});
  std::vector<TensorView> outputs;
  while (auto batch = inference_.pop()) {
    formation_slots_.release();  // the next batch may be formed while this one runs
    Batch& b = **batch;
    const auto count = static_cast<std::int64_t>(b.frames.size());
    b.stage = network_->stage_for(count);
    b.output_infos = network_->outputs(b.stage);
    outputs.clear();
    for (std::size_t o = 0; o < b.output_infos.size(); ++o) {
      outputs.push_back({b.outputs[o].data(), b.output_infos[o].dtype, b.output_infos[o].shape});
    }
    const ConstTensorView input{b.input.data(), DType::kF32, {count, 3, input_height_, input_width_}};
    const auto started = Clock::now();
    running_since_ns_.store(started.time_since_epoch().count(), std::memory_order_relaxed);
    bool ok = true;
    try {
      context.run(std::span(&input, 1), outputs);
    } catch (const Error& error) {
      spdlog::error("model '{}': inference failed: {}", config_.name, error.what());
      ok = false;
    }
    const double batch_ms = elapsed_ms(started);
    running_since_ns_.store(0, std::memory_order_relaxed);
    const double mean_ms = batch_ms_.load(std::memory_order_relaxed);
    batch_ms_.store(mean_ms == 0.0 ? batch_ms : 0.7 * mean_ms + 0.3 * batch_ms, std::memory_order_relaxed);
    const double share_ms = batch_ms / static_cast<double>(count);
    for (auto& task : b.frames) task->infer_ms = share_ms;
    if (!ok) {
      for (auto& task : b.frames) {
        task->outcome = FrameOutcome::kDropped;
        task->drop_reason = DropReason::kDetectionFailed;
        deliver_(std::move(task));
      }
      b.frames.clear();
      free_.push(std::move(*batch));
      continue;
    }
    counters_.batches.fetch_add(1, std::memory_order_relaxed);
    counters_.frames.fetch_add(static_cast<std::uint64_t>(count), std::memory_order_relaxed);
    post_.push(std::move(*batch));
  }
  if (--inferers_running_ == 0) post_.close();
}

void Detector::postprocess_loop() {
  models::PostProcessor post(network_->metadata(), network_->outputs(max_batch_), postprocess_options());
  std::vector<ConstTensorView> outputs;
  while (auto batch = post_.pop()) {
    Batch& b = **batch;
    outputs.clear();
    for (std::size_t o = 0; o < b.output_infos.size(); ++o) {
      outputs.push_back({b.outputs[o].data(), b.output_infos[o].dtype, b.output_infos[o].shape});
    }
    for (std::size_t i = 0; i < b.frames.size(); ++i) {
      FrameTaskPtr task = std::move(b.frames[i]);
      const auto started = Clock::now();
      post.run(outputs, static_cast<std::int64_t>(i), task->detections);
      vision::map_boxes_back(std::span(task->detections), task->transform);
      task->postprocess_ms = elapsed_ms(started);
      deliver_(std::move(task));
    }
    b.frames.clear();
    free_.push(std::move(*batch));
  }
}

}  // namespace vapipe::pipeline
