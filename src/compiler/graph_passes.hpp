#pragma once
// IR-to-IR passes run after lowering (docs/compiler.md lists them with their preconditions).
#include "core/graph.hpp"

namespace vapipe::compiler {

// Replaces a Concat along channels of the four stride-2 phases of one [N, C, H, W] tensor, each taken by
// one or two strided Slices (YOLOX's Focus stem: x[..., ::2, ::2], x[..., 1::2, ::2], ...), by one
// SpaceToDepth node; the Slices then die unless something else reads them.
void fuse_space_to_depth(ir::Graph& graph);

// Folds per-channel affine nodes that follow a Conv (a lowered BatchNormalization: Binary mul/add/sub
// with a per-channel constant, or an Eltwise linear) into the Conv's weights and bias.
void fold_batch_norm(ir::Graph& graph);

// Moves activations that directly follow a Conv into its post_ops (SiLU as x * sigmoid(x) -> swish).
void fuse_activations(ir::Graph& graph);

// Turns Add(A, Conv(...)) into a Conv "sum" post-op reading A (the residual connection).
void fuse_residual_sum(ir::Graph& graph);

// Drops nodes no graph output depends on and tensors nothing references; renumbers tensors compactly.
void eliminate_dead_code(ir::Graph& graph);

// All of the above in order.
void optimize_graph(ir::Graph& graph);

}  // namespace vapipe::compiler
