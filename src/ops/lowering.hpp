#pragma once
// Lowering a graph to what the runtime executes on this CPU: oneDNN primitives and hand-written kernels in
// execution order, the memory descriptor of every intermediate value (layouts chosen once, by the
// convolutions) and packed weights. Each operator lowers itself (its `lower` in the registry) through
// `Lowering`, which owns the values and steps; infer/stage_plan.cpp drives it and places the values in the
// arena. Building it is the "load" cost; executing the plan allocates nothing.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <dnnl.hpp>

#include "core/aligned_buffer.hpp"
#include "core/graph.hpp"
#include "vapipe/head_gate.hpp"

namespace vapipe::ops {

struct Value {
  dnnl::memory::desc md;
  int alias_of = -1;               // shares the bytes of another value (reshape views, in-place sum)
  const void* constant = nullptr;  // weights and other constants, bound in place
  bool external = false;           // a graph input or output: its bytes live outside the arena
  std::size_t arena_offset = 0;    // for arena values, after planning
};

struct Step {
  std::string node_name;
  dnnl::primitive primitive;              // empty when `kernel` is set
  std::vector<std::pair<int, int>> args;  // (DNNL_ARG_*, value id)
  dnnl::memory::desc scratchpad_md;
  // Hand-written kernels (ops oneDNN lacks): receives the data pointers of `args` in order.
  std::function<void(const std::vector<void*>&)> kernel;
};

// Constants reordered into kernel layouts, shared by every stage that wants the same bytes in the same
// layout (batch-1 and batch-4 stages usually do), so a package's weights are packed once per context.
class PackedConstants {
 public:
  std::shared_ptr<const AlignedBuffer> find(const void* source, const dnnl::memory::desc& md) const {
    for (const auto& entry : entries_) {
      if (entry.source == source && entry.md == md) return entry.buffer;
    }
    return nullptr;
  }
  void add(const void* source, const dnnl::memory::desc& md, std::shared_ptr<const AlignedBuffer> buffer) {
    entries_.push_back({source, md, std::move(buffer)});
  }

 private:
  struct Entry {
    const void* source;
    dnnl::memory::desc md;
    std::shared_ptr<const AlignedBuffer> buffer;
  };
  std::vector<Entry> entries_;
};

struct StagePlan {
  std::int64_t batch = 0;
  std::vector<Value> values;
  std::vector<Step> steps;
  std::vector<int> input_values;   // plain, external
  std::vector<int> output_values;  // plain, external
  std::vector<std::string> input_names, output_names;
  std::vector<Shape> input_shapes, output_shapes;
  std::vector<std::shared_ptr<const AlignedBuffer>> packed_constants;  // keeps packed weights alive
  std::size_t arena_bytes = 0;
  std::size_t scratchpad_bytes = 0;

  // The value that owns the bytes `value` views (itself when it is no alias).
  int root_of(int value) const {
    while (values[static_cast<std::size_t>(value)].alias_of >= 0)
      value = values[static_cast<std::size_t>(value)].alias_of;
    return value;
  }
};

// Dense row-major; a scalar is a one-element vector (oneDNN has no rank-0 memory).
dnnl::memory::desc plain_md(const Shape& shape, dnnl::memory::data_type type = dnnl::memory::data_type::f32);

bool is_quantized(dnnl::memory::data_type type);
std::size_t element_bytes(dnnl::memory::data_type type);
std::vector<std::int64_t> int_attr(const nlohmann::json& attrs, const char* key,
                                   std::vector<std::int64_t> fallback = {});

// What an execution context asks of its lowering beyond the graph.
struct LoweringOptions {
  HeadGate head_gate{};  // off by default: heads computed whole
};

// The state of one stage's lowering and the services operators lower through. Values are numbered in
// `plan.values`; a graph tensor gets its value when its producer defines it (define_output).

class Lowering {
 public:
  using Tag = dnnl::memory::format_tag;

  Lowering(const ir::Graph& graph, std::int64_t batch, const dnnl::engine& engine, std::string network,
           PackedConstants& packed_constants, LoweringOptions options = {});

  // Lowers every node through the registry, then binds the graph outputs (zero copy where the producer can
  // write them plain). The caller places the arena values.
  StagePlan run() &&;

  // ---- what operators read ----
  const ir::Graph& graph() const { return graph_; }
  const Shape& shape(int tensor) const { return graph_.tensors[static_cast<std::size_t>(tensor)].shape; }
  const ir::Tensor& tensor(int tensor) const { return graph_.tensors[static_cast<std::size_t>(tensor)]; }
  const dnnl::engine& engine() const { return engine_; }
  const std::string& network() const { return network_; }
  const LoweringOptions& options() const { return options_; }
  const ir::Node& node() const { return graph_.nodes[static_cast<std::size_t>(current_node_)]; }
  // A default attribute: user-managed scratchpad, no post-ops.
  const dnnl::primitive_attr& plain_attr() const { return attr_; }
  Value& value(int id) { return plan_.values[static_cast<std::size_t>(id)]; }
  const dnnl::memory::desc& md(int id) const { return plan_.values[static_cast<std::size_t>(id)].md; }
  bool is_graph_output(int tensor) const;
  int consumers(int tensor) const { return consumers_[static_cast<std::size_t>(tensor)]; }
  // True when the current node is the last reader of `tensor`.
  bool dies_here(int tensor) const { return last_use_[static_cast<std::size_t>(tensor)] == current_node_; }
  bool read_channels_last(int tensor) const { return read_channels_last_[static_cast<std::size_t>(tensor)]; }
  bool is_aliased(int root) const;
  int root_of(int value) const { return plan_.root_of(value); }
  [[noreturn]] void fail_node(const std::string& message) const;

