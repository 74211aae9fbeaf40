#include "compiler/onnx_importer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include <onnx/defs/schema.h>

#include "compiler/constant_folding.hpp"
#include "core/error.hpp"
#include "core/shape_inference.hpp"

namespace vapipe::compiler {
namespace {

using nlohmann::json;

// An error already phrased with file, node, op and opset; the node loop passes it through unchanged.
class NodeError : public Error {
 public:
  using Error::Error;
};

// An ONNX value during import: either an activation (an IR tensor) or a compile-time constant.
struct Value {
  int tensor = -1;
  std::optional<Constant> constant;
  bool is_constant() const { return constant.has_value(); }
};

bool is_float_type(std::int64_t type) {
  return type == onnx::TensorProto_DataType_FLOAT || type == onnx::TensorProto_DataType_FLOAT16 ||
         type == onnx::TensorProto_DataType_DOUBLE || type == onnx::TensorProto_DataType_BFLOAT16;
}

std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, const std::string& where) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) fail("{}: axis {} out of range for rank {}", where, axis, rank);
  return axis;
}

class Importer {
 public:
  Importer(const OnnxModel& model, const ImportRequest& request) : model_(model), request_(request) {}

  ir::Graph run() {
    const auto& graph = model_.proto.graph();
    for (const auto& initializer : graph.initializer()) {
      values_[initializer.name()].constant =
          read_tensor(initializer, model_.label + ": initializer '" + initializer.name() + "'");
    }
    add_inputs();
    const auto needed = needed_nodes();
    for (int i = 0; i < graph.node_size(); ++i) {
      if (!needed[static_cast<std::size_t>(i)]) continue;
      const auto& node = graph.node(i);
      node_ = &node;
      node_name_ = node.name().empty() ? fmt::format("{}_{}", node.op_type(), i) : node.name();
      try {
        import_node(node);
      } catch (const NodeError&) {
        throw;
      } catch (const Error& error) {
        fail("{}: node '{}' (op {}, opset {}): {}", model_.label, node_name_, node.op_type(), model_.opset,
             error.what());
      }
    }
    for (const auto& name : output_names()) {
      const Value& value = lookup(name);
      if (value.is_constant()) fail("{}: graph output '{}' is a constant", model_.label, name);
      int index = value.tensor;
      auto& tensor = graph_.tensors[static_cast<std::size_t>(index)];
      const bool is_input =
          std::find(graph_.inputs.begin(), graph_.inputs.end(), index) != graph_.inputs.end();
      // Identity/Cast chains alias tensors; the output keeps the name the model gives it.
      if (!is_input && !graph_.find_tensor(name)) tensor.name = name;
      graph_.outputs.push_back(index);
    }
    return std::move(graph_);
  }

 private:
  // ---- setup ----
  void add_inputs() {
    const auto& graph = model_.proto.graph();
    for (const auto& input : graph.input()) {
      if (values_.count(input.name()) != 0) continue;  // an initializer listed as input (IR version < 4)
      const std::string where = fmt::format("{}: input '{}'", model_.label, input.name());
      if (!input.type().has_tensor_type()) fail("{} is not a tensor", where);
      const auto& type = input.type().tensor_type();
      if (!is_float_type(type.elem_type()))
        fail("{} has element type {}; only float inputs are supported", where, type.elem_type());
      Shape shape;
      for (const auto& dim : type.shape().dim()) shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
      if (shape.empty()) fail("{} has no shape", where);
      export_batch_ = shape[0] > 0 ? shape[0] : 1;
      if (request_.batch % export_batch_ != 0) {
        fail("{}: batch {} is not a multiple of the exported batch {}", where, request_.batch, export_batch_);
      }
      batch_factor_ = request_.batch / export_batch_;
      shape[0] = request_.batch;
      if (request_.input_size && shape.size() == 4) {
        shape[2] = request_.input_size->second;
        shape[3] = request_.input_size->first;
      }
      for (auto d : shape) {
        if (d <= 0) fail("{} has a dynamic dimension ({}); give --input-size", where, shape_to_string(shape));
      }
      const int index = graph_.add_tensor({input.name(), DType::kF32, shape, std::nullopt});
      graph_.inputs.push_back(index);
      values_[input.name()].tensor = index;
    }
    if (graph_.inputs.empty()) fail("{}: the graph has no inputs", model_.label);
  }

  std::vector<std::string> output_names() const {
    if (!request_.outputs.empty()) return request_.outputs;
    std::vector<std::string> names;
    for (const auto& output : model_.proto.graph().output()) names.push_back(output.name());
    return names;
  }

  // Nodes the requested outputs depend on (all of them for the model's own outputs, fewer for a cut).
  std::vector<bool> needed_nodes() const {
    const auto& graph = model_.proto.graph();
    std::vector<bool> needed(static_cast<std::size_t>(graph.node_size()), false);
    walk_producers(graph, producer_index(graph), output_names(), [&](int node, const std::string&) {
      needed[static_cast<std::size_t>(node)] = true;
      return true;
    });
    return needed;
  }

