#include "vapipe/runtime.hpp"

#include "ops/int8_without_vnni.hpp"

#include <omp.h>
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>

#include <dnnl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/aligned_buffer.hpp"
#include "core/error.hpp"
#include "core/graph.hpp"
#include "core/package.hpp"
#include "infer/stage_plan.hpp"
#include "ops/shape_inference.hpp"

namespace vapipe {

// ---- CPU --------------------------------------------------------------------------------------------

#if defined(__aarch64__)
// oneDNN's cpu_isa enumerates x86 levels only. On aarch64 oneDNN 2.6 (Debian 12) has JIT kernels (f32 and
// int8 convolutions, pooling, eltwise) for SVE only; without SVE (Cortex-A53/A72/A76, Neoverse-N1) its
// convolutions run its reference gemm: correct, portable, slow. The kernel's hwcaps tell which.
namespace {
bool aarch64_has_sve() { return (getauxval(AT_HWCAP) & HWCAP_SVE) != 0; }
}  // namespace
#endif

int max_threads() { return std::max(256, omp_get_num_procs()); }

std::string cpu_isa() {
#if defined(__aarch64__)
  return aarch64_has_sve() ? "aarch64_sve" : "aarch64_asimd";
#endif
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

bool cpu_has_native(std::string_view precision) {
#if defined(__aarch64__)
  if (precision == "int8") return aarch64_has_sve();
  return precision == "f32";  // oneDNN 2.6 has no aarch64 bf16 kernels
#endif
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  const bool bf16 = isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  if (precision == "bf16") return bf16;
  if (precision == "int8")
    return bf16 || isa == dnnl::cpu_isa::avx512_core_vnni || isa == dnnl::cpu_isa::avx2_vnni;
  return precision == "f32";
}

// ---- Network ----------------------------------------------------------------------------------------

Network::Network(std::shared_ptr<const ir::Network> network) : network_(std::move(network)) {
  if (network_->stages.empty()) fail("network '{}' has no stages", network_->name);
  for (const auto& stage : network_->stages) stage_batches_.push_back(stage.batch);
  std::sort(stage_batches_.begin(), stage_batches_.end());
}

const std::string& Network::name() const { return network_->name; }
const std::string& Network::precision() const { return network_->precision; }
bool Network::dynamic_shape() const { return network_->dynamic_shape; }
const nlohmann::json& Network::metadata() const { return network_->metadata; }

std::int64_t Network::stage_for(std::int64_t batch) const {
  if (batch < 1) fail("network '{}': batch size {} is not positive", name(), batch);
  for (std::int64_t stage : stage_batches()) {
    if (stage >= batch) return stage;
  }
  fail("network '{}': batch size {} exceeds the largest compiled stage ({}); recompile with --batch", name(),
       batch, max_batch());
}

namespace {
const ir::Stage& find_stage(const ir::Network& network, std::int64_t batch) {
  for (const auto& stage : network.stages) {
    if (stage.batch == batch) return stage;
  }
  fail("network '{}' has no stage of batch {}", network.name, batch);
}

std::vector<TensorInfo> describe(const ir::Graph& graph, const std::vector<int>& tensors) {
  std::vector<TensorInfo> infos;
  for (int index : tensors) {
    const auto& tensor = graph.tensors[index];
    infos.push_back({tensor.name, tensor.dtype, tensor.shape});
  }
  return infos;
}
}  // namespace

std::vector<TensorInfo> Network::inputs(std::int64_t batch) const {
  const auto& graph = find_stage(*network_, batch).graph;
  return describe(graph, graph.inputs);
}

std::vector<TensorInfo> Network::outputs(std::int64_t batch) const {
  const auto& graph = find_stage(*network_, batch).graph;
  return describe(graph, graph.outputs);
}

// ---- Model ------------------------------------------------------------------------------------------

std::shared_ptr<const Model> Model::load(const std::string& path) {
  ir::Package package = ir::read_package(path);
  auto model = std::make_shared<Model>();
  model->path_ = path;
  for (auto& network : package.networks) {
    model->networks_.push_back(
        std::make_shared<const Network>(std::make_shared<const ir::Network>(std::move(network))));
  }
  if (model->networks_.empty()) fail("{}: the package holds no network", path);
  return model;
}

std::vector<std::string> Model::network_names() const {
  std::vector<std::string> names;
  for (const auto& network : networks_) names.push_back(network->name());
  return names;
}

std::shared_ptr<const Network> Model::network(std::string_view name) const {
  if (name.empty()) return networks_.front();
  for (const auto& network : networks_) {
    if (network->name() == name) return network;
  }
  std::string known;
  for (const auto& network : networks_) known += (known.empty() ? "" : ", ") + network->name();
  fail("{}: no network named '{}' (the package has: {})", path_, name, known);
}

// ---- ExecutionContext -------------------------------------------------------------------------------

class ExecutionContext::Impl {
 public:
  // oneDNN splits a primitive's work for omp_get_max_threads() threads and some kernels then assume the team
  // really has that many; libgomp's omp_get_max_threads() ignores OMP_THREAD_LIMIT, so a team cut down by the
  // limit leaves part of an output unwritten (a wrong result, no error). The team is sized within the limit.
  static int team_size(int requested, const std::string& network) {
    if (requested < 0 || requested > max_threads()) {
      fail("network '{}': {} threads asked; a context takes 0 (every core) to {}", network, requested,
           max_threads());
    }
    const int wanted = requested > 0 ? requested : omp_get_num_procs();
    const int limit = omp_get_thread_limit();
    if (wanted <= limit) return wanted;
    spdlog::warn("network '{}': {} thread(s) asked, OMP_THREAD_LIMIT allows {}; using {}", network, wanted,
                 limit, limit);
    return limit;
  }

  ~Impl() {
    if (profile_) print_profile();
  }

  Impl(std::shared_ptr<const Network> network, ContextOptions options)
      : network_(std::move(network)),
        threads_(team_size(options.threads, network_->name())),
        lowering_{.head_gate = options.head_gate} {
    const char* profile = std::getenv("VAPIPE_PROFILE");
    profile_ = profile != nullptr && *profile != '\0' && *profile != '0';
    // VAPIPE_PROFILE=all lists every step, any other value the 25 slowest.
    if (profile_ && std::string_view(profile) == "all")
      profile_rows_ = std::numeric_limits<std::size_t>::max();
    if (!cpu_has_native(network_->precision())) {
      spdlog::warn(
          "network '{}' is {}, but this CPU ({}) has no native {} kernels: oneDNN falls back to slower ones",
          network_->name(), network_->precision(), cpu_isa(), network_->precision());
    }
    omp_set_num_threads(threads_);
    std::size_t arena_bytes = 0;
    std::size_t scratchpad_bytes = 0;
    for (const auto& ir_stage : network_->ir().stages) {
      infer::StagePlan plan = infer::build_stage_plan(ir_stage.graph, ir_stage.batch, engine_,
                                                      network_->name(), packed_constants_, lowering_);
      spdlog::debug("network '{}' stage {}: {} steps, arena {:.1f} MB, scratchpad {:.1f} MB",
                    network_->name(), plan.batch, plan.steps.size(),
                    static_cast<double>(plan.arena_bytes) / 1e6,
                    static_cast<double>(plan.scratchpad_bytes) / 1e6);
      arena_bytes = std::max(arena_bytes, plan.arena_bytes);
      scratchpad_bytes = std::max(scratchpad_bytes, plan.scratchpad_bytes);
      Stage stage;
      stage.plan = std::move(plan);
      stages_.push_back(std::move(stage));
    }
    std::sort(stages_.begin(), stages_.end(),
              [](const auto& a, const auto& b) { return a.plan.batch < b.plan.batch; });
    // One arena and one scratchpad serve every stage: a context runs one stage at a time.
    arena_ = AlignedBuffer(arena_bytes);
    scratchpad_ = AlignedBuffer(scratchpad_bytes);
    for (auto& stage : stages_) bind(stage);
  }

  void run(std::span<const ConstTensorView> inputs, std::span<const TensorView> outputs) {
    if (inputs.empty()) fail("network '{}': run() needs its inputs", network_->name());
    const std::int64_t batch = inputs[0].shape.empty() ? 0 : inputs[0].shape[0];
    const std::int64_t stage_batch = network_->stage_for(batch);
    Stage* compiled = &*std::find_if(stages_.begin(), stages_.end(),
                                     [&](const auto& s) { return s.plan.batch == stage_batch; });
    Stage& stage = needs_other_shape(*compiled, inputs) ? stage_for_shape(*compiled, inputs) : *compiled;
    const auto& plan = stage.plan;
    if (inputs.size() != plan.input_values.size()) {
      fail("network '{}' takes {} input(s), {} given", network_->name(), plan.input_values.size(),
           inputs.size());
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) bind_input(stage, i, inputs[i], batch);
    if (!outputs.empty() && outputs.size() != plan.output_values.size()) {
      fail("network '{}' has {} output(s), {} buffers given", network_->name(), plan.output_values.size(),
           outputs.size());
    }
    for (std::size_t i = 0; i < plan.output_values.size(); ++i) {
      void* target = stage.own_outputs[i].data();
      if (!outputs.empty()) {
        if (outputs[i].dtype != DType::kF32 || outputs[i].shape != plan.output_shapes[i]) {
          fail("network '{}': output buffer {} ('{}') must be f32 {}, got {} {}", network_->name(), i,
               plan.output_names[i], shape_to_string(plan.output_shapes[i]), dtype_name(outputs[i].dtype),
               shape_to_string(outputs[i].shape));
        }
        target = outputs[i].data;
      }
      set_external(stage, plan.output_values[i], target);
      stage.output_pointers[i] = target;
    }
    omp_set_num_threads(threads_);
    if (stage.step_ms.size() != plan.steps.size()) stage.step_ms.assign(plan.steps.size(), 0.0);
    for (std::size_t s = 0; s < plan.steps.size(); ++s) {
      const auto started =
          profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      const auto& step = plan.steps[s];
      if (step.kernel) {
        std::vector<void*>& pointers = stage.kernel_pointers[s];
        for (std::size_t a = 0; a < step.args.size(); ++a)
          pointers[a] = stage.memories[step.args[a].second].get_data_handle();
        step.kernel(pointers);
      } else {
        step.primitive.execute(stream_, stage.step_args[s]);
      }
      if (profile_) {
        stream_.wait();
        stage.step_ms[s] +=
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
      }
    }
    stream_.wait();
    ++stage.runs;
    last_stage_ = &stage;
  }

  ConstTensorView output(std::size_t index) const {
    if (last_stage_ == nullptr) fail("network '{}': output() before any run()", network_->name());
    if (index >= last_stage_->plan.output_values.size())
      fail("network '{}': no output {}", network_->name(), index);
    return {last_stage_->output_pointers[index], DType::kF32, last_stage_->plan.output_shapes[index]};
  }

  std::size_t output_count() const { return stages_.front().plan.output_values.size(); }
  std::int64_t last_stage_batch() const { return last_stage_ ? last_stage_->plan.batch : 0; }
  const Network& network() const { return *network_; }

 private:
  struct Stage;

  // True when the inputs' per-sample shapes differ from the compiled ones (only a dynamic network
  // accepts that; bind_input reports the mismatch otherwise).
  bool needs_other_shape(const Stage& stage, std::span<const ConstTensorView> inputs) const {
    if (!network_->dynamic_shape() || inputs.size() != stage.plan.input_shapes.size()) return false;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const Shape& compiled = stage.plan.input_shapes[i];
      if (inputs[i].shape.size() != compiled.size()) return false;
      if (!std::equal(compiled.begin() + 1, compiled.end(), inputs[i].shape.begin() + 1)) return true;
    }
    return false;
  }

  // A plan for inputs smaller than the compiled shape, built on first use and cached (a handful of shapes
  // per context is the expected use: several camera resolutions).
  Stage& stage_for_shape(const Stage& compiled, std::span<const ConstTensorView> inputs) {
    std::vector<Shape> shapes;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      Shape shape = inputs[i].shape;
      shape[0] = compiled.plan.batch;
      const Shape& limit = compiled.plan.input_shapes[i];
      for (std::size_t d = 1; d < shape.size(); ++d) {
        if (shape[d] > limit[d] || shape[d] < 1) {
          fail(
              "network '{}': input '{}' of shape {} does not fit the compiled shape {} (dynamic networks "
              "take "
              "inputs up to it)",
              network_->name(), compiled.plan.input_names[i], shape_to_string(inputs[i].shape),
              shape_to_string(limit));
        }
      }
      shapes.push_back(std::move(shape));
    }
    for (auto& cached : dynamic_stages_) {
      if (cached->plan.batch == compiled.plan.batch && cached->plan.input_shapes == shapes) return *cached;
    }
    const ir::Stage* source = nullptr;
    for (const auto& ir_stage : network_->ir().stages) {
      if (ir_stage.batch == compiled.plan.batch) source = &ir_stage;
    }
    ir::Graph graph = source->graph;
    for (std::size_t i = 0; i < shapes.size(); ++i) graph.tensors[graph.inputs[i]].shape = shapes[i];
    ops::infer_shapes(graph);
    constexpr std::size_t kMaxCachedShapes = 8;
    if (dynamic_stages_.size() == kMaxCachedShapes) dynamic_stages_.erase(dynamic_stages_.begin());
    auto stage = std::make_unique<Stage>();
    stage->plan = infer::build_stage_plan(graph, compiled.plan.batch, engine_, network_->name(),
                                          packed_constants_, lowering_);
    if (stage->plan.scratchpad_bytes > scratchpad_.size())
      stage->own_scratchpad = AlignedBuffer(stage->plan.scratchpad_bytes);
    if (stage->plan.arena_bytes > arena_.size()) stage->own_arena = AlignedBuffer(stage->plan.arena_bytes);
    bind(*stage);
    dynamic_stages_.push_back(std::move(stage));
    return *dynamic_stages_.back();
  }

