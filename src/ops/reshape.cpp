// Reshape (a view: the target is the output shape) and the ONNX ops that only rename or reshape a value:
// Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout (inference) and Cast between float types.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
bool is_float_type(std::int64_t type) {
  return type == onnx::TensorProto_DataType_FLOAT || type == onnx::TensorProto_DataType_FLOAT16 ||
         type == onnx::TensorProto_DataType_DOUBLE || type == onnx::TensorProto_DataType_BFLOAT16;
}

void import_reshape(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Constant* target_c = ctx.const_input(1);
  if (target_c == nullptr) ctx.unsupported("missing target shape");
  const Shape& s = ctx.shape_of(x);
  auto target = as_ints(*target_c);
  const bool allow_zero = attribute_int(node, "allowzero", 0) != 0;
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t d = 0; d < target.size(); ++d) {
    if (target[d] == 0 && !allow_zero) {
      if (d >= s.size()) ctx.unsupported("0 in target beyond the input rank");
      target[d] = s[d];
    }
    if (target[d] == -1) {
      if (infer >= 0) ctx.unsupported("two -1 in the target shape");
      infer = static_cast<int>(d);
    } else if (target[d] < 0) {
      ctx.unsupported("negative target dimension");
    } else if (__builtin_mul_overflow(known, target[d], &known)) {
      fail("target shape {} has more elements than int64 holds", shape_to_string(target));
    }
  }
  const std::int64_t volume = shape_volume(s);
  if (infer >= 0) {
    if (known == 0 || volume % known != 0)
      fail("cannot reshape {} to {}", shape_to_string(s), shape_to_string(target));
    target[static_cast<std::size_t>(infer)] = volume / known;
  } else if (known != volume && ctx.batch_factor() > 1 && volume % ctx.batch_factor() == 0 &&
             known == volume / ctx.batch_factor() && !target.empty()) {
    // A batch-1 export bakes batch 1 (or batch*C) into dimension 0; a batch-B stage scales it.
    target[0] *= ctx.batch_factor();
  }
  if (shape_volume(target) != volume)
    fail("cannot reshape {} to {}", shape_to_string(s), shape_to_string(target));
  ctx.set_activation(node.output(0), ctx.emit_reshape(x, target, node.output(0)));
}
void import_shape_change(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Shape& s = ctx.shape_of(x);
  const std::string& op = node.op_type();
  Shape target;
  if (op == "Flatten") {
    const auto axis = attribute_int(node, "axis", 1);
    const auto a = axis < 0 ? axis + static_cast<std::int64_t>(s.size()) : axis;
    if (a < 0 || a > static_cast<std::int64_t>(s.size())) ctx.unsupported("axis out of range");
    std::int64_t outer = 1;
    for (std::int64_t d = 0; d < a; ++d) outer *= s[static_cast<std::size_t>(d)];
    target = {outer, shape_volume(s) / outer};
  } else {
    std::vector<std::int64_t> axes;
    if (ctx.opset() >= 13) {
      if (const Constant* c = ctx.const_input(1)) axes = as_ints(*c);
    } else {
      axes = attribute_ints(node, "axes").value_or(std::vector<std::int64_t>{});
    }
    const std::size_t rank = op == "Unsqueeze" ? s.size() + axes.size() : s.size();
    for (auto& a : axes) a = ctx.normalize_axis(a, rank);
    auto listed = [&](std::size_t d) {
      return std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(d)) != axes.end();
    };
    if (op == "Unsqueeze") {
      std::size_t next = 0;
      for (std::size_t d = 0; d < rank; ++d) {
        if (listed(d)) {
          target.push_back(1);
        } else {
          if (next >= s.size()) ctx.unsupported("invalid axes");
          target.push_back(s[next++]);
        }
      }
    } else {
      for (std::size_t d = 0; d < s.size(); ++d) {
        if (listed(d) && s[d] != 1) ctx.unsupported("squeezing a dimension that is not 1");
        if ((axes.empty() && s[d] == 1) || listed(d)) continue;
        target.push_back(s[d]);
      }
    }
  }
  ctx.set_activation(node.output(0), ctx.emit_reshape(x, target, node.output(0)));
}
void import_identity(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& op = node.op_type();
  if (op == "Dropout") {
    if (node.output_size() > 1 && !node.output(1).empty()) ctx.unsupported("mask output");
    // Inference only: opset < 7 says so with is_test, opset >= 12 with a training_mode input.
    if (ctx.opset() < 7 && attribute_int(node, "is_test", 0) == 0) ctx.unsupported("training (is_test = 0)");
    if (const Constant* training = ctx.has_input(2) ? ctx.const_input(2) : nullptr;
        training != nullptr && !training->values.empty() && training->values[0] != 0.0)
      ctx.unsupported("training_mode true");
  }
  if (op == "Cast") {
    const auto to = attribute_int(node, "to", 1);
    if (!is_float_type(to)) ctx.unsupported("cast of an activation to a non-float type");
    // Activations are f32. An FP16 model's casts to float16 are kept as f32 (docs/compiler.md: FP16 models
    // compute in float32; values beyond 65504 stay finite); bfloat16 keeps 8 bits of mantissa, which f32 does
    // not imitate.
    if (to == onnx::TensorProto_DataType_BFLOAT16)
      ctx.unsupported("cast of an activation to bfloat16 (vapipe computes in float32)");
  }
  ctx.forward(node.output(0), node.input(0));  // all activations are f32
}

// ---- shapes ----
std::vector<Shape> reshape_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& x = input_shape(graph, node, 0);
  Shape target = node.attrs.contains("shape")
                     ? node.attrs.at("shape").get<Shape>()
                     : graph.tensors.at(static_cast<std::size_t>(node.outputs.at(0))).shape;
  if (checked_volume(node, target) != checked_volume(node, x)) {
    fail("node '{}' (Reshape): cannot reshape {} to {}", node.name, shape_to_string(x),
         shape_to_string(target));
  }
  return {target};
}

// ---- reference ----
void reshape_reference(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  auto& y = ctx.out(node, 0);
  if (y.size() != x.size()) fail("node '{}' (Reshape): volume mismatch", node.name);
  std::copy(x.begin(), x.end(), y.begin());
}

// ---- lowering ----
void lower_reshape(Lowering& l, const ir::Node& node) {
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  const int src = l.own_plain_value(x);
  const int dst = l.define_output(y, plain_md(l.shape(y), l.value(src).md.data_type()));
  l.make_view(dst, src);
}

}  // namespace

void register_reshape(Registry& registry) {
  registry.add({"Reshape", reshape_shapes, reshape_reference, lower_reshape});
  registry.add_onnx("Reshape", import_reshape);
  for (const char* op : {"Flatten", "Squeeze", "Unsqueeze"}) registry.add_onnx(op, import_shape_change);
  for (const char* op : {"Identity", "Dropout", "Cast"}) registry.add_onnx(op, import_identity);
}

}  // namespace vapipe::ops
