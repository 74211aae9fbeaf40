#pragma once
// The model a config names: a compiled .vpk, or an .onnx compiled on first use (stages for batch 1 and
// 4, the cross-channel batch) and cached, so the next start maps the package directly.
#include <filesystem>
#include <memory>
#include <string>

#include "vapipe/runtime.hpp"

namespace vapipe::pipeline {

struct ModelLoadOptions {
  // Where compiled .onnx files are kept. Empty: $VAPIPE_CACHE_DIR, else $XDG_CACHE_HOME/vapipe, else
  // $HOME/.cache/vapipe, else .vapipe-cache in the working directory.
  std::filesystem::path cache_dir;
  bool show_progress = false;
};

struct LoadedModel {
  std::shared_ptr<const Model> model;
  std::string package_path;  // the .vpk actually mapped (the cache entry for an .onnx)
  bool compiled_now = false;
};

// `path` as written in models[].path. Throws vapipe::Error naming `key_path` (e.g. "models[0].path") and
// the file for a missing, unreadable, corrupt or unsupported model.
LoadedModel load_pipeline_model(const std::string& path, const std::string& key_path,
                                const ModelLoadOptions& options = {});

std::filesystem::path default_cache_dir();

}  // namespace vapipe::pipeline
