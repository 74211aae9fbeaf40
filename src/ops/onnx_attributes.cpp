#include "ops/onnx_attributes.hpp"

#include <limits>

namespace vapipe::ops {

std::vector<std::int64_t> as_ints(const Constant& c) {
  std::vector<std::int64_t> out;
  out.reserve(c.values.size());
  for (double v : c.values) {
    // INT64_MAX/MIN used as "to the end" in Slice survive the double round trip as +-9.2e18.
    if (v >= 9.2e18)
      out.push_back(std::numeric_limits<std::int64_t>::max());
    else if (v <= -9.2e18)
      out.push_back(std::numeric_limits<std::int64_t>::min());
    else
      out.push_back(static_cast<std::int64_t>(v));
  }
  return out;
}

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& attr : node.attribute()) {
    if (attr.name() == name) return &attr;
  }
  return nullptr;
}

std::int64_t attribute_int(const onnx::NodeProto& node, const std::string& name, std::int64_t fallback) {
  const auto* attr = find_attribute(node, name);
  return attr != nullptr ? attr->i() : fallback;
}

float attribute_float(const onnx::NodeProto& node, const std::string& name, float fallback) {
  const auto* attr = find_attribute(node, name);
  return attr != nullptr ? attr->f() : fallback;
}

std::string attribute_string(const onnx::NodeProto& node, const std::string& name,
                             const std::string& fallback) {
  const auto* attr = find_attribute(node, name);
  return attr != nullptr ? attr->s() : fallback;
}

std::optional<std::vector<std::int64_t>> attribute_ints(const onnx::NodeProto& node,
                                                        const std::string& name) {
  const auto* attr = find_attribute(node, name);
  if (attr == nullptr) return std::nullopt;
  return std::vector<std::int64_t>(attr->ints().begin(), attr->ints().end());
}

std::optional<std::vector<float>> attribute_floats(const onnx::NodeProto& node, const std::string& name) {
  const auto* attr = find_attribute(node, name);
  if (attr == nullptr) return std::nullopt;
  return std::vector<float>(attr->floats().begin(), attr->floats().end());
}

}  // namespace vapipe::ops
