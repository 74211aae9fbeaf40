#include "compiler/onnx_model.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <unordered_set>

#include "core/error.hpp"
#include "core/file_kind.hpp"

namespace vapipe::compiler {
namespace {

// Far beyond any detector; a guard against a corrupt dims field asking for terabytes.
constexpr std::int64_t kMaxConstantElements = std::int64_t{1} << 31;

template <typename T>
std::vector<double> from_raw(const std::string& raw, std::size_t count, const std::string& where) {
  if (raw.size() != count * sizeof(T)) {
    fail("{}: raw data has {} bytes, expected {}", where, raw.size(), count * sizeof(T));
  }
  std::vector<double> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    T value{};
    std::memcpy(&value, raw.data() + i * sizeof(T), sizeof(T));
    values[i] = static_cast<double>(value);
  }
  return values;
}

template <typename Field>
std::vector<double> from_field(const Field& field, std::size_t count, const std::string& where) {
  if (static_cast<std::size_t>(field.size()) != count) {
    fail("{}: {} values stored, shape needs {}", where, field.size(), count);
  }
  std::vector<double> values;
  values.reserve(count);
  for (const auto& value : field) values.push_back(static_cast<double>(value));
  return values;
}

}  // namespace

OnnxModel load_onnx(const std::string& path) {
  if (const auto why = not_a_file_reason(path); !why.empty()) fail("{}: {}", path, why);
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  if (error) fail("{}: cannot read its size: {}", path, error.message());
  if (size > kMaxOnnxBytes) {
    fail("{}: {} bytes is more than an ONNX model may have ({} bytes, protobuf's limit)", path, size,
         kMaxOnnxBytes);
  }
  std::ifstream stream(path, std::ios::binary);
  if (!stream) fail("{}: cannot open", path);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (!stream.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) fail("{}: read failed", path);
  return parse_onnx(bytes, path);
}

OnnxModel parse_onnx(std::string_view bytes, const std::string& path) {
  OnnxModel model;
  model.path = path;
  model.label = std::filesystem::path(path).filename().string();
  if (bytes.size() > kMaxOnnxBytes) {
    fail("{}: {} bytes is more than an ONNX model may have ({} bytes, protobuf's limit)", path, bytes.size(),
         kMaxOnnxBytes);
  }
  if (!model.proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    fail("{}: not an ONNX model (protobuf parse failed)", path);
  }
  if (!model.proto.has_graph() || model.proto.graph().node_size() == 0 ||
      model.proto.opset_import_size() == 0) {
    fail("{}: not an ONNX model (no graph or no opset)", path);
  }
  for (const auto& opset : model.proto.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") model.opset = opset.version();
  }
  if (model.opset == 0) fail("{}: no opset for the default ONNX domain", path);
  return model;
}

Constant read_tensor(const onnx::TensorProto& tensor, const std::string& where) {
  if (tensor.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    fail("{}: external tensor data is not supported", where);
  }
  Constant constant;
  std::int64_t volume = 1;
  for (auto dim : tensor.dims()) {
    if (dim < 0 || (dim > 0 && volume > kMaxConstantElements / dim)) fail("{}: invalid dims", where);
    constant.shape.push_back(dim);
    volume *= dim;
  }
  const auto count = static_cast<std::size_t>(volume);
  const bool raw = tensor.has_raw_data();
  const std::string& bytes = tensor.raw_data();
  switch (tensor.data_type()) {
    case onnx::TensorProto_DataType_FLOAT:
      constant.values =
          raw ? from_raw<float>(bytes, count, where) : from_field(tensor.float_data(), count, where);
      break;
    case onnx::TensorProto_DataType_DOUBLE:
      constant.values =
          raw ? from_raw<double>(bytes, count, where) : from_field(tensor.double_data(), count, where);
      break;
    case onnx::TensorProto_DataType_FLOAT16: {
      auto halves =
          raw ? from_raw<std::uint16_t>(bytes, count, where) : from_field(tensor.int32_data(), count, where);
      for (auto& value : halves)
        value = static_cast<double>(half_to_float(static_cast<std::uint16_t>(value)));
      constant.values = std::move(halves);
      break;
    }
    case onnx::TensorProto_DataType_INT64:
      constant.values =
          raw ? from_raw<std::int64_t>(bytes, count, where) : from_field(tensor.int64_data(), count, where);
      constant.is_int = true;
      break;
    case onnx::TensorProto_DataType_INT32:
      constant.values =
          raw ? from_raw<std::int32_t>(bytes, count, where) : from_field(tensor.int32_data(), count, where);
      constant.is_int = true;
      break;
    case onnx::TensorProto_DataType_INT16:
      constant.values =
          raw ? from_raw<std::int16_t>(bytes, count, where) : from_field(tensor.int32_data(), count, where);
      constant.is_int = true;
      break;
    case onnx::TensorProto_DataType_UINT16:
      constant.values =
          raw ? from_raw<std::uint16_t>(bytes, count, where) : from_field(tensor.int32_data(), count, where);
      constant.is_int = true;
      break;
    case onnx::TensorProto_DataType_INT8:
      constant.values =
          raw ? from_raw<std::int8_t>(bytes, count, where) : from_field(tensor.int32_data(), count, where);
      constant.is_int = true;
      break;
    case onnx::TensorProto_DataType_UINT8:
    case onnx::TensorProto_DataType_BOOL:
      constant.values =
          raw ? from_raw<std::uint8_t>(bytes, count, where) : from_field(tensor.int32_data(), count, where);
      constant.is_int = true;
      break;
    case onnx::TensorProto_DataType_UINT64:
      constant.values =
          raw ? from_raw<std::uint64_t>(bytes, count, where) : from_field(tensor.uint64_data(), count, where);
      constant.is_int = true;
      break;
    default:
      fail("{}: tensor data type {} is not supported", where, static_cast<int>(tensor.data_type()));
  }
  return constant;
}

std::optional<Constant> find_constant(const OnnxModel& model, const std::string& name) {
  const auto& graph = model.proto.graph();
  for (const auto& initializer : graph.initializer()) {
    if (initializer.name() == name)
      return read_tensor(initializer, model.label + ": initializer '" + name + "'");
  }
  for (const auto& node : graph.node()) {
    if (node.op_type() != "Constant" || node.output_size() != 1 || node.output(0) != name) continue;
    for (const auto& attr : node.attribute()) {
      if (attr.name() == "value" && attr.has_t())
        return read_tensor(attr.t(), model.label + ": constant '" + name + "'");
    }
  }
  return std::nullopt;
}

std::unordered_map<std::string, int> producer_index(const onnx::GraphProto& graph) {
  std::unordered_map<std::string, int> producer;
  for (int i = 0; i < graph.node_size(); ++i) {
    for (const auto& output : graph.node(i).output()) producer[output] = i;
  }
  return producer;
}

void walk_producers(const onnx::GraphProto& graph, const std::unordered_map<std::string, int>& producer,
                    std::vector<std::string> from,
                    const std::function<bool(int, const std::string&)>& visit) {
  std::unordered_set<std::string> seen;
  while (!from.empty()) {
    const std::string name = from.back();
    from.pop_back();
    if (!seen.insert(name).second) continue;
    const auto found = producer.find(name);
    if (found == producer.end()) continue;
    if (!visit(found->second, name)) continue;
    for (const auto& input : graph.node(found->second).input()) {
      if (!input.empty()) from.push_back(input);
    }
  }
}

}  // namespace vapipe::compiler
