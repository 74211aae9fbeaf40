#pragma once
// Builds small ONNX models in C++ for compiler tests (no Python, no files checked in).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

namespace vapipe::test {

class OnnxBuilder {
 public:
  explicit OnnxBuilder(std::int64_t opset) {
    model_.set_ir_version(8);
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    graph_ = model_.mutable_graph();
    graph_->set_name("test");
  }

  void input(const std::string& name, const std::vector<std::int64_t>& shape,
             int elem = onnx::TensorProto_DataType_FLOAT) {
    describe(graph_->add_input(), name, shape, elem);
  }
  void output(const std::string& name, const std::vector<std::int64_t>& shape = {},
              int elem = onnx::TensorProto_DataType_FLOAT) {
    describe(graph_->add_output(), name, shape, elem);
  }
  void initializer(const std::string& name, const std::vector<std::int64_t>& shape,
                   const std::vector<float>& values) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_FLOAT);
    for (auto d : shape) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
  }
  void initializer_i64(const std::string& name, const std::vector<std::int64_t>& shape,
                       const std::vector<std::int64_t>& values) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_INT64);
    for (auto d : shape) t->add_dims(d);
    for (auto v : values) t->add_int64_data(v);
  }
  // FP16 stored as raw little-endian halves (as real FP16 exports do).
  void initializer_f16(const std::string& name, const std::vector<std::int64_t>& shape,
                       const std::vector<std::uint16_t>& halves) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto_DataType_FLOAT16);
    for (auto d : shape) t->add_dims(d);
    std::string raw(halves.size() * 2, '\0');
    for (std::size_t i = 0; i < halves.size(); ++i) {
      raw[2 * i] = static_cast<char>(halves[i] & 0xFFU);
      raw[2 * i + 1] = static_cast<char>(halves[i] >> 8U);
    }
    t->set_raw_data(raw);
  }
  void random_initializer(const std::string& name, const std::vector<std::int64_t>& shape, std::mt19937& rng,
                          float low = -0.5F, float high = 0.5F) {
    std::int64_t volume = 1;
    for (auto d : shape) volume *= d;
    std::uniform_real_distribution<float> dist(low, high);
    std::vector<float> values(static_cast<std::size_t>(volume));
    for (auto& v : values) v = dist(rng);
    initializer(name, shape, values);
  }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "") {
    auto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? op + "_" + std::to_string(graph_->node_size()) : name);
    for (const auto& i : inputs) n->add_input(i);
    for (const auto& o : outputs) n->add_output(o);
    return *n;
  }
  static void attr(onnx::NodeProto& n, const std::string& name, std::int64_t value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INT);
    a->set_i(value);
  }
  static void attr(onnx::NodeProto& n, const std::string& name, const std::vector<std::int64_t>& values) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_INTS);
    for (auto v : values) a->add_ints(v);
  }
  static void attr_f(onnx::NodeProto& n, const std::string& name, float value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_FLOAT);
    a->set_f(value);
  }
  static void attr_s(onnx::NodeProto& n, const std::string& name, const std::string& value) {
    auto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto_AttributeType_STRING);
    a->set_s(value);
  }
  void metadata(const std::string& key, const std::string& value) {
    auto* p = model_.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }

  std::string save(const std::filesystem::path& path) const {
    std::ofstream stream(path, std::ios::binary);
    model_.SerializeToOstream(&stream);
    return path.string();
  }

 private:
  static void describe(onnx::ValueInfoProto* info, const std::string& name,
                       const std::vector<std::int64_t>& shape, int elem) {
    info->set_name(name);
    auto* type = info->mutable_type()->mutable_tensor_type();
    type->set_elem_type(elem);
    auto* s = type->mutable_shape();
    for (auto d : shape) {
      if (d > 0)
        s->add_dim()->set_dim_value(d);
      else
        s->add_dim()->set_dim_param("N");
    }
  }

  onnx::ModelProto model_;
  onnx::GraphProto* graph_;
};

inline std::vector<float> random_values(std::size_t count, std::uint32_t seed, float low = -1.0F,
                                        float high = 1.0F) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(count);
  for (auto& v : values) v = dist(rng);
  return values;
}

// max |a - b| / max |b|: relative to the tensor's magnitude, so values near zero do not dominate.
inline double max_relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30;
  double diff = 0.0, scale = 1e-12;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  return diff / scale;
}

}  // namespace vapipe::test
