// MatMul: matrix products over the last two dimensions, the leading (batch) dimensions broadcast numpy-style,
// with an optional bias broadcast to the output; ONNX MatMul (1-D operands through reshapes) and Gemm (alpha,
// beta, transA, transB and C folded into constants where they are constant) import to it. Lowered to oneDNN's
// matmul with constant weights packed once per package; a plain kernel where oneDNN has no implementation.
#include <algorithm>

#include "ops/family.hpp"

namespace vapipe::ops {
namespace {

using namespace family;  // NOLINT(google-build-using-namespace): the family vocabulary

// ---- import ----
// Input `i` with shape `target` (same volume): a reshaped constant tensor, or a Reshape of the activation.
int operand_as(ImportContext& ctx, int i, const Shape& target, const std::string& suffix) {
  const std::string& name = ctx.node().input(i);
  if (const Constant* c = ctx.constant_of(name)) {
    if (c->shape == target) return ctx.tensor_of(name);
    return ctx.constant_tensor(name + suffix, target, std::vector<float>(c->values.begin(), c->values.end()));
  }
  return ctx.emit_reshape(ctx.tensor_of(name), target, ctx.output() + suffix);
}

Shape shape_of_input(ImportContext& ctx, int i) {
  if (const Constant* c = ctx.constant_of(ctx.node().input(i))) return c->shape;
  return ctx.shape_of(ctx.tensor_of(ctx.node().input(i)));
}

void import_matmul(ImportContext& ctx) {
  const std::string& out = ctx.output();
  const Shape a_shape = shape_of_input(ctx, 0);
  const Shape b_shape = shape_of_input(ctx, 1);
  if (a_shape.empty() || b_shape.empty()) ctx.unsupported("a scalar operand");
  // numpy.matmul: a 1-D A is a row [1, K], a 1-D B a column [K, 1]; the inserted dimension is dropped again.
  const bool a_vector = a_shape.size() == 1;
  const bool b_vector = b_shape.size() == 1;
  const int a = operand_as(ctx, 0, a_vector ? Shape{1, a_shape[0]} : a_shape, "/matmul_a");
  const int b = operand_as(ctx, 1, b_vector ? Shape{b_shape[0], 1} : b_shape, "/matmul_b");
  if (!a_vector && !b_vector) {
    ctx.set_activation(out, ctx.emit1("MatMul", {a, b}, json::object(), out));
    return;
  }
  const int product = ctx.emit1("MatMul", {a, b}, json::object(), out + "/matmul");
  Shape target = ctx.shape_of(product);
  if (b_vector) target.pop_back();
  if (a_vector) target.erase(target.end() - (b_vector ? 1 : 2));
  ctx.set_activation(out, ctx.emit_reshape(product, target, out));
}

// A constant matrix's values (rows x cols, row-major) transposed.
std::vector<float> transposed(const Constant& c) {
  const auto rows = static_cast<std::size_t>(c.shape[0]);
  const auto cols = static_cast<std::size_t>(c.shape[1]);
  std::vector<float> values(rows * cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t k = 0; k < cols; ++k) values[k * rows + r] = static_cast<float>(c.values[r * cols + k]);
  }
  return values;
}

// Gemm operand i (2-D), transposed when `transpose`; a constant's values also scaled by `scale`.
int gemm_operand(ImportContext& ctx, int i, bool transpose, double scale) {
  const std::string& name = ctx.node().input(i);
  const Constant* c = ctx.constant_of(name);
  if (c == nullptr) {
    const int x = ctx.tensor_of(name);
    if (!transpose) return x;
    return ctx.emit1("Transpose", {x}, {{"perm", {1, 0}}}, ctx.output() + (i == 0 ? "/gemm_at" : "/gemm_bt"));
  }
  if (!transpose && scale == 1.0) return ctx.tensor_of(name);
  std::vector<float> values =
      transpose ? transposed(*c) : std::vector<float>(c->values.begin(), c->values.end());
  for (auto& v : values) v = static_cast<float>(static_cast<double>(v) * scale);
  const Shape shape = transpose ? Shape{c->shape[1], c->shape[0]} : c->shape;
  return ctx.constant_tensor(name + (i == 0 ? "/gemm_a" : "/gemm_b"), shape, std::move(values));
}

// Y = alpha * A' * B' + beta * C with A' = transA ? A^T : A (likewise B'), C broadcast to [M, N].
void import_gemm(ImportContext& ctx) {
  const onnx::NodeProto& node = ctx.node();
  const std::string& out = ctx.output();
  const Shape a_shape = shape_of_input(ctx, 0);
  const Shape b_shape = shape_of_input(ctx, 1);
  if (a_shape.size() != 2 || b_shape.size() != 2)
    ctx.unsupported(fmt::format("A and B must be 2-D, got {} and {}", shape_to_string(a_shape),
                                shape_to_string(b_shape)));
  const bool trans_a = attribute_int(node, "transA", 0) != 0;
  const bool trans_b = attribute_int(node, "transB", 0) != 0;
  const auto alpha = static_cast<double>(attribute_float(node, "alpha", 1.0F));
  const auto beta = static_cast<double>(attribute_float(node, "beta", 1.0F));
  const std::int64_t m = trans_a ? a_shape[1] : a_shape[0];
  const std::int64_t n = trans_b ? b_shape[0] : b_shape[1];
  // alpha goes into a constant B (the weights of every real model), otherwise into an Eltwise after.
  const bool b_constant = ctx.constant_of(node.input(1)) != nullptr;
  const int a = gemm_operand(ctx, 0, trans_a, 1.0);
  const int b = gemm_operand(ctx, 1, trans_b, b_constant ? alpha : 1.0);
  const bool scale_after = !b_constant && alpha != 1.0;

  int bias = -1;         // beta * C as the matmul's bias (a constant C)
  int added_after = -1;  // beta * C added after the product (an activation C, or alpha applied after)
  if (ctx.has_input(2) && beta != 0.0) {
    const Shape c_shape = shape_of_input(ctx, 2);
    const Shape output{m, n};
    if (c_shape.size() > 2 || (c_shape.size() == 2 && (c_shape[0] != 1 && c_shape[0] != m)) ||
        (!c_shape.empty() && c_shape.back() != 1 && c_shape.back() != n)) {
      ctx.unsupported(fmt::format("C of shape {} does not broadcast to the output {}",
                                  shape_to_string(c_shape), shape_to_string(output)));
    }
    const Shape c2 = padded_to_rank(c_shape, 2);
    if (const Constant* c = ctx.constant_of(node.input(2))) {
      std::vector<float> values(c->values.size());
      for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(c->values[i] * beta);
      const int scaled = ctx.constant_tensor(node.input(2) + "/gemm_c", c2, std::move(values));
      (scale_after ? added_after : bias) = scaled;
    } else {
      added_after = operand_as(ctx, 2, c2, "/gemm_c");
      if (beta != 1.0)
        added_after = ctx.emit1("Eltwise", {added_after}, {{"alg", "linear"}, {"alpha", beta}, {"beta", 0.0}},
                                out + "/gemm_beta_c");
    }
  }
  const bool last = !scale_after && added_after < 0;
  std::vector<int> inputs{a, b};
  if (bias >= 0) inputs.push_back(bias);
  int y = ctx.emit1("MatMul", inputs, json::object(), last ? out : out + "/gemm");
  if (scale_after) {
    y = ctx.emit1("Eltwise", {y}, {{"alg", "linear"}, {"alpha", alpha}, {"beta", 0.0}},
                  added_after < 0 ? out : out + "/gemm_alpha");
  }
  if (added_after >= 0) y = ctx.emit1("Binary", {y, added_after}, {{"alg", "add"}}, out);
  ctx.set_activation(out, y);
}

// ---- shapes ----
bool has_bias(const ir::Node& node) { return node.inputs.size() > 2 && node.inputs[2] >= 0; }

std::vector<Shape> matmul_shapes(const ir::Graph& graph, const ir::Node& node) {
  const Shape& a = input_shape(graph, node, 0);
  const Shape& b = input_shape(graph, node, 1);
  if (a.size() < 2 || b.size() < 2 || a.back() != b[b.size() - 2]) {
    fail(
        "node '{}' (MatMul): operands {} and {} do not multiply (both need rank >= 2, A's last dimension "
        "equal to B's second last)",
        node.name, shape_to_string(a), shape_to_string(b));
  }
  Shape out = broadcast_shapes(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2),
                               fmt::format("node '{}' (MatMul) batch dimensions", node.name));
  out.push_back(a[a.size() - 2]);
  out.push_back(b.back());
  if (has_bias(node)) {
    const Shape& bias = input_shape(graph, node, 2);
    if (bias.size() > out.size() ||
        broadcast_shapes(out, bias, fmt::format("node '{}' (MatMul) bias", node.name)) != out) {
      fail("node '{}' (MatMul): bias {} does not broadcast to the output {}", node.name,
           shape_to_string(bias), shape_to_string(out));
    }
  }
  return {out};
}

