#pragma once
// Loading an ONNX file and reading its tensors. ONNX constants are kept as doubles during import: shape
// arithmetic is exact in int64 range up to 2^53 and float weights convert without loss.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <onnx/onnx_pb.h>

#include "core/dtype.hpp"

namespace vapipe::compiler {

struct OnnxModel {
  onnx::ModelProto proto;
  std::string path;
  std::string label;       // the file name, used to start every message
  std::int64_t opset = 0;  // of the default ("" / "ai.onnx") domain
};

// A compile-time constant: an initializer, a Constant node or a folded value.
struct Constant {
  Shape shape;
  std::vector<double> values;
  bool is_int = false;
};

// protobuf cannot parse messages of 2 GiB or more; larger files are refused before they are read.
inline constexpr std::uint64_t kMaxOnnxBytes = (std::uint64_t{2} << 30) - 1;

// Parses the file; throws vapipe::Error naming the file when it is missing, too large or not an ONNX model.
OnnxModel load_onnx(const std::string& path);
// The same over bytes in memory (the fuzz target); `path` names them in messages.
OnnxModel parse_onnx(std::string_view bytes, const std::string& path);

// Converts a TensorProto (FP32, FP16, FP64, integer and bool types; raw or typed storage) with bounds
// checks; `where` names the tensor in messages.
Constant read_tensor(const onnx::TensorProto& tensor, const std::string& where);

// The value of an initializer or a Constant node output named `name`, if the graph has one.
std::optional<Constant> find_constant(const OnnxModel& model, const std::string& name);

// Node attributes with ONNX defaults when absent.
const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, const std::string& name);
std::int64_t attribute_int(const onnx::NodeProto& node, const std::string& name, std::int64_t fallback);
float attribute_float(const onnx::NodeProto& node, const std::string& name, float fallback);
std::string attribute_string(const onnx::NodeProto& node, const std::string& name,
                             const std::string& fallback);
std::optional<std::vector<std::int64_t>> attribute_ints(const onnx::NodeProto& node, const std::string& name);

// Tensor name -> index of the node that produces it.
std::unordered_map<std::string, int> producer_index(const onnx::GraphProto& graph);

// Walks from the tensors `from` towards the graph inputs, calling `visit(node_index, tensor)` once for each
// producing node reached; when `visit` returns false the walk does not continue past that node.
void walk_producers(const onnx::GraphProto& graph, const std::unordered_map<std::string, int>& producer,
                    std::vector<std::string> from, const std::function<bool(int, const std::string&)>& visit);

}  // namespace vapipe::compiler
