#pragma once
// The detection-head fields of a network's metadata that its decoder divides by, multiplies by or loops
// over (docs/compiler.md, "Metadata"): checked where a package is loaded and where the compiler writes
// them, so a crafted or miscompiled package is one error naming the network and the key instead of
// boxes that are silently wrong (a stride of 0 put every box in the top-left corner) or a decode that
// divides by zero (a yolofastestv2 grid of 0 cells).
#include <string>

#include <nlohmann/json.hpp>

namespace vapipe::ir {

// Throws vapipe::Error "network 'N': metadata head.outputs[1].stride is 0; ..." for a stride, grid
// or anchor that is not a finite number above 0, grids beyond 65536 cells a side, anchor sets of
// differing sizes in one yolofastestv2 head, or a reg_max below 1. Heads without these keys (raw models,
// full-graph YOLO outputs) pass.
void check_head_metadata(const std::string& network, const nlohmann::json& metadata);

}  // namespace vapipe::ir
