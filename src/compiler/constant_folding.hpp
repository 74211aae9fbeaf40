#pragma once
// Compile-time evaluation. Two halves: the ONNX ops that only exist in shape chains (Shape, Gather,
// Unsqueeze, Concat, Slice, integer arithmetic, Range, ConstantOfShape, ...) are evaluated here on
// exact values; float ops with all-constant inputs are lowered to IR first and run through the reference
// executor, so there is one implementation of their semantics.
#include <optional>
#include <vector>

#include <onnx/onnx_pb.h>

#include "compiler/onnx_model.hpp"
#include "core/graph.hpp"

namespace vapipe::compiler {

using ops::as_ints;

// Evaluates `node` when every present input is a constant (absent optional inputs are nullopt) and the op
// is one of the shape-chain ops; returns nullopt for ops this evaluator does not cover.
std::optional<std::vector<Constant>> fold_onnx_node(const onnx::NodeProto& node,
                                                    const std::vector<std::optional<Constant>>& inputs,
                                                    std::int64_t opset);

// Runs graph.nodes[first..] (nodes whose inputs are all constants) with the reference executor and
// returns the values of `outputs`.
std::vector<std::vector<float>> fold_ir_nodes(const ir::Graph& graph, std::size_t first,
                                              const std::vector<int>& outputs);

}  // namespace vapipe::compiler
