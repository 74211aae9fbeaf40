#include "ops/reference.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace vapipe::ops {

const std::vector<float>& ReferenceContext::in(const ir::Node& node, std::size_t i) const {
  const int index = node.inputs.at(i);
  if (index < 0) fail("node '{}' ({}): input {} missing", node.name, node.op, i);
  const auto& value = values.at(static_cast<std::size_t>(index));
  const auto& tensor = graph.tensors[static_cast<std::size_t>(index)];
  if (static_cast<std::int64_t>(value.size()) != shape_volume(tensor.shape)) {
    fail("node '{}' ({}): input {} ('{}') has no value", node.name, node.op, i, tensor.name);
  }
  return value;
}

std::vector<float>& ReferenceContext::out(const ir::Node& node, std::size_t i) {
  const int index = node.outputs.at(i);
  auto& value = values.at(static_cast<std::size_t>(index));
  value.assign(static_cast<std::size_t>(shape_volume(shape(index))), 0.0F);
  return value;
}

std::vector<std::int64_t> dense_strides(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (std::size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

std::vector<std::int64_t> broadcast_strides(const Shape& shape, std::size_t rank) {
  if (shape.size() > rank) fail("shape {} does not broadcast to rank {}", shape_to_string(shape), rank);
  std::vector<std::int64_t> strides(rank, 0);
  const auto own = dense_strides(shape);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::size_t d = rank - shape.size() + i;
    strides[d] = shape[i] == 1 ? 0 : own[i];
  }
  return strides;
}

Shape padded_to_rank(const Shape& shape, std::size_t rank) {
  Shape padded(rank > shape.size() ? rank - shape.size() : 0, 1);
  padded.insert(padded.end(), shape.begin(), shape.end());
  return padded;
}

AxisSplit split_at_axis(const Shape& shape, std::size_t axis) {
  AxisSplit split;
  for (std::size_t d = 0; d < axis; ++d) split.outer *= shape[d];
  split.axis = shape.at(axis);
  for (std::size_t d = axis + 1; d < shape.size(); ++d) split.inner *= shape[d];
  return split;
}

void fake_quantize(std::vector<float>& values, float scale, float lowest, float highest) {
  for (auto& v : values) v = std::clamp(std::nearbyint(v / scale), lowest, highest) * scale;
}

float round_to_bf16(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  bits += 0x7FFFU + ((bits >> 16) & 1U);
  bits &= 0xFFFF0000U;
  std::memcpy(&value, &bits, sizeof(bits));
  return value;
}

void round_to_bf16(std::vector<float>& values) {
  for (auto& v : values) v = round_to_bf16(v);
}

}  // namespace vapipe::ops
