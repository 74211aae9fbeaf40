// Binary: elementwise arithmetic of two tensors with numpy broadcasting, and the ONNX ops that import to it:
// Add, Sub, Mul, Div, Max, Min and inference BatchNormalization (a per-channel multiply and add, which the
// fusion passes fold into a preceding Conv).
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
std::string binary_alg(const std::string& op) {
  if (op == "Add" || op == "Sum" || op == "Mean") return "add";
  if (op == "Sub") return "sub";
  if (op == "Mul") return "mul";
  if (op == "Div") return "div";
  if (op == "Pow") return "pow";
  return op == "Max" ? "max" : "min";
}

// Max, Min, Sum and Mean of any number of inputs: a chain of Binary nodes (Mean then scales by 1/n).
void import_variadic(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& op = node.op_type();
  if (node.input_size() < 1 || (op != "Max" && op != "Min" && op != "Sum" && op != "Mean"))
    ctx.unsupported(fmt::format("{} inputs", node.input_size()));
  const std::string& out = node.output(0);
  const std::string alg = binary_alg(op);
  int result = ctx.activation_input(0);
  for (int i = 1; i < node.input_size(); ++i) {
    const bool last = i + 1 == node.input_size() && op != "Mean";
    result = ctx.emit1("Binary", {result, ctx.activation_input(i)}, {{"alg", alg}},
                       last ? out : fmt::format("{}/{}_{}", out, alg, i));
  }
  if (op == "Mean" && node.input_size() > 1) {
    result = ctx.emit1("Eltwise", {result},
                       {{"alg", "linear"}, {"alpha", 1.0 / node.input_size()}, {"beta", 0.0}}, out);
  }
  ctx.set_activation(out, result);
}

void import_binary(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& op = node.op_type();
  if (node.input_size() != 2) {
    import_variadic(ctx);
    return;
  }
  const Constant* a_constant = ctx.constant_of(node.input(0));
  const Constant* b_constant = ctx.constant_of(node.input(1));
  const std::string& out = node.output(0);
  // Opset < 7 broadcasts B only when asked, aligned at `axis` (default: trailing, which numpy rules give).
  if (ctx.opset() < 7 && attribute_int(node, "broadcast", 0) != 0 &&
      find_attribute(node, "axis") != nullptr) {
    const auto rank = [&](int i, const Constant* c) {
      return static_cast<std::int64_t>(c != nullptr ? c->shape.size()
                                                    : ctx.shape_of(ctx.tensor_of(node.input(i))).size());
    };
    if (attribute_int(node, "axis", 0) != rank(0, a_constant) - rank(1, b_constant))
      ctx.unsupported("legacy broadcast at an axis other than the trailing one");
  }
  const std::string alg = binary_alg(op);
  // x (op) scalar constant, shape unchanged: an affine Eltwise, which fuses and runs in place.
  const bool a_scalar = a_constant != nullptr && a_constant->values.size() == 1 && b_constant == nullptr &&
                        a_constant->shape.size() <= ctx.shape_of(ctx.tensor_of(node.input(1))).size();
  const bool b_scalar = b_constant != nullptr && b_constant->values.size() == 1 && a_constant == nullptr &&
                        b_constant->shape.size() <= ctx.shape_of(ctx.tensor_of(node.input(0))).size();
  if ((a_scalar || b_scalar) && alg != "max" && alg != "min" && alg != "pow") {
    const double c = a_scalar ? a_constant->values[0] : b_constant->values[0];
    const int x = ctx.tensor_of(node.input(a_scalar ? 1 : 0));
    std::optional<std::pair<double, double>> affine;
    if (alg == "add") affine = {{1.0, c}};
    if (alg == "mul") affine = {{c, 0.0}};
    if (alg == "sub") affine = b_scalar ? std::pair{1.0, -c} : std::pair{-1.0, c};
    if (alg == "div" && b_scalar && c != 0.0) affine = {{1.0 / c, 0.0}};
    if (affine) {
      ctx.set_activation(
          out, ctx.emit1("Eltwise", {x},
                         {{"alg", "linear"}, {"alpha", affine->first}, {"beta", affine->second}}, out));
      return;
    }
  }
  ctx.set_activation(out, ctx.emit1("Binary", {ctx.tensor_of(node.input(0)), ctx.tensor_of(node.input(1))},
                                    {{"alg", alg}}, out));
}

