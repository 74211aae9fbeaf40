#include "ops/lowering.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "ops/plain_kernels.hpp"
#include "ops/registry.hpp"

namespace vapipe::ops {

using dnnl::memory;
using Dims = memory::dims;
using Tag = memory::format_tag;

namespace {
constexpr memory::data_type kF32 = memory::data_type::f32;
constexpr memory::data_type kS8 = memory::data_type::s8;
constexpr memory::data_type kU8 = memory::data_type::u8;
}  // namespace

dnnl::memory::desc plain_md(const Shape& shape, memory::data_type type) {
  Dims dims = shape.empty() ? Dims(1, 1) : Dims(shape.begin(), shape.end());
  Dims strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
  return {dims, type, strides};
}

bool is_quantized(memory::data_type type) {
  return type == memory::data_type::s8 || type == memory::data_type::u8;
}

std::size_t element_bytes(memory::data_type type) {
  switch (type) {
    case memory::data_type::s8:
    case memory::data_type::u8:
      return 1;
    case memory::data_type::bf16:
      return 2;
    default:
      return 4;
  }
}

std::vector<std::int64_t> int_attr(const nlohmann::json& attrs, const char* key,
                                   std::vector<std::int64_t> fallback) {
  if (!attrs.contains(key)) return fallback;
  return attrs.at(key).get<std::vector<std::int64_t>>();
}

Lowering::Lowering(const ir::Graph& graph, std::int64_t batch, const dnnl::engine& engine,
                   std::string network, PackedConstants& packed_constants, LoweringOptions options)
    : graph_(graph),
      engine_(engine),
      network_(std::move(network)),
      options_(options),
      packed_constants_(packed_constants) {
  plan_.batch = batch;
  attr_.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  tensor_value_.assign(graph.tensors.size(), -1);
  last_use_.assign(graph.tensors.size(), -1);
  for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
    for (int input : graph.nodes[n].inputs) {
      if (input >= 0) last_use_[static_cast<std::size_t>(input)] = static_cast<int>(n);
    }
  }
  for (int output : graph.outputs)
    last_use_[static_cast<std::size_t>(output)] = static_cast<int>(graph.nodes.size());
  consumers_.assign(graph.tensors.size(), 0);
  for (const auto& node : graph.nodes) {
    for (int input : node.inputs) {
      if (input >= 0) ++consumers_[static_cast<std::size_t>(input)];
    }
  }
  read_channels_last_.assign(graph.tensors.size(), false);
  for (const auto& node : graph.nodes) {
    const int x = node.inputs.empty() ? -1 : node.inputs[0];
    if (is_to_channels_last(node) && consumers_[static_cast<std::size_t>(x)] == 1 && !is_graph_output(x))
      read_channels_last_[static_cast<std::size_t>(x)] = true;
  }
}

bool Lowering::is_to_channels_last(const ir::Node& node) {
  return node.op == "Transpose" && node.inputs.size() == 1 &&
         int_attr(node.attrs, "perm") == std::vector<std::int64_t>{0, 2, 3, 1};
}

bool Lowering::is_graph_output(int tensor) const {
  return std::find(graph_.outputs.begin(), graph_.outputs.end(), tensor) != graph_.outputs.end();
}

bool Lowering::is_aliased(int root) const {
  const auto found = aliased_.find(root);
  return found != aliased_.end() && found->second;
}

void Lowering::fail_node(const std::string& message) const {
  const ir::Node& current = node();
  fail("network '{}': node '{}' ({}): {}", network_, current.name, current.op, message);
}

StagePlan Lowering::run() && {
  for (int input : graph_.inputs) {
    const auto& info = tensor(input);
    if (info.dtype != DType::kF32)
      fail("input '{}' has dtype {}; only f32 is supported", info.name, dtype_name(info.dtype));
    const int id = add_value(plain_md(info.shape));
    value(id).external = true;
    tensor_value_[static_cast<std::size_t>(input)] = id;
    plan_.input_values.push_back(id);
    plan_.input_names.push_back(info.name);
    plan_.input_shapes.push_back(info.shape);
  }
  for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
    current_node_ = static_cast<int>(n);
    const auto& current = graph_.nodes[n];
    const OpDef* op = find_op(current.op);
    if (op == nullptr)
      fail("network '{}': node '{}': op '{}' is not supported by this runtime", network_, current.name,
           current.op);
    try {
      op->lower(*this, current);
    } catch (const dnnl::error& error) {
      fail("network '{}': node '{}' ({}): oneDNN refused it: {}", network_, current.name, current.op,
           error.what());
    } catch (const nlohmann::json::exception& error) {
      fail("network '{}': node '{}' ({}): bad attributes: {}", network_, current.name, current.op,
           error.what());
    }
  }
  current_node_ = -1;
  bind_outputs();
  return std::move(plan_);
}

