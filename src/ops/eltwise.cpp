// Eltwise: one elementwise function of one tensor (alg, alpha, beta), and the ONNX activations and
// unary ops that import to it.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
void import_eltwise_op(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  static const std::unordered_map<std::string, std::string> kEltwise = {
      {"Relu", "relu"}, {"Sigmoid", "sigmoid"}, {"Tanh", "tanh"}, {"Exp", "exp"},
      {"Log", "log"},   {"Sqrt", "sqrt"},       {"Abs", "abs"},   {"HardSwish", "hardswish"}};
  const std::string& out = node.output(0);
  ctx.set_activation(
      out, ctx.emit1("Eltwise", {ctx.activation_input(0)}, {{"alg", kEltwise.at(node.op_type())}}, out));
}
void import_leaky_relu(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& out = node.output(0);
  ctx.set_activation(
      out, ctx.emit1("Eltwise", {ctx.activation_input(0)},
                     {{"alg", "leaky_relu"}, {"alpha", attribute_float(node, "alpha", 0.01F)}}, out));
}
void import_hard_sigmoid(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& out = node.output(0);
  ctx.set_activation(out, ctx.emit1("Eltwise", {ctx.activation_input(0)},
                                    {{"alg", "hardsigmoid"},
                                     {"alpha", attribute_float(node, "alpha", 0.2F)},
                                     {"beta", attribute_float(node, "beta", 0.5F)}},
                                    out));
}
void import_neg(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& out = node.output(0);
  ctx.set_activation(out, ctx.emit1("Eltwise", {ctx.activation_input(0)},
                                    {{"alg", "linear"}, {"alpha", -1.0}, {"beta", 0.0}}, out));
}
void import_clip(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  // Explicit widening: clang's -Wdouble-promotion (the fuzz build) also flags initializations.
  double low = static_cast<double>(-std::numeric_limits<float>::max());
  double high = static_cast<double>(std::numeric_limits<float>::max());
  if (ctx.opset() < 11) {
    low = static_cast<double>(attribute_float(node, "min", static_cast<float>(low)));
    high = static_cast<double>(attribute_float(node, "max", static_cast<float>(high)));
  } else {
    if (const Constant* c = ctx.const_input(1); c != nullptr && !c->values.empty()) low = c->values[0];
    if (const Constant* c = ctx.const_input(2); c != nullptr && !c->values.empty()) high = c->values[0];
  }
  ctx.set_activation(node.output(0),
                     ctx.emit1("Eltwise", {ctx.activation_input(0)},
                               {{"alg", "clip"}, {"alpha", low}, {"beta", high}}, node.output(0)));
}
void import_pow(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const int x = ctx.activation_input(0);
  const Constant* e = ctx.constant_of(node.input(1));
  if (e == nullptr || e->values.size() != 1) {
    // A tensor exponent (or a constant one of several values): elementwise with broadcasting.
    ctx.set_activation(node.output(0), ctx.emit1("Binary", {x, ctx.tensor_of(node.input(1))},
                                                 {{"alg", "pow"}}, node.output(0)));
    return;
  }
  const double exponent = e->values[0];
  const std::string& out = node.output(0);
  if (exponent == 1.0) {
    ctx.set_activation(out, x);
  } else if (exponent == 2.0) {
    ctx.set_activation(out, ctx.emit1("Eltwise", {x}, {{"alg", "square"}}, out));
  } else {
    ctx.set_activation(out,
                       ctx.emit1("Eltwise", {x}, {{"alg", "pow"}, {"alpha", 1.0}, {"beta", exponent}}, out));
  }
}

// ---- shapes ----
std::vector<Shape> eltwise_shapes(const ir::Graph& graph, const ir::Node& node) {
  return {input_shape(graph, node, 0)};
}

// ---- reference ----
float logistic(float x) { return 1.0F / (1.0F + std::exp(-x)); }

}  // namespace

float eltwise_reference(const std::string& alg, float x, float alpha, float beta, const ir::Node& node) {
  if (alg == "relu") return x > 0.0F ? x : 0.0F;
  if (alg == "leaky_relu") return x > 0.0F ? x : alpha * x;
  if (alg == "sigmoid") return logistic(x);
  if (alg == "swish") return x * logistic(alpha * x);
  if (alg == "tanh") return std::tanh(x);
  if (alg == "exp") return std::exp(x);
  if (alg == "log") return std::log(x);
  if (alg == "sqrt") return std::sqrt(x);
  if (alg == "square") return x * x;
  if (alg == "abs") return std::fabs(x);
  if (alg == "clip") return std::min(std::max(x, alpha), beta);
  if (alg == "pow") return alpha * std::pow(x, beta);
  if (alg == "linear") return alpha * x + beta;
  if (alg == "hardswish") return x * std::min(std::max(x + 3.0F, 0.0F), 6.0F) / 6.0F;
  if (alg == "hardsigmoid") return std::min(std::max(alpha * x + beta, 0.0F), 1.0F);
  fail("node '{}': unknown eltwise alg '{}'", node.name, alg);
}

