#pragma once
// The raw-head cut: YOLO graphs end in a decode (grids, anchors, sigmoid, reshapes) that the
// post-processor does better on the few surviving candidates. The cut keeps the graph up to the head
// convolutions and makes their outputs the network outputs.
#include <string>
#include <vector>

#include "compiler/onnx_model.hpp"
#include "core/graph.hpp"

namespace vapipe::compiler {

// Names of the ONNX tensors that become outputs after the cut: for yolov5 the last Convs from which the
// model output is reachable without passing another Conv; for yolov8 the per-level Concat(box, cls) of
// the head (its DFL Conv is passed through). Throws vapipe::Error when none is found.
std::vector<std::string> find_head_outputs(const OnnxModel& model, const std::string& model_type);

// Orders graph outputs by stride ascending (largest feature map first).
void sort_outputs_by_stride(ir::Graph& graph);

// Makes every 4-D graph output channels-last: a Transpose [N, C, H, W] -> [N, H, W, C] is appended and its
// output takes the output's name (the producer's tensor is renamed with a ":nchw" suffix). The runtime
// then lets the head convolutions write their natural channels-last result straight into the output
// (no transpose runs); the decoder reads it per the metadata's head.outputs[].layout.
void make_outputs_channels_last(ir::Graph& graph);

}  // namespace vapipe::compiler
