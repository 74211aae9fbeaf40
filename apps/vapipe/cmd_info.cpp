#include <filesystem>
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

void print_info(const std::string& path, bool as_json) {
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
    if (!as_json) {
      fmt::print("network '{}': precision {}, {} shapes, model type {}, {} classes, weights {:.2f} MB\n",
                 network.name, network.precision, network.dynamic_shape ? "dynamic" : "static",
                 meta.value("model_type", "raw"), meta.value("num_classes", 0), weight_bytes / 1e6);
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
  command->add_option("package", path, "Package file (.vpk)")->required();
  command->add_flag("--json", as_json, "Print one JSON object");
  command->callback([] { print_info(path, as_json); });
}

}  // namespace vapipe::cli
