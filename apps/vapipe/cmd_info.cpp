#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"
#include "core/package.hpp"

namespace vapipe::cli {
namespace {

std::string tensor_line(const ir::Tensor& tensor) {
  return fmt::format("{} {} [{}]", tensor.name, dtype_name(tensor.dtype), shape_to_string(tensor.shape));
}

// A node's precision: its own attribute (reduced-precision convolutions); else that of its output, so
// pass-through ops (pooling, concat, resize) moving s8/bf16 tensors count as int8/bf16.
std::string node_precision(const ir::Graph& graph, const ir::Node& node) {
  if (node.attrs.contains("precision")) return node.attrs.at("precision").get<std::string>();
  const DType out = graph.tensors[static_cast<std::size_t>(node.outputs.at(0))].dtype;
  return out == DType::kS8 ? "int8" : out == DType::kBF16 ? "bf16" : "f32";
}

void print_info(const std::string& path, bool as_json, bool layers) {
  const ir::Package package = ir::read_package(path);
  const auto file_bytes = std::filesystem::file_size(path);
  nlohmann::json report = {{"file", path}, {"size_bytes", file_bytes}, {"networks", nlohmann::json::array()}};
  if (!as_json) fmt::print("{}: {} network(s), {:.2f} MB\n", path, package.networks.size(), file_bytes / 1e6);
  for (const auto& network : package.networks) {
    std::set<const std::byte*> weights;
    std::size_t weight_bytes = 0;
    for (const auto& stage : network.stages) {
      for (const auto& tensor : stage.graph.tensors) {
        if (tensor.data && weights.insert(tensor.data->data).second) weight_bytes += tensor.data->size;
      }
    }
    const auto& meta = network.metadata;
    nlohmann::json entry = {{"name", network.name},
                            {"precision", network.precision},
                            {"dynamic_shape", network.dynamic_shape},
                            {"weights_bytes", weight_bytes},
                            {"model_type", meta.value("model_type", "raw")},
                            {"stages", nlohmann::json::array()}};
    std::map<std::string, int> precision_counts;
    const auto& first_graph = network.stages.front().graph;
    for (const auto& node : first_graph.nodes) ++precision_counts[node_precision(first_graph, node)];
    entry["layer_precisions"] = precision_counts;
    if (meta.contains("quantization")) entry["quantization"] = meta.at("quantization");
    if (!as_json) {
      fmt::print("network '{}': precision {}, {} shapes, model type {}, {} classes, weights {:.2f} MB\n",
                 network.name, network.precision, network.dynamic_shape ? "dynamic" : "static",
                 meta.value("model_type", "raw"), meta.value("num_classes", 0), weight_bytes / 1e6);
      std::string counts;
      for (const auto& [precision, count] : precision_counts)
        counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", count, precision);
      fmt::print("  layers: {}{}\n", counts, layers ? "" : " (--layers lists them)");
      if (meta.contains("quantization")) {
        const auto& q = meta.at("quantization");
        fmt::print(
            "  calibration: {} on {} images{}{}\n", q.value("method", "?"), q.value("images", 0),
            q.contains("percentile") ? fmt::format(", percentile {}", q.at("percentile").get<double>()) : "",
            q.value("keep_float", nlohmann::json::array()).empty()
                ? ""
                : ", kept float: " + q.at("keep_float").dump());
      }
    }
    if (layers) {
      const auto& graph = network.stages.front().graph;
      for (const auto& node : graph.nodes) {
        const auto& out = graph.tensors[static_cast<std::size_t>(node.outputs.at(0))];
        entry["layers"].push_back({{"name", node.name},
                                   {"op", node.op},
                                   {"precision", node_precision(graph, node)},
                                   {"output_dtype", dtype_name(out.dtype)},
                                   {"output_scale", out.scale}});
        if (!as_json) {
          fmt::print("    {:<44} {:<10} {:<5} -> {}{}\n", node.name, node.op, node_precision(graph, node),
                     dtype_name(out.dtype),
                     out.scale > 0.0F ? fmt::format(" (scale {:.6g})", out.scale) : "");
        }
      }
    }
    for (const auto& stage : network.stages) {
      nlohmann::json stage_json = {{"batch", stage.batch}, {"nodes", stage.graph.nodes.size()}};
      if (!as_json) fmt::print("  stage batch {}: {} nodes\n", stage.batch, stage.graph.nodes.size());
      for (const char* role : {"inputs", "outputs"}) {
        const auto& indices = std::string(role) == "inputs" ? stage.graph.inputs : stage.graph.outputs;
        for (int index : indices) {
          const auto& tensor = stage.graph.tensors[index];
          stage_json[role].push_back(
              {{"name", tensor.name}, {"dtype", dtype_name(tensor.dtype)}, {"shape", tensor.shape}});
          if (!as_json)
            fmt::print("    {:<7} {}\n", std::string(role).substr(0, std::string(role).size() - 1),
                       tensor_line(tensor));
        }
      }
      entry["stages"].push_back(std::move(stage_json));
    }
    report["networks"].push_back(std::move(entry));
  }
  if (as_json) fmt::print("{}\n", report.dump());
}

}  // namespace

void register_info(CLI::App& app) {
  auto* command =
      app.add_subcommand("info", "Print the networks, stages, tensors and precision of a .vpk package");
  static std::string path;
  static bool as_json = false;
  static bool layers = false;
  command->add_option("package", path, "Package file (.vpk)")->required();
  command->add_flag("--json", as_json, "Print one JSON object");
  command->add_flag("--layers", layers,
                    "List every layer of the first stage with its precision and output dtype");
  command->callback([] { print_info(path, as_json, layers); });
}

}  // namespace vapipe::cli
