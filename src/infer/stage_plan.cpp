#include "infer/stage_plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "core/error.hpp"
#include "infer/int8_without_vnni.hpp"
#include "infer/memory_planner.hpp"
#include "infer/plain_kernels.hpp"

namespace vapipe::infer {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using Dims = memory::dims;
using Tag = memory::format_tag;

dnnl::memory::desc plain_md(const Shape& shape, memory::data_type type) {
  // A scalar is stored as a one-element vector: oneDNN has no rank-0 memory.
  Dims dims = shape.empty() ? Dims(1, 1) : Dims(shape.begin(), shape.end());
  Dims strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
  return {dims, type, strides};
}

namespace {

constexpr memory::data_type kF32 = memory::data_type::f32;
constexpr memory::data_type kS8 = memory::data_type::s8;
constexpr memory::data_type kU8 = memory::data_type::u8;
constexpr memory::data_type kBf16 = memory::data_type::bf16;

bool is_quantized(memory::data_type type) { return type == kS8 || type == kU8; }

std::size_t element_bytes(memory::data_type type) {
  switch (type) {
    case kS8:
    case kU8:
      return 1;
    case kBf16:
      return 2;
    default:
      return 4;
  }
}

std::vector<std::int64_t> ints(const nlohmann::json& attrs, const char* key,
                               std::vector<std::int64_t> fallback = {}) {
  if (!attrs.contains(key)) return fallback;
  return attrs.at(key).get<std::vector<std::int64_t>>();
}

std::vector<std::int64_t> strides_of(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

class PlanBuilder {
 public:
  PlanBuilder(const ir::Graph& graph, std::int64_t batch, const dnnl::engine& engine,
              const std::string& network, PackedConstants& packed_constants)
      : graph_(graph), engine_(engine), network_(network), packed_constants_(packed_constants) {
    plan_.batch = batch;
    attr_.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    tensor_value_.assign(graph.tensors.size(), -1);
    last_use_.assign(graph.tensors.size(), -1);
    for (std::size_t n = 0; n < graph.nodes.size(); ++n) {
      for (int input : graph.nodes[n].inputs) {
        if (input >= 0) last_use_[input] = static_cast<int>(n);
      }
    }
    for (int output : graph.outputs) last_use_[output] = static_cast<int>(graph.nodes.size());
    consumers_.assign(graph.tensors.size(), 0);
    for (const auto& node : graph.nodes) {
      for (int input : node.inputs) {
        if (input >= 0) ++consumers_[input];
      }
    }
    read_channels_last_.assign(graph.tensors.size(), false);
    for (const auto& node : graph.nodes) {
      const int x = node.inputs.empty() ? -1 : node.inputs[0];
      if (is_to_channels_last(node) && consumers_[x] == 1 && !is_graph_output(x))
        read_channels_last_[x] = true;
    }
  }

  // VAPIPE_RESIDUAL=binary forces the binary-add form of residual convolutions everywhere (so the
  // differential tests exercise it on CPUs that never need it), =sum forbids it (to compare the two). Read
  // once per plan (at load), never per run.
  enum class ResidualMode : std::uint8_t { kAuto, kBinary, kSumOnly };
#if defined(__aarch64__)
  static constexpr bool kInt8BinaryResidualIsWrong = true;
#else
  static constexpr bool kInt8BinaryResidualIsWrong = false;
#endif
  static ResidualMode residual_mode_from_environment() {
    const char* value = std::getenv("VAPIPE_RESIDUAL");
    const std::string name = value != nullptr ? value : "";
    if (name == "binary") return ResidualMode::kBinary;
    return name == "sum" ? ResidualMode::kSumOnly : ResidualMode::kAuto;
  }

  // oneDNN's reference implementations ("ref:any"): correct, but 10-100x slower than any jit kernel.
  template <typename PrimitiveDesc>
  static bool is_reference(const PrimitiveDesc& pd) {
    return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
  }

  // A Transpose [N, C, H, W] -> [N, H, W, C]: a view of a channels-last (acdb) value, no copy.
  static bool is_to_channels_last(const ir::Node& node) {
    return node.op == "Transpose" && node.inputs.size() == 1 &&
           ints(node.attrs, "perm") == std::vector<std::int64_t>{0, 2, 3, 1};
  }

  bool is_graph_output(int tensor) const {
    return std::find(graph_.outputs.begin(), graph_.outputs.end(), tensor) != graph_.outputs.end();
  }

  StagePlan build() {
    for (int input : graph_.inputs) {
      const auto& tensor = graph_.tensors[input];
      if (tensor.dtype != DType::kF32)
        fail("input '{}' has dtype {}; only f32 is supported", tensor.name, dtype_name(tensor.dtype));
      const int value = add_value(plain_md(tensor.shape));
      plan_.values[value].external = true;
      tensor_value_[input] = value;
      plan_.input_values.push_back(value);
      plan_.input_names.push_back(tensor.name);
      plan_.input_shapes.push_back(tensor.shape);
    }
    for (std::size_t n = 0; n < graph_.nodes.size(); ++n) {
      current_node_ = static_cast<int>(n);
      const auto& node = graph_.nodes[n];
      try {
        lower_node(node);
      } catch (const dnnl::error& error) {
        fail("network '{}': node '{}' ({}): oneDNN refused it: {}", network_, node.name, node.op,
             error.what());
      } catch (const nlohmann::json::exception& error) {
        fail("network '{}': node '{}' ({}): bad attributes: {}", network_, node.name, node.op, error.what());
      }
    }
    for (int output : graph_.outputs) {
      const auto& tensor = graph_.tensors[output];
      const int source = value_of(output);
      Value& produced = plan_.values[source];
      const bool listed_once = std::count(graph_.outputs.begin(), graph_.outputs.end(), output) == 1;
      // A channels-last view of a value nothing else views (a head convolution's acdb result read as
      // [N, H, W, C]): the producer writes the output buffer itself, as below.
      const int viewed = produced.alias_of;
      const bool channels_last_view =
          viewed >= 0 && channels_last_views_.count(source) != 0 && plan_.values[viewed].alias_of < 0 &&
          plan_.values[viewed].constant == nullptr && !plan_.values[viewed].external && !aliased_[viewed] &&
          produced.md == plain_md(tensor.shape);
      if (listed_once && channels_last_view) {
        plan_.values[viewed].external = true;
        plan_.output_values.push_back(viewed);
        plan_.output_names.push_back(tensor.name);
        plan_.output_shapes.push_back(tensor.shape);
        continue;
      }
      if (listed_once && produced.alias_of < 0 && produced.constant == nullptr && !produced.external &&
          !aliased_[source] && produced.md == plain_md(tensor.shape)) {
        // Produced plain already: the producer writes straight into the output buffer (zero copy).
        produced.external = true;
        plan_.output_values.push_back(source);
        plan_.output_names.push_back(tensor.name);
        plan_.output_shapes.push_back(tensor.shape);
        continue;
      }
      const int value = add_value(plain_md(tensor.shape));
      plan_.values[value].external = true;
      add_reorder(source, value, "output " + tensor.name, conversion_scale(output, source, 1.0F));
      plan_.output_values.push_back(value);
      plan_.output_names.push_back(tensor.name);
      plan_.output_shapes.push_back(tensor.shape);
    }
    place_in_arena();
    return std::move(plan_);
  }

 private:
  // ---- values ---------------------------------------------------------------------------------
  int add_value(const memory::desc& md) {
    plan_.values.push_back({md});
    return static_cast<int>(plan_.values.size()) - 1;
  }

  int root_of(int value) const { return plan_.root_of(value); }

  int value_of(int tensor) {
    if (tensor_value_[tensor] >= 0) return tensor_value_[tensor];
    const auto& info = graph_.tensors[tensor];
    if (!info.is_constant())
      fail("network '{}': tensor '{}' is used before it is computed", network_, info.name);
    if (info.dtype != DType::kF32)
      fail("network '{}': constant '{}' has dtype {}; expected f32", network_, info.name,
           dtype_name(info.dtype));
    const int value = add_value(plain_md(info.shape));
    plan_.values[value].constant = info.data->data;
    tensor_value_[tensor] = value;
    return value;
  }

  // The factor a reorder from `source` (a value of `tensor`) to a value of dtype/scale `target_scale`
  // multiplies by: real = q * scale on both sides; float values have scale 1. `target_scale` 0 means the
  // tensor's own scale.
  float conversion_scale(int tensor, int source, float target_scale, bool target_quantized = false) const {
    const auto& info = graph_.tensors[tensor];
    const auto scale_of_tensor = [&] {
      if (!(info.scale > 0.0F))
        fail("network '{}': tensor '{}' is stored as int8 but has no quantization scale", network_,
             info.name);
      return info.scale;
    };
    const float from = is_quantized(plan_.values[source].md.data_type()) ? scale_of_tensor() : 1.0F;
    float to = 1.0F;
    if (target_quantized) to = target_scale > 0.0F ? target_scale : scale_of_tensor();
    return from / to;
  }

  // The tensor in layout `md`: the value itself when it already has that layout, else a reordered copy
  // (made once per tensor and layout, shared by every consumer). Conversions between f32, bf16 and
  // s8/u8 dequantize with the tensor's scale and quantize with `target_scale` (0: the tensor's own).
  int value_as(int tensor, const memory::desc& md, float target_scale = 0.0F) {
    const int source = value_of(tensor);
    if (plan_.values[source].md == md) return source;
    for (const auto& [key, value] : converted_) {
      if (key == tensor && plan_.values[value].md == md) return value;
    }
    const int value = add_value(md);
    if (plan_.values[source].constant != nullptr) {
      pack_constant(source, value);
    } else {
      add_reorder(source, value, graph_.tensors[tensor].name,
                  conversion_scale(tensor, source, target_scale, is_quantized(md.data_type())));
    }
    converted_.emplace_back(tensor, value);
    return value;
  }

  // Dense row-major f32 (for kernels and primitives that only compute in float).
  int plain_value(int tensor) { return value_as(tensor, plain_md(graph_.tensors[tensor].shape)); }

  // Dense row-major in the value's own data type (shape views and copies of quantized tensors).
  int own_plain_value(int tensor) {
    const auto type = plan_.values[value_of(tensor)].md.data_type();
    return value_as(tensor, plain_md(graph_.tensors[tensor].shape, type));
  }

  // f32 in the value's own layout (elementwise ops on a bf16/s8 tensor compute in float).
  int float_value(int tensor) {
    const memory::desc& md = plan_.values[value_of(tensor)].md;
    if (md.data_type() == kF32) return value_of(tensor);
    const auto tag = tag_of(md);
    return value_as(tensor,
                    tag ? memory::desc(md.dims(), kF32, *tag) : plain_md(graph_.tensors[tensor].shape));
  }

  void pack_constant(int source, int target) {
    const auto& target_md = plan_.values[target].md;
    const void* source_data = plan_.values[source].constant;
    auto packed = packed_constants_.find(source_data, target_md);
    if (!packed) {
      auto buffer = std::make_shared<AlignedBuffer>(target_md.get_size());
      memory from(plan_.values[source].md, engine_, const_cast<void*>(source_data));
      memory to(target_md, engine_, buffer->data());
      dnnl::stream stream(engine_);
      dnnl::reorder(from, to).execute(stream, from, to);
      stream.wait();
      packed_constants_.add(source_data, target_md, buffer);
      packed = std::move(buffer);
    }
    plan_.values[target].constant = packed->data();
    plan_.packed_constants.push_back(std::move(packed));
  }

  int define_output(int tensor, const memory::desc& md) {
    const int value = add_value(md);
    tensor_value_[tensor] = value;
    return value;
  }

  // ---- steps ----------------------------------------------------------------------------------
  template <typename PrimitiveDesc>
  void add_primitive(const PrimitiveDesc& pd, std::vector<std::pair<int, int>> args,
                     const std::string& what = {}) {
    Step step;
    step.node_name = current_node_ >= 0 ? graph_.nodes[current_node_].name : "";
    if (!what.empty()) step.node_name += (step.node_name.empty() ? "" : ": ") + what;
    step.primitive = dnnl::primitive(pd.get());
    step.args = std::move(args);
    step.scratchpad_md = pd.scratchpad_desc();
    plan_.scratchpad_bytes = std::max(plan_.scratchpad_bytes, step.scratchpad_md.get_size());
    plan_.steps.push_back(std::move(step));
  }

  // `scale` multiplies the values on the way (quantization and dequantization).
  void add_reorder(int source, int target, const std::string& what, float scale = 1.0F) {
    const memory::desc& from = plan_.values[source].md;
    const memory::desc& to = plan_.values[target].md;
    if (scale == 1.0F && from.data_type() == kF32 && from.data.ndims == 4 && tag_of(from) == Tag::acdb &&
        to == plain_md(from.dims())) {
      const Dims dims = from.dims();
      Step step;
      step.node_name = what;
      step.kernel = [n = dims[0], c = dims[1], hw = dims[2] * dims[3]](const std::vector<void*>& data) {
        nhwc_to_nchw(static_cast<const float*>(data[0]), static_cast<float*>(data[1]), n, c, hw);
      };
      step.args = {{0, source}, {0, target}};
      plan_.steps.push_back(std::move(step));
      return;
    }
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (scale != 1.0F) attr.set_output_scales(0, {scale});
    auto pd = dnnl::reorder::primitive_desc(engine_, plan_.values[source].md, engine_,
                                            plan_.values[target].md, attr);
    add_primitive(pd, {{DNNL_ARG_FROM, source}, {DNNL_ARG_TO, target}}, what);
  }

  void add_kernel(std::function<void(const std::vector<void*>&)> kernel, std::vector<int> values) {
    Step step;
    step.node_name = graph_.nodes[current_node_].name;
    step.kernel = std::move(kernel);
    for (int value : values) step.args.emplace_back(0, value);
    plan_.steps.push_back(std::move(step));
  }

  // ---- layouts --------------------------------------------------------------------------------
  // The format tag among those our kernels produce that describes `md`, if any.
  static std::optional<Tag> tag_of(const memory::desc& md) {
    if (md.data.ndims != 4) return std::nullopt;
    const Dims dims = md.dims();
    for (Tag tag : {Tag::abcd, Tag::acdb, Tag::aBcd16b, Tag::aBcd8b, Tag::aBcd4b}) {
      if (memory::desc(dims, md.data_type(), tag) == md) return tag;
    }
    return std::nullopt;
  }

  static memory::desc like(const memory::desc& reference, const Shape& shape) {
    const auto tag = tag_of(reference);
    if (!tag || shape.size() != 4) return plain_md(shape, reference.data_type());
    return {Dims(shape.begin(), shape.end()), reference.data_type(), *tag};
  }

  // ---- ops ------------------------------------------------------------------------------------
  void lower_node(const ir::Node& node) {
    const std::string& op = node.op;
    if (op == "Conv") return lower_conv(node);
    if (op == "MaxPool" || op == "AveragePool") return lower_pool(node);
    if (op == "Concat") return lower_concat(node);
    if (op == "Eltwise") return lower_eltwise(node);
    if (op == "Binary") return lower_binary(node);
    if (op == "Resize") return lower_resize(node);
    if (op == "Reshape") return lower_reshape(node);
    if (op == "Transpose") return lower_transpose(node);
    if (op == "Slice") return lower_slice(node);
    if (op == "Split") return lower_split(node);
    if (op == "Softmax") return lower_softmax(node);
    if (op == "Gather") return lower_gather(node);
    fail("network '{}': node '{}': op '{}' is not supported by this runtime", network_, node.name, op);
  }

  const Shape& shape(int tensor) const { return graph_.tensors[tensor].shape; }

  // How a convolution computes: data types of its operands and, for int8, the scales that map its
  // integers back to real values (real = q * scale).
  struct ConvPrecision {
    memory::data_type src = kF32, weights = kF32, dst = kF32;
    float input_scale = 1.0F;   // int8: scale of the quantized input
    float output_scale = 1.0F;  // int8 with an s8 output: scale of the output
    std::vector<float> weight_scales;
  };

  ConvPrecision conv_precision(const ir::Node& node, std::int64_t out_channels) const {
    const auto& attrs = node.attrs;
    const std::string precision = attrs.value("precision", std::string("f32"));
    const auto& x_info = graph_.tensors[node.inputs[0]];
    const auto& y_info = graph_.tensors[node.outputs[0]];
    ConvPrecision p;
    if (precision == "f32") return p;
    if (precision == "bf16") {
      p.src = p.weights = kBf16;
      p.dst = y_info.dtype == DType::kBF16 ? kBf16 : kF32;
      return p;
    }
    if (precision != "int8")
      fail("network '{}': node '{}': precision '{}' is not supported", network_, node.name, precision);
    const bool x_quantized = x_info.dtype == DType::kS8;
    p.src = x_quantized || attrs.value("input_type", std::string("s8")) == "s8" ? kS8 : kU8;
    p.weights = kS8;
    p.dst = y_info.dtype == DType::kS8 ? kS8 : kF32;
    p.input_scale = x_quantized ? x_info.scale : attrs.at("input_scale").get<float>();
    if (p.dst == kS8) p.output_scale = y_info.scale;
    p.weight_scales = attrs.at("weight_scales").get<std::vector<float>>();
    const auto positive = [](float v) { return v > 0.0F && std::isfinite(v); };
    if (static_cast<std::int64_t>(p.weight_scales.size()) != out_channels ||
        !std::all_of(p.weight_scales.begin(), p.weight_scales.end(), positive) || !positive(p.input_scale) ||
        !positive(p.output_scale)) {
      fail("network '{}': node '{}': int8 scales are missing or invalid (need {} positive weight scales)",
           network_, node.name, out_channels);
    }
    return p;
  }

  void lower_conv(const ir::Node& node) {
    const auto& attrs = node.attrs;
    const int x = node.inputs.at(0);
    const int w = node.inputs.at(1);
    const int b = node.inputs.size() > 2 ? node.inputs[2] : -1;
    const int sum = node.inputs.size() > 3 ? node.inputs[3] : -1;
    const int y = node.outputs.at(0);
    const auto group = attrs.value("group", std::int64_t{1});
    const Shape& w_shape = shape(w);
    if (shape(x).size() != 4 || w_shape.size() != 4)
      fail("network '{}': node '{}': only 2-D convolutions are supported", network_, node.name);
    Dims weight_dims(w_shape.begin(), w_shape.end());
    Tag weight_tag = Tag::oihw;
    if (group > 1) {
      weight_dims = {group, w_shape[0] / group, w_shape[1], w_shape[2], w_shape[3]};
      weight_tag = Tag::goihw;
    }
    const auto strides = ints(attrs, "strides", {1, 1});
    const auto pads = ints(attrs, "pads", {0, 0, 0, 0});
    auto dilations = ints(attrs, "dilations", {1, 1});
    for (auto& d : dilations) d -= 1;  // oneDNN counts the gaps, ONNX the step
    const Shape& y_shape = shape(y);
    const ConvPrecision precision = conv_precision(node, y_shape[1]);
    const bool int8 = precision.weights == kS8;
    const memory::desc any_src(Dims(shape(x).begin(), shape(x).end()), precision.src, Tag::any);
    const memory::desc any_weights(weight_dims, precision.weights, Tag::any);
    // A convolution feeding only a graph output writes it plain (NCHW) itself: reordering a channels-last
    // head output afterwards costs more than the convolution (YOLO heads have 255 channels).
    // (Measured on yolov5n: equal to or slightly faster than brgconv + a tiled transpose, and simpler.)
    // (Not int8: oneDNN 2.6 has no fast int8 kernel writing NCHW from NHWC (ref_int8, 100x slower); those go
    // channels-last and through the tiled transpose.)
    const bool output_only = is_graph_output(y) && consumers_[y] == 0 && !is_quantized(precision.src);
    // Read only through a channels-last Transpose (the compiler's channels-last head outputs): write
    // channels-last, which every fast convolution kernel produces, and the Transpose is a view.
    const Tag dst_tag = read_channels_last_[y] && sum < 0 ? Tag::acdb : output_only ? Tag::abcd : Tag::any;
    const memory::desc any_dst(Dims(y_shape.begin(), y_shape.end()), precision.dst, dst_tag);
    const memory::desc bias_md = b >= 0 ? memory::desc({y_shape[1]}, kF32, Tag::a) : memory::desc();

    // int8: the accumulator times input_scale * weight_scale[oc] (output scales) is the real value; the
    // last eltwise post-op (or the output scales, without one) also divides by the output's scale, so
    // oneDNN rounds and saturates to s8 in the output's units. A sum adds the addend's integers times
    // addend_scale / (scale of the domain it lands in).
    const auto posts = attrs.value("post_ops", nlohmann::json::array());
    int last_eltwise = -1;
    for (int i = 0; i < static_cast<int>(posts.size()); ++i) {
      if (posts[static_cast<std::size_t>(i)].at("op").get<std::string>() != "sum") last_eltwise = i;
    }
    float addend_scale = 1.0F;
    if (int8 && precision.dst == kS8 && sum >= 0) {
      addend_scale = graph_.tensors[sum].scale;
      if (!(addend_scale > 0.0F))
        fail("network '{}': node '{}': the int8 sum addend has no scale", network_, node.name);
    }
    bool has_sum = false;
    for (const auto& post : posts) has_sum = has_sum || post.at("op").get<std::string>() == "sum";
    if (has_sum && sum < 0)
      fail("network '{}': node '{}': a sum post-op needs a fourth input", network_, node.name);
    // A u8 input where vpmaddubsw would saturate: vapipe halves the weights (infer/int8_without_vnni.hpp).
    const bool halve_u8_weights = precision.src == kU8 && int8_pairs_saturate_;
    std::vector<float> accumulator_scales;  // int8: real = accumulator * accumulator_scales[oc]
    for (float weight_scale : precision.weight_scales)
      accumulator_scales.push_back(precision.input_scale * weight_scale * (halve_u8_weights ? 2.0F : 1.0F));
    // `binary_residual`: the residual is a binary-add post-op reading the addend as f32 real values from
    // `addend_md`, the whole chain computes in real units and a final linear post-op converts to the s8
    // output's units (see below for when).
    const auto make_attr = [&](bool binary_residual, const memory::desc& addend_md) {
      dnnl::post_ops post_ops;
      for (int i = 0; i < static_cast<int>(posts.size()); ++i) {
        const auto& post = posts[static_cast<std::size_t>(i)];
        const std::string kind = post.at("op").get<std::string>();
        const float alpha = post.value("alpha", 0.0F);
        const float beta = post.value("beta", 0.0F);
        const float domain = last_eltwise < i ? precision.output_scale : 1.0F;
        const float scale = i == last_eltwise && !binary_residual ? 1.0F / precision.output_scale : 1.0F;
        if (kind == "sum" && binary_residual) {
          post_ops.append_binary(algorithm::binary_add, addend_md);
        } else if (kind == "sum") {
          post_ops.append_sum(addend_scale / domain);
        } else if (kind == "relu") {
          post_ops.append_eltwise(scale, algorithm::eltwise_relu, 0.0F, 0.0F);
        } else if (kind == "leaky_relu") {
          post_ops.append_eltwise(scale, algorithm::eltwise_relu, alpha, 0.0F);
        } else if (kind == "sigmoid") {
          post_ops.append_eltwise(scale, algorithm::eltwise_logistic, 0.0F, 0.0F);
        } else if (kind == "swish") {
          post_ops.append_eltwise(scale, algorithm::eltwise_swish, post.value("alpha", 1.0F), 0.0F);
        } else if (kind == "clip") {
          post_ops.append_eltwise(scale, algorithm::eltwise_clip, alpha, beta);
        } else {
          fail("network '{}': node '{}': post-op '{}' is not supported", network_, node.name, kind);
        }
      }
      if (binary_residual && precision.output_scale != 1.0F)
        post_ops.append_eltwise(1.0F, algorithm::eltwise_linear, 1.0F / precision.output_scale, 0.0F);
      // A fresh attr: dnnl::primitive_attr copies share one handle, and attr_ must stay post-op free.
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      attr.set_post_ops(post_ops);
      if (int8) {
        const float divide = last_eltwise < 0 && !binary_residual ? precision.output_scale : 1.0F;
        std::vector<float> output_scales;
        for (float scale : accumulator_scales) output_scales.push_back(scale / divide);
        attr.set_output_scales(1 << 1, output_scales);
      }
      return attr;
    };
    const auto make_pd = [&](const memory::desc& dst_md, const dnnl::primitive_attr& attr) {
      const dnnl::convolution_forward::desc desc(
          prop_kind::forward_inference, algorithm::convolution_direct, any_src, any_weights, bias_md, dst_md,
          Dims(strides.begin(), strides.end()), Dims(dilations.begin(), dilations.end()),
          Dims{pads[0], pads[1]}, Dims{pads[2], pads[3]});
      return dnnl::convolution_forward::primitive_desc(desc, attr, engine_);
    };
    dnnl::convolution_forward::primitive_desc pd = make_pd(any_dst, make_attr(false, {}));
    if (dst_tag == Tag::acdb && is_reference(pd)) {
      // No fast kernel writes channels-last here (oneDNN 2.6 without AVX-512 for f32): let the kernel
      // choose, the Transpose then reorders once.
      pd = make_pd(memory::desc(any_dst.dims(), precision.dst, Tag::any), make_attr(false, {}));
    }
    // Without AVX-512 (oneDNN 2.6's jit:avx2 and sse41 kernels), a sum post-op must come first: the
    // activation-then-residual order of YOLO's bottlenecks falls to ref:any, 100x slower (measured 2.5-3.6 s
    // for one 3x3 conv on a Zen 3). A binary-add post-op has no such restriction: the addend is read in the
    // layout the previous convolution gave it (as f32), into a separate dst.
    // oneDNN 2.6 on aarch64 runs the binary-add form of an int8 convolution with gemm_s8s8s32 and gets it
    // wrong (every element of the output off, by up to a third of its range;
    // LowPrecision.EveryInt8ConvolutionKindMatchesSimulatedReference under qemu): int8 keeps the sum post-op
    // there, correct but on ref_int8. f32 binary residuals are right on aarch64 (RuntimeOps tests).
    int binary_addend = -1;
    if (has_sum && residual_mode_ != ResidualMode::kSumOnly && !(int8 && kInt8BinaryResidualIsWrong) &&
        (is_reference(pd) || residual_mode_ == ResidualMode::kBinary)) {
      const memory::desc& produced = plan_.values[value_of(sum)].md;
      const auto tag = tag_of(produced);
      const memory::desc addend_md = tag ? memory::desc(produced.dims(), kF32, *tag) : plain_md(shape(sum));
      auto binary_pd = make_pd(memory::desc(addend_md.dims(), precision.dst, tag ? *tag : Tag::abcd),
                               make_attr(true, addend_md));
      if (!is_reference(binary_pd)) {
        pd = std::move(binary_pd);
        binary_addend = value_as(sum, addend_md);
      }
    }

    const int src = value_as(x, pd.src_desc(), precision.input_scale);
    const memory::desc stored_weights(weight_dims, int8 ? kS8 : kF32, weight_tag);
    int weights = -1;
    if (halve_u8_weights) {
      weights = halved_weight_value(w, stored_weights, pd.weights_desc(), 1.0F);
    } else if (onednn_halves_weights(pd.weights_desc())) {
      weights = halved_weight_value(w, stored_weights, pd.weights_desc(), 2.0F);
    } else {
      weights = weight_value(w, stored_weights, pd.weights_desc());
    }
    int dst = -1;
    if (binary_addend >= 0) {
      dst = define_output(y, pd.dst_desc());
    } else if (has_sum) {
      // The sum post-op accumulates into dst: reuse the addend's bytes when nobody reads them later,
      // otherwise copy the addend into a fresh dst first.
      const int addend = value_as(sum, pd.dst_desc());
      // (Not when the addend is also the source: the convolution would read what it already wrote.)
      const bool addend_dies_here =
          last_use_[sum] == current_node_ && root_of(addend) != root_of(src) && !aliased_[root_of(addend)] &&
          plan_.values[root_of(addend)].constant == nullptr && !plan_.values[root_of(addend)].external;
      dst = define_output(y, pd.dst_desc());
      if (addend_dies_here) {
        plan_.values[dst].alias_of = addend;
        aliased_[root_of(addend)] = true;
      } else {
        add_reorder(addend, dst, "sum addend");
      }
    } else {
      dst = define_output(y, pd.dst_desc());
    }
    std::vector<std::pair<int, int>> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (b >= 0) {
      // oneDNN 2.x adds an int8 convolution's f32 bias to the accumulator before the output scales:
      // store it in accumulator units (bias / (input_scale * weight_scale)).
      args.emplace_back(DNNL_ARG_BIAS, int8 ? scaled_bias(b, accumulator_scales) : value_as(b, bias_md));
    }
    if (binary_addend >= 0) {
      int residual_index = 0;
      while (posts[static_cast<std::size_t>(residual_index)].at("op").get<std::string>() != "sum")
        ++residual_index;
      args.emplace_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(residual_index) | DNNL_ARG_SRC_1, binary_addend);
    }
    add_primitive(pd, std::move(args));
  }

  // oneDNN halves these weights itself when packing them (s8 inputs without VNNI: `scale_adjust` 0.5,
  // and it doubles the output scales to match).
  static bool onednn_halves_weights(const memory::desc& packed) {
    return (packed.data.extra.flags & dnnl_memory_extra_flag_scale_adjust) != 0 &&
           packed.data.extra.scale_adjust == 0.5F;
  }

  // Weights halved by vapipe (halve_weights_balanced) and packed as f32 times `factor`: 2 where oneDNN's
  // reorder halves them again (exactly, then), 1 where the kernel takes them as they are (u8 inputs, whose
  // output scales are doubled above). Cached per tensor in the shared constants like every packed weight.
  int halved_weight_value(int tensor, const memory::desc& stored_md, const memory::desc& wanted_md,
                          float factor) {
    for (const auto& [key, value] : converted_) {
      if (key == tensor && plan_.values[value].md == wanted_md) return value;
    }
    const auto& info = graph_.tensors[tensor];
    if (!info.is_constant() || info.dtype != DType::kS8 || info.data->size != stored_md.get_size()) {
      fail("network '{}': convolution weights '{}' must be an s8 constant of {} bytes", network_, info.name,
           stored_md.get_size());
    }
    const memory::desc doubled_md(stored_md.dims(), kF32, stored_md.data.ndims == 5 ? Tag::goihw : Tag::oihw);
    auto doubled = packed_constants_.find(info.data->data, doubled_md);
    if (!doubled) {
      const auto weights = info.data->as<std::int8_t>();
      const std::size_t out_channels = static_cast<std::size_t>(shape(tensor)[0]);
      const auto halved = halve_weights_balanced(weights, weights.size() / out_channels);
      auto buffer = std::make_shared<AlignedBuffer>(doubled_md.get_size());
      auto* values = reinterpret_cast<float*>(buffer->data());
      for (std::size_t i = 0; i < halved.size(); ++i)
        values[i] = static_cast<float>(halved[i]) * factor * 0.5F;
      packed_constants_.add(info.data->data, doubled_md, buffer);
      doubled = std::move(buffer);
    }
    plan_.packed_constants.push_back(doubled);
    const int stored = add_value(doubled_md);
    plan_.values[stored].constant = doubled->data();
    const int packed = add_value(wanted_md);
    pack_constant(stored, packed);
    converted_.emplace_back(tensor, packed);
    return packed;
  }

  int scaled_bias(int tensor, const std::vector<float>& accumulator_scales) {
    const auto& info = graph_.tensors[tensor];
    if (!info.is_constant() || info.dtype != DType::kF32 ||
        info.data->size != accumulator_scales.size() * sizeof(float)) {
      fail("network '{}': bias '{}' must be an f32 constant with one value per output channel", network_,
           info.name);
    }
    auto buffer = std::make_shared<AlignedBuffer>(info.data->size);
    const auto bias = info.data->as<float>();
    auto* scaled = reinterpret_cast<float*>(buffer->data());
    for (std::size_t c = 0; c < bias.size(); ++c) scaled[c] = bias[c] / accumulator_scales[c];
    const int value = add_value(memory::desc({static_cast<memory::dim>(bias.size())}, kF32, Tag::a));
    plan_.values[value].constant = buffer->data();
    plan_.packed_constants.push_back(std::move(buffer));
    return value;
  }

  int weight_value(int tensor, const memory::desc& stored_md, const memory::desc& wanted_md) {
    for (const auto& [key, value] : converted_) {
      if (key == tensor && plan_.values[value].md == wanted_md) return value;
    }
    const auto& info = graph_.tensors[tensor];
    if (!info.is_constant())
      fail("network '{}': convolution weights '{}' must be constant", network_, info.name);
    const auto expected = stored_md.data_type() == kS8 ? DType::kS8 : DType::kF32;
    if (info.dtype != expected || info.data->size != stored_md.get_size()) {
      fail("network '{}': convolution weights '{}' must be a {} constant of {} bytes", network_, info.name,
           dtype_name(expected), stored_md.get_size());
    }
    const int stored = add_value(stored_md);
    plan_.values[stored].constant = info.data->data;
    if (stored_md == wanted_md) return stored;
    const int packed = add_value(wanted_md);
    pack_constant(stored, packed);
    converted_.emplace_back(tensor, packed);
    return packed;
  }

  void lower_pool(const ir::Node& node) {
    const auto& attrs = node.attrs;
    const int x = node.inputs.at(0);
    const int y = node.outputs.at(0);
    const auto kernel = ints(attrs, "kernel");
    const auto strides = ints(attrs, "strides", {1, 1});
    const auto pads = ints(attrs, "pads", {0, 0, 0, 0});
    algorithm alg = algorithm::pooling_max;
    if (node.op == "AveragePool") {
      alg = attrs.value("count_include_pad", std::int64_t{0}) != 0 ? algorithm::pooling_avg_include_padding
                                                                   : algorithm::pooling_avg_exclude_padding;
    }
    const int src = value_of(x);
    const memory::desc dst_md = like(plan_.values[src].md, shape(y));
    const dnnl::pooling_forward::desc desc(
        prop_kind::forward_inference, alg, plan_.values[src].md, dst_md, Dims(strides.begin(), strides.end()),
        Dims(kernel.begin(), kernel.end()), Dims{pads[0], pads[1]}, Dims{pads[2], pads[3]});
    const dnnl::pooling_forward::primitive_desc pd(desc, attr_, engine_);
    const int dst = define_output(y, pd.dst_desc());
    add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  }

  void lower_concat(const ir::Node& node) {
    const int axis = node.attrs.at("axis").get<int>();
    const int y = node.outputs.at(0);
    // All inputs in the first input's layout and data type (blocked when channels allow), so the copy
    // stays a copy. Quantized inputs share the output's scale (the compiler unifies them).
    const memory::desc first = plan_.values[value_of(node.inputs[0])].md;
    const memory::data_type type = first.data_type();
    const float scale = graph_.tensors[y].scale;
    memory::desc layout = plain_md(shape(node.inputs.at(0)), type);
    if (tag_of(first)) {
      const Tag tag = *tag_of(first);
      const int block = tag == Tag::aBcd16b ? 16 : tag == Tag::aBcd8b ? 8 : tag == Tag::aBcd4b ? 4 : 1;
      bool fits = true;
      for (int input : node.inputs) fits = fits && (axis != 1 || shape(input)[1] % block == 0);
      if (fits) layout = first;
    }
    if (!tag_of(layout) || *tag_of(layout) == Tag::abcd) {
      // Plain layout: a chunked memcpy beats oneDNN's generic concat by 3-4x on the decode's tensors.
      const Shape& out = shape(y);
      const auto rank = static_cast<std::size_t>(out.size());
      const auto normalized = static_cast<std::size_t>(axis < 0 ? axis + static_cast<int>(rank) : axis);
      const std::int64_t outer =
          std::accumulate(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(normalized), std::int64_t{1},
                          std::multiplies<>());
      std::vector<std::int64_t> chunks;
      std::vector<int> values;
      for (int input : node.inputs) {
        const Shape& in = shape(input);
        chunks.push_back(std::accumulate(in.begin() + static_cast<std::ptrdiff_t>(normalized), in.end(),
                                         std::int64_t{1}, std::multiplies<>()));
        values.push_back(value_as(input, plain_md(in, type), scale));
      }
      values.push_back(define_output(y, plain_md(out, type)));
      add_kernel([chunks, outer, bytes = element_bytes(type)](
                     const std::vector<void*>& data) { concat_plain(data, chunks, outer, bytes); },
                 values);
      return;
    }
    std::vector<memory::desc> sources;
    std::vector<std::pair<int, int>> args;
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
      const int value = value_as(node.inputs[i], like(layout, shape(node.inputs[i])), scale);
      sources.push_back(plan_.values[value].md);
      args.emplace_back(DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), value);
    }
    const dnnl::concat::primitive_desc pd(like(layout, shape(y)), axis, sources, engine_, attr_);
    const int dst = define_output(y, pd.dst_desc());
    args.emplace_back(DNNL_ARG_DST, dst);
    add_primitive(pd, std::move(args));
  }

