#pragma once
// The operator registry: every op of the IR vocabulary (core/graph.hpp) with its shape rule, its plain
// reference implementation and its lowering for the runtime, and every ONNX op type with the import that
// turns it into IR ops. The importer, the shape inference, the reference executor and the stage planner
// all read these tables; an operator family lives in one file (src/ops/<family>.cpp, docs/architecture.md
// "Operators") and is listed once in registry.cpp.
#include <string>
#include <string_view>
#include <vector>

#include "core/graph.hpp"

namespace vapipe::ops {

class ImportContext;
class Lowering;
struct ReferenceContext;

struct OpDef {
  std::string name;  // the IR op (ir::Node::op)
  // Output shapes from the input tensors' shapes and the attributes; throws vapipe::Error naming the node.
  std::vector<Shape> (*shapes)(const ir::Graph& graph, const ir::Node& node) = nullptr;
  // Plain, obviously correct computation on dense f32 values (the runtime's oracle and the constant folder).
  void (*reference)(ReferenceContext& context, const ir::Node& node) = nullptr;
  // oneDNN primitives or hand-written kernels for this CPU.
  void (*lower)(Lowering& lowering, const ir::Node& node) = nullptr;
};

struct OnnxImport {
  std::string onnx_op;  // an ONNX op type of the default domain
  std::string family;   // the file it lives in, for the docs' table
  // Reads the node (ImportContext::node) and emits IR nodes; refuses what it does not support with
  // ImportContext::unsupported (a named, clear compile error).
  void (*import)(ImportContext& context) = nullptr;
};

class Registry {
 public:
  void add(OpDef op);
  void add_onnx(std::string onnx_op, void (*import)(ImportContext&));
  // The family the next add_onnx calls belong to (set by each family's register function).
  void set_family(std::string family) { family_ = std::move(family); }

  const OpDef* find(std::string_view name) const;
  const OnnxImport* find_onnx(std::string_view onnx_op) const;
  const std::vector<OpDef>& ops() const { return ops_; }
  const std::vector<OnnxImport>& onnx_imports() const { return onnx_; }

 private:
  std::vector<OpDef> ops_;
  std::vector<OnnxImport> onnx_;
  std::string family_;
};

// The registry of every operator family (built once, immutable afterwards).
const Registry& registry();
// Shorthands: nullptr when unknown.
const OpDef* find_op(std::string_view name);
const OnnxImport* find_onnx_import(std::string_view onnx_op);
// The ONNX op types vapipe imports, sorted (what docs/compiler.md and the conformance tests claim).
std::vector<std::string> claimed_onnx_ops();

}  // namespace vapipe::ops
