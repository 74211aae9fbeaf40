#include "core/package_info.hpp"

#include <map>
#include <set>

#include <fmt/format.h>

namespace vapipe::ir {
namespace {

// The manifest's metadata is free-form JSON written by the compiler; a crafted package can put any type
// anywhere. These read it without throwing: a missing key gives the fallback, an unexpected type its JSON.
nlohmann::json meta_value(const nlohmann::json& object, const char* key, nlohmann::json fallback) {
  if (!object.is_object()) return fallback;
  const auto found = object.find(key);
  return found == object.end() ? fallback : *found;
}

std::string as_text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string tensor_line(const Tensor& tensor) {
  return fmt::format("{} {} [{}]", tensor.name, dtype_name(tensor.dtype), shape_to_string(tensor.shape));
}

// The tensor a node writes first; null for a node without outputs (the loader allows none).
const Tensor* first_output(const Graph& graph, const Node& node) {
  if (node.outputs.empty()) return nullptr;
  return &graph.tensors[static_cast<std::size_t>(node.outputs.front())];
}

// A node's precision: its own attribute (reduced-precision convolutions); else that of its output, so
// pass-through ops (pooling, concat, resize) moving s8/bf16 tensors count as int8/bf16.
std::string node_precision(const Graph& graph, const Node& node) {
  const auto attribute = meta_value(node.attrs, "precision", nullptr);
  if (!attribute.is_null()) return as_text(attribute);
  const Tensor* out = first_output(graph, node);
  const DType dtype = out != nullptr ? out->dtype : DType::kF32;
  return dtype == DType::kS8 || dtype == DType::kU8 ? "int8" : dtype == DType::kBF16 ? "bf16" : "f32";
}

void describe_network(const Network& network, const PackageInfoOptions& options, nlohmann::json& entry,
                      std::string& text) {
  std::set<const std::byte*> weights;
  std::size_t weight_bytes = 0;
  for (const auto& stage : network.stages) {
    for (const auto& tensor : stage.graph.tensors) {
      if (tensor.data && weights.insert(tensor.data->data).second) weight_bytes += tensor.data->size;
    }
  }
  const auto& meta = network.metadata;
  const auto model_type = meta_value(meta, "model_type", "raw");
  entry = {{"name", network.name},
           {"precision", network.precision},
           {"dynamic_shape", network.dynamic_shape},
           {"weights_bytes", weight_bytes},
           {"model_type", model_type},
           {"stages", nlohmann::json::array()}};
  // Layers are those of the first stage; the loader refuses a network without stages, but a Package built
  // in memory may have none: then it simply has no layers.
  const Graph empty;
  const Graph& first_graph = network.stages.empty() ? empty : network.stages.front().graph;
  std::map<std::string, int> precision_counts;
  for (const auto& node : first_graph.nodes) ++precision_counts[node_precision(first_graph, node)];
  entry["layer_precisions"] = precision_counts;
  const auto quantization = meta_value(meta, "quantization", nullptr);
  if (!quantization.is_null()) entry["quantization"] = quantization;
  if (!options.as_json) {
    text += fmt::format(
        "network '{}': precision {}, {} shapes, model type {}, {} classes, weights {:.2f} MB\n", network.name,
        network.precision, network.dynamic_shape ? "dynamic" : "static", as_text(model_type),
        as_text(meta_value(meta, "num_classes", 0)), static_cast<double>(weight_bytes) / 1e6);
    std::string counts;
    for (const auto& [precision, count] : precision_counts)
      counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", count, precision);
    text += fmt::format("  layers: {}{}\n", counts, options.layers ? "" : " (--layers lists them)");
    if (!quantization.is_null() && as_text(meta_value(quantization, "method", "?")) == "file") {
      text += "  quantization: the model file's own scales (pre-quantized ONNX, no calibration)\n";
    } else if (!quantization.is_null()) {
      const auto percentile = meta_value(quantization, "percentile", nullptr);
      const auto keep_float = meta_value(quantization, "keep_float", nlohmann::json::array());
      text += fmt::format("  calibration: {} on {} images{}{}\n",
                          as_text(meta_value(quantization, "method", "?")),
                          as_text(meta_value(quantization, "images", 0)),
                          percentile.is_null() ? "" : ", percentile " + as_text(percentile),
                          keep_float.empty() ? "" : ", kept float: " + keep_float.dump());
    }
  }
  if (options.layers) {
    entry["layers"] = nlohmann::json::array();
    for (const auto& node : first_graph.nodes) {
      const Tensor* out = first_output(first_graph, node);
      const std::string dtype = out != nullptr ? std::string(dtype_name(out->dtype)) : "-";
      const float scale = out != nullptr ? out->scale : 0.0F;
      entry["layers"].push_back({{"name", node.name},
                                 {"op", node.op},
                                 {"precision", node_precision(first_graph, node)},
                                 {"output_dtype", dtype},
                                 {"output_scale", scale}});
      if (!options.as_json) {
        text += fmt::format("    {:<44} {:<10} {:<5} -> {}{}\n", node.name, node.op,
                            node_precision(first_graph, node), dtype,
                            scale > 0.0F ? fmt::format(" (scale {:.6g})", scale) : "");
      }
    }
  }
  for (const auto& stage : network.stages) {
    nlohmann::json stage_json = {{"batch", stage.batch}, {"nodes", stage.graph.nodes.size()}};
    if (!options.as_json)
      text += fmt::format("  stage batch {}: {} nodes\n", stage.batch, stage.graph.nodes.size());
    for (const char* role : {"inputs", "outputs"}) {
      const bool inputs = std::string(role) == "inputs";
      stage_json[role] = nlohmann::json::array();
      for (int index : inputs ? stage.graph.inputs : stage.graph.outputs) {
        const auto& tensor = stage.graph.tensors[static_cast<std::size_t>(index)];
        stage_json[role].push_back(
            {{"name", tensor.name}, {"dtype", dtype_name(tensor.dtype)}, {"shape", tensor.shape}});
        if (!options.as_json)
          text += fmt::format("    {:<7} {}\n", inputs ? "input" : "output", tensor_line(tensor));
      }
    }
    entry["stages"].push_back(std::move(stage_json));
  }
}

}  // namespace

std::string describe_package(const Package& package, const std::string& path, std::uintmax_t file_bytes,
                             PackageInfoOptions options) {
  nlohmann::json report = {{"file", path}, {"size_bytes", file_bytes}, {"networks", nlohmann::json::array()}};
  std::string text;
  if (!options.as_json) {
    text += fmt::format("{}: {} network(s), {:.2f} MB\n", path, package.networks.size(),
                        static_cast<double>(file_bytes) / 1e6);
  }
  for (const auto& network : package.networks) {
    nlohmann::json entry;
    describe_network(network, options, entry, text);
    report["networks"].push_back(std::move(entry));
  }
  // Names in a crafted manifest may hold invalid UTF-8: replaced rather than thrown on.
  if (options.as_json) text = report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return text;
}

}  // namespace vapipe::ir