// ---- reference (Acc double) and plain kernel (Acc float) ----
template <typename Acc>
void matmul_plain(const float* a, const Shape& a_shape, const float* b, const Shape& b_shape,
                  const float* bias, const Shape& bias_shape, float* y, const Shape& y_shape) {
  const std::size_t rank = y_shape.size();
  const std::int64_t m = y_shape[rank - 2], n = y_shape[rank - 1], k = a_shape.back();
  const Shape batch(y_shape.begin(), y_shape.end() - 2);
  // Batch strides in whole matrices: the operands' leading dimensions broadcast to the output's.
  const auto a_strides = broadcast_strides(Shape(a_shape.begin(), a_shape.end() - 2), batch.size());
  const auto b_strides = broadcast_strides(Shape(b_shape.begin(), b_shape.end() - 2), batch.size());
  const auto bias_strides = broadcast_strides(bias_shape, rank);
  for_each_index(batch, [&](std::size_t index, const std::vector<std::int64_t>& batch_coord) {
    std::int64_t a_matrix = 0, b_matrix = 0, bias_base = 0;
    for (std::size_t d = 0; d < batch.size(); ++d) {
      a_matrix += batch_coord[d] * a_strides[d];
      b_matrix += batch_coord[d] * b_strides[d];
      bias_base += batch_coord[d] * bias_strides[d];
    }
    const float* ap = a + a_matrix * m * k;
    const float* bp = b + b_matrix * k * n;
    float* yp = y + static_cast<std::int64_t>(index) * m * n;
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        Acc total = 0;
        for (std::int64_t p = 0; p < k; ++p)
          total += static_cast<Acc>(ap[i * k + p]) * static_cast<Acc>(bp[p * n + j]);
        if (bias != nullptr)
          total +=
              static_cast<Acc>(bias[bias_base + i * bias_strides[rank - 2] + j * bias_strides[rank - 1]]);
        yp[i * n + j] = static_cast<float>(total);
      }
    }
  });
}

