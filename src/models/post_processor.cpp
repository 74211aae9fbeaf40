#include "models/post_processor.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.hpp"
#include "models/yolo_decode_common.hpp"

namespace vapipe::models {

namespace {

std::size_t find_output(const std::vector<TensorInfo>& outputs, const std::string& name) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].name == name) return i;
  }
  std::string known;
  for (const auto& output : outputs) known += (known.empty() ? "" : ", ") + output.name;
  fail("network metadata: head output tensor '{}' is not an output of the network (outputs: {})", name,
       known);
}

std::vector<Anchor> parse_anchors(const nlohmann::json& json, const std::string& where) {
  std::vector<Anchor> anchors;
  if (!json.is_array()) fail("network metadata: {} must be an array of [w, h]", where);
  for (const auto& anchor : json) {
    if (!anchor.is_array() || anchor.size() != 2)
      fail("network metadata: {} must be an array of [w, h]", where);
    anchors.push_back({anchor[0].get<float>(), anchor[1].get<float>()});
  }
  if (anchors.empty()) fail("network metadata: {} is empty", where);
  return anchors;
}

}  // namespace

PostprocessOptions PostprocessOptions::from_metadata(const nlohmann::json& metadata) {
  PostprocessOptions options;
  const auto post = metadata.find("postprocess");
  if (post == metadata.end() || !post->is_object()) return options;
  try {
    options.thresholds.conf_threshold = post->value("conf_threshold", options.thresholds.conf_threshold);
    options.thresholds.obj_threshold = post->value("obj_threshold", options.thresholds.obj_threshold);
    options.nms.iou_threshold = post->value("iou_threshold", options.nms.iou_threshold);
    options.nms.max_detections = post->value("max_detections", options.nms.max_detections);
    if (const auto per_class = post->find("class_thresholds"); per_class != post->end()) {
      if (per_class->is_array()) {
        options.thresholds.per_class = per_class->get<std::vector<float>>();
      } else if (per_class->is_object()) {
        // By class name: classes not named keep conf_threshold.
        const auto names = metadata.value("class_names", std::vector<std::string>{});
        options.thresholds.per_class.assign(names.size(), options.thresholds.conf_threshold);
        for (const auto& [name, value] : per_class->items()) {
          const auto it = std::find(names.begin(), names.end(), name);
          if (it == names.end())
            fail("network metadata: postprocess.class_thresholds names unknown class '{}'", name);
          options.thresholds.per_class[static_cast<std::size_t>(it - names.begin())] = value.get<float>();
        }
      }
    }
  } catch (const nlohmann::json::exception& error) {
    fail("network metadata: bad \"postprocess\": {}", error.what());
  }
  return options;
}

