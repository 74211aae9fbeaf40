#include "ops/registry.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace vapipe::ops {

// One line per operator family (src/ops/<family>.cpp); each registers its IR ops and ONNX imports.
void register_argmax(Registry& registry);
void register_binary(Registry& registry);
void register_concat(Registry& registry);
void register_conv(Registry& registry);
void register_conv_transpose(Registry& registry);
void register_eltwise(Registry& registry);
void register_gather(Registry& registry);
void register_matmul(Registry& registry);
void register_pad(Registry& registry);
void register_pool(Registry& registry);
void register_prelu(Registry& registry);
void register_quantize(Registry& registry);
void register_reduce(Registry& registry);
void register_reshape(Registry& registry);
void register_resize(Registry& registry);
void register_slice(Registry& registry);
void register_softmax(Registry& registry);
void register_tile(Registry& registry);
void register_transpose(Registry& registry);

namespace {

Registry build_registry() {
  Registry registry;
  const std::pair<const char*, void (*)(Registry&)> families[] = {
      {"argmax", register_argmax},
      {"binary", register_binary},
      {"concat", register_concat},
      {"conv", register_conv},
      {"conv_transpose", register_conv_transpose},
      {"eltwise", register_eltwise},
      {"gather", register_gather},
      {"matmul", register_matmul},
      {"pad", register_pad},
      {"pool", register_pool},
      {"prelu", register_prelu},
      {"quantize", register_quantize},
      {"reduce", register_reduce},
      {"reshape", register_reshape},
      {"resize", register_resize},
      {"slice", register_slice},
      {"softmax", register_softmax},
      {"tile", register_tile},
      {"transpose", register_transpose},
  };
  for (const auto& [family, add] : families) {
    registry.set_family(family);
    add(registry);
  }
  return registry;
}

}  // namespace

void Registry::add(OpDef op) {
  if (find(op.name) != nullptr) fail("operator registry: IR op '{}' registered twice", op.name);
  ops_.push_back(std::move(op));
}

void Registry::add_onnx(std::string onnx_op, void (*import)(ImportContext&)) {
  if (find_onnx(onnx_op) != nullptr) fail("operator registry: ONNX op '{}' registered twice", onnx_op);
  onnx_.push_back({std::move(onnx_op), family_, import});
}

const OpDef* Registry::find(std::string_view name) const {
  const auto found = std::find_if(ops_.begin(), ops_.end(), [&](const OpDef& op) { return op.name == name; });
  return found != ops_.end() ? &*found : nullptr;
}

const OnnxImport* Registry::find_onnx(std::string_view onnx_op) const {
  const auto found =
      std::find_if(onnx_.begin(), onnx_.end(), [&](const OnnxImport& op) { return op.onnx_op == onnx_op; });
  return found != onnx_.end() ? &*found : nullptr;
}

const Registry& registry() {
  static const Registry instance = build_registry();
  return instance;
}

const OpDef* find_op(std::string_view name) { return registry().find(name); }

const OnnxImport* find_onnx_import(std::string_view onnx_op) { return registry().find_onnx(onnx_op); }

std::vector<std::string> claimed_onnx_ops() {
  std::vector<std::string> names;
  for (const auto& op : registry().onnx_imports()) names.push_back(op.onnx_op);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace vapipe::ops
