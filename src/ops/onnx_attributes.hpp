#pragma once
// What an operator's ONNX import reads from its node: attributes (with ONNX defaults when absent) and
// compile-time constants. ONNX constants are kept as doubles during import: shape arithmetic is exact in
// int64 range up to 2^53 and float weights convert without loss.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "core/dtype.hpp"

namespace vapipe::ops {

// A compile-time constant: an initializer, a Constant node or a folded value.
struct Constant {
  Shape shape;
  std::vector<double> values;
  bool is_int = false;
};

// The integer values of a constant; INT64_MAX/MIN ("to the end" in Slice) survive the double round trip.
std::vector<std::int64_t> as_ints(const Constant& c);

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, const std::string& name);
std::int64_t attribute_int(const onnx::NodeProto& node, const std::string& name, std::int64_t fallback);
float attribute_float(const onnx::NodeProto& node, const std::string& name, float fallback);
std::string attribute_string(const onnx::NodeProto& node, const std::string& name,
                             const std::string& fallback);
std::optional<std::vector<std::int64_t>> attribute_ints(const onnx::NodeProto& node, const std::string& name);
std::optional<std::vector<float>> attribute_floats(const onnx::NodeProto& node, const std::string& name);

}  // namespace vapipe::ops