  static algorithm eltwise_algorithm(const std::string& alg) {
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

  void lower_eltwise(const ir::Node& node) {
    const std::string alg_name = node.attrs.at("alg").get<std::string>();
    const float alpha = node.attrs.value("alpha", alg_name == "swish" ? 1.0F : 0.0F);
    const float beta = node.attrs.value("beta", 0.0F);
    const int x = node.inputs.at(0);
    const int y = node.outputs.at(0);
    if (alg_name == "hardsigmoid") {  // oneDNN 2.6 has no hardsigmoid: clip(alpha * x + beta, 0, 1)
      const int src = float_value(x);
      const memory::desc md = plan_.values[src].md;
      const int middle = add_value(md);
      add_eltwise(src, middle, algorithm::eltwise_linear, alpha, beta);
      add_eltwise(middle, define_output(y, md), algorithm::eltwise_clip, 0.0F, 1.0F);
      return;
    }
    const algorithm alg = eltwise_algorithm(alg_name);
    const int src = float_value(x);
    add_eltwise(src, define_output(y, plan_.values[src].md), alg, alpha, beta);
  }

  void add_eltwise(int src, int dst, algorithm alg, float alpha, float beta) {
    const dnnl::eltwise_forward::desc desc(prop_kind::forward_inference, alg, plan_.values[src].md, alpha,
                                           beta);
    const dnnl::eltwise_forward::primitive_desc pd(desc, attr_, engine_);
    add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  }

  void lower_binary(const ir::Node& node) {
    const std::string alg_name = node.attrs.at("alg").get<std::string>();
    static const std::map<std::string, algorithm> kAlgorithms{
        {"add", algorithm::binary_add}, {"sub", algorithm::binary_sub}, {"mul", algorithm::binary_mul},
        {"div", algorithm::binary_div}, {"max", algorithm::binary_max}, {"min", algorithm::binary_min}};
    const auto found = kAlgorithms.find(alg_name);
    if (found == kAlgorithms.end()) fail("binary algorithm '{}' is not supported", alg_name);
    int a = node.inputs.at(0);
    int b = node.inputs.at(1);
    const int y = node.outputs.at(0);
    const Shape& y_shape = shape(y);
    const bool commutative = alg_name == "add" || alg_name == "mul" || alg_name == "max" || alg_name == "min";
    // oneDNN broadcasts src1 only; put the full-shape operand first.
    if (shape(a) != y_shape && commutative) std::swap(a, b);
    if (shape(a) != y_shape) {
      fail("network '{}': node '{}': broadcasting the first operand of '{}' is not supported", network_,
           node.name, alg_name);
    }
    const int src0 = float_value(a);
    const memory::desc src0_md = plan_.values[src0].md;
    Shape b_shape = shape(b);
    while (b_shape.size() < y_shape.size()) b_shape.insert(b_shape.begin(), 1);
    int src1 = -1;
    if (b_shape == y_shape) {
      src1 = value_as(b, src0_md);
    } else {
      // A broadcast operand (per channel, scalar, ...) stays plain; oneDNN handles the broadcast.
      src1 = value_of(b);
      if (plan_.values[src1].md.dims() != Dims(b_shape.begin(), b_shape.end())) {
        const int view = add_value(plain_md(b_shape));
        plan_.values[view].alias_of = src1;
        plan_.values[view].constant = plan_.values[src1].constant;
        aliased_[root_of(src1)] = true;
        src1 = view;
      }
    }
    const dnnl::binary::desc desc(found->second, src0_md, plan_.values[src1].md, src0_md);
    const dnnl::binary::primitive_desc pd(desc, attr_, engine_);
    const int dst = define_output(y, pd.dst_desc());
    add_primitive(pd, {{DNNL_ARG_SRC_0, src0}, {DNNL_ARG_SRC_1, src1}, {DNNL_ARG_DST, dst}});
  }

  void lower_resize(const ir::Node& node) {
    const int x = node.inputs.at(0);
    const int y = node.outputs.at(0);
    const Shape& in = shape(x);
    const Shape& out = shape(y);
    const std::string mode = node.attrs.value("mode", std::string("nearest"));
    const std::string coordinates =
        node.attrs.value("coordinate_transformation_mode", std::string("asymmetric"));
    const std::string rounding = node.attrs.value("nearest_mode", std::string("round_prefer_floor"));
    if (mode != "nearest")
      fail("network '{}': node '{}': Resize mode '{}' is not supported", network_, node.name, mode);
    bool integer_upscale = in.size() == 4 && in[0] == out[0] && in[1] == out[1];
    for (std::size_t d = 2; d < in.size() && integer_upscale; ++d)
      integer_upscale = out[d] % in[d] == 0 && out[d] >= in[d];
    // With an integer factor every ONNX coordinate/rounding mode picks floor(dst / factor), which is
    // what oneDNN's nearest resampling computes; anything else goes to the plain kernel.
    const bool onednn_matches =
        integer_upscale && coordinates != "align_corners" && coordinates != "tf_crop_and_resize";
    if (onednn_matches) {
      const int src = value_of(x);
      const memory::desc dst_md = like(plan_.values[src].md, out);
      const dnnl::resampling_forward::desc desc(prop_kind::forward_inference, algorithm::resampling_nearest,
                                                plan_.values[src].md, dst_md);
      const dnnl::resampling_forward::primitive_desc pd(desc, attr_, engine_);
      const int dst = define_output(y, pd.dst_desc());
      add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      return;
    }
    const int src = plain_value(x);
    const int dst = define_output(y, plain_md(out));
    add_kernel(
        [=](const std::vector<void*>& data) {
          resize_nearest(static_cast<const float*>(data[0]), in, static_cast<float*>(data[1]), out,
                         coordinates, rounding);
        },
        {src, dst});
  }

  void lower_reshape(const ir::Node& node) {
    const int x = node.inputs.at(0);
    const int y = node.outputs.at(0);
    const int src = own_plain_value(x);
    const int dst = define_output(y, plain_md(shape(y), plan_.values[src].md.data_type()));
    plan_.values[dst].alias_of = src;
    aliased_[root_of(src)] = true;
  }

  void lower_transpose(const ir::Node& node) {
    const int x = node.inputs.at(0);
    const int y = node.outputs.at(0);
    const auto perm = ints(node.attrs, "perm");
    const Shape& in = shape(x);
    const auto in_strides = strides_of(in);
    Dims view_dims;
    Dims view_strides;
    for (auto axis : perm) {
      view_dims.push_back(in.at(axis));
      view_strides.push_back(in_strides.at(axis));
    }
    if (is_to_channels_last(node) && shape(x).size() == 4 && plan_.values[value_of(x)].constant == nullptr) {
      // The bytes of an acdb [N, C, H, W] value are the dense [N, H, W, C] tensor: a view when the producer
      // wrote acdb (the head convolutions, normally), else one reorder into acdb.
      const int produced = value_as(x, memory::desc(Dims(shape(x).begin(), shape(x).end()), kF32, Tag::acdb));
      {
        const int view = define_output(y, plain_md(shape(y)));
        plan_.values[view].alias_of = produced;
        channels_last_views_.insert(view);
        if (!is_graph_output(y)) aliased_[root_of(produced)] = true;
        return;
      }
    }
    const int src = plain_value(x);
    // The input read through permuted strides is the output; a reorder makes it dense.
    const int view = add_value(memory::desc(view_dims, kF32, view_strides));
    plan_.values[view].alias_of = src;
    aliased_[root_of(src)] = true;
    const int dst = define_output(y, plain_md(shape(y)));
    add_reorder(view, dst, node.name);
  }

  void add_slice_copy(int src, const Shape& in, const std::vector<std::int64_t>& starts,
                      const std::vector<std::int64_t>& steps, int y) {
    const Shape& out = shape(y);
    const bool unit_steps = std::all_of(steps.begin(), steps.end(), [](std::int64_t s) { return s == 1; });
    if (unit_steps) {
      const memory::desc view_md = plan_.values[src].md.submemory_desc(Dims(out.begin(), out.end()),
                                                                       Dims(starts.begin(), starts.end()));
      const int view = add_value(view_md);
      plan_.values[view].alias_of = src;
      aliased_[root_of(src)] = true;
      add_reorder(view, define_output(y, like(plan_.values[src].md, out)), "slice");
      return;
    }
    const int dst = define_output(y, plain_md(out));
    add_kernel(
        [=](const std::vector<void*>& data) {
          strided_slice(static_cast<const float*>(data[0]), in, starts, steps, static_cast<float*>(data[1]),
                        out);
        },
        {src, dst});
  }

  void lower_slice(const ir::Node& node) {
    const int x = node.inputs.at(0);
    const auto starts = ints(node.attrs, "starts");
    const auto steps = ints(node.attrs, "steps", std::vector<std::int64_t>(starts.size(), 1));
    // Unit steps are a view plus a copy in any data type; strided steps use the f32 kernel.
    const bool unit_steps = std::all_of(steps.begin(), steps.end(), [](std::int64_t s) { return s == 1; });
    add_slice_copy(unit_steps ? own_plain_value(x) : plain_value(x), shape(x), starts, steps,
                   node.outputs.at(0));
  }

  void lower_split(const ir::Node& node) {
    const int x = node.inputs.at(0);
    const int axis = node.attrs.at("axis").get<int>();
    const Shape& in = shape(x);
    int src = value_of(x);
    // Channel splits at block boundaries read the blocked layout in place; others go plain.
    const auto tag = tag_of(plan_.values[src].md);
    bool blocked_ok = tag.has_value();
    if (tag && *tag != Tag::abcd && *tag != Tag::acdb) {
      const std::int64_t block = *tag == Tag::aBcd16b ? 16 : *tag == Tag::aBcd8b ? 8 : 4;
      for (int output : node.outputs) blocked_ok = blocked_ok && (axis != 1 || shape(output)[1] % block == 0);
    }
    if (!blocked_ok) src = own_plain_value(x);
    std::vector<std::int64_t> starts(in.size(), 0);
    for (int output : node.outputs) {
      add_slice_copy(src, in, starts, std::vector<std::int64_t>(in.size(), 1), output);
      starts[axis] += shape(output)[axis];
    }
  }

  void lower_softmax(const ir::Node& node) {
    const int x = node.inputs.at(0);
    const int y = node.outputs.at(0);
    int axis = node.attrs.value("axis", -1);
    if (axis < 0) axis += static_cast<int>(shape(x).size());
    const int src = plain_value(x);
    const dnnl::softmax_forward::desc desc(prop_kind::forward_inference, plan_.values[src].md, axis);
    const dnnl::softmax_forward::primitive_desc pd(desc, attr_, engine_);
    const int dst = define_output(y, pd.dst_desc());
    add_primitive(pd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
  }

  void lower_gather(const ir::Node& node) {
    const int x = node.inputs.at(0);
    const int y = node.outputs.at(0);
    const Shape& in = shape(x);
    int axis = node.attrs.at("axis").get<int>();
    if (axis < 0) axis += static_cast<int>(in.size());
    auto indices = ints(node.attrs, "indices");
    for (auto& index : indices) {
      if (index < 0) index += in.at(axis);
      if (index < 0 || index >= in.at(axis))
        fail("network '{}': node '{}': Gather index out of range", network_, node.name);
    }
    const std::int64_t outer =
        std::accumulate(in.begin(), in.begin() + axis, std::int64_t{1}, std::multiplies<>());
    const std::int64_t inner =
        std::accumulate(in.begin() + axis + 1, in.end(), std::int64_t{1}, std::multiplies<>());
    const std::int64_t axis_size = in.at(axis);
    const int src = plain_value(x);
    const int dst = define_output(y, plain_md(shape(y)));
    add_kernel(
        [=](const std::vector<void*>& data) {
          gather_rows(static_cast<const float*>(data[0]), outer, axis_size, inner, indices,
                      static_cast<float*>(data[1]));
        },
        {src, dst});
  }

  // ---- memory plan ----------------------------------------------------------------------------
  void place_in_arena() {
    const int value_count = static_cast<int>(plan_.values.size());
    std::vector<int> first(value_count, -1);
    std::vector<int> last(value_count, -1);
    for (int s = 0; s < static_cast<int>(plan_.steps.size()); ++s) {
      for (const auto& [arg, value] : plan_.steps[s].args) {
        const int root = root_of(value);
        if (first[root] < 0) first[root] = s;
        last[root] = s;
      }
    }
    // Aliases may describe more bytes than their root (padded blocked views): reserve the largest.
    std::vector<std::size_t> bytes(static_cast<std::size_t>(value_count), 0);
    for (int v = 0; v < value_count; ++v) {
      auto& root_bytes = bytes[static_cast<std::size_t>(root_of(v))];
      root_bytes = std::max(root_bytes, plan_.values[v].md.get_size());
    }
    std::vector<int> arena_roots;
    std::vector<BufferLifetime> lifetimes;
    for (int v = 0; v < value_count; ++v) {
      const Value& value = plan_.values[v];
      if (value.alias_of >= 0 || value.constant != nullptr || value.external || first[v] < 0) continue;
      arena_roots.push_back(v);
      lifetimes.push_back({bytes[v], first[v], last[v]});
    }
    const MemoryPlan memory_plan = plan_memory(lifetimes);
    for (std::size_t i = 0; i < arena_roots.size(); ++i)
      plan_.values[arena_roots[i]].arena_offset = memory_plan.offsets[i];
    plan_.arena_bytes = memory_plan.arena_bytes;
  }

  const ir::Graph& graph_;
  const dnnl::engine& engine_;
  std::string network_;
  PackedConstants& packed_constants_;
  StagePlan plan_;
  dnnl::primitive_attr attr_;
  std::vector<int> tensor_value_;
  std::vector<int> last_use_;
  std::vector<int> consumers_;
  ResidualMode residual_mode_ = residual_mode_from_environment();
  bool int8_pairs_saturate_ = int8_pair_sums_saturate();  // read once per plan: no VNNI on this CPU
  std::vector<bool> read_channels_last_;  // per tensor: its only consumer is a channels-last Transpose
  std::set<int> channels_last_views_;     // values that are such a Transpose's zero-copy view
  std::map<int, bool> aliased_;
  std::vector<std::pair<int, int>> converted_;
  int current_node_ = -1;
};

}  // namespace

StagePlan build_stage_plan(const ir::Graph& graph, std::int64_t batch, const dnnl::engine& engine,
                           const std::string& network_name, PackedConstants& packed_constants) {
  return PlanBuilder(graph, batch, engine, network_name, packed_constants).build();
}

}  // namespace vapipe::infer
