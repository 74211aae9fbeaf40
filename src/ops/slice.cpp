// Slice (resolved, clamped starts/ends, positive steps) and Split: views plus copies, or a strided kernel.
// SpaceToDepth: the ONNX operator, and what compiler/graph_passes.cpp makes of YOLOX's Focus stem (four
// strided Slices joined by a Concat); attrs "block" and "offsets" ([dy, dx] per output channel block).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- the kernel ----
// Space-to-depth of a dense [N, C, H, W] tensor by `block` (H, W multiples of it): output channel block k
// holds the pixels at offset offsets[k] = (dy, dx) of every block x block cell, y[n, k*C + c, h, w] =
// x[n, c, h*block + dy, w*block + dx]. One pass for YOLOX's Focus stem (four strided Slices and a Concat),
// where the per-element strided_slice kernels took 8.3 of 19.9 ms at 416x416. run_space_to_depth below is
// its plain reference.
void space_to_depth(const float* input, const Shape& in_shape, std::int64_t block,
                    const std::vector<std::pair<std::int64_t, std::int64_t>>& offsets, float* output) {
  const std::int64_t batch = in_shape[0], channels = in_shape[1], height = in_shape[2], width = in_shape[3];
  const std::int64_t out_h = height / block, out_w = width / block;
  const auto blocks = static_cast<std::int64_t>(offsets.size());
  // One output row per step: a strided read of one input row, a contiguous write.
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t k = 0; k < blocks; ++k) {
      const auto [dy, dx] = offsets[static_cast<std::size_t>(k)];
      for (std::int64_t c = 0; c < channels; ++c) {
        const float* plane = input + (n * channels + c) * height * width;
        float* target = output + ((n * blocks + k) * channels + c) * out_h * out_w;
        for (std::int64_t h = 0; h < out_h; ++h) {
          const float* row = plane + (h * block + dy) * width + dx;
          float* out_row = target + h * out_w;
          for (std::int64_t w = 0; w < out_w; ++w) out_row[w] = row[w * block];
        }
      }
    }
  }
}

// ---- import ----
void import_slice(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Shape& s = ctx.shape_of(x);
  std::vector<std::int64_t> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = attribute_ints(node, "starts").value_or(std::vector<std::int64_t>{});
    ends = attribute_ints(node, "ends").value_or(std::vector<std::int64_t>{});
    axes = attribute_ints(node, "axes").value_or(std::vector<std::int64_t>{});
  } else {
    const Constant* c1 = ctx.const_input(1);
    const Constant* c2 = ctx.const_input(2);
    if (c1 == nullptr || c2 == nullptr) ctx.unsupported("starts and ends must be given");
    starts = as_ints(*c1);
    ends = as_ints(*c2);
    if (const Constant* c3 = ctx.const_input(3)) axes = as_ints(*c3);
    if (const Constant* c4 = ctx.const_input(4)) steps = as_ints(*c4);
  }
  if (axes.empty())
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
    ctx.unsupported("starts/ends/axes/steps sizes differ");
  }
  std::vector<std::int64_t> begin(s.size(), 0), end(s.begin(), s.end()), step(s.size(), 1);
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const auto a = static_cast<std::size_t>(ctx.normalize_axis(axes[i], s.size()));
    const std::int64_t dim = s[a];
    if (steps[i] <= 0) ctx.unsupported("negative or zero steps");
    begin[a] = starts[i] < 0 ? std::max<std::int64_t>(starts[i], -dim) + dim : std::min(starts[i], dim);
    end[a] = ends[i] < 0 ? std::max<std::int64_t>(ends[i], -dim) + dim : std::min(ends[i], dim);
    // A batch-1 export may bake "end = 1" on the batch axis; a larger stage keeps the whole batch.
    if (a == 0 && ctx.batch_factor() > 1 && begin[a] == 0 && dim % ctx.batch_factor() == 0 &&
        end[a] == dim / ctx.batch_factor())
      end[a] = dim;
    step[a] = steps[i];
  }
  ctx.set_activation(
      node.output(0),
      ctx.emit1("Slice", {x}, {{"starts", begin}, {"ends", end}, {"steps", step}}, node.output(0)));
}
void import_split(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Shape& s = ctx.shape_of(x);
  const auto axis = ctx.normalize_axis(attribute_int(node, "axis", 0), s.size());
  std::vector<std::int64_t> sizes;
  if (ctx.opset() < 13) {
    sizes = attribute_ints(node, "split").value_or(std::vector<std::int64_t>{});
  } else if (const Constant* c =
                 node.input_size() > 1 && !node.input(1).empty() ? ctx.const_input(1) : nullptr) {
    sizes = as_ints(*c);
  }
  const auto count = static_cast<std::int64_t>(node.output_size());
  if (sizes.empty()) {
    const std::int64_t dim = s[static_cast<std::size_t>(axis)];
    const std::int64_t piece = (dim + count - 1) / count;
    for (std::int64_t i = 0; i < count; ++i) sizes.push_back(std::min(piece, dim - piece * i));
  }
  if (static_cast<std::int64_t>(sizes.size()) != count)
    ctx.unsupported("split sizes do not match the outputs");
  std::vector<std::string> names(node.output().begin(), node.output().end());
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) names[i] = fmt::format("{}/unused_{}", ctx.node_name(), i);
  }
  const auto outs = ctx.emit("Split", {x}, {{"axis", axis}, {"sizes", sizes}}, names);
  for (std::size_t i = 0; i < outs.size(); ++i) ctx.set_activation(names[i], outs[i]);
}

