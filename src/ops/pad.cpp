// Pad: constant, reflect and edge padding (negative pads crop); ONNX Pad (pads as attribute before opset
// 11, as a constant input since) imports to it.
#include <algorithm>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// The runtime's kernel keeps an output row's coordinates in a fixed array.
constexpr std::size_t kMaxPadRank = 8;

// ---- import ----
void import_pad(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Shape s = ctx.shape_of(x);
  const std::string mode = attribute_string(node, "mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    ctx.unsupported("mode '" + mode + "' (only constant, reflect, edge)");
  std::vector<std::int64_t> pads;
  double value = 0.0;
  if (ctx.opset() < 11) {
    pads = attribute_ints(node, "pads").value_or(std::vector<std::int64_t>{});
    value = static_cast<double>(attribute_float(node, "value", 0.0F));
  } else {
    const Constant* p = ctx.const_input(1);
    if (p == nullptr) ctx.unsupported("missing pads");
    pads = as_ints(*p);
    if (const Constant* v = ctx.const_input(2); v != nullptr && !v->values.empty()) {
      if (v->values.size() != 1) ctx.unsupported("constant_value must be a scalar");
      value = v->values[0];
    }
    if (ctx.has_input(3)) ctx.unsupported("the axes input (opset 18)");
  }
  if (pads.size() != 2 * s.size()) ctx.unsupported("pads must have 2 values per dimension");
  if (s.size() > kMaxPadRank) ctx.unsupported("rank above 8");
  if (pads[0] != 0 || pads[s.size()] != 0) ctx.unsupported("padding the batch dimension");
  for (std::size_t d = 0; d < s.size(); ++d) {
    if (s[d] + pads[d] + pads[d + s.size()] < 0) ctx.unsupported("pads crop more than the input");
    if (mode != "constant" && s[d] == 0 && (pads[d] > 0 || pads[d + s.size()] > 0))
      ctx.unsupported("reflect or edge padding of an empty dimension");
  }
  const json attrs = {{"mode", mode}, {"pads", pads}, {"value", value}};
  ctx.set_activation(node.output(0), ctx.emit1("Pad", {x}, attrs, node.output(0)));
}

// ---- shapes ----
std::vector<Shape> pad_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  const auto pads = int_list(node, "pads", 2 * x.size());
  Shape out(x.size());
  for (std::size_t d = 0; d < x.size(); ++d) {
    out[d] = x[d] + pads[d] + pads[d + x.size()];
    if (out[d] < 0) fail("node '{}' (Pad): pads crop dimension {} below zero", node.name, d);
  }
  checked_volume(node, out);
  return {out};
}

// Per dimension, the input index each output index reads, -1 for the constant.
std::vector<std::vector<std::int64_t>> pad_sources(const ir::Node& node, const Shape& xs, const Shape& ys) {
  const auto pads = node.attrs.at("pads").get<std::vector<std::int64_t>>();
  const auto mode = node.attrs.value("mode", std::string("constant"));
  std::vector<std::vector<std::int64_t>> source(ys.size());
  for (std::size_t d = 0; d < ys.size(); ++d) {
    const std::int64_t n = xs[d];
    for (std::int64_t o = 0; o < ys[d]; ++o) {
      std::int64_t i = o - pads[d];
      if (i < 0 || i >= n) {
        if (mode == "constant") {
          i = -1;
        } else if (mode == "edge") {
          i = std::clamp<std::int64_t>(i, 0, n - 1);
        } else if (mode == "reflect") {
          // Mirror without repeating the edge: period 2 (n - 1).
          const std::int64_t period = 2 * (n - 1);
          i = period == 0 ? 0 : ((i % period) + period) % period;
          if (i >= n) i = period - i;
        } else {
          fail("node '{}' (Pad): mode '{}' not supported", node.name, mode);
        }
      }
      source[d].push_back(i);
    }
  }
  return source;
}

// ---- reference ----
void pad_reference(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const Shape& xs = ctx.in_shape(node, 0);
  const Shape ys = ctx.out_shape(node, 0);
  const auto source = pad_sources(node, xs, ys);
  const auto value = static_cast<float>(node.attrs.value("value", 0.0));
  const auto xstr = dense_strides(xs);
  auto& y = ctx.out(node, 0);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < ys.size(); ++d) {
      const std::int64_t from = source[d][static_cast<std::size_t>(coord[d])];
      if (from < 0) {
        y[i] = value;
        return;
      }
      src += from * xstr[d];
    }
    y[i] = x[static_cast<std::size_t>(src)];
  });
}

// ---- lowering ----
// A plain kernel over output rows (every dimension but the last) with the source indices resolved at load:
// a row whose outer coordinates fall in the padding is the constant, else a gather along the last one.
void lower_pad(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const Shape in = l.shape(x);
  const Shape out = l.shape(y);
  if (out.empty() || out.size() > kMaxPadRank) l.fail_node("Pad needs rank 1 to 8");
  auto source = pad_sources(node, in, out);
  const auto strides = dense_strides(in);
  for (std::size_t d = 0; d + 1 < source.size(); ++d) {
    for (auto& i : source[d]) i = i < 0 ? -1 : i * strides[d];
  }
  const auto value = static_cast<float>(node.attrs.value("value", 0.0));
  const int src = l.plain_value(x);
  const int dst = l.define_output(y, plain_md(out));
  l.add_kernel(
      [=](const std::vector<void*>& data) {
        const auto* xp = static_cast<const float*>(data[0]);
        auto* yp = static_cast<float*>(data[1]);
        const std::size_t outer = out.size() - 1;
        const std::int64_t width = out[outer];
        const std::int64_t rows = width > 0 ? shape_volume(out) / width : 0;
        const auto& last = source[outer];
#pragma omp parallel for schedule(static)
        for (std::int64_t row = 0; row < rows; ++row) {
          float* yrow = yp + row * width;
          std::int64_t rest = row, base = 0;
          bool inside = true;
          for (std::size_t d = outer; d-- > 0;) {
            const std::int64_t from = source[d][static_cast<std::size_t>(rest % out[d])];
            rest /= out[d];
            inside = inside && from >= 0;
            base += from;
          }
          if (!inside) {
            std::fill(yrow, yrow + width, value);
            continue;
          }
          for (std::int64_t o = 0; o < width; ++o) {
            const std::int64_t from = last[static_cast<std::size_t>(o)];
            yrow[o] = from < 0 ? value : xp[base + from];
          }
        }
      },
      {src, dst});
}

}  // namespace

void register_pad(Registry& registry) {
  registry.add({"Pad", pad_shapes, pad_reference, lower_pad});
  registry.add_onnx("Pad", import_pad);
}

}  // namespace vapipe::ops
