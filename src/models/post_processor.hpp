#pragma once
// Turns the output tensors of one run into detections per image: picks the decoder the network metadata names
// (model_type, head.form, head.outputs), decodes, runs class-aware NMS. Boxes are in network input pixels;
// map them back with vision::map_boxes_back.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/detection.hpp"
#include "models/nms.hpp"
#include "models/task.hpp"
#include "models/yolo_decoders.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::models {

struct PostprocessOptions {
  ScoreThresholds thresholds;
  NmsOptions nms;

  // Defaults, overridden by the metadata's optional "postprocess" object
  // ({"conf_threshold", "obj_threshold", "class_thresholds": [..] | {"name": t}, "iou_threshold", "max_detections"}).
  static PostprocessOptions from_metadata(const nlohmann::json& metadata);
};

// kTask: one of models/tasks/ (face detectors, ...), decoded by its TaskDecoder.
enum class ModelType : std::uint8_t {
  kYolov5Raw,
  kYolov5Full,
  kYolov8Raw,
  kYolov8Full,
  kYoloFastestV2,
  kTask
};

// One worker's post-processor (keeps scratch buffers between frames, like an ExecutionContext).
class PostProcessor {
 public:
  // `outputs`: the network's outputs (Network::outputs(batch), any stage); decoder inputs are found by name.
  // Throws vapipe::Error naming the metadata key or tensor when they do not fit together.
  PostProcessor(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs,
                PostprocessOptions options);

  // Detections of image `batch_index` of one run's outputs (in network output order, shapes of the stage that
  // ran), sorted by score.
  std::vector<Detection> run(std::span<const ConstTensorView> outputs, std::int64_t batch_index);
  void run(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
           std::vector<Detection>& detections);

  ModelType model_type() const { return type_; }
  // Raw YOLOv5 heads read channels-last: what an ExecutionContext may skip for this decoder (HeadGate):
  // it reads an anchor's box and classes only where its objectness logit is above logit(objectness
  // floor). Disabled (outputs_per_anchor 0) for every other decoder.
  HeadGate head_gate() const;
  int num_classes() const { return num_classes_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  // The class name, or the id as text when the metadata has no names.
  std::string label(int class_id) const;
  PostprocessOptions& options() { return options_; }
  // The task's keypoint skeleton for drawing (empty for boxes, faces).
  std::span<const std::pair<int, int>> skeleton() const {
    return task_kind_ != nullptr ? task_kind_->skeleton : std::span<const std::pair<int, int>>{};
  }

 private:
  struct Level {
    std::size_t output_index = 0;
    float stride = 0.0f;
    std::vector<Anchor> anchors;
    bool channels_last = false;  // raw yolov5/yolov8 heads: [B, H, W, C] instead of [B, C, H, W]
  };
  const float* float_data(const ConstTensorView& view, std::size_t slot);

  ModelType type_ = ModelType::kYolov5Full;
  int num_classes_ = 0;
  std::vector<std::string> class_names_;
  PostprocessOptions options_;
  std::vector<Level> levels_;  // raw heads: one per stride; full forms: one entry
  std::vector<FastestV2Scale> fastest_scales_;
  std::vector<RawHeadLevel> raw_levels_;  // rebuilt per run, capacity kept
  std::vector<DflHeadLevel> dfl_levels_;  // likewise (raw yolov8)
  int reg_max_ = 16;                      // raw yolov8: DFL bins per side
  std::vector<float> v8_scratch_;
  const TaskKind* task_kind_ = nullptr;
  std::shared_ptr<const TaskDecoder> task_;    // kTask: immutable, shared by copies
  std::vector<ConstTensorView> task_views_;    // outputs as float32 for it
  std::vector<std::vector<float>> converted_;  // f16 outputs widened to f32
  NmsScratch nms_scratch_;
};

}  // namespace vapipe::models