PostProcessor::PostProcessor(const nlohmann::json& metadata, const std::vector<TensorInfo>& outputs,
                             PostprocessOptions options)
    : options_(std::move(options)) {
  if (outputs.empty()) fail("post-processing: the network has no outputs");
  try {
    class_names_ = metadata.value("class_names", std::vector<std::string>{});
    num_classes_ = metadata.value("num_classes", static_cast<int>(class_names_.size()));
    const std::string model_type = metadata.value("model_type", std::string());
    const nlohmann::json head = metadata.value("head", nlohmann::json::object());
    const std::string form = head.value("form", std::string("full"));
    const nlohmann::json head_outputs = head.value("outputs", nlohmann::json::array());
    auto output_of = [&](const nlohmann::json& entry) {
      // A full-form head with a single output may omit the tensor name.
      if (!entry.contains("tensor") && outputs.size() == 1) return std::size_t{0};
      return find_output(outputs, entry.at("tensor").get<std::string>());
    };
    if (const TaskKind* kind = find_task(model_type); kind != nullptr) {
      type_ = ModelType::kTask;
      task_kind_ = kind;
      task_ = kind->make_decoder(metadata, outputs);
    } else if ((model_type == "yolov5" || model_type == "yolov8") && form == "raw") {
      const bool v8 = model_type == "yolov8";
      type_ = v8 ? ModelType::kYolov8Raw : ModelType::kYolov5Raw;
      if (head_outputs.empty()) fail("network metadata: head.outputs is empty for a raw {} head", model_type);
      if (v8) {
        reg_max_ = head.value("reg_max", 16);
        if (reg_max_ < 1 || reg_max_ > 1024)
          fail("network metadata: head.reg_max {} is out of range", reg_max_);
      }
      for (const auto& entry : head_outputs) {
        Level level;
        level.output_index = output_of(entry);
        level.stride = entry.at("stride").get<float>();
        if (!v8) level.anchors = parse_anchors(entry.at("anchors"), "head.outputs[].anchors");
        // Packages written before the layout key have channel-major heads.
        const std::string layout = entry.value("layout", std::string("nchw"));
        if (layout != "nchw" && layout != "nhwc")
          fail("network metadata: head.outputs[].layout '{}' is unknown (expected nchw or nhwc)", layout);
        level.channels_last = layout == "nhwc";
        const Shape& shape = outputs[level.output_index].shape;
        const std::string expected_channels = v8 ? fmt::format("4*{}+nc", reg_max_) : "na*(5+nc)";
        if (shape.size() != 4) {
          fail("post-processing: raw {} output '{}' has shape {}, expected [B, {}]", model_type,
               outputs[level.output_index].name, shape_to_string(shape),
               level.channels_last ? "H, W, " + expected_channels : expected_channels + ", H, W");
        }
        const std::int64_t channels = shape[level.channels_last ? 3 : 1];
        if (v8) {
          if (num_classes_ <= 0) num_classes_ = static_cast<int>(channels - 4 * reg_max_);
          if (channels != 4 * reg_max_ + num_classes_) {
            fail("post-processing: raw yolov8 output '{}' ({}) has {} channels, expected 4 x {} + {} classes",
                 outputs[level.output_index].name, layout, channels, reg_max_, num_classes_);
          }
        } else {
          const auto per_anchor = channels / static_cast<std::int64_t>(level.anchors.size());
          if (num_classes_ <= 0) num_classes_ = static_cast<int>(per_anchor - 5);
          if (per_anchor * static_cast<std::int64_t>(level.anchors.size()) != channels ||
              per_anchor != 5 + num_classes_) {
            fail(
                "post-processing: raw yolov5 output '{}' ({}) has {} channels, expected {} anchors x (5 + {} "
                "classes)",
                outputs[level.output_index].name, layout, channels, level.anchors.size(), num_classes_);
          }
        }
        levels_.push_back(std::move(level));
      }
    } else if ((model_type == "yolov5" || model_type == "yolov8") && form == "full") {
      type_ = model_type == "yolov5" ? ModelType::kYolov5Full : ModelType::kYolov8Full;
      Level level;
      level.output_index = head_outputs.empty() ? 0 : output_of(head_outputs.at(0));
      const Shape& shape = outputs[level.output_index].shape;
      if (shape.size() != 3) {
        fail("post-processing: {} output '{}' has shape {}, expected 3 dimensions", model_type,
             outputs[level.output_index].name, shape_to_string(shape));
      }
      const std::int64_t features = type_ == ModelType::kYolov5Full ? shape[2] : shape[1];
      const int extra = type_ == ModelType::kYolov5Full ? 5 : 4;
      if (num_classes_ <= 0) num_classes_ = static_cast<int>(features - extra);
      if (features != extra + num_classes_) {
        fail("post-processing: {} output '{}' has shape {}, expected {} + {} classes values per box",
             model_type, outputs[level.output_index].name, shape_to_string(shape), extra, num_classes_);
      }
      levels_.push_back(std::move(level));
    } else if (model_type == "yolofastestv2" && form == "full") {
      type_ = ModelType::kYoloFastestV2;
      if (head_outputs.empty()) fail("network metadata: head.outputs is empty for yolofastestv2");
      const auto& entry = head_outputs.at(0);
      Level level;
      level.output_index = output_of(entry);
      const auto strides = entry.at("strides").get<std::vector<float>>();
      const auto grids = entry.at("grids").get<std::vector<std::array<int, 2>>>();
      const auto& anchors = entry.at("anchors");
      if (strides.size() != grids.size() || anchors.size() != strides.size()) {
        fail("network metadata: yolofastestv2 head needs as many strides, grids and anchor sets");
      }
      std::int64_t rows_per_image = 0;
      for (std::size_t s = 0; s < strides.size(); ++s) {
        FastestV2Scale scale{grids[s][0], grids[s][1], strides[s],
                             parse_anchors(anchors[s], "head.outputs[0].anchors[]")};
        rows_per_image += static_cast<std::int64_t>(scale.height) * scale.width;
        fastest_scales_.push_back(std::move(scale));
      }
      const auto anchor_count = static_cast<std::int64_t>(fastest_scales_[0].anchors.size());
      const Shape& shape = outputs[level.output_index].shape;
      const std::int64_t columns = shape.empty() ? 0 : shape.back();
      if (num_classes_ <= 0) num_classes_ = static_cast<int>(columns - 5 * anchor_count);
      if (columns != 5 * anchor_count + num_classes_ ||
          shape_volume(shape) % (rows_per_image * columns) != 0) {
        fail("post-processing: yolofastestv2 output '{}' has shape {}, expected [B*{}, {}]",
             outputs[level.output_index].name, shape_to_string(shape), rows_per_image,
             5 * anchor_count + num_classes_);
      }
      levels_.push_back(std::move(level));
    } else {
      std::string tasks;
      for (const TaskKind* task : task_kinds()) tasks += fmt::format(", {}", task->model_type);
      fail(
          "network metadata: no decoder for model_type '{}' with head.form '{}' (supported: yolov5 raw|full, "
          "yolov8 raw|full, yolofastestv2 full{})",
          model_type, form, tasks);
    }
  } catch (const nlohmann::json::exception& error) {
    fail("network metadata: bad \"head\": {}", error.what());
  }
  if (num_classes_ <= 0) fail("network metadata: num_classes is missing or not positive");
  converted_.resize(outputs.size());
}

