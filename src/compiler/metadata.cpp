#include "compiler/metadata.hpp"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "core/error.hpp"
#include "models/task.hpp"

namespace vapipe::compiler {
namespace {

using nlohmann::json;

// YOLOv5 COCO anchors (models/yolov5n.yaml), input pixels, per stride 8/16/32: the fallback when the
// export's anchor_grid constants cannot be found.
const std::vector<std::vector<std::array<double, 2>>> kYolov5Anchors = {
    {{10, 13}, {16, 30}, {33, 23}}, {{30, 61}, {62, 45}, {59, 119}}, {{116, 90}, {156, 198}, {373, 326}}};

// Yolo-FastestV2 COCO anchors (dog-qiuqiu/Yolo-FastestV2, data/coco.data), input pixels at 352x352:
// the first three belong to the stride-16 head, the last three to the stride-32 head.
const std::vector<std::vector<std::array<double, 2>>> kFastestV2Anchors = {
    {{12.64, 19.39}, {37.88, 51.48}, {55.71, 138.31}}, {{126.91, 78.23}, {131.57, 214.55}, {279.92, 258.87}}};

bool has_op(const OnnxModel& model, const std::string& op) {
  const auto& nodes = model.proto.graph().node();
  return std::any_of(nodes.begin(), nodes.end(), [&](const onnx::NodeProto& n) { return n.op_type() == op; });
}

// Detect's anchor_grid constants ([1, na, H, W, 2], multiplied after Pow), keyed by H.
std::map<std::int64_t, std::vector<std::array<double, 2>>> yolov5_anchor_grids(const OnnxModel& model) {
  const auto& graph = model.proto.graph();
  std::unordered_map<std::string, const onnx::NodeProto*> producer;
  for (const auto& node : graph.node()) {
    for (const auto& output : node.output()) producer[output] = &node;
  }
  auto constant_behind = [&](const std::string& name) -> std::optional<Constant> {
    if (auto c = find_constant(model, name)) return c;
    const auto found = producer.find(name);  // an FP16 export may cast the grid first
    if (found != producer.end() && found->second->op_type() == "Cast" && found->second->input_size() == 1) {
      return find_constant(model, found->second->input(0));
    }
    return std::nullopt;
  };
  std::map<std::int64_t, std::vector<std::array<double, 2>>> grids;
  for (const auto& node : graph.node()) {
    if (node.op_type() != "Mul" || node.input_size() != 2) continue;
    for (int k = 0; k < 2; ++k) {
      const auto from = producer.find(node.input(k));
      if (from == producer.end() || from->second->op_type() != "Pow") continue;
      const auto grid = constant_behind(node.input(1 - k));
      if (!grid || grid->shape.size() != 5 || grid->shape[4] != 2) continue;
      const std::int64_t na = grid->shape[1], h = grid->shape[2], w = grid->shape[3];
      std::vector<std::array<double, 2>> anchors;
      for (std::int64_t a = 0; a < na; ++a) {
        const auto base = static_cast<std::size_t>(a * h * w * 2);
        anchors.push_back({grid->values.at(base), grid->values.at(base + 1)});
      }
      grids[h] = anchors;
    }
  }
  return grids;
}

json anchors_json(const std::vector<std::array<double, 2>>& anchors) {
  json out = json::array();
  for (const auto& a : anchors) out.push_back({a[0], a[1]});
  return out;
}

const Shape& shape_of(const ir::Graph& graph, int index) {
  return graph.tensors.at(static_cast<std::size_t>(index)).shape;
}

// The spatial size of the first Conv output found walking back from `tensor` (a head's grid).
std::optional<std::pair<std::int64_t, std::int64_t>> conv_grid_behind(const ir::Graph& graph, int tensor) {
  std::vector<int> stack{tensor};
  std::vector<bool> seen(graph.tensors.size(), false);
  while (!stack.empty()) {
    const int t = stack.back();
    stack.pop_back();
    if (t < 0 || seen[static_cast<std::size_t>(t)]) continue;
    seen[static_cast<std::size_t>(t)] = true;
    for (const auto& node : graph.nodes) {
      if (std::find(node.outputs.begin(), node.outputs.end(), t) == node.outputs.end()) continue;
      if (node.op == "Conv") {
        const Shape& s = shape_of(graph, t);
        return std::pair{s[2], s[3]};
      }
      for (int input : node.inputs) stack.push_back(input);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string detect_model_type(const OnnxModel& model, const Shape& out) {
  if (out.size() == 3 && out[2] > 5 && out[1] > out[2] && has_op(model, "Pow")) return "yolov5";
  if (out.size() == 3 && out[1] > 4 && out[2] > out[1]) return "yolov8";
  if (out.size() == 2 && out[1] > 15 && out[0] > out[1]) return "yolofastestv2";
  return "raw";
}

std::vector<std::string> parse_class_names(const std::string& literal) {
  // {0: 'person', 1: "bicycle"} or ['person', 'bicycle']: the quoted strings in order.
  std::vector<std::string> names;
  for (std::size_t i = 0; i < literal.size(); ++i) {
    const char quote = literal[i];
    if (quote != '\'' && quote != '"') continue;
    std::string name;
    std::size_t j = i + 1;
    for (; j < literal.size() && literal[j] != quote; ++j) {
      if (literal[j] == '\\' && j + 1 < literal.size()) ++j;
      name.push_back(literal[j]);
    }
    names.push_back(std::move(name));
    i = j;
  }
  return names;
}

json build_metadata(const OnnxModel& model, const std::string& model_type, bool cut, const ir::Graph& graph) {
  std::vector<std::string> class_names;
  for (const auto& prop : model.proto.metadata_props()) {
    if (prop.key() == "names") class_names = parse_class_names(prop.value());
  }
  if (graph.inputs.empty() || graph.outputs.empty())
    fail("{}: compiled graph has no inputs or outputs", model.label);
  const auto& input = graph.tensors.at(static_cast<std::size_t>(graph.inputs[0]));
  const Shape& in_shape = input.shape;
  const std::int64_t channels = in_shape.size() == 4 ? in_shape[1] : 0;
  const std::int64_t height = in_shape.size() == 4 ? in_shape[2] : 0;
  const std::int64_t width = in_shape.size() == 4 ? in_shape[3] : 0;
  std::int64_t num_classes = static_cast<std::int64_t>(class_names.size());
  json head = {{"form", cut ? "raw" : "full"}, {"outputs", json::array()}};
  json preprocess = {{"color", "rgb"},   {"scale", 1.0 / 255.0}, {"mean", {0, 0, 0}},
                     {"std", {1, 1, 1}}, {"letterbox", true},    {"pad_value", 114}};
  const Shape& out0 = shape_of(graph, graph.outputs[0]);
  if (model_type == "yolov5") {
    if (cut) {
      const auto grids = yolov5_anchor_grids(model);
      for (std::size_t i = 0; i < graph.outputs.size(); ++i) {
        const Shape& s = shape_of(graph, graph.outputs[i]);
        if (s.size() != 4) fail("{}: head output {} is not 4-D", model.label, i);
        const std::int64_t stride = height / s[2];
        std::vector<std::array<double, 2>> anchors;
        // anchor_grid is built for the export's input size: match it by level order, not by H.
        if (grids.size() == graph.outputs.size()) {
          anchors = std::next(grids.rbegin(), static_cast<std::ptrdiff_t>(i))->second;
        } else if (i < kYolov5Anchors.size()) {
          anchors = kYolov5Anchors[i];
        }
        const auto na = static_cast<std::int64_t>(anchors.empty() ? 3 : anchors.size());
        num_classes = s[1] / na - 5;
        head["outputs"].push_back({{"tensor", graph.tensors[static_cast<std::size_t>(graph.outputs[i])].name},
                                   {"stride", stride},
                                   {"anchors", anchors_json(anchors)}});
      }
    } else {
      num_classes = out0.back() - 5;
      head["outputs"].push_back({{"tensor", graph.tensors[static_cast<std::size_t>(graph.outputs[0])].name}});
    }
  } else if (model_type == "yolov8") {
    constexpr std::int64_t kRegMax = 16;
    head["reg_max"] = kRegMax;
    if (cut) {
      for (int index : graph.outputs) {
        const Shape& s = shape_of(graph, index);
        if (s.size() != 4) fail("{}: head output is not 4-D", model.label);
        num_classes = s[1] - 4 * kRegMax;
        head["outputs"].push_back(
            {{"tensor", graph.tensors[static_cast<std::size_t>(index)].name}, {"stride", height / s[2]}});
      }
    } else {
      num_classes = out0.size() == 3 ? out0[1] - 4 : num_classes;
      head["outputs"].push_back({{"tensor", graph.tensors[static_cast<std::size_t>(graph.outputs[0])].name}});
    }
  } else if (model_type == "yolofastestv2") {
    // Yolo-FastestV2 feeds a plain resize (no letterbox) of the BGR image scaled to 0..1.
    preprocess["color"] = "bgr";
    preprocess["letterbox"] = false;
    num_classes = out0.size() == 2 ? out0[1] - 15 : num_classes;
    json strides = json::array(), grids = json::array();
    const int out = graph.outputs[0];
    const ir::Node* last = nullptr;
    for (const auto& node : graph.nodes) {
      if (!node.outputs.empty() && node.outputs[0] == out) last = &node;
    }
    if (last != nullptr && last->op == "Concat") {
      for (int piece : last->inputs) {
        if (const auto grid = conv_grid_behind(graph, piece)) {
          strides.push_back(height / grid->first);
          grids.push_back({grid->first, grid->second});
        }
      }
    }
    if (grids.size() != 2) {
      strides = {16, 32};
      grids = json::array({{height / 16, width / 16}, {height / 32, width / 32}});
    }
    json anchors = json::array();
    for (const auto& level : kFastestV2Anchors) anchors.push_back(anchors_json(level));
    head["outputs"].push_back({{"tensor", graph.tensors[static_cast<std::size_t>(out)].name},
                               {"strides", strides},
                               {"grids", grids},
                               {"anchors", anchors}});
  } else if (const models::TaskKind* task = models::find_task(model_type); task != nullptr) {
    std::vector<TensorInfo> outputs;
    for (int index : graph.outputs) {
      const auto& tensor = graph.tensors.at(static_cast<std::size_t>(index));
      outputs.push_back({tensor.name, DType::kF32, tensor.shape});
    }
    json metadata = {
        {"model_type", model_type},
        {"input", {{"name", input.name}, {"width", width}, {"height", height}, {"channels", channels}}}};
    task->describe(outputs, static_cast<int>(width), static_cast<int>(height), metadata);
    // The export's own class names (Ultralytics' `names`: YOLOv8-seg) where they are as many as its classes.
    if (!class_names.empty() && metadata.value("num_classes", std::int64_t{0}) == num_classes)
      metadata["class_names"] = class_names;
    return metadata;
  } else {
    for (int index : graph.outputs) {
      head["outputs"].push_back({{"tensor", graph.tensors[static_cast<std::size_t>(index)].name}});
    }
  }
  return {{"model_type", model_type},
          {"class_names", class_names},
          {"num_classes", num_classes},
          {"input", {{"name", input.name}, {"width", width}, {"height", height}, {"channels", channels}}},
          {"preprocess", preprocess},
          {"head", head}};
}

}  // namespace vapipe::compiler