// y = x * a + b per channel; the fusion pass folds both into a preceding Conv.
void import_batch_norm(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Constant* scale = ctx.const_input(1);
  const Constant* bias = ctx.const_input(2);
  const Constant* mean = ctx.const_input(3);
  const Constant* var = ctx.const_input(4);
  if (scale == nullptr || bias == nullptr || mean == nullptr || var == nullptr)
    ctx.unsupported("missing parameters");
  if (node.output_size() > 1) ctx.unsupported("training outputs");
  const Shape& s = ctx.shape_of(x);
  if (s.size() < 2) ctx.unsupported("rank < 2");
  const auto channels = static_cast<std::size_t>(s[1]);
  if (scale->values.size() != channels || bias->values.size() != channels ||
      mean->values.size() != channels || var->values.size() != channels) {
    ctx.unsupported("parameter sizes do not match the channels");
  }
  const auto eps = static_cast<double>(attribute_float(node, "epsilon", 1e-5F));
  std::vector<float> a(channels), b(channels);
  for (std::size_t c = 0; c < channels; ++c) {
    const double factor = scale->values[c] / std::sqrt(var->values[c] + eps);
    a[c] = static_cast<float>(factor);
    b[c] = static_cast<float>(bias->values[c] - mean->values[c] * factor);
  }
  Shape param_shape(s.size() - 1, 1);
  param_shape[0] = s[1];
  const std::string& out = node.output(0);
  const int scale_tensor = ctx.constant_tensor(out + "/bn_scale", param_shape, std::move(a));
  const int shift_tensor = ctx.constant_tensor(out + "/bn_shift", param_shape, std::move(b));
  const int scaled = ctx.emit1("Binary", {x, scale_tensor}, {{"alg", "mul"}}, out + "/bn_scaled");
  ctx.set_activation(out, ctx.emit1("Binary", {scaled, shift_tensor}, {{"alg", "add"}}, out));
}

// ---- shapes ----
std::vector<Shape> binary_shapes(const ir::Graph& graph, const ir::Node& node) {
  return {broadcast_shapes(input_shape(graph, node, 0), input_shape(graph, node, 1),
                           fmt::format("node '{}' (Binary)", node.name))};
}

// ---- reference ----
void run_binary(ReferenceContext& ctx, const ir::Node& node) {
  const auto& a = ctx.in(node, 0);
  const auto& b = ctx.in(node, 1);
  const Shape& as = ctx.shape(node.inputs[0]);
  const Shape& bs = ctx.shape(node.inputs[1]);
  const Shape ys = ctx.shape(node.outputs[0]);
  const auto alg = node.attrs.at("alg").get<std::string>();
  auto& y = ctx.out(node, 0);
  // Broadcast strides: 0 where an input dimension is 1 (or missing), so one index walk serves both.
  auto bstrides = [&](const Shape& s) {
    std::vector<std::int64_t> out(ys.size(), 0);
    const auto own = dense_strides(s);
    for (std::size_t i = 0; i < s.size(); ++i) {
      const std::size_t d = ys.size() - s.size() + i;
      out[d] = s[i] == 1 ? 0 : own[i];
    }
    return out;
  };
  const auto astr = bstrides(as);
  const auto bstr = bstrides(bs);
  for_each_index(ys, [&](std::size_t i, const std::vector<std::int64_t>& coord) {
    std::int64_t ai = 0;
    std::int64_t bi = 0;
    for (std::size_t d = 0; d < ys.size(); ++d) {
      ai += coord[d] * astr[d];
      bi += coord[d] * bstr[d];
    }
    const float va = a[static_cast<std::size_t>(ai)];
    const float vb = b[static_cast<std::size_t>(bi)];
    float r = 0.0F;
    if (alg == "add")
      r = va + vb;
    else if (alg == "sub")
      r = va - vb;
    else if (alg == "mul")
      r = va * vb;
    else if (alg == "div")
      r = va / vb;
    else if (alg == "max")
      r = std::max(va, vb);
    else if (alg == "min")
      r = std::min(va, vb);
    else if (alg == "pow")
      r = static_cast<float>(std::pow(static_cast<double>(va), static_cast<double>(vb)));
    else
      fail("node '{}': unknown binary alg '{}'", node.name, alg);
    y[i] = r;
  });
}