HeadGate PostProcessor::head_gate() const {
  if (type_ != ModelType::kYolov5Raw || levels_.empty()) return {};
  for (const Level& level : levels_) {
    if (!level.channels_last) return {};
  }
  return {.outputs_per_anchor = 5 + num_classes_,
          .gate_channel = 4,
          .gate_logit = detail::logit_floor(options_.thresholds.objectness_floor())};
}

std::string PostProcessor::label(int class_id) const {
  if (class_id >= 0 && static_cast<std::size_t>(class_id) < class_names_.size()) {
    return class_names_[static_cast<std::size_t>(class_id)];
  }
  return std::to_string(class_id);
}

const float* PostProcessor::float_data(const ConstTensorView& view, std::size_t slot) {
  if (view.dtype == DType::kF32) return static_cast<const float*>(view.data);
  if (view.dtype != DType::kF16)
    fail("post-processing: output of dtype {} is not supported", dtype_name(view.dtype));
  auto& buffer = converted_[slot];
  buffer.resize(static_cast<std::size_t>(shape_volume(view.shape)));
  const auto* half = static_cast<const std::uint16_t*>(view.data);
  for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = half_to_float(half[i]);
  return buffer.data();
}

std::vector<Detection> PostProcessor::run(std::span<const ConstTensorView> outputs,
                                          std::int64_t batch_index) {
  std::vector<Detection> detections;
  run(outputs, batch_index, detections);
  return detections;
}

