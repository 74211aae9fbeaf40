#pragma once
// Runs a graph with every operator's plain reference implementation (ops/reference.hpp; each op's own in
// src/ops/<family>.cpp): nested loops, float accumulation in double where it is free, no blocking. It is the
// independent reference the runtime is tested against
// and the compiler's constant folder for float subgraphs. Nothing here is meant to be fast.
#include <vector>

#include "core/graph.hpp"
#include "ops/reference.hpp"

namespace vapipe::compiler {

using ops::ReferenceOptions;

// Runs `graph` on dense row-major f32 inputs (graph.inputs order, each of its tensor's shape) and returns
// the outputs in graph.outputs order. Throws vapipe::Error naming the node on malformed graphs.
std::vector<std::vector<float>> run_reference(const ir::Graph& graph,
                                              const std::vector<std::vector<float>>& inputs,
                                              const ReferenceOptions& options = {});

}  // namespace vapipe::compiler