  struct Stage {
    infer::StagePlan plan;
    std::vector<dnnl::memory> memories;  // one per value
    std::vector<std::unordered_map<int, dnnl::memory>> step_args;
    std::vector<std::vector<void*>> kernel_pointers;
    std::vector<AlignedBuffer> own_inputs, own_outputs;
    std::vector<void*> output_pointers;
    std::vector<std::vector<int>> views_of;  // per value: every value sharing its bytes (aliases)
    AlignedBuffer own_arena;                 // only for a dynamic-shape plan larger than the shared arena
    AlignedBuffer own_scratchpad;            // likewise
    std::vector<double> step_ms;             // accumulated per step when VAPIPE_PROFILE is set
    std::int64_t runs = 0;
  };

  // VAPIPE_PROFILE=1: per-step times (the bmrt_test-style layer profile), printed when the context ends.
  void print_profile() const {
    for (const auto& stage : stages_) {
      if (stage.runs == 0) continue;
      std::vector<std::size_t> order(stage.plan.steps.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::sort(order.begin(), order.end(),
                [&](auto a, auto b) { return stage.step_ms[a] > stage.step_ms[b]; });
      double total = 0.0;
      for (double ms : stage.step_ms) total += ms;
      const auto runs = static_cast<double>(stage.runs);
      fmt::print(stderr, "profile: network '{}' stage {}: {:.3f} ms per run over {} runs\n", network_->name(),
                 stage.plan.batch, total / runs, stage.runs);
      for (std::size_t i = 0; i < std::min<std::size_t>(order.size(), profile_rows_); ++i) {
        const auto& step = stage.plan.steps[order[i]];
        fmt::print(stderr, "  {:8.3f} ms  {:5.1f}%  {} {}\n", stage.step_ms[order[i]] / runs,
                   100.0 * stage.step_ms[order[i]] / total, step.kernel ? "kernel" : "onednn",
                   step.node_name);
      }
    }
  }

  void bind(Stage& stage) {
    auto& plan = stage.plan;
    for (int value : plan.input_values) stage.own_inputs.emplace_back(plan.values[value].md.get_size());
    for (int value : plan.output_values) stage.own_outputs.emplace_back(plan.values[value].md.get_size());
    stage.output_pointers.assign(plan.output_values.size(), nullptr);
    stage.views_of.resize(plan.values.size());
    for (std::size_t v = 0; v < plan.values.size(); ++v) {
      const int root = plan.root_of(static_cast<int>(v));
      stage.views_of[root].push_back(static_cast<int>(v));
      const auto& value = plan.values[root];
      void* data = nullptr;
      if (value.constant != nullptr) {
        data = const_cast<void*>(value.constant);  // oneDNN never writes inputs; weights stay in the mapping
      } else if (!value.external) {
        data =
            (stage.own_arena.data() != nullptr ? stage.own_arena.data() : arena_.data()) + value.arena_offset;
      }
      stage.memories.emplace_back(plan.values[v].md, engine_, data);
    }
    for (std::size_t i = 0; i < plan.input_values.size(); ++i)
      set_external(stage, plan.input_values[i], stage.own_inputs[i].data());
    for (std::size_t i = 0; i < plan.output_values.size(); ++i)
      set_external(stage, plan.output_values[i], stage.own_outputs[i].data());
    stage.step_args.resize(plan.steps.size());
    stage.kernel_pointers.resize(plan.steps.size());
    for (std::size_t s = 0; s < plan.steps.size(); ++s) {
      const auto& step = plan.steps[s];
      if (step.kernel) {
        stage.kernel_pointers[s].resize(step.args.size());
        continue;
      }
      auto& args = stage.step_args[s];
      for (const auto& [arg, value] : step.args) args.emplace(arg, stage.memories[value]);
      void* scratchpad =
          stage.own_scratchpad.data() != nullptr ? stage.own_scratchpad.data() : scratchpad_.data();
      args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(step.scratchpad_md, engine_, scratchpad));
    }
  }

