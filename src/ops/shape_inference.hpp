#pragma once
// Output shapes of the IR op vocabulary (core/graph.hpp) from input shapes and attributes: each op's rule
// is its registry entry's `shapes` (src/ops/<family>.cpp); the checks they share are below.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/graph.hpp"

namespace vapipe::ops {

// Recomputes the shapes of every node output in execution order from the graph inputs' shapes.
// Throws vapipe::Error naming the node when shapes do not fit.
void infer_shapes(ir::Graph& graph);

// The output shapes of one node given the current shapes of its input tensors (the compiler calls this
// while it lowers, one node at a time). Throws vapipe::Error naming the node when shapes do not fit.
std::vector<Shape> infer_node_shapes(const ir::Graph& graph, const ir::Node& node);

// numpy-style broadcast of two shapes; throws vapipe::Error (with `where`) when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& where);

// ---- checks shared by the shape rules (a package is input like any other: nothing is trusted) ----
// Attribute integers (kernel, strides, pads, sizes, starts, group, ...) are bounded like dimensions, so the
// window and slice arithmetic stays far inside int64 whatever a package says.
std::int64_t bounded(const ir::Node& node, const char* key, std::int64_t value);
std::vector<std::int64_t> int_list(const ir::Node& node, const char* key, std::size_t expected_size);
// The element count of a shape an attribute or a computation gave; refused when it is negative or beyond
// ir::kMaxTensorElements (the bound every loaded tensor already meets).
std::int64_t checked_volume(const ir::Node& node, const Shape& shape);
const Shape& input_shape(const ir::Graph& graph, const ir::Node& node, std::size_t index);
std::int64_t normalized_axis(const ir::Node& node, std::int64_t axis, std::size_t rank);
// Output length of a sliding window (convolution, pooling) over one padded dimension.
std::int64_t window_output(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad_begin,
                           std::int64_t pad_end, std::int64_t dilation, const ir::Node& node);

}  // namespace vapipe::ops
