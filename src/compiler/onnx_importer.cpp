#include "compiler/onnx_importer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include <onnx/defs/schema.h>

#include "compiler/constant_folding.hpp"
#include "core/error.hpp"
#include "ops/import_context.hpp"
#include "ops/registry.hpp"
#include "ops/shape_inference.hpp"

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

// The contrib operators of ONNX Runtime's com.microsoft domain that vapipe imports (src/ops/quantize.cpp):
// its static quantization writes them beside the standard QLinearConv and QLinearMatMul.
bool is_microsoft_op(const std::string& op) { return op == "QLinearAdd" || op == "QLinearGlobalAveragePool"; }

// Operators that read 8-bit integer tensors as such (src/ops/quantize.cpp): a uint8/int8 graph input read only
// by them is taken (as f32 holding its integers); any other reader would compute it as float.
bool reads_quantized(const std::string& op) {
  return op == "ConvInteger" || op == "MatMulInteger" || op == "QLinearConv" || op == "QLinearMatMul" ||
         op == "DequantizeLinear" || is_microsoft_op(op);
}

bool is_8bit_type(std::int64_t type) {
  return type == onnx::TensorProto_DataType_UINT8 || type == onnx::TensorProto_DataType_INT8;
}

bool is_float_type(std::int64_t type) {
  return type == onnx::TensorProto_DataType_FLOAT || type == onnx::TensorProto_DataType_FLOAT16 ||
         type == onnx::TensorProto_DataType_DOUBLE || type == onnx::TensorProto_DataType_BFLOAT16;
}

class Importer final : public ops::ImportContext {
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
      if (!is_float_type(type.elem_type()) &&
          !(is_8bit_type(type.elem_type()) && read_quantized(input.name())))
        fail("{} has element type {}; only float inputs are supported", where, type.elem_type());
      if (type.elem_type() == onnx::TensorProto_DataType_DOUBLE)
        fail("{} is float64; vapipe computes in float32 (export the model in float32)", where);
      Shape shape;
      for (const auto& dim : type.shape().dim()) shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
      if (shape.empty()) fail("{} has no shape", where);
      if (graph_.inputs.empty()) {
        // The first input carries the batch the stage is compiled for.
        export_batch_ = shape[0] > 0 ? shape[0] : 1;
        if (request_.batch % export_batch_ != 0) {
          fail("{}: batch {} is not a multiple of the exported batch {}", where, request_.batch,
               export_batch_);
        }
        batch_factor_ = request_.batch / export_batch_;
        shape[0] = request_.batch;
      } else if (shape[0] <= 0 || shape[0] == export_batch_) {
        shape[0] = shape[0] <= 0 ? request_.batch : shape[0] * batch_factor_;
      } else if (batch_factor_ > 1) {
        // Another input of another leading size (a [1] scale beside a batch-3 image) is kept as declared;
        // it cannot follow a stage batch it does not share.
        fail(
            "{} has leading dimension {} where the first input has batch {}; it cannot be compiled for batch "
            "{}",
            where, shape[0], export_batch_, request_.batch);
      }
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