  // ---- values ----
  int add_value(const dnnl::memory::desc& md);
  // The value holding `tensor` as produced (constants: plain f32 bound in place).
  int value_of(int tensor);
  // The tensor in layout `md`: the value itself when it already has that layout, else a reordered copy
  // (made once per tensor and layout, shared by every consumer). Conversions between f32, bf16 and
  // s8/u8 dequantize with the tensor's scale and quantize with `target_scale` (0: the tensor's own).
  int value_as(int tensor, const dnnl::memory::desc& md, float target_scale = 0.0F);
  // Dense row-major f32 (for kernels and primitives that only compute in float).
  int plain_value(int tensor);
  // Dense row-major in the value's own data type (shape views and copies of quantized tensors).
  int own_plain_value(int tensor);
  // f32 in the value's own layout (elementwise ops on a bf16/s8 tensor compute in float).
  int float_value(int tensor);
  int define_output(int tensor, const dnnl::memory::desc& md);
  // `view` reads the bytes of `source` (a reshape, a strided view, an in-place result). `shared` false: the
  // source's bytes may still be handed out as a graph output (a channels-last view of a head).
  void make_view(int view, int source, bool shared = true);
  // A plain f32 `value` seen with dims `shape` (the same elements, e.g. leading 1s added to match another
  // operand's rank): a view of its bytes (constants stay constants), or the value itself when it already has them.
  int plain_view(int value, const Shape& shape);
  // A previously converted copy of `tensor` in layout `md`, if one exists; remember(…) records one.
  std::optional<int> converted(int tensor, const dnnl::memory::desc& md) const;
  void remember(int tensor, int value) { converted_.emplace_back(tensor, value); }
  // Reorders a constant value into the layout of `target` once per package (shared between stages).
  void pack_constant(int source, int target);
  // Keeps bytes the plan's constant values point into alive as long as the plan.
  void keep(std::shared_ptr<const AlignedBuffer> buffer) {
    plan_.packed_constants.push_back(std::move(buffer));
  }
  PackedConstants& packed_constants() { return packed_constants_; }

  // ---- steps ----
  template <typename PrimitiveDesc>
  void add_primitive(const PrimitiveDesc& pd, std::vector<std::pair<int, int>> args,
                     const std::string& what = {}) {
    add_step(dnnl::primitive(pd.get()), std::move(args), pd.scratchpad_desc(), what);
  }
  // `scale` multiplies the values on the way (quantization and dequantization).
  void add_reorder(int source, int target, const std::string& what, float scale = 1.0F);
  // A hand-written kernel reading and writing `values` in order; named after the current node unless
  // `what` names it (a reorder between nodes).
  void add_kernel(std::function<void(const std::vector<void*>&)> kernel, std::vector<int> values,
                  const std::string& what = {});

  // ---- layouts ----
  // The format tag among those our kernels produce that describes `md`, if any.
  static std::optional<Tag> tag_of(const dnnl::memory::desc& md);
  // `shape` in the layout (tag and data type) of `reference`, plain when it has none of ours.
  static dnnl::memory::desc like(const dnnl::memory::desc& reference, const Shape& shape);
  // oneDNN's reference implementations ("ref:any"): correct, but 10-100x slower than any jit kernel.
  template <typename PrimitiveDesc>
  static bool is_reference(const PrimitiveDesc& pd) {
    return std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
  }
  // A Transpose [N, C, H, W] -> [N, H, W, C]: a view of a channels-last (acdb) value, no copy.
  static bool is_to_channels_last(const ir::Node& node);
  // Values that are a channels-last Transpose's zero-copy view (see transpose.cpp and run()).
  void mark_channels_last_view(int value) { channels_last_views_.insert(value); }

 private:
  void add_step(dnnl::primitive primitive, std::vector<std::pair<int, int>> args,
                const dnnl::memory::desc& scratchpad, const std::string& what);
  float conversion_scale(int tensor, int source, float target_scale, bool target_quantized = false) const;
  void bind_outputs();

  const ir::Graph& graph_;
  const dnnl::engine& engine_;
  std::string network_;
  LoweringOptions options_;
  PackedConstants& packed_constants_;
  StagePlan plan_;
  dnnl::primitive_attr attr_;
  std::vector<int> tensor_value_;
  std::vector<int> last_use_;
  std::vector<int> consumers_;
  std::vector<bool> read_channels_last_;  // per tensor: its only consumer is a channels-last Transpose
  std::set<int> channels_last_views_;
  std::map<int, bool> aliased_;
  std::vector<std::pair<int, int>> converted_;
  int current_node_ = -1;
};

}  // namespace vapipe::ops