// ONNX SpaceToDepth: output channel block by * blocksize + bx holds offset (by, bx) of every cell.
void import_space_to_depth(ImportContext& ctx) {
  const int x = ctx.activation_input(0);
  const std::int64_t block = attribute_int(ctx.node(), "blocksize", 0);
  if (block <= 0) ctx.unsupported("blocksize must be positive");
  json offsets = json::array();
  for (std::int64_t by = 0; by < block; ++by) {
    for (std::int64_t bx = 0; bx < block; ++bx) offsets.push_back({by, bx});
  }
  ctx.set_activation(ctx.output(),
                     ctx.emit1("SpaceToDepth", {x}, {{"block", block}, {"offsets", offsets}}, ctx.output()));
}

// ---- shapes ----
std::vector<std::pair<std::int64_t, std::int64_t>> space_to_depth_offsets(const ir::Node& node) {
  return node.attrs.at("offsets").get<std::vector<std::pair<std::int64_t, std::int64_t>>>();
}
std::vector<Shape> space_to_depth_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto block = node.attrs.at("block").get<std::int64_t>();
  const auto offsets = space_to_depth_offsets(node);
  if (x.size() != 4 || block <= 0 || x[2] % block != 0 || x[3] % block != 0)
    fail("node '{}' (SpaceToDepth): input {} does not split into {}x{} cells", node.name, shape_to_string(x),
         block, block);
  for (const auto& [dy, dx] : offsets) {
    if (dy < 0 || dy >= block || dx < 0 || dx >= block)
      fail("node '{}' (SpaceToDepth): offset ({}, {}) outside a {}x{} cell", node.name, dy, dx, block, block);
  }
  return {Shape{x[0], x[1] * static_cast<std::int64_t>(offsets.size()), x[2] / block, x[3] / block}};
}
std::vector<Shape> slice_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto starts = int_list(node, "starts", x.size());
  const auto ends = int_list(node, "ends", x.size());
  const auto steps = int_list(node, "steps", x.size());
  Shape out(x.size());
  for (std::size_t d = 0; d < x.size(); ++d) {
    if (steps[d] <= 0) fail("node '{}' (Slice): step must be positive", node.name);
    const std::int64_t begin = std::clamp<std::int64_t>(starts[d], 0, x[d]);
    const std::int64_t end = std::clamp<std::int64_t>(ends[d], 0, x[d]);
    out[d] = end > begin ? (end - begin + steps[d] - 1) / steps[d] : 0;
  }
  return {out};
}
std::vector<Shape> split_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto axis =
      static_cast<std::size_t>(normalized_axis(node, node.attrs.value("axis", std::int64_t{0}), x.size()));
  const auto sizes = int_list(node, "sizes", node.outputs.size());
  std::int64_t total = 0;
  std::vector<Shape> outs;
  for (auto size : sizes) {
    if (size < 0) fail("node '{}' (Split): negative size", node.name);
    total += size;
    Shape s = x;
    s[axis] = size;
    outs.push_back(std::move(s));
  }
  if (total != x[axis])
    fail("node '{}' (Split): sizes sum to {}, dimension is {}", node.name, total, x[axis]);
  return outs;
}