  // Whether every node reading `name` is a quantized operator (and something reads it).
  bool read_quantized(const std::string& name) const {
    const auto readers = readers_of(name);
    return !readers.empty() && std::all_of(readers.begin(), readers.end(), [](const onnx::NodeProto* reader) {
      return reads_quantized(reader->op_type());
    });
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

  // ---- ops::ImportContext ----
  const onnx::NodeProto& node() const override { return *node_; }
  std::int64_t opset() const override { return model_.opset; }
  std::int64_t batch_factor() const override { return batch_factor_; }
  const std::string& node_name() const override { return node_name_; }
  const Constant* constant_of(const std::string& name) const override {
    const Value& value = lookup(name);
    return value.is_constant() ? &*value.constant : nullptr;
  }
  void forward(const std::string& name, const std::string& source) override {
    values_[name] = lookup(source);
  }
  std::vector<const onnx::NodeProto*> readers_of(const std::string& name) const override {
    std::vector<const onnx::NodeProto*> readers;
    for (const auto& node : model_.proto.graph().node()) {
      if (std::find(node.input().begin(), node.input().end(), name) != node.input().end())
        readers.push_back(&node);
    }
    return readers;
  }
  std::int32_t elem_type_of(const std::string& name) const override {
    const auto& graph = model_.proto.graph();
    for (const auto& initializer : graph.initializer()) {
      if (initializer.name() == name) return initializer.data_type();
    }
    for (const auto* infos : {&graph.input(), &graph.value_info(), &graph.output()}) {
      for (const auto& info : *infos) {
        if (info.name() == name && info.type().has_tensor_type())
          return info.type().tensor_type().elem_type();
      }
    }
    for (const auto& node : graph.node()) {
      for (int i = 0; i < node.output_size(); ++i) {
        if (node.output(i) != name) continue;
        if (node.op_type() == "Constant") {
          const auto* value = find_attribute(node, "value");
          return value != nullptr && value->has_t() ? value->t().data_type() : 0;
        }
        if (node.op_type() == "DynamicQuantizeLinear")
          return i == 1 ? onnx::TensorProto_DataType_FLOAT : onnx::TensorProto_DataType_UINT8;
        // A quantized result has its zero point's type (QuantizeLinear's input 2, QLinear*'s last input).
        if (node.op_type() == "QuantizeLinear" || node.op_type().rfind("QLinear", 0) == 0) {
          const int zero_point = node.op_type() == "QuantizeLinear" ? 2 : node.input_size() - 1;
          if (node.op_type() == "QLinearConv") return elem_type_of(node.input(7));
          if (zero_point < node.input_size() && !node.input(zero_point).empty())
            return elem_type_of(node.input(zero_point));
          return onnx::TensorProto_DataType_UINT8;
        }
        return 0;
      }
    }
    return 0;
  }
  bool is_graph_output(const std::string& name) const override {
    const auto names = output_names();
    return std::find(names.begin(), names.end(), name) != names.end();
  }

  [[noreturn]] void unsupported(const std::string& detail) const override {
    if (detail.empty()) {
      throw NodeError(fmt::format("{}: node '{}' (op {}, opset {}) is not supported", model_.label,
                                  node_name_, node_->op_type(), model_.opset));
    }
    throw NodeError(fmt::format("{}: node '{}' (op {}, opset {}) is not supported: {}", model_.label,
                                node_name_, node_->op_type(), model_.opset, detail));
  }

  // By value: emitting nodes grows graph_.tensors, which would leave a reference dangling.
  Shape shape_of(int tensor) const override {
    return graph_.tensors.at(static_cast<std::size_t>(tensor)).shape;
  }

  // The IR tensor of a value; constants become f32 constant tensors (once per ONNX name).
  int tensor_of(const std::string& name) override {
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

  int constant_tensor(const std::string& name, Shape shape, std::vector<float> data) override {
    return graph_.add_tensor(
        {name, DType::kF32, std::move(shape), ir::ConstBytes::from_vector(std::move(data))});
  }

  // Appends one IR node named after the ONNX node; output shapes come from ops::infer_node_shapes.
  std::vector<int> emit(const std::string& op, std::vector<int> inputs, json attrs,
                        const std::vector<std::string>& output_names) override {
    ir::Node node{node_name_, op, std::move(inputs), {}, std::move(attrs)};
    const auto shapes = ops::infer_node_shapes(graph_, node);
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

  void set_activation(const std::string& name, int tensor) override {
    values_[name] = Value{tensor, std::nullopt};
  }

  // ---- the node dispatcher ----
  void import_node(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    if (!node.domain().empty() && node.domain() != "ai.onnx" &&
        !(node.domain() == "com.microsoft" && is_microsoft_op(op)))
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
    if (node.output_size() < 1) unsupported("no outputs");
    const ops::OnnxImport* op = ops::find_onnx_import(node.op_type());
    if (op == nullptr) unsupported("");
    op->import(*this);
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
