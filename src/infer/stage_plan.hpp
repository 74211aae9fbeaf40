#pragma once
// A stage of a network made executable on this CPU: every operator lowered (ops/lowering.hpp) and the
// intermediate values placed in one arena. Building it is the "load" cost; executing it allocates nothing.
#include <cstdint>
#include <string>

#include <dnnl.hpp>

#include "core/graph.hpp"
#include "ops/lowering.hpp"

namespace vapipe::infer {

using ops::PackedConstants;
using ops::plain_md;
using ops::StagePlan;
using ops::Step;
using ops::Value;

StagePlan build_stage_plan(const ir::Graph& graph, std::int64_t batch, const dnnl::engine& engine,
                           const std::string& network_name, PackedConstants& packed_constants,
                           const ops::LoweringOptions& options = {});

}  // namespace vapipe::infer