void PostProcessor::run(std::span<const ConstTensorView> outputs, std::int64_t batch_index,
                        std::vector<Detection>& detections) {
  detections.clear();
  auto checked = [&](std::size_t index) -> const ConstTensorView& {
    if (index >= outputs.size())
      fail("post-processing: got {} outputs, the head needs output #{}", outputs.size(), index);
    const ConstTensorView& view = outputs[index];
    if (view.shape.empty() || view.data == nullptr) fail("post-processing: output #{} is empty", index);
    return view;
  };
  auto image_offset = [&](const ConstTensorView& view) {
    if (batch_index < 0 || batch_index >= view.shape[0]) {
      fail("post-processing: image {} is outside the batch of {}", batch_index, view.shape[0]);
    }
    return batch_index * (shape_volume(view.shape) / view.shape[0]);
  };
  // A raw head level's data for this image and its grid height and width, in either layout.
  struct Grid {
    const float* data;
    int height, width;
  };
  auto grid_of = [&](const Level& level) {
    const ConstTensorView& view = checked(level.output_index);
    const std::size_t height_axis = level.channels_last ? 1 : 2;
    return Grid{float_data(view, level.output_index) + image_offset(view),
                static_cast<int>(view.shape[height_axis]), static_cast<int>(view.shape[height_axis + 1])};
  };
  switch (type_) {
    case ModelType::kYolov5Raw: {
      raw_levels_.clear();
      for (const Level& level : levels_) {
        const Grid grid = grid_of(level);
        raw_levels_.push_back(
            {grid.data, grid.height, grid.width, level.stride, level.anchors, level.channels_last});
      }
      decode_yolov5_raw(raw_levels_, num_classes_, options_.thresholds, detections);
      break;
    }
    case ModelType::kYolov8Raw: {
      dfl_levels_.clear();
      for (const Level& level : levels_) {
        const Grid grid = grid_of(level);
        dfl_levels_.push_back({grid.data, grid.height, grid.width, level.stride, level.channels_last});
      }
      decode_yolov8_raw(dfl_levels_, num_classes_, reg_max_, options_.thresholds, detections);
      break;
    }
    case ModelType::kYolov5Full: {
      const ConstTensorView& view = checked(levels_[0].output_index);
      const float* data = float_data(view, levels_[0].output_index) + image_offset(view);
      decode_yolov5_full(data, view.shape[1], num_classes_, options_.thresholds, detections);
      break;
    }
    case ModelType::kYolov8Full: {
      const ConstTensorView& view = checked(levels_[0].output_index);
      const float* data = float_data(view, levels_[0].output_index) + image_offset(view);
      decode_yolov8_full(data, view.shape[2], num_classes_, options_.thresholds, detections, v8_scratch_);
      break;
    }
    case ModelType::kYoloFastestV2: {
      const ConstTensorView& view = checked(levels_[0].output_index);
      std::int64_t rows_per_image = 0;
      for (const auto& scale : fastest_scales_)
        rows_per_image += static_cast<std::int64_t>(scale.height) * scale.width;
      const std::int64_t batch = shape_volume(view.shape) / view.shape.back() / rows_per_image;
      if (batch_index < 0 || batch_index >= batch) {
        fail("post-processing: image {} is outside the batch of {}", batch_index, batch);
      }
      decode_yolofastestv2(float_data(view, levels_[0].output_index), batch, batch_index, fastest_scales_,
                           num_classes_, options_.thresholds, detections);
      break;
    }
    case ModelType::kTask: {
      task_views_.resize(outputs.size());
      for (std::size_t i = 0; i < outputs.size(); ++i)
        task_views_[i] = {float_data(checked(i), i), DType::kF32, outputs[i].shape};
      task_->decode(task_views_, batch_index, options_.thresholds, detections);
      break;
    }
  }
  nms(detections, options_.nms, nms_scratch_);
  if (type_ == ModelType::kTask) task_->finish(task_views_, batch_index, detections);
}

}  // namespace vapipe::models
