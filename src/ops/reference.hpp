#pragma once
// What an operator's reference implementation works with: every tensor's value as dense row-major f32
// (int8 weights as their integers), plus the helpers the references share. Deliberately plain: nested
// loops, accumulation in double where it is free, no blocking (compiler/reference_executor.hpp).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/graph.hpp"

namespace vapipe::ops {

struct ReferenceOptions {
  // Simulate the int8 path the runtime takes on CPUs without VNNI (ops/int8_without_vnni.hpp): weights
  // halved by vapipe. Pass ops::int8_pair_sums_saturate() to follow this CPU.
  bool int8_without_vnni = false;
};

struct ReferenceContext {
  const ir::Graph& graph;
  std::vector<std::vector<float>> values;  // per tensor
  ReferenceOptions options;

  const std::vector<float>& in(const ir::Node& node, std::size_t i) const;
  const Shape& shape(int index) const { return graph.tensors.at(static_cast<std::size_t>(index)).shape; }
  const Shape& in_shape(const ir::Node& node, std::size_t i) const { return shape(node.inputs.at(i)); }
  const Shape& out_shape(const ir::Node& node, std::size_t i) const { return shape(node.outputs.at(i)); }
  // The output's value, sized to its shape and zeroed.
  std::vector<float>& out(const ir::Node& node, std::size_t i);
};

std::vector<std::int64_t> dense_strides(const Shape& shape);
// The strides that read a dense `shape` broadcast to rank `rank` (numpy rules: aligned at the trailing
// dimension): 0 where `shape` has 1 or no dimension, so one index walk over the larger shape serves both.
std::vector<std::int64_t> broadcast_strides(const Shape& shape, std::size_t rank);
// `shape` with leading 1s up to `rank`.
Shape padded_to_rank(const Shape& shape, std::size_t rank);

// Calls visit(flat_index, coordinates) for every element of `shape`, in row-major order.
template <typename Visit>
void for_each_index(const Shape& shape, Visit visit) {
  std::vector<std::int64_t> coord(shape.size(), 0);
  const std::int64_t total = shape_volume(shape);
  for (std::int64_t i = 0; i < total; ++i) {
    visit(static_cast<std::size_t>(i), coord);
    for (auto d = static_cast<std::ptrdiff_t>(shape.size()) - 1; d >= 0; --d) {
      if (++coord[static_cast<std::size_t>(d)] < shape[static_cast<std::size_t>(d)]) break;
      coord[static_cast<std::size_t>(d)] = 0;
    }
  }
}

// [outer, axis, inner] of `shape` around `axis` (already normalized).
struct AxisSplit {
  std::int64_t outer = 1, axis = 1, inner = 1;
};
AxisSplit split_at_axis(const Shape& shape, std::size_t axis);

// Reduced precision simulated in float (docs/model-format.md, "Precision"): values are rounded to what
// the int8/bf16 runtime path stores, with round-half-to-even and saturation as oneDNN converts.
void fake_quantize(std::vector<float>& values, float scale, float lowest, float highest);
float round_to_bf16(float value);
void round_to_bf16(std::vector<float>& values);

// One elementwise function of the IR (Eltwise's algs, Conv's post-ops); throws naming the node when the
// alg is unknown. Defined in eltwise.cpp.
float eltwise_reference(const std::string& alg, float x, float alpha, float beta, const ir::Node& node);

}  // namespace vapipe::ops