  void set_external(Stage& stage, int value, void* data) {
    for (int view : stage.views_of[value]) stage.memories[view].set_data_handle(data);
  }

  void bind_input(Stage& stage, std::size_t index, const ConstTensorView& input, std::int64_t batch) {
    const auto& plan = stage.plan;
    const Shape& expected = plan.input_shapes[index];
    // The first input carries the batch; another one whose leading dimension is not the stage batch (a [1]
    // scale beside the images) is fed as compiled, in place, whatever the batch.
    const bool batched = index == 0 || expected[0] == plan.batch;
    Shape wanted = expected;
    if (batched) wanted[0] = batch;
    if (input.dtype != DType::kF32 || input.shape != wanted) {
      fail("network '{}': input {} ('{}') must be f32 {}, got {} {}", network_->name(), index,
           plan.input_names[index], shape_to_string(wanted), dtype_name(input.dtype),
           shape_to_string(input.shape));
    }
    if (batch == plan.batch || !batched) {
      set_external(stage, plan.input_values[index], const_cast<void*>(input.data));  // read in place
      return;
    }
    // A partial batch: copy it into the stage's own buffer and zero the padding samples.
    auto& own = stage.own_inputs[index];
    const std::size_t bytes = static_cast<std::size_t>(shape_volume(input.shape)) * sizeof(float);
    std::memcpy(own.data(), input.data, bytes);
    std::memset(own.data() + bytes, 0, own.size() - bytes);
    set_external(stage, plan.input_values[index], own.data());
  }