void Lowering::bind_outputs() {
  for (int output : graph_.outputs) {
    const auto& info = tensor(output);
    const int source = value_of(output);
    Value& produced = value(source);
    const bool listed_once = std::count(graph_.outputs.begin(), graph_.outputs.end(), output) == 1;
    const auto bind = [&](int id) {
      value(id).external = true;
      plan_.output_values.push_back(id);
      plan_.output_names.push_back(info.name);
      plan_.output_shapes.push_back(info.shape);
    };
    // A channels-last view of a value nothing else views (a head convolution's acdb result read as
    // [N, H, W, C]): the producer writes the output buffer itself, as below.
    const int viewed = produced.alias_of;
    const bool channels_last_view = viewed >= 0 && channels_last_views_.count(source) != 0 &&
                                    value(viewed).alias_of < 0 && value(viewed).constant == nullptr &&
                                    !value(viewed).external && !is_aliased(viewed) &&
                                    produced.md == plain_md(info.shape);
    if (listed_once && channels_last_view) {
      bind(viewed);
      continue;
    }
    if (listed_once && produced.alias_of < 0 && produced.constant == nullptr && !produced.external &&
        !is_aliased(source) && produced.md == plain_md(info.shape)) {
      bind(source);  // produced plain already: the producer writes straight into the output buffer
      continue;
    }
    const int id = add_value(plain_md(info.shape));
    add_reorder(source, id, "output " + info.name, conversion_scale(output, source, 1.0F));
    bind(id);
  }
}

int Lowering::add_value(const memory::desc& md) {
  plan_.values.push_back({md});
  return static_cast<int>(plan_.values.size()) - 1;
}

int Lowering::value_of(int tensor_index) {
  const auto t = static_cast<std::size_t>(tensor_index);
  if (tensor_value_[t] >= 0) return tensor_value_[t];
  const auto& info = tensor(tensor_index);
  if (!info.is_constant())
    fail("network '{}': tensor '{}' is used before it is computed", network_, info.name);
  if (info.dtype != DType::kF32)
    fail("network '{}': constant '{}' has dtype {}; expected f32", network_, info.name,
         dtype_name(info.dtype));
  const int id = add_value(plain_md(info.shape));
  value(id).constant = info.data->data;
  tensor_value_[t] = id;
  return id;
}

// The factor a reorder from `source` (a value of `tensor`) to a value of dtype/scale `target_scale`
// multiplies by: real = q * scale on both sides; float values have scale 1. `target_scale` 0 means the
// tensor's own scale.
float Lowering::conversion_scale(int tensor_index, int source, float target_scale,
                                 bool target_quantized) const {
  const auto& info = tensor(tensor_index);
  const auto scale_of_tensor = [&] {
    if (!(info.scale > 0.0F))
      fail("network '{}': tensor '{}' is stored as int8 but has no quantization scale", network_, info.name);
    return info.scale;
  };
  const float from = is_quantized(md(source).data_type()) ? scale_of_tensor() : 1.0F;
  float to = 1.0F;
  if (target_quantized) to = target_scale > 0.0F ? target_scale : scale_of_tensor();
  return from / to;
}

std::optional<int> Lowering::converted(int tensor_index, const memory::desc& wanted) const {
  for (const auto& [key, id] : converted_) {
    if (key == tensor_index && md(id) == wanted) return id;
  }
  return std::nullopt;
}

int Lowering::value_as(int tensor_index, const memory::desc& wanted, float target_scale) {
  const int source = value_of(tensor_index);
  if (md(source) == wanted) return source;
  if (const auto found = converted(tensor_index, wanted)) return *found;
  const int id = add_value(wanted);
  if (value(source).constant != nullptr) {
    pack_constant(source, id);
  } else {
    add_reorder(source, id, tensor(tensor_index).name,
                conversion_scale(tensor_index, source, target_scale, is_quantized(wanted.data_type())));
  }
  remember(tensor_index, id);
  return id;
}

int Lowering::plain_value(int tensor_index) { return value_as(tensor_index, plain_md(shape(tensor_index))); }

int Lowering::own_plain_value(int tensor_index) {
  const auto type = md(value_of(tensor_index)).data_type();
  return value_as(tensor_index, plain_md(shape(tensor_index), type));
}

int Lowering::float_value(int tensor_index) {
  const memory::desc& produced = md(value_of(tensor_index));
  if (produced.data_type() == kF32) return value_of(tensor_index);
  const auto tag = tag_of(produced);
  return value_as(tensor_index,
                  tag ? memory::desc(produced.dims(), kF32, *tag) : plain_md(shape(tensor_index)));
}

