#include "pipeline/model_loader.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/mem.h>
#include <libavutil/sha.h>
}

#include "compiler/compiler.hpp"
#include "core/error.hpp"
#include "core/file_kind.hpp"
#include "core/package.hpp"

namespace vapipe::pipeline {

namespace fs = std::filesystem;

namespace {

// What the pipeline compiles an .onnx with; part of the cache key, so changing it recompiles.
// (nhwc-heads: packages whose raw heads are channels-last, which binaries older than that cannot decode.)
constexpr const char* kCompileRecipe = "vpk1;batch=1,4;static;cut-head;nhwc-heads";

// SHA-256 of the file's bytes and the recipe, in hex: the cache key. A changed export gets a new entry, and
// an entry is used only when the hash it records is this one (see source_matches).
std::string content_key(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("cannot read '{}'", file.string());
  std::unique_ptr<AVSHA, void (*)(void*)> sha(av_sha_alloc(), av_free);
  if (!sha || av_sha_init(sha.get(), 256) < 0) fail("cannot hash '{}': out of memory", file.string());
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = in.gcount();
    if (got > 0)
      av_sha_update(sha.get(), reinterpret_cast<const std::uint8_t*>(buffer.data()),
                    static_cast<unsigned>(got));
  }
  const std::string recipe = kCompileRecipe;
  av_sha_update(sha.get(), reinterpret_cast<const std::uint8_t*>(recipe.data()),
                static_cast<unsigned>(recipe.size()));
  std::array<std::uint8_t, 32> digest{};
  av_sha_final(sha.get(), digest.data());
  std::string hex;
  for (const std::uint8_t byte : digest) hex += fmt::format("{:02x}", byte);
  return hex;
}

// The metadata key where a cache entry records what it was compiled from.
constexpr const char* kSourceKey = "compiled_from";

// A cache entry is trusted by its content, not by its name: it must say it was compiled, with this recipe,
// from an .onnx whose SHA-256 is `key` (a planted or mismatched file with the right name is not used).
bool source_matches(const Model& model, const std::string& key, std::string& why) {
  for (const auto& name : model.network_names()) {
    const auto& metadata = model.network(name)->metadata();
    const auto found = metadata.find(kSourceKey);
    const nlohmann::json recorded =
        found != metadata.end() && found->is_object() ? found->value("sha256", nlohmann::json()) : nullptr;
    if (recorded != key) {
      why = fmt::format("network '{}' does not record the source's SHA-256 {}", name, key);
      return false;
    }
  }
  return true;
}

// write_package writes a file of its own and renames it over the entry: two processes starting together on
// the same .onnx each compile, the last rename wins with an identical package, and neither reads a
// half-written file.
void compile_into_cache(const std::string& onnx, const fs::path& cached, const std::string& key,
                        bool show_progress) {
  compiler::CompileOptions compile;
  compile.onnx_path = onnx;
  compile.batches = {1, 4};
  compile.show_progress = show_progress;
  ir::Package package;
  try {
    package.networks.push_back(compiler::compile_onnx(compile));
  } catch (const Error& batched) {
    // An export whose graph fixes its batch (reshapes to constant shapes, as YOLOv8-seg's does) has no
    // batch-4 stage: it runs one frame at a time rather than not at all.
    spdlog::warn("{}: no batch-4 stage ({}); compiling stage 1 only", onnx, batched.what());
    compile.batches = {1};
    package.networks.push_back(compiler::compile_onnx(compile));
  }
  // An export that reshapes to constant shapes can also compile at batch 4 into outputs no larger than one
  // image's (NanoDet's [1, 1600, 80]): such a stage would mix the frames of a batch, so it goes. (Outputs
  // that keep every image but fold the batch, as a PyTorch [1, -1] reshape does, are fine.)
  auto& stages = package.networks.back().stages;
  const auto elements = [](const ir::Stage& stage, std::size_t output) {
    const auto& shape = stage.graph.tensors[static_cast<std::size_t>(stage.graph.outputs[output])].shape;
    return std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>());
  };
  const auto mixes_frames = [&](const ir::Stage& stage) {
    for (std::size_t o = 0; o < stage.graph.outputs.size() && o < stages.front().graph.outputs.size(); ++o) {
      if (elements(stage, o) != stage.batch / stages.front().batch * elements(stages.front(), o)) return true;
    }
    return false;
  };
  if (stages.size() > 1 && std::any_of(stages.begin() + 1, stages.end(), mixes_frames)) {
    spdlog::warn("{}: the export fixes its outputs' batch to 1; compiled stage 1 only", onnx);
    stages.erase(stages.begin() + 1, stages.end());
  }
  package.networks.back().metadata[kSourceKey] = {{"sha256", key}, {"recipe", kCompileRecipe}};
  ir::write_package(package, cached.string());
}

}  // namespace

fs::path default_cache_dir() {
  if (const char* dir = std::getenv("VAPIPE_CACHE_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (const char* dir = std::getenv("XDG_CACHE_HOME"); dir != nullptr && *dir != '\0')
    return fs::path(dir) / "vapipe";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return fs::path(home) / ".cache" / "vapipe";
  return ".vapipe-cache";
}

LoadedModel load_pipeline_model(const std::string& path, const std::string& key_path,
                                const ModelLoadOptions& options) {
  const fs::path file(path);
  std::error_code error;
  if (const auto why = not_a_file_reason(file); !why.empty())
    fail("{}: model file '{}': {}", key_path, path, why);
  LoadedModel loaded;
  try {
    if (file.extension() != ".onnx") {
      loaded.model = Model::load(path);
      loaded.package_path = path;
      return loaded;
    }
    const fs::path cache_dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    const std::string key = content_key(file);
    const fs::path cached = cache_dir / fmt::format("{}-{}.vpk", file.stem().string(), key.substr(0, 16));
    loaded.package_path = cached.string();
    if (fs::is_regular_file(cached, error)) {
      try {
        loaded.model = Model::load(cached.string());
        std::string why;
        if (source_matches(*loaded.model, key, why)) {
          spdlog::info("{}: using the compiled cache {}", path, cached.string());
          return loaded;
        }
        spdlog::warn("{}: cache entry {} is not this model's ({}); compiling again", path, cached.string(),
                     why);
      } catch (const Error& stale) {
        spdlog::warn("{}: cache entry unusable ({}); compiling again", path, stale.what());
      }
    }
    fs::create_directories(cache_dir, error);
    if (error) fail("cannot create the model cache folder '{}': {}", cache_dir.string(), error.message());
    spdlog::info("{}: compiling (stages 1 and 4) into {}", path, cached.string());
    compile_into_cache(path, cached, key, options.show_progress);
    loaded.model = Model::load(cached.string());
    loaded.compiled_now = true;
    return loaded;
  } catch (const Error& failure) {
    fail("{}: {}", key_path, failure.what());
  }
}

}  // namespace vapipe::pipeline
