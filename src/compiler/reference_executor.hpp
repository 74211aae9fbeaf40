#pragma once
// A deliberately plain implementation of every IR op (core/graph.hpp): nested loops, float accumulation
// in double where it is free, no blocking. It is the independent reference the runtime is tested against
// and the compiler's constant folder for float subgraphs. Nothing here is meant to be fast.
#include <vector>

#include "core/graph.hpp"

namespace vapipe::compiler {

struct ReferenceOptions {
  // Simulate the int8 path the runtime takes on CPUs without VNNI (infer/int8_without_vnni.hpp): weights
  // halved by vapipe. Pass infer::int8_pair_sums_saturate() to follow this CPU.
  bool int8_without_vnni = false;
};

// Runs `graph` on dense row-major f32 inputs (graph.inputs order, each of its tensor's shape) and returns
// the outputs in graph.outputs order. Throws vapipe::Error naming the node on malformed graphs.
std::vector<std::vector<float>> run_reference(const ir::Graph& graph,
                                              const std::vector<std::vector<float>>& inputs,
                                              const ReferenceOptions& options = {});

}  // namespace vapipe::compiler
