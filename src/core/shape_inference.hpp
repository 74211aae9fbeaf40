#pragma once
// Output shapes of the IR op vocabulary (core/graph.hpp) from input shapes and attributes.
#include <vector>

#include "core/graph.hpp"

namespace vapipe::ir {

// Recomputes the shapes of every node output in execution order from the graph inputs' shapes.
// Throws vapipe::Error naming the node when shapes do not fit.
void infer_shapes(Graph& graph);

// The output shapes of one node given the current shapes of its input tensors (the compiler calls this
// while it lowers, one node at a time). Throws vapipe::Error naming the node when shapes do not fit.
std::vector<Shape> infer_node_shapes(const Graph& graph, const Node& node);

// numpy-style broadcast of two shapes; throws vapipe::Error (with `where`) when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& where);

}  // namespace vapipe::ir