  // ---- helpers ----
  const Value& lookup(const std::string& name) const {
    const auto found = values_.find(name);
    if (found == values_.end()) fail("{}: tensor '{}' is used before it is produced", model_.label, name);
    return found->second;
  }

  [[noreturn]] void unsupported(const std::string& detail = "") const {
    if (detail.empty()) {
      throw NodeError(fmt::format("{}: node '{}' (op {}, opset {}) is not supported", model_.label,
                                  node_name_, node_->op_type(), model_.opset));
    }
    throw NodeError(fmt::format("{}: node '{}' (op {}, opset {}) is not supported: {}", model_.label,
                                node_name_, node_->op_type(), model_.opset, detail));
  }

  // By value: emitting nodes grows graph_.tensors, which would leave a reference dangling.
  Shape shape_of(int tensor) const { return graph_.tensors.at(static_cast<std::size_t>(tensor)).shape; }

  // The IR tensor of a value; constants become f32 constant tensors (once per ONNX name).
  int tensor_of(const std::string& name) {
    const Value& value = lookup(name);
    if (!value.is_constant()) return value.tensor;
    if (const auto found = materialized_.find(name); found != materialized_.end()) return found->second;
    const Constant& c = *value.constant;
    std::vector<float> data(c.values.begin(), c.values.end());
    const int index =
        graph_.add_tensor({name, DType::kF32, c.shape, ir::ConstBytes::from_vector(std::move(data))});
    materialized_[name] = index;
    return index;
  }

  int constant_tensor(const std::string& name, Shape shape, std::vector<float> data) {
    return graph_.add_tensor(
        {name, DType::kF32, std::move(shape), ir::ConstBytes::from_vector(std::move(data))});
  }

