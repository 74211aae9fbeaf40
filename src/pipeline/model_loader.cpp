#include "pipeline/model_loader.hpp"

#include <cstdlib>
#include <fstream>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include "compiler/compiler.hpp"
#include "core/error.hpp"
#include "core/package.hpp"

namespace vapipe::pipeline {

namespace fs = std::filesystem;

namespace {

// What the pipeline compiles an .onnx with; part of the cache key, so changing it recompiles.
// (nhwc-heads: packages whose raw heads are channels-last, which binaries older than that cannot decode.)
constexpr const char* kCompileRecipe = "vpk1;batch=1,4;static;cut-head;nhwc-heads";

// CRC-32 of the file's bytes (and the recipe): the cache key. A changed export gets a new entry.
std::uint32_t content_key(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("cannot read '{}'", file.string());
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = in.gcount();
    if (got > 0) crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(got));
  }
  const std::string recipe = kCompileRecipe;
  crc = crc32(crc, reinterpret_cast<const Bytef*>(recipe.data()), static_cast<uInt>(recipe.size()));
  return static_cast<std::uint32_t>(crc);
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
  if (!fs::is_regular_file(file, error)) fail("{}: model file '{}' does not exist", key_path, path);
  LoadedModel loaded;
  try {
    if (file.extension() != ".onnx") {
      loaded.model = Model::load(path);
      loaded.package_path = path;
      return loaded;
    }
    const fs::path cache_dir = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
    const fs::path cached = cache_dir / fmt::format("{}-{:08x}.vpk", file.stem().string(), content_key(file));
    loaded.package_path = cached.string();
    if (fs::is_regular_file(cached, error)) {
      try {
        loaded.model = Model::load(cached.string());
        spdlog::info("{}: using the compiled cache {}", path, cached.string());
        return loaded;
      } catch (const Error& stale) {
        spdlog::warn("{}: cache entry unusable ({}); compiling again", path, stale.what());
      }
    }
    fs::create_directories(cache_dir, error);
    if (error) fail("cannot create the model cache folder '{}': {}", cache_dir.string(), error.message());
    spdlog::info("{}: compiling (stages 1 and 4) into {}", path, cached.string());
    compiler::CompileOptions compile;
    compile.onnx_path = path;
    compile.batches = {1, 4};
    compile.show_progress = options.show_progress;
    ir::Package package;
    package.networks.push_back(compiler::compile_onnx(compile));
    ir::write_package(package, cached.string());
    loaded.model = Model::load(cached.string());
    loaded.compiled_now = true;
    return loaded;
  } catch (const Error& failure) {
    fail("{}: {}", key_path, failure.what());
  }
}

}  // namespace vapipe::pipeline
