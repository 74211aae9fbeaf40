#pragma once
// vapipe runtime: load a compiled .vpk package and run its networks on the CPU (oneDNN).
//
//   auto model = vapipe::Model::load("yolov5n.vpk");
//   vapipe::ExecutionContext context(model->network("yolov5n"), {.threads = 2});
//   context.run({{input_data, vapipe::DType::kF32, {4, 3, 640, 640}}});
//   vapipe::TensorView boxes = context.output(0);
//
// A Model and its Networks are immutable and may be shared by any number of threads. An ExecutionContext
// holds one worker's activations, scratchpad and primitives: use one per thread.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"
#include "vapipe/head_gate.hpp"

namespace vapipe {

namespace ir {
struct Network;
}

// The instruction set oneDNN dispatches to on this CPU ("avx512_core_bf16", "avx2", ...).
std::string cpu_isa();
// vapipe's version ("0.1.0"), the git revision the build was configured from ("3f2a9c1d0b7e", with
// "-dirty" for uncommitted changes; "unknown" outside a git checkout), and the line `vapipe --version` and
// the Python module's version_line() print: "vapipe 0.1.0 (git 3f2a9c1d0b7e, oneDNN ISA avx2)".
std::string_view version();
std::string_view git_revision();
std::string version_line();
// Whether this CPU has native kernels for a precision: "f32" always; "int8" with VNNI
// (avx512_core_vnni, avx2_vnni or later); "bf16" with avx512_core_bf16 or AMX. Elsewhere oneDNN runs int8
// on slower non-VNNI kernels and emulates bf16 (much slower) or refuses it.
bool cpu_has_native(std::string_view precision);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

// A dense, row-major view of memory owned by someone else.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
};

struct ConstTensorView {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
};

class Network {
 public:
  explicit Network(std::shared_ptr<const ir::Network> network);

  const std::string& name() const;
  const std::string& precision() const;
  bool dynamic_shape() const;
  const std::vector<std::int64_t>& stage_batches() const { return stage_batches_; }  // ascending
  std::int64_t max_batch() const { return stage_batches_.back(); }
  // Input/output tensors of the stage compiled for `batch` (which must be one of stage_batches()).
  std::vector<TensorInfo> inputs(std::int64_t batch) const;
  std::vector<TensorInfo> outputs(std::int64_t batch) const;
  // The stage that runs a batch of `batch` samples: the smallest that fits. Throws when none fits.
  std::int64_t stage_for(std::int64_t batch) const;
  const nlohmann::json& metadata() const;
  const ir::Network& ir() const { return *network_; }

 private:
  std::shared_ptr<const ir::Network> network_;
  std::vector<std::int64_t> stage_batches_;
};

class Model {
 public:
  // Maps the file, checks its checksums and format version; throws vapipe::Error with the path.
  static std::shared_ptr<const Model> load(const std::string& path);

  std::vector<std::string> network_names() const;
  // The network called `name`; an empty name selects the package's only (or first) network.
  std::shared_ptr<const Network> network(std::string_view name = {}) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::shared_ptr<const Network>> networks_;
};

// The most worker threads a context (or a CLI --threads) may ask for: the machine's cores, and at least
// 256 so a configuration written for a large server still runs on a small one. Far more threads than
// cores only adds switching, and libgomp crashes or fails to create its team at tens of thousands.
int max_threads();

struct ContextOptions {
  int threads = 0;  // worker threads for this context's kernels; 0 = every core; at most max_threads()
  HeadGate head_gate{};
};

class ExecutionContext {
 public:
  ExecutionContext(std::shared_ptr<const Network> network, ContextOptions options = {});
  ~ExecutionContext();
  ExecutionContext(const ExecutionContext&) = delete;
  ExecutionContext& operator=(const ExecutionContext&) = delete;
  ExecutionContext(ExecutionContext&&) noexcept;
  ExecutionContext& operator=(ExecutionContext&&) noexcept;

  // Runs one batch. inputs[i] has shape [batch, ...] (batch 1..max_batch()); the smallest stage that fits
  // runs, a partial batch is padded. When `outputs` is given, results are written straight into those
  // caller-owned buffers, which must have the shapes of outputs(stage_for(batch)); otherwise they stay in
  // the context (see output()). An input whose batch equals the stage's is read in place (zero copy).
  void run(std::span<const ConstTensorView> inputs, std::span<const TensorView> outputs = {});
  void run(std::initializer_list<ConstTensorView> inputs) { run(std::span(inputs.begin(), inputs.size())); }

  // The outputs of the last run, shaped for the stage that ran (padding rows included). Valid until the
  // next run.
  ConstTensorView output(std::size_t index) const;
  std::size_t output_count() const;
  std::int64_t last_stage_batch() const;
  const Network& network() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vapipe