// ---- lowering ----
void lower_binary(Lowering& l, const ir::Node& node) {
  const std::string alg_name = node.attrs.at("alg").get<std::string>();
  static const std::map<std::string, algorithm> kAlgorithms{
      {"add", algorithm::binary_add}, {"sub", algorithm::binary_sub}, {"mul", algorithm::binary_mul},
      {"div", algorithm::binary_div}, {"max", algorithm::binary_max}, {"min", algorithm::binary_min}};
  const auto found = kAlgorithms.find(alg_name);
  int a = node.inputs.at(0);
  int b = node.inputs.at(1);
  const int y = node.outputs.at(0);
  const Shape& y_shape = l.shape(y);
  const bool commutative = alg_name == "add" || alg_name == "mul" || alg_name == "max" || alg_name == "min";
  // oneDNN broadcasts src1 only; put the full-shape operand first.
  if (l.shape(a) != y_shape && commutative) std::swap(a, b);
  if (found == kAlgorithms.end() || l.shape(a) != y_shape) {
    // pow (no oneDNN binary in 2.6), or both operands broadcast (a [3, 1] - a [1, 4]): the plain kernel.
    if (!binary_kernel_supports(alg_name))
      l.fail_node(fmt::format("binary algorithm '{}' is not supported", alg_name));
    const int src0 = l.plain_value(node.inputs[0]);
    const int src1 = l.plain_value(node.inputs[1]);
    const int dst = l.define_output(y, plain_md(y_shape));
    l.add_kernel(
        [alg_name, as = l.shape(node.inputs[0]), bs = l.shape(node.inputs[1]),
         y_shape](const std::vector<void*>& data) {
          binary_broadcast(alg_name, static_cast<const float*>(data[0]), as,
                           static_cast<const float*>(data[1]), bs, static_cast<float*>(data[2]), y_shape);
        },
        {src0, src1, dst});
    return;
  }
  const int src0 = l.float_value(a);
  const memory::desc src0_md = l.value(src0).md;
  Shape b_shape = l.shape(b);
  while (b_shape.size() < y_shape.size()) b_shape.insert(b_shape.begin(), 1);
  int src1 = -1;
  if (b_shape == y_shape) {
    src1 = l.value_as(b, src0_md);
  } else {
    // A broadcast operand (per channel, scalar, ...) stays plain; oneDNN handles the broadcast.
    src1 = l.plain_view(l.value_of(b), b_shape);
  }
  const dnnl::binary::desc desc(found->second, src0_md, l.value(src1).md, src0_md);
  const dnnl::binary::primitive_desc pd(desc, l.plain_attr(), l.engine());
  const int dst = l.define_output(y, pd.dst_desc());
  l.add_primitive(pd, {{DNNL_ARG_SRC_0, src0}, {DNNL_ARG_SRC_1, src1}, {DNNL_ARG_DST, dst}});
}

}  // namespace

void register_binary(Registry& registry) {
  registry.add({"Binary", binary_shapes, run_binary, lower_binary});
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min"}) registry.add_onnx(op, import_binary);
  for (const char* op : {"Sum", "Mean"}) registry.add_onnx(op, import_variadic);
  registry.add_onnx("BatchNormalization", import_batch_norm);
}

}  // namespace vapipe::ops