  std::shared_ptr<const Network> network_;
  int threads_;
  ops::LoweringOptions lowering_;
  bool profile_ = false;
  std::size_t profile_rows_ = 25;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  infer::PackedConstants packed_constants_;
  std::vector<Stage> stages_;
  std::vector<std::unique_ptr<Stage>> dynamic_stages_;
  AlignedBuffer arena_;
  AlignedBuffer scratchpad_;
  Stage* last_stage_ = nullptr;
};

ExecutionContext::ExecutionContext(std::shared_ptr<const Network> network, ContextOptions options)
    : impl_(std::make_unique<Impl>(std::move(network), options)) {}
ExecutionContext::~ExecutionContext() = default;
ExecutionContext::ExecutionContext(ExecutionContext&&) noexcept = default;
ExecutionContext& ExecutionContext::operator=(ExecutionContext&&) noexcept = default;

void ExecutionContext::run(std::span<const ConstTensorView> inputs, std::span<const TensorView> outputs) {
  impl_->run(inputs, outputs);
}
ConstTensorView ExecutionContext::output(std::size_t index) const { return impl_->output(index); }
std::size_t ExecutionContext::output_count() const { return impl_->output_count(); }
std::int64_t ExecutionContext::last_stage_batch() const { return impl_->last_stage_batch(); }
const Network& ExecutionContext::network() const { return impl_->network(); }

}  // namespace vapipe
