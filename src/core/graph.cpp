#include "core/graph.hpp"

#include <cmath>
#include <cstring>

#include "core/error.hpp"
#include "core/json_integers.hpp"

namespace vapipe::ir {

ConstBytes ConstBytes::copy_of(const void* source, std::size_t size_bytes) {
  std::vector<std::byte> bytes(size_bytes);
  if (size_bytes != 0) std::memcpy(bytes.data(), source, size_bytes);
  return from_vector(std::move(bytes));
}

int Graph::add_tensor(Tensor tensor) {
  tensors.push_back(std::move(tensor));
  return static_cast<int>(tensors.size()) - 1;
}

std::optional<int> Graph::find_tensor(std::string_view name) const {
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

nlohmann::json graph_to_json(const Graph& graph,
                             const std::function<nlohmann::json(const ConstBytes&)>& place_data) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& tensor : graph.tensors) {
    nlohmann::json entry = {
        {"name", tensor.name}, {"dtype", dtype_name(tensor.dtype)}, {"shape", tensor.shape}};
    if (tensor.data) entry["data"] = place_data(*tensor.data);
    if (tensor.scale != 0.0F) entry["scale"] = tensor.scale;
    tensors.push_back(std::move(entry));
  }
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& node : graph.nodes) {
    nodes.push_back({{"name", node.name},
                     {"op", node.op},
                     {"inputs", node.inputs},
                     {"outputs", node.outputs},
                     {"attrs", node.attrs}});
  }
  return {{"tensors", std::move(tensors)},
          {"nodes", std::move(nodes)},
          {"inputs", graph.inputs},
          {"outputs", graph.outputs}};
}

Graph graph_from_json(const nlohmann::json& json,
                      const std::function<ConstBytes(const nlohmann::json&)>& find_data) {
  Graph graph;
  for (const auto& entry : json.at("tensors")) {
    Tensor tensor;
    tensor.name = entry.at("name").get<std::string>();
    tensor.dtype = dtype_from_name(entry.at("dtype").get<std::string>());
    tensor.shape = json_integers<std::int64_t>(entry.at("shape"), "tensor '" + tensor.name + "': shape");
    // Kernels and allocations size themselves from shapes: a shape must not overflow, and a constant's
    // bytes must be exactly what its shape says, or a kernel would read past them.
    std::int64_t volume = 1;
    for (std::int64_t dim : tensor.shape) {
      if (dim < 0 || (dim > 0 && volume > kMaxTensorElements / dim)) {
        fail("tensor '{}': shape {} is negative or has more than {} elements", tensor.name,
             shape_to_string(tensor.shape), kMaxTensorElements);
      }
      volume *= dim;
    }
    if (entry.contains("data")) {
      tensor.data = find_data(entry.at("data"));
      const auto expected = static_cast<std::size_t>(volume) * dtype_size(tensor.dtype);
      if (tensor.data->size != expected) {
        fail("tensor '{}': {} bytes of data, its shape {} of {} needs {}", tensor.name, tensor.data->size,
             shape_to_string(tensor.shape), dtype_name(tensor.dtype), expected);
      }
    }
    tensor.scale = entry.value("scale", 0.0F);
    if (!(tensor.scale >= 0.0F) || !std::isfinite(tensor.scale))
      fail("tensor '{}': quantization scale {} is not a finite non-negative number", tensor.name,
           tensor.scale);
    graph.tensors.push_back(std::move(tensor));
  }
  const auto tensor_count = static_cast<int>(graph.tensors.size());
  auto check_index = [&](int index, bool optional, const std::string& where) {
    if ((optional && index == -1) || (index >= 0 && index < tensor_count)) return;
    fail("{}: tensor index {} out of range (graph has {} tensors)", where, index, tensor_count);
  };
  for (const auto& entry : json.at("nodes")) {
    Node node;
    node.name = entry.at("name").get<std::string>();
    node.op = entry.at("op").get<std::string>();
    node.inputs = json_integers<int>(entry.at("inputs"), "node '" + node.name + "': inputs");
    node.outputs = json_integers<int>(entry.at("outputs"), "node '" + node.name + "': outputs");
    node.attrs = entry.at("attrs");
    for (int index : node.inputs) check_index(index, true, "node '" + node.name + "'");
    for (int index : node.outputs) check_index(index, false, "node '" + node.name + "'");
    graph.nodes.push_back(std::move(node));
  }
  graph.inputs = json_integers<int>(json.at("inputs"), "graph inputs");
  graph.outputs = json_integers<int>(json.at("outputs"), "graph outputs");
  for (int index : graph.inputs) check_index(index, false, "graph inputs");
  for (int index : graph.outputs) check_index(index, false, "graph outputs");
  return graph;
}

}  // namespace vapipe::ir
