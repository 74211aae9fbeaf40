#include "pipeline/model_loader.hpp"

#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
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
  package.networks.push_back(compiler::compile_onnx(compile));
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
