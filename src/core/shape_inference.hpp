#pragma once
// Output shapes of the IR op vocabulary (core/graph.hpp) from input shapes and attributes.
#include "core/graph.hpp"

namespace vapipe::ir {

// Recomputes the shapes of every node output in execution order from the graph inputs' shapes.
// Throws vapipe::Error naming the node when shapes do not fit.
void infer_shapes(Graph& graph);

}  // namespace vapipe::ir
