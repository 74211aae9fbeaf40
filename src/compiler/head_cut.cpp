#include "compiler/head_cut.hpp"

#include <algorithm>
#include <unordered_map>

#include "core/error.hpp"

namespace vapipe::compiler {

std::vector<std::string> find_head_outputs(const OnnxModel& model, const std::string& model_type) {
  const auto& graph = model.proto.graph();
  if (graph.output_size() == 0) fail("{}: the graph has no outputs", model.label);
  const auto producer = producer_index(graph);
  auto produced_by = [&](const std::string& name, const char* op) {
    const auto found = producer.find(name);
    return found != producer.end() && graph.node(found->second).op_type() == op;
  };
  // YOLOv8's DFL: a fixed 1x1 Conv with one output channel over the softmaxed box distribution.
  auto is_dfl_conv = [&](const onnx::NodeProto& node) {
    if (node.input_size() < 2) return false;
    const auto weights = find_constant(model, node.input(1));
    return weights && weights->shape.size() == 4 && weights->shape[0] == 1 && weights->shape[2] == 1 &&
           weights->shape[3] == 1;
  };
  std::vector<std::string> heads;
  walk_producers(graph, producer, {graph.output(0).name()}, [&](int index, const std::string& name) {
    const auto& node = graph.node(index);
    bool is_head = false;
    if (model_type == "yolov8") {
      if (node.op_type() == "Concat" && node.input_size() >= 2) {
        is_head = std::all_of(node.input().begin(), node.input().end(),
                              [&](const std::string& input) { return produced_by(input, "Conv"); });
      } else if (node.op_type() == "Conv") {
        is_head = !is_dfl_conv(node);
      }
    } else {
      is_head = node.op_type() == "Conv";
    }
    if (is_head && std::find(heads.begin(), heads.end(), name) == heads.end()) heads.push_back(name);
    return !is_head;  // a head ends the walk on its branch
  });
  if (heads.empty())
    fail("{}: no head convolution found for the raw-head cut (use --full-graph)", model.label);
  return heads;
}

void sort_outputs_by_stride(ir::Graph& graph) {
  auto height = [&](int index) {
    const auto& shape = graph.tensors.at(static_cast<std::size_t>(index)).shape;
    return shape.size() == 4 ? shape[2] : 0;
  };
  std::stable_sort(graph.outputs.begin(), graph.outputs.end(),
                   [&](int a, int b) { return height(a) > height(b); });
}

void make_outputs_channels_last(ir::Graph& graph) {
  for (int& output : graph.outputs) {
    ir::Tensor& produced = graph.tensors.at(static_cast<std::size_t>(output));
    if (produced.shape.size() != 4) continue;
    ir::Tensor channels_last;
    channels_last.name = produced.name;
    channels_last.dtype = produced.dtype;
    channels_last.shape = {produced.shape[0], produced.shape[2], produced.shape[3], produced.shape[1]};
    produced.name += ":nchw";
    const int source = output;
    const int result = graph.add_tensor(std::move(channels_last));  // may move `produced`
    ir::Node transpose;
    transpose.name = graph.tensors[static_cast<std::size_t>(result)].name + ":to_nhwc";
    transpose.op = "Transpose";
    transpose.inputs = {source};
    transpose.outputs = {result};
    transpose.attrs["perm"] = std::vector<std::int64_t>{0, 2, 3, 1};
    graph.nodes.push_back(std::move(transpose));
    output = result;
  }
}

}  // namespace vapipe::compiler