// ---- reference ----
// Visits every output index with its source index, given per-dim source offset/step.
void run_slice(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto starts = node.attrs.at("starts").get<std::vector<std::int64_t>>();
  const auto steps = node.attrs.at("steps").get<std::vector<std::int64_t>>();
  auto& y = ctx.out(node, 0);
  const auto xstr = dense_strides(xs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < ys.size(); ++d) {
      src += (std::clamp<std::int64_t>(starts[d], 0, xs[d]) + coord[d] * steps[d]) * xstr[d];
    }
    y[i] = x[static_cast<std::size_t>(src)];
  });
}
// Straight from the definition, one output element at a time.
void run_space_to_depth(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto block = node.attrs.at("block").get<std::int64_t>();
  const auto offsets = space_to_depth_offsets(node);
  auto& y = ctx.out(node, 0);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    const auto [dy, dx] = offsets[static_cast<std::size_t>(coord[1] / xs[1])];
    const std::int64_t c = coord[1] % xs[1];
    const std::int64_t h = coord[2] * block + dy;
    const std::int64_t w = coord[3] * block + dx;
    y[i] = x[static_cast<std::size_t>(((coord[0] * xs[1] + c) * xs[2] + h) * xs[3] + w)];
  });
}
void run_split(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.shape(node.inputs[0]);
  auto axis = node.attrs.value("axis", std::int64_t{0});
  if (axis < 0) axis += static_cast<std::int64_t>(xs.size());
  const auto a = static_cast<std::size_t>(axis);
  std::int64_t outer = 1, inner = 1;
  for (std::size_t d = 0; d < a; ++d) outer *= xs[d];
  for (std::size_t d = a + 1; d < xs.size(); ++d) inner *= xs[d];
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < node.outputs.size(); ++i) {
    auto& y = ctx.out(node, i);
    const std::int64_t len = ctx.shape(node.outputs[i])[a] * inner;
    for (std::int64_t o = 0; o < outer; ++o) {
      std::copy_n(x.begin() + o * xs[a] * inner + offset, len, y.begin() + o * len);
    }
    offset += len;
  }
}

// ---- lowering ----
void add_slice_copy(Lowering& l, int src, const Shape& in, const std::vector<std::int64_t>& starts,
                    const std::vector<std::int64_t>& steps, int y) {
  const Shape& out = l.shape(y);
  const bool unit_steps = std::all_of(steps.begin(), steps.end(), [](std::int64_t s) { return s == 1; });
  if (unit_steps) {
    const memory::desc view_md =
        l.value(src).md.submemory_desc(Dims(out.begin(), out.end()), Dims(starts.begin(), starts.end()));
    const int view = l.add_value(view_md);
    l.make_view(view, src);
    l.add_reorder(view, l.define_output(y, Lowering::like(l.value(src).md, out)), "slice");
    return;
  }
  const int dst = l.define_output(y, plain_md(out));
  l.add_kernel(
      [=](const std::vector<void*>& data) {
        strided_slice(static_cast<const float*>(data[0]), in, starts, steps, static_cast<float*>(data[1]),
                      out);
      },
      {src, dst});
}
void lower_slice(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const auto starts = int_attr(node.attrs, "starts");
  const auto steps = int_attr(node.attrs, "steps", std::vector<std::int64_t>(starts.size(), 1));
  // Unit steps are a view plus a copy in any data type; strided steps use the f32 kernel.
  const bool unit_steps = std::all_of(steps.begin(), steps.end(), [](std::int64_t s) { return s == 1; });
  add_slice_copy(l, unit_steps ? l.own_plain_value(x) : l.plain_value(x), l.shape(x), starts, steps,
                 node.outputs.at(0));
}
void lower_space_to_depth(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const Shape in = l.shape(x);
  const auto block = node.attrs.at("block").get<std::int64_t>();
  const auto offsets = space_to_depth_offsets(node);
  const int src = l.plain_value(x);
  const int dst = l.define_output(node.outputs.at(0), plain_md(l.shape(node.outputs.at(0))));
  l.add_kernel(
      [=](const std::vector<void*>& data) {
        space_to_depth(static_cast<const float*>(data[0]), in, block, offsets, static_cast<float*>(data[1]));
      },
      {src, dst});
}
void lower_split(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int axis = node.attrs.at("axis").get<int>();
  const Shape& in = l.shape(x);
  int src = l.value_of(x);
  // Channel splits at block boundaries read the blocked layout in place; others go plain.
  const auto tag = Lowering::tag_of(l.value(src).md);
  bool blocked_ok = tag.has_value();
  if (tag && *tag != Tag::abcd && *tag != Tag::acdb) {
    const std::int64_t block = *tag == Tag::aBcd16b ? 16 : *tag == Tag::aBcd8b ? 8 : 4;
    for (int output : node.outputs) blocked_ok = blocked_ok && (axis != 1 || l.shape(output)[1] % block == 0);
  }
  if (!blocked_ok) src = l.own_plain_value(x);
  std::vector<std::int64_t> starts(in.size(), 0);
  for (int output : node.outputs) {
    add_slice_copy(l, src, in, starts, std::vector<std::int64_t>(in.size(), 1), output);
    starts[axis] += l.shape(output)[axis];
  }
}

}  // namespace

void register_slice(Registry& registry) {
  registry.add({"Slice", slice_shapes, run_slice, lower_slice});
  registry.add({"Split", split_shapes, run_split, lower_split});
  registry.add_onnx("Slice", import_slice);
  registry.add_onnx("Split", import_split);
  registry.add({"SpaceToDepth", space_to_depth_shapes, run_space_to_depth, lower_space_to_depth});
  registry.add_onnx("SpaceToDepth", import_space_to_depth);
}

}  // namespace vapipe::ops
