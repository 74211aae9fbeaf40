#pragma once
// Loading an ONNX file and reading its tensors into constants (ops/onnx_attributes.hpp).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <onnx/onnx_pb.h>

#include "core/dtype.hpp"
#include "ops/onnx_attributes.hpp"

namespace vapipe::compiler {

struct OnnxModel {
  onnx::ModelProto proto;
  std::string path;
  std::string label;       // the file name, used to start every message
  std::int64_t opset = 0;  // of the default ("" / "ai.onnx") domain
};

using ops::Constant;

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

// Node attributes with ONNX defaults when absent (ops/onnx_attributes.hpp).
using ops::attribute_float;
using ops::attribute_int;
using ops::attribute_ints;
using ops::attribute_string;
using ops::find_attribute;

// Tensor name -> index of the node that produces it.
std::unordered_map<std::string, int> producer_index(const onnx::GraphProto& graph);

// Walks from the tensors `from` towards the graph inputs, calling `visit(node_index, tensor)` once for each
// producing node reached; when `visit` returns false the walk does not continue past that node.
void walk_producers(const onnx::GraphProto& graph, const std::unordered_map<std::string, int>& producer,
                    std::vector<std::string> from, const std::function<bool(int, const std::string&)>& visit);

}  // namespace vapipe::compiler