  // Appends one IR node named after the ONNX node; output shapes come from ir::infer_node_shapes.
  std::vector<int> emit(const std::string& op, std::vector<int> inputs, json attrs,
                        const std::vector<std::string>& output_names) {
    ir::Node node{node_name_, op, std::move(inputs), {}, std::move(attrs)};
    const auto shapes = ir::infer_node_shapes(graph_, node);
    if (shapes.size() != output_names.size()) fail("internal: {} produces {} outputs", op, shapes.size());
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      for (auto d : shapes[i]) {
        if (d <= 0) fail("{} output {} has an empty shape {}", op, i, shape_to_string(shapes[i]));
      }
      node.outputs.push_back(graph_.add_tensor({output_names[i], DType::kF32, shapes[i], std::nullopt}));
    }
    graph_.nodes.push_back(std::move(node));
    return graph_.nodes.back().outputs;
  }

  int emit1(const std::string& op, std::vector<int> inputs, json attrs, const std::string& output_name) {
    return emit(op, std::move(inputs), std::move(attrs), {output_name})[0];
  }

  int emit_reshape(int x, Shape target, const std::string& output_name) {
    if (shape_of(x) == target) return x;
    return emit1("Reshape", {x}, {{"shape", target}}, output_name);
  }

  void set_activation(const std::string& name, int tensor) { values_[name] = Value{tensor, std::nullopt}; }

  const Constant* const_input(const onnx::NodeProto& node, int i) const {
    if (i >= node.input_size() || node.input(i).empty()) return nullptr;
    const Value& v = lookup(node.input(i));
    if (!v.is_constant()) unsupported(fmt::format("input {} must be a constant", i));
    return &*v.constant;
  }

  int activation_input(const onnx::NodeProto& node, int i) {
    if (i >= node.input_size() || node.input(i).empty()) fail("input {} missing", i);
    return tensor_of(node.input(i));
  }

  // ---- the node dispatcher ----
  void import_node(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    if (!node.domain().empty() && node.domain() != "ai.onnx")
      unsupported("custom domain '" + node.domain() + "'");
    // The lowering reads inputs and outputs by position; a node with fewer than its op's schema requires
    // (a damaged or hand-made file) is refused here rather than read past the end (found by fuzzing).
    if (const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(op, static_cast<int>(model_.opset), "");
        schema != nullptr &&
        (node.input_size() < schema->min_input() || node.output_size() < schema->min_output()))
      fail("{} inputs and {} outputs, the op needs at least {} and {}", node.input_size(), node.output_size(),
           schema->min_input(), schema->min_output());
    if (op == "Constant") {
      import_constant(node);
      return;
    }
    std::vector<std::optional<Constant>> constants;
    bool all_constant = true;
    for (const auto& input : node.input()) {
      if (input.empty()) {
        constants.emplace_back();
        continue;
      }
      const Value& value = lookup(input);
      if (!value.is_constant()) all_constant = false;
      constants.push_back(value.constant);
    }
    if (op == "Shape" || op == "Size") {
      // Shapes are static, so Shape always folds.
      const Value& value = lookup(node.input(0));
      Constant probe{value.is_constant() ? value.constant->shape : shape_of(value.tensor), {}, false};
      probe.values.assign(static_cast<std::size_t>(std::max<std::int64_t>(shape_volume(probe.shape), 0)),
                          0.0);
      const auto folded = fold_onnx_node(node, {probe}, model_.opset);
      values_[node.output(0)].constant = folded->at(0);
      return;
    }
    if (all_constant && node.input_size() > 0) {
      if (auto folded = fold_onnx_node(node, constants, model_.opset)) {
        for (std::size_t i = 0; i < folded->size() && i < static_cast<std::size_t>(node.output_size()); ++i) {
          values_[node.output(static_cast<int>(i))] = Value{-1, std::move((*folded)[i])};
        }
        return;
      }
    }
    const std::size_t first_node = graph_.nodes.size();
    lower(node);
    if (all_constant && node.input_size() > 0) fold_lowered(node, first_node);
  }

  // The node's inputs were all constants: run what it lowered to and keep the values instead.
  void fold_lowered(const onnx::NodeProto& node, std::size_t first_node) {
    std::vector<int> outputs;
    for (const auto& name : node.output()) {
      if (!name.empty()) outputs.push_back(lookup(name).tensor);
    }
    const auto results = fold_ir_nodes(graph_, first_node, outputs);
    graph_.nodes.resize(first_node);
    std::size_t k = 0;
    for (const auto& name : node.output()) {
      if (name.empty()) continue;
      const auto& tensor = graph_.tensors[static_cast<std::size_t>(outputs[k])];
      Constant c{tensor.shape, std::vector<double>(results[k].begin(), results[k].end()), false};
      values_[name] = Value{-1, std::move(c)};
      ++k;
    }
  }

  void import_constant(const onnx::NodeProto& node) {
    if (node.output_size() != 1) unsupported("expected one output");
    Constant c;
    if (const auto* attr = find_attribute(node, "value"); attr != nullptr && attr->has_t()) {
      c = read_tensor(attr->t(), "value");
    } else if (const auto* f = find_attribute(node, "value_float")) {
      c = {{}, {static_cast<double>(f->f())}, false};
    } else if (const auto* fs = find_attribute(node, "value_floats")) {
      c = {{fs->floats_size()}, std::vector<double>(fs->floats().begin(), fs->floats().end()), false};
    } else if (const auto* i = find_attribute(node, "value_int")) {
      c = {{}, {static_cast<double>(i->i())}, true};
    } else if (const auto* is = find_attribute(node, "value_ints")) {
      c = {{is->ints_size()}, {}, true};
      for (auto v : is->ints()) c.values.push_back(static_cast<double>(v));
    } else {
      unsupported("only tensor, float(s) and int(s) values");
    }
    values_[node.output(0)] = Value{-1, std::move(c)};
  }

  void lower(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    static const std::unordered_map<std::string, std::string> kEltwise = {
        {"Relu", "relu"}, {"Sigmoid", "sigmoid"}, {"Tanh", "tanh"}, {"Exp", "exp"},
        {"Log", "log"},   {"Sqrt", "sqrt"},       {"Abs", "abs"},   {"HardSwish", "hardswish"}};
    if (node.output_size() < 1) unsupported("no outputs");
    const std::string& out = node.output(0);
    if (op == "Conv") return lower_conv(node);
    if (op == "BatchNormalization") return lower_batch_norm(node);
    if (const auto it = kEltwise.find(op); it != kEltwise.end()) {
      set_activation(out, emit1("Eltwise", {activation_input(node, 0)}, {{"alg", it->second}}, out));
      return;
    }
    if (op == "LeakyRelu") {
      set_activation(out,
                     emit1("Eltwise", {activation_input(node, 0)},
                           {{"alg", "leaky_relu"}, {"alpha", attribute_float(node, "alpha", 0.01F)}}, out));
      return;
    }
    if (op == "HardSigmoid") {
      set_activation(out, emit1("Eltwise", {activation_input(node, 0)},
                                {{"alg", "hardsigmoid"},
                                 {"alpha", attribute_float(node, "alpha", 0.2F)},
                                 {"beta", attribute_float(node, "beta", 0.5F)}},
                                out));
      return;
    }
    if (op == "Neg") {
      set_activation(out, emit1("Eltwise", {activation_input(node, 0)},
                                {{"alg", "linear"}, {"alpha", -1.0}, {"beta", 0.0}}, out));
      return;
    }
    if (op == "Clip") return lower_clip(node);
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Max" || op == "Min")
      return lower_binary(node);
    if (op == "Pow") return lower_pow(node);
    if (op == "Concat") return lower_concat(node);
    if (op == "Split") return lower_split(node);
    if (op == "Slice") return lower_slice(node);
    if (op == "Resize" || op == "Upsample") return lower_resize(node);
    if (op == "MaxPool" || op == "AveragePool") return lower_pool(node);
    if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
      const int x = activation_input(node, 0);
      const Shape& s = shape_of(x);
      if (s.size() != 4) unsupported("only 4-D inputs");
      json attrs = {{"kernel", {s[2], s[3]}}, {"strides", {1, 1}}, {"pads", {0, 0, 0, 0}}};
      if (op == "GlobalAveragePool") attrs["count_include_pad"] = 0;
      set_activation(out, emit1(op == "GlobalAveragePool" ? "AveragePool" : "MaxPool", {x}, attrs, out));
      return;
    }
    if (op == "Reshape") return lower_reshape(node);
    if (op == "Flatten" || op == "Squeeze" || op == "Unsqueeze") return lower_shape_change(node);
    if (op == "Transpose") {
      const int x = activation_input(node, 0);
      const std::size_t rank = shape_of(x).size();
      auto perm = attribute_ints(node, "perm").value_or(std::vector<std::int64_t>{});
      if (perm.empty())
        for (std::size_t d = rank; d-- > 0;) perm.push_back(static_cast<std::int64_t>(d));
      set_activation(out, emit1("Transpose", {x}, {{"perm", perm}}, out));
      return;
    }
    if (op == "Softmax") return lower_softmax(node);
    if (op == "Gather") return lower_gather(node);
    if (op == "Identity" || op == "Dropout") {
      if (op == "Dropout" && node.output_size() > 1 && !node.output(1).empty()) unsupported("mask output");
      values_[out] = lookup(node.input(0));
      return;
    }
    if (op == "Cast") {
      if (!is_float_type(attribute_int(node, "to", 1)))
        unsupported("cast of an activation to a non-float type");
      values_[out] = lookup(node.input(0));  // all activations are f32
      return;
    }
    unsupported();
  }

  std::vector<std::int64_t> spatial_attr(const onnx::NodeProto& node, const char* name, std::int64_t fallback,
                                         std::size_t count) {
    auto values = attribute_ints(node, name).value_or(std::vector<std::int64_t>(count, fallback));
    if (values.size() != count) unsupported(fmt::format("attribute '{}' must have {} values", name, count));
    return values;
  }

  // pads (top, left, bottom, right) from explicit pads or auto_pad.
  std::vector<std::int64_t> window_pads(const onnx::NodeProto& node, const Shape& x,
                                        const std::vector<std::int64_t>& kernel,
                                        const std::vector<std::int64_t>& strides,
                                        const std::vector<std::int64_t>& dilations) {
    const std::string auto_pad = attribute_string(node, "auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") return spatial_attr(node, "pads", 0, 4);
    if (auto_pad == "VALID") return {0, 0, 0, 0};
    if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") unsupported("auto_pad '" + auto_pad + "'");
    std::vector<std::int64_t> pads(4);
    for (std::size_t d = 0; d < 2; ++d) {
      const std::int64_t in = x[2 + d];
      const std::int64_t out = (in + strides[d] - 1) / strides[d];
      const std::int64_t total =
          std::max<std::int64_t>((out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - in, 0);
      const std::int64_t small = total / 2;
      pads[d] = auto_pad == "SAME_UPPER" ? small : total - small;
      pads[d + 2] = total - pads[d];
    }
    return pads;
  }

  void lower_conv(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Constant* w = const_input(node, 1);
    if (w == nullptr) unsupported("missing weights");
    if (shape_of(x).size() != 4 || w->shape.size() != 4) unsupported("only 2-D convolution (4-D tensors)");
    const auto strides = spatial_attr(node, "strides", 1, 2);
    const auto dilations = spatial_attr(node, "dilations", 1, 2);
    if (auto kernel = attribute_ints(node, "kernel_shape");
        kernel && *kernel != std::vector<std::int64_t>{w->shape[2], w->shape[3]}) {
      unsupported("kernel_shape does not match the weights");
    }
    const auto pads = window_pads(node, shape_of(x), {w->shape[2], w->shape[3]}, strides, dilations);
    std::vector<int> inputs{x, tensor_of(node.input(1)), -1};
    if (node.input_size() > 2 && !node.input(2).empty()) {
      if (const_input(node, 2) == nullptr) unsupported("missing bias");
      inputs[2] = tensor_of(node.input(2));
    }
    const json attrs = {{"strides", strides},
                        {"pads", pads},
                        {"dilations", dilations},
                        {"group", attribute_int(node, "group", 1)},
                        {"post_ops", json::array()}};
    set_activation(node.output(0), emit1("Conv", inputs, attrs, node.output(0)));
  }

  // y = x * a + b per channel; the fusion pass folds both into a preceding Conv.
  void lower_batch_norm(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Constant* scale = const_input(node, 1);
    const Constant* bias = const_input(node, 2);
    const Constant* mean = const_input(node, 3);
    const Constant* var = const_input(node, 4);
    if (scale == nullptr || bias == nullptr || mean == nullptr || var == nullptr)
      unsupported("missing parameters");
    if (node.output_size() > 1) unsupported("training outputs");
    const Shape& s = shape_of(x);
    if (s.size() < 2) unsupported("rank < 2");
    const auto channels = static_cast<std::size_t>(s[1]);
    if (scale->values.size() != channels || bias->values.size() != channels ||
        mean->values.size() != channels || var->values.size() != channels) {
      unsupported("parameter sizes do not match the channels");
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
    const int scale_tensor = constant_tensor(out + "/bn_scale", param_shape, std::move(a));
    const int shift_tensor = constant_tensor(out + "/bn_shift", param_shape, std::move(b));
    const int scaled = emit1("Binary", {x, scale_tensor}, {{"alg", "mul"}}, out + "/bn_scaled");
    set_activation(out, emit1("Binary", {scaled, shift_tensor}, {{"alg", "add"}}, out));
  }

  void lower_clip(const onnx::NodeProto& node) {
    // Explicit widening: clang's -Wdouble-promotion (the fuzz build) also flags initializations.
    double low = static_cast<double>(-std::numeric_limits<float>::max());
    double high = static_cast<double>(std::numeric_limits<float>::max());
    if (model_.opset < 11) {
      low = static_cast<double>(attribute_float(node, "min", static_cast<float>(low)));
      high = static_cast<double>(attribute_float(node, "max", static_cast<float>(high)));
    } else {
      if (const Constant* c = const_input(node, 1); c != nullptr && !c->values.empty()) low = c->values[0];
      if (const Constant* c = const_input(node, 2); c != nullptr && !c->values.empty()) high = c->values[0];
    }
    set_activation(node.output(0), emit1("Eltwise", {activation_input(node, 0)},
                                         {{"alg", "clip"}, {"alpha", low}, {"beta", high}}, node.output(0)));
  }

  void lower_binary(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    if (node.input_size() != 2) unsupported("expected two inputs");
    const Value& a = lookup(node.input(0));
    const Value& b = lookup(node.input(1));
    const std::string& out = node.output(0);
    std::string alg = op == "Add"   ? "add"
                      : op == "Sub" ? "sub"
                      : op == "Mul" ? "mul"
                      : op == "Div" ? "div"
                      : op == "Max" ? "max"
                                    : "min";
    // x (op) scalar constant, shape unchanged: an affine Eltwise, which fuses and runs in place.
    const bool a_scalar = a.is_constant() && a.constant->values.size() == 1 && !b.is_constant() &&
                          a.constant->shape.size() <= shape_of(b.tensor).size();
    const bool b_scalar = b.is_constant() && b.constant->values.size() == 1 && !a.is_constant() &&
                          b.constant->shape.size() <= shape_of(a.tensor).size();
    if ((a_scalar || b_scalar) && alg != "max" && alg != "min") {
      const double c = a_scalar ? a.constant->values[0] : b.constant->values[0];
      const int x = a_scalar ? b.tensor : a.tensor;
      std::optional<std::pair<double, double>> affine;
      if (alg == "add") affine = {{1.0, c}};
      if (alg == "mul") affine = {{c, 0.0}};
      if (alg == "sub") affine = b_scalar ? std::pair{1.0, -c} : std::pair{-1.0, c};
      if (alg == "div" && b_scalar && c != 0.0) affine = {{1.0 / c, 0.0}};
      if (affine) {
        set_activation(out,
                       emit1("Eltwise", {x},
                             {{"alg", "linear"}, {"alpha", affine->first}, {"beta", affine->second}}, out));
        return;
      }
    }
    set_activation(
        out, emit1("Binary", {tensor_of(node.input(0)), tensor_of(node.input(1))}, {{"alg", alg}}, out));
  }

  void lower_pow(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Constant* e = const_input(node, 1);
    if (e == nullptr || e->values.size() != 1) unsupported("only a constant scalar exponent");
    const double exponent = e->values[0];
    const std::string& out = node.output(0);
    if (exponent == 1.0) {
      set_activation(out, x);
    } else if (exponent == 2.0) {
      set_activation(out, emit1("Eltwise", {x}, {{"alg", "square"}}, out));
    } else {
      set_activation(out, emit1("Eltwise", {x}, {{"alg", "pow"}, {"alpha", 1.0}, {"beta", exponent}}, out));
    }
  }

  void lower_concat(const onnx::NodeProto& node) {
    std::vector<int> inputs;
    for (int i = 0; i < node.input_size(); ++i) {
      if (node.input(i).empty()) continue;
      const int t = tensor_of(node.input(i));
      if (shape_volume(shape_of(t)) == 0) continue;  // empty pieces add nothing
      inputs.push_back(t);
    }
    if (inputs.empty()) unsupported("no non-empty inputs");
    const auto axis = normalize_axis(attribute_int(node, "axis", 0), shape_of(inputs[0]).size(), "Concat");
    if (inputs.size() == 1) {
      set_activation(node.output(0), inputs[0]);
      return;
    }
    set_activation(node.output(0), emit1("Concat", inputs, {{"axis", axis}}, node.output(0)));
  }

  void lower_split(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Shape& s = shape_of(x);
    const auto axis = normalize_axis(attribute_int(node, "axis", 0), s.size(), "Split");
    std::vector<std::int64_t> sizes;
    if (model_.opset < 13) {
      sizes = attribute_ints(node, "split").value_or(std::vector<std::int64_t>{});
    } else if (const Constant* c =
                   node.input_size() > 1 && !node.input(1).empty() ? const_input(node, 1) : nullptr) {
      sizes = as_ints(*c);
    }
    const auto count = static_cast<std::int64_t>(node.output_size());
    if (sizes.empty()) {
      const std::int64_t dim = s[static_cast<std::size_t>(axis)];
      const std::int64_t piece = (dim + count - 1) / count;
      for (std::int64_t i = 0; i < count; ++i) sizes.push_back(std::min(piece, dim - piece * i));
    }
    if (static_cast<std::int64_t>(sizes.size()) != count) unsupported("split sizes do not match the outputs");
    std::vector<std::string> names(node.output().begin(), node.output().end());
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i].empty()) names[i] = fmt::format("{}/unused_{}", node_name_, i);
    }
    const auto outs = emit("Split", {x}, {{"axis", axis}, {"sizes", sizes}}, names);
    for (std::size_t i = 0; i < outs.size(); ++i) set_activation(names[i], outs[i]);
  }

  void lower_slice(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Shape& s = shape_of(x);
    std::vector<std::int64_t> starts, ends, axes, steps;
    if (model_.opset < 10) {
      starts = attribute_ints(node, "starts").value_or(std::vector<std::int64_t>{});
      ends = attribute_ints(node, "ends").value_or(std::vector<std::int64_t>{});
      axes = attribute_ints(node, "axes").value_or(std::vector<std::int64_t>{});
    } else {
      const Constant* c1 = const_input(node, 1);
      const Constant* c2 = const_input(node, 2);
      if (c1 == nullptr || c2 == nullptr) unsupported("starts and ends must be given");
      starts = as_ints(*c1);
      ends = as_ints(*c2);
      if (const Constant* c3 = const_input(node, 3)) axes = as_ints(*c3);
      if (const Constant* c4 = const_input(node, 4)) steps = as_ints(*c4);
    }
    if (axes.empty())
      for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      unsupported("starts/ends/axes/steps sizes differ");
    }
    std::vector<std::int64_t> begin(s.size(), 0), end(s.begin(), s.end()), step(s.size(), 1);
    for (std::size_t i = 0; i < starts.size(); ++i) {
      const auto a = static_cast<std::size_t>(normalize_axis(axes[i], s.size(), "Slice"));
      const std::int64_t dim = s[a];
      if (steps[i] <= 0) unsupported("negative or zero steps");
      begin[a] = starts[i] < 0 ? std::max<std::int64_t>(starts[i], -dim) + dim : std::min(starts[i], dim);
      end[a] = ends[i] < 0 ? std::max<std::int64_t>(ends[i], -dim) + dim : std::min(ends[i], dim);
      // A batch-1 export may bake "end = 1" on the batch axis; a larger stage keeps the whole batch.
      if (a == 0 && batch_factor_ > 1 && begin[a] == 0 && dim % batch_factor_ == 0 &&
          end[a] == dim / batch_factor_)
        end[a] = dim;
      step[a] = steps[i];
    }
    set_activation(node.output(0),
                   emit1("Slice", {x}, {{"starts", begin}, {"ends", end}, {"steps", step}}, node.output(0)));
  }

  void lower_resize(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Shape& s = shape_of(x);
    const std::string mode = attribute_string(node, "mode", "nearest");
    if (mode != "nearest") unsupported("mode '" + mode + "' (only nearest)");
    std::string transform = attribute_string(node, "coordinate_transformation_mode", "half_pixel");
    std::string rounding = attribute_string(node, "nearest_mode", "round_prefer_floor");
    Constant attr_scales;
    const Constant* scales_c = nullptr;
    const Constant* sizes_c = nullptr;
    if (node.op_type() == "Upsample" || model_.opset < 11) {
      // Upsample and opset-10 Resize: out = floor(in * scale), source = floor(out / scale).
      transform = "asymmetric";
      rounding = "floor";
      if (node.input_size() > 1) {
        scales_c = const_input(node, 1);
      } else if (const auto* floats = find_attribute(node, "scales")) {
        attr_scales = {{floats->floats_size()},
                       std::vector<double>(floats->floats().begin(), floats->floats().end()),
                       false};
        scales_c = &attr_scales;
      }
    } else {
      scales_c = const_input(node, 2);
      sizes_c = const_input(node, 3);
    }
    if (transform == "tf_crop_and_resize") unsupported("coordinate_transformation_mode 'tf_crop_and_resize'");
    std::vector<double> scales(s.size(), 1.0);
    if (sizes_c != nullptr && !sizes_c->values.empty()) {
      auto sizes = as_ints(*sizes_c);
      if (sizes.size() != s.size()) unsupported("sizes rank differs from the input");
      if (batch_factor_ > 1 && s[0] % batch_factor_ == 0 && sizes[0] == s[0] / batch_factor_) sizes[0] = s[0];
      for (std::size_t d = 0; d < s.size(); ++d) {
        scales[d] = static_cast<double>(sizes[d]) / static_cast<double>(s[d]);
      }
    } else if (scales_c != nullptr && !scales_c->values.empty()) {
      if (scales_c->values.size() != s.size()) unsupported("scales rank differs from the input");
      scales = scales_c->values;
    } else {
      unsupported("neither scales nor sizes given");
    }
    for (double v : scales) {
      if (!(v > 0.0) || !std::isfinite(v)) unsupported("non-positive scale");
    }
    const json attrs = {{"mode", "nearest"},
                        {"coordinate_transformation_mode", transform},
                        {"nearest_mode", rounding},
                        {"scales", scales}};
    set_activation(node.output(0), emit1("Resize", {x}, attrs, node.output(0)));
  }

  void lower_pool(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Shape& s = shape_of(x);
    if (s.size() != 4) unsupported("only 2-D pooling (4-D tensors)");
    if (node.output_size() > 1 && !node.output(1).empty()) unsupported("indices output");
    auto kernel = attribute_ints(node, "kernel_shape");
    if (!kernel || kernel->size() != 2) unsupported("kernel_shape must have 2 values");
    const auto strides = spatial_attr(node, "strides", 1, 2);
    const auto dilations = spatial_attr(node, "dilations", 1, 2);
    if (dilations != std::vector<std::int64_t>{1, 1}) unsupported("dilated pooling");
    auto pads = window_pads(node, s, *kernel, strides, dilations);
    const bool is_max = node.op_type() == "MaxPool";
    const auto include_pad = attribute_int(node, "count_include_pad", 0);
    if (attribute_int(node, "ceil_mode", 0) != 0) {
      // ceil_mode as extra end padding: exact for max pooling (padding is -inf) and for average pooling
      // that excludes padding; the last window must start inside the input (PyTorch/ONNX rule).
      for (std::size_t d = 0; d < 2; ++d) {
        const std::int64_t padded = s[2 + d] + pads[d] + pads[d + 2];
        std::int64_t out = (padded - (*kernel)[d] + strides[d] - 1) / strides[d] + 1;
        if ((out - 1) * strides[d] >= s[2 + d] + pads[d]) --out;
        const std::int64_t extra = (out - 1) * strides[d] + (*kernel)[d] - padded;
        if (extra > 0) {
          if (!is_max && include_pad != 0) unsupported("ceil_mode with count_include_pad");
          pads[d + 2] += extra;
        }
      }
    }
    json attrs = {{"kernel", *kernel}, {"strides", strides}, {"pads", pads}};
    if (!is_max) attrs["count_include_pad"] = include_pad;
    set_activation(node.output(0), emit1(node.op_type(), {x}, attrs, node.output(0)));
  }

  void lower_reshape(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Constant* target_c = const_input(node, 1);
    if (target_c == nullptr) unsupported("missing target shape");
    const Shape& s = shape_of(x);
    auto target = as_ints(*target_c);
    const bool allow_zero = attribute_int(node, "allowzero", 0) != 0;
    std::int64_t known = 1;
    int infer = -1;
    for (std::size_t d = 0; d < target.size(); ++d) {
      if (target[d] == 0 && !allow_zero) {
        if (d >= s.size()) unsupported("0 in target beyond the input rank");
        target[d] = s[d];
      }
      if (target[d] == -1) {
        if (infer >= 0) unsupported("two -1 in the target shape");
        infer = static_cast<int>(d);
      } else if (target[d] < 0) {
        unsupported("negative target dimension");
      } else if (__builtin_mul_overflow(known, target[d], &known)) {
        fail("target shape {} has more elements than int64 holds", shape_to_string(target));
      }
    }
    const std::int64_t volume = shape_volume(s);
    if (infer >= 0) {
      if (known == 0 || volume % known != 0)
        fail("cannot reshape {} to {}", shape_to_string(s), shape_to_string(target));
      target[static_cast<std::size_t>(infer)] = volume / known;
    } else if (known != volume && batch_factor_ > 1 && volume % batch_factor_ == 0 &&
               known == volume / batch_factor_ && !target.empty()) {
      // A batch-1 export bakes batch 1 (or batch*C) into dimension 0; a batch-B stage scales it.
      target[0] *= batch_factor_;
    }
    if (shape_volume(target) != volume)
      fail("cannot reshape {} to {}", shape_to_string(s), shape_to_string(target));
    set_activation(node.output(0), emit_reshape(x, target, node.output(0)));
  }

  void lower_shape_change(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Shape& s = shape_of(x);
    const std::string& op = node.op_type();
    Shape target;
    if (op == "Flatten") {
      const auto axis = attribute_int(node, "axis", 1);
      const auto a = axis < 0 ? axis + static_cast<std::int64_t>(s.size()) : axis;
      if (a < 0 || a > static_cast<std::int64_t>(s.size())) unsupported("axis out of range");
      std::int64_t outer = 1;
      for (std::int64_t d = 0; d < a; ++d) outer *= s[static_cast<std::size_t>(d)];
      target = {outer, shape_volume(s) / outer};
    } else {
      std::vector<std::int64_t> axes;
      if (model_.opset >= 13) {
        if (const Constant* c = const_input(node, 1)) axes = as_ints(*c);
      } else {
        axes = attribute_ints(node, "axes").value_or(std::vector<std::int64_t>{});
      }
      const std::size_t rank = op == "Unsqueeze" ? s.size() + axes.size() : s.size();
      for (auto& a : axes) a = normalize_axis(a, rank, op);
      auto listed = [&](std::size_t d) {
        return std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(d)) != axes.end();
      };
      if (op == "Unsqueeze") {
        std::size_t next = 0;
        for (std::size_t d = 0; d < rank; ++d) {
          if (listed(d)) {
            target.push_back(1);
          } else {
            if (next >= s.size()) unsupported("invalid axes");
            target.push_back(s[next++]);
          }
        }
      } else {
        for (std::size_t d = 0; d < s.size(); ++d) {
          if (listed(d) && s[d] != 1) unsupported("squeezing a dimension that is not 1");
          if ((axes.empty() && s[d] == 1) || listed(d)) continue;
          target.push_back(s[d]);
        }
      }
    }
    set_activation(node.output(0), emit_reshape(x, target, node.output(0)));
  }

  void lower_softmax(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Shape& s = shape_of(x);
    const std::string& out = node.output(0);
    const auto axis =
        normalize_axis(attribute_int(node, "axis", model_.opset < 13 ? 1 : -1), s.size(), "Softmax");
    if (model_.opset >= 13 || axis == static_cast<std::int64_t>(s.size()) - 1) {
      set_activation(out, emit1("Softmax", {x}, {{"axis", axis}}, out));
      return;
    }
    // Opset < 13: the input is coerced to 2-D [prod(dims before axis), prod(dims from axis)].
    std::int64_t outer = 1;
    for (std::int64_t d = 0; d < axis; ++d) outer *= s[static_cast<std::size_t>(d)];
    const int flat = emit_reshape(x, {outer, shape_volume(s) / outer}, out + "/softmax_2d");
    const int soft = emit1("Softmax", {flat}, {{"axis", 1}}, out + "/softmax");
    set_activation(out, emit_reshape(soft, s, out));
  }

  void lower_gather(const onnx::NodeProto& node) {
    const int x = activation_input(node, 0);
    const Constant* indices_c = const_input(node, 1);
    if (indices_c == nullptr) unsupported("indices must be a constant");
    const Shape& s = shape_of(x);
    const auto axis = normalize_axis(attribute_int(node, "axis", 0), s.size(), "Gather");
    auto indices = as_ints(*indices_c);
    const std::int64_t dim = s[static_cast<std::size_t>(axis)];
    for (auto& index : indices) {
      if (index < 0) index += dim;
      if (index < 0 || index >= dim) fail("index out of range {}", dim);
    }
    set_activation(
        node.output(0),
        emit1("Gather", {x}, {{"axis", axis}, {"indices", indices}, {"indices_shape", indices_c->shape}},
              node.output(0)));
  }

  const OnnxModel& model_;
  const ImportRequest& request_;
  ir::Graph graph_;
  std::unordered_map<std::string, Value> values_;
  std::unordered_map<std::string, int> materialized_;
  const onnx::NodeProto* node_ = nullptr;
  std::string node_name_;
  std::int64_t export_batch_ = 1;
  std::int64_t batch_factor_ = 1;
};

}  // namespace

ir::Graph lower_onnx(const OnnxModel& model, const ImportRequest& request) {
  if (request.batch <= 0) fail("{}: batch must be positive, got {}", model.label, request.batch);
  return Importer(model, request).run();
}

}  // namespace vapipe::compiler