namespace {

void eltwise_reference_op(ReferenceContext& ctx, const ir::Node& node) {
  const auto& x = ctx.in(node, 0);
  const auto alg = node.attrs.at("alg").get<std::string>();
  const float alpha = node.attrs.value("alpha", 0.0F);
  const float beta = node.attrs.value("beta", 0.0F);
  auto& y = ctx.out(node, 0);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = eltwise_reference(alg, x[i], alpha, beta, node);
}

// ---- lowering ----
algorithm eltwise_algorithm(const std::string& alg) {
  if (alg == "relu") return algorithm::eltwise_relu;
  if (alg == "leaky_relu") return algorithm::eltwise_relu;
  if (alg == "sigmoid") return algorithm::eltwise_logistic;
  if (alg == "swish") return algorithm::eltwise_swish;
  if (alg == "tanh") return algorithm::eltwise_tanh;
  if (alg == "exp") return algorithm::eltwise_exp;
  if (alg == "log") return algorithm::eltwise_log;
  if (alg == "sqrt") return algorithm::eltwise_sqrt;
  if (alg == "square") return algorithm::eltwise_square;
  if (alg == "abs") return algorithm::eltwise_abs;
  if (alg == "clip") return algorithm::eltwise_clip;
  if (alg == "pow") return algorithm::eltwise_pow;
  if (alg == "linear") return algorithm::eltwise_linear;
  if (alg == "hardswish") return algorithm::eltwise_hardswish;
  fail("eltwise algorithm '{}' is not supported", alg);
}
void add_eltwise(Lowering& l, int src, int dst, algorithm alg, float alpha, float beta) {
  const dnnl::eltwise_forward::desc desc(prop_kind::forward_inference, alg, l.value(src).md, alpha, beta);
  const dnnl::eltwise_forward::primitive_desc pd(desc, l.plain_attr(), l.engine());
  l.add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
}
void lower_eltwise(Lowering& l, const ir::Node& node) {
  const std::string alg_name = node.attrs.at("alg").get<std::string>();
  const float alpha = node.attrs.value("alpha", alg_name == "swish" ? 1.0F : 0.0F);
  const float beta = node.attrs.value("beta", 0.0F);
  const int x = node.inputs.at(0);
  const int y = node.outputs.at(0);
  if (alg_name == "hardsigmoid") {  // oneDNN 2.6 has no hardsigmoid: clip(alpha * x + beta, 0, 1)
    const int src = l.float_value(x);
    const memory::desc md = l.value(src).md;
    const int middle = l.add_value(md);
    add_eltwise(l, src, middle, algorithm::eltwise_linear, alpha, beta);
    add_eltwise(l, middle, l.define_output(y, md), algorithm::eltwise_clip, 0.0F, 1.0F);
    return;
  }
  if (alg_name == "log") {
    // oneDNN 2.6's eltwise_log is an approximation off by ~1.4e-6 absolute near log(1) = 0, outside the ONNX
    // tolerance (node/test_log_example); logarithms only appear in heads, so std::log costs nothing.
    const int src = l.plain_value(x);
    const int dst = l.define_output(y, plain_md(l.shape(y)));
    const auto count = static_cast<std::size_t>(shape_volume(l.shape(y)));
    l.add_kernel(
        [count](const std::vector<void*>& data) {
          const auto* in = static_cast<const float*>(data[0]);
          auto* out = static_cast<float*>(data[1]);
          for (std::size_t i = 0; i < count; ++i) out[i] = std::log(in[i]);
        },
        {src, dst});
    return;
  }
  const algorithm alg = eltwise_algorithm(alg_name);
  const int src = l.float_value(x);
  add_eltwise(l, src, l.define_output(y, l.value(src).md), alg, alpha, beta);
}

}  // namespace

void register_eltwise(Registry& registry) {
  registry.add({"Eltwise", eltwise_shapes, eltwise_reference_op, lower_eltwise});
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "HardSwish"})
    registry.add_onnx(op, import_eltwise_op);
  registry.add_onnx("LeakyRelu", import_leaky_relu);
  registry.add_onnx("HardSigmoid", import_hard_sigmoid);
  registry.add_onnx("Neg", import_neg);
  registry.add_onnx("Clip", import_clip);
  registry.add_onnx("Pow", import_pow);
}

}  // namespace vapipe::ops