void matmul_reference(ReferenceContext& ctx, const ir::Node& node) {
  const bool biased = has_bias(node);
  matmul_plain<double>(ctx.in(node, 0).data(), ctx.in_shape(node, 0), ctx.in(node, 1).data(),
                       ctx.in_shape(node, 1), biased ? ctx.in(node, 2).data() : nullptr,
                       biased ? ctx.in_shape(node, 2) : Shape{}, ctx.out(node, 0).data(),
                       ctx.out_shape(node, 0));
}

// ---- lowering ----
void lower_matmul(Lowering& l, const ir::Node& node) {
  const int a = node.inputs.at(0);
  const int b = node.inputs.at(1);
  const int bias = has_bias(node) ? node.inputs[2] : -1;
  const int y = node.outputs.at(0);
  const Shape y_shape = l.shape(y);
  const std::size_t rank = y_shape.size();
  const Shape a_shape = padded_to_rank(l.shape(a), rank);
  const Shape b_shape = padded_to_rank(l.shape(b), rank);
  const Shape bias_shape = bias >= 0 ? padded_to_rank(l.shape(bias), rank) : Shape{};
  const int src = l.plain_view(l.plain_value(a), a_shape);
  const int stored_weights = l.plain_view(l.plain_value(b), b_shape);
  const bool constant_weights = l.value(stored_weights).constant != nullptr;
  const int bias_value = bias >= 0 ? l.plain_view(l.plain_value(bias), bias_shape) : -1;
  const int dst = l.define_output(y, plain_md(y_shape));
  try {
    // Constant weights in the layout the kernel likes, reordered once at load (shared between stages).
    const memory::desc weights_md = constant_weights
                                        ? memory::desc(Dims(b_shape.begin(), b_shape.end()), kF32, Tag::any)
                                        : l.value(stored_weights).md;
    const dnnl::matmul::desc desc(l.value(src).md, weights_md,
                                  bias_value >= 0 ? l.value(bias_value).md : memory::desc(), l.value(dst).md);
    const dnnl::matmul::primitive_desc pd(desc, l.plain_attr(), l.engine());
    int weights = stored_weights;
    if (pd.weights_desc() != l.value(stored_weights).md) {
      if (const auto found = l.converted(b, pd.weights_desc())) {
        weights = *found;
      } else {
        weights = l.add_value(pd.weights_desc());
        l.pack_constant(stored_weights, weights);
        l.remember(b, weights);
      }
    }
    std::vector<std::pair<int, int>> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (bias_value >= 0) args.emplace_back(DNNL_ARG_BIAS, bias_value);
    l.add_primitive(pd, std::move(args));
    return;
  } catch (const dnnl::error&) {
    // No oneDNN implementation for this broadcast: the plain kernel below.
  }
  std::vector<int> values{src, stored_weights, dst};
  if (bias_value >= 0) values.push_back(bias_value);
  l.add_kernel(
      [=](const std::vector<void*>& data) {
        matmul_plain<float>(static_cast<const float*>(data[0]), a_shape, static_cast<const float*>(data[1]),
                            b_shape, data.size() > 3 ? static_cast<const float*>(data[3]) : nullptr,
                            bias_shape, static_cast<float*>(data[2]), y_shape);
      },
      values);
}

}  // namespace

void register_matmul(Registry& registry) {
  registry.add({"MatMul", matmul_shapes, matmul_reference, lower_matmul});
  registry.add_onnx("MatMul", import_matmul);
  registry.add_onnx("Gemm", import_gemm);
}

}  // namespace vapipe::ops