void Lowering::pack_constant(int source, int target) {
  const auto& target_md = md(target);
  const void* source_data = value(source).constant;
  auto packed = packed_constants_.find(source_data, target_md);
  if (!packed) {
    auto buffer = std::make_shared<AlignedBuffer>(target_md.get_size());
    memory from(md(source), engine_, const_cast<void*>(source_data));
    memory to(target_md, engine_, buffer->data());
    dnnl::stream stream(engine_);
    dnnl::reorder(from, to).execute(stream, from, to);
    stream.wait();
    packed_constants_.add(source_data, target_md, buffer);
    packed = std::move(buffer);
  }
  value(target).constant = packed->data();
  keep(std::move(packed));
}

int Lowering::define_output(int tensor_index, const memory::desc& wanted) {
  const int id = add_value(wanted);
  tensor_value_[static_cast<std::size_t>(tensor_index)] = id;
  return id;
}

void Lowering::make_view(int view, int source, bool shared) {
  value(view).alias_of = source;
  if (shared) aliased_[root_of(source)] = true;
}

int Lowering::plain_view(int source, const Shape& dims) {
  if (md(source).dims() == Dims(dims.begin(), dims.end())) return source;
  const int view = add_value(plain_md(dims));
  value(view).constant = value(source).constant;
  make_view(view, source);
  return view;
}

void Lowering::add_step(dnnl::primitive primitive, std::vector<std::pair<int, int>> args,
                        const memory::desc& scratchpad, const std::string& what) {
  Step step;
  step.node_name = current_node_ >= 0 ? node().name : "";
  if (!what.empty()) step.node_name += (step.node_name.empty() ? "" : ": ") + what;
  step.primitive = std::move(primitive);
  step.args = std::move(args);
  step.scratchpad_md = scratchpad;
  plan_.scratchpad_bytes = std::max(plan_.scratchpad_bytes, step.scratchpad_md.get_size());
  plan_.steps.push_back(std::move(step));
}

void Lowering::add_reorder(int source, int target, const std::string& what, float scale) {
  const memory::desc& from = md(source);
  const memory::desc& to = md(target);
  if (scale == 1.0F && from.data_type() == kF32 && from.data.ndims == 4 && tag_of(from) == Tag::acdb &&
      to == plain_md(from.dims())) {
    const Dims dims = from.dims();
    add_kernel(
        [n = dims[0], c = dims[1], hw = dims[2] * dims[3]](const std::vector<void*>& data) {
          nhwc_to_nchw(static_cast<const float*>(data[0]), static_cast<float*>(data[1]), n, c, hw);
        },
        {source, target}, what);
    return;
  }
  // The image quantized for an int8 first convolution: plain f32 planes into channels-last integers.
  const bool to_integers = to.data_type() == kU8 || to.data_type() == kS8;
  if (to_integers && from.data_type() == kF32 && from.data.ndims == 4 && tag_of(from) == Tag::abcd &&
      to == memory::desc(from.dims(), to.data_type(), Tag::acdb)) {
    const Dims dims = from.dims();
    add_kernel(
        [n = dims[0], c = dims[1], hw = dims[2] * dims[3], scale,
         unsigned_output = to.data_type() == kU8](const std::vector<void*>& data) {
          quantize_nchw_to_nhwc(static_cast<const float*>(data[0]), data[1], n, c, hw, scale,
                                unsigned_output);
        },
        {source, target}, what);
    return;
  }
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (scale != 1.0F) attr.set_output_scales(0, {scale});
  auto pd = dnnl::reorder::primitive_desc(engine_, from, engine_, to, attr);
  add_primitive(pd, {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, target}}, what);
}

void Lowering::add_kernel(std::function<void(const std::vector<void*>&)> kernel, std::vector<int> values,
                          const std::string& what) {
  Step step;
  step.node_name = what.empty() ? node().name : what;
  step.kernel = std::move(kernel);
  for (int id : values) step.args.emplace_back(0, id);
  plan_.steps.push_back(std::move(step));
}

std::optional<Tag> Lowering::tag_of(const memory::desc& md) {
  if (md.data.ndims != 4) return std::nullopt;
  const Dims dims = md.dims();
  for (Tag tag : {Tag::abcd, Tag::acdb, Tag::aBcd16b, Tag::aBcd8b, Tag::aBcd4b}) {
    if (memory::desc(dims, md.data_type(), tag) == md) return tag;
  }
  return std::nullopt;
}

memory::desc Lowering::like(const memory::desc& reference, const Shape& shape) {
  const auto tag = tag_of(reference);
  if (!tag || shape.size() != 4) return plain_md(shape, reference.data_type());
  return {Dims(shape.begin(), shape.end()), reference.data_type(), *tag};
}

}  // namespace vapipe::ops
