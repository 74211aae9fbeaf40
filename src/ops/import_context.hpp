#pragma once
// What an operator's ONNX import sees: the node, its inputs as IR tensors or compile-time constants, and
// the graph it appends IR nodes to. compiler/onnx_importer.cpp implements it (it owns the value table,
// folding and the graph); the imports in src/ops/<family>.cpp only read and emit through it.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include "core/graph.hpp"
#include "ops/onnx_attributes.hpp"

namespace vapipe::ops {

class ImportContext {
 public:
  virtual ~ImportContext() = default;

  virtual const onnx::NodeProto& node() const = 0;
  virtual std::int64_t opset() const = 0;
  // The compiled batch over the exported one: a batch-1 export compiled for batch 4 has 4. Imports that
  // read batch-sized constants (Reshape targets, Slice ends, Resize sizes) scale them by it.
  virtual std::int64_t batch_factor() const = 0;
  virtual const std::string& node_name() const = 0;
  // Throws the compile error "<file>: node '<name>' (op X, opset N) is not supported: <detail>".
  [[noreturn]] virtual void unsupported(const std::string& detail) const = 0;

  // The constant an ONNX value name holds, or nullptr when it is an activation.
  virtual const Constant* constant_of(const std::string& name) const = 0;
  // The IR tensor of a value; constants become f32 constant tensors (once per name).
  virtual int tensor_of(const std::string& name) = 0;
  virtual Shape shape_of(int tensor) const = 0;
  virtual int constant_tensor(const std::string& name, Shape shape, std::vector<float> data) = 0;
  // Appends one IR node named after the ONNX node; output shapes come from its shape rule.
  virtual std::vector<int> emit(const std::string& op, std::vector<int> inputs, nlohmann::json attrs,
                                const std::vector<std::string>& output_names) = 0;
  virtual void set_activation(const std::string& name, int tensor) = 0;
  // `name` is another name of the value `source` (Identity, Cast between float types).
  virtual void forward(const std::string& name, const std::string& source) = 0;
  // Where a value goes: the model's nodes that read it, and whether it is an output of the compiled graph (an
  // import whose IR value is not of the ONNX type, ArgMax's float32 indices, checks that nothing misreads it).
  virtual std::vector<const onnx::NodeProto*> readers_of(const std::string& name) const = 0;
  virtual bool is_graph_output(const std::string& name) const = 0;
  // The ONNX element type of a value (onnx::TensorProto_DataType) where the file says it: initializers,
  // Constant nodes, graph inputs, value_info, and the quantized outputs of DynamicQuantizeLinear and
  // QuantizeLinear; 0 when unknown. Quantized imports read their zero points' integer types with it.
  virtual std::int32_t elem_type_of(const std::string& name) const = 0;

  // ---- conveniences over the above ----
  // Input i as a constant (nullptr when absent); an activation there is refused as unsupported.
  const Constant* const_input(int i) const;
  // Input i as an IR tensor (constants materialized); a missing input is an error.
  int activation_input(int i);
  int emit1(const std::string& op, std::vector<int> inputs, nlohmann::json attrs, const std::string& output);
  // `x` reshaped to `target` (x itself when the shape already matches).
  int emit_reshape(int x, const Shape& target, const std::string& output);
  const std::string& output(int i = 0) const { return node().output(i); }
  bool has_input(int i) const { return i < node().input_size() && !node().input(i).empty(); }
  std::int64_t normalize_axis(std::int64_t axis, std::size_t rank) const;
  // A per-spatial-dimension attribute (strides, dilations) with its default, `count` values.
  std::vector<std::int64_t> spatial_attr(const char* name, std::int64_t fallback, std::size_t count) const;
  // pads (top, left, bottom, right) of a 2-D window op from explicit pads or auto_pad. `spatial_rank` 1: a
  // 1-D op imported as 2-D with H = 1 (x, kernel, strides and dilations already lifted; its pads attribute
  // has 2 values).
  std::vector<std::int64_t> window_pads(const Shape& x, const std::vector<std::int64_t>& kernel,
                                        const std::vector<std::int64_t>& strides,
                                        const std::vector<std::int64_t>& dilations,
                                        std::size_t spatial_rank = 2) const;
  // A 1-D window op's per-dimension values lifted to 2-D (a leading `unit` for H = 1); 2-D values as they are.
  static std::vector<std::int64_t> lift_to_2d(std::vector<std::int64_t> values, std::int64_t unit);
};

}  // namespace vapipe::ops
