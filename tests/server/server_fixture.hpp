#pragma once
// Shared by the server tests: a pipeline config whose channels produce results only (JSON Lines), with the
// lightest shared detector.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "pipeline/pipeline_fixture.hpp"
#include "support/test_data.hpp"

namespace vapipe::server::test {

// What is published does not depend on the detector: the lightest one, run on one frame in five, keeps
// these tests quick on a loaded machine (records of skipped frames carry the last detections over).
inline constexpr const char* kLightModel = "yolofastestv2.onnx";

// The model entry "det" of the server tests that run detection: the lightest detector on one frame in three,
// so a loaded machine keeps up with 10 fps sources (the frames between carry the last detections); `extra`
// keys are merged in.
inline nlohmann::json light_detector(const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json entry = {
      {"name", "det"},           {"path", (vapipe::test::models_dir() / kLightModel).string()},
      {"obj_threshold", 0.25},   {"nms_threshold", 0.45},
      {"class_threshold", 0.25}, {"skip_frame_num", 2}};
  entry.update(extra);
  return entry;
}

// One camera of `chan_num` channels on `address`, model "det", results only, JSON Lines to `results`.
inline nlohmann::json results_config(const std::string& address, int chan_num,
                                     const std::filesystem::path& results) {
  return nlohmann::json::parse(
      pipeline::test::make_config(address, chan_num,
                                  {{"path", (vapipe::test::models_dir() / kLightModel).string()},
                                   {"skip_frame_num", 4},
                                   {"output_mode", "results"},
                                   {"results_path", results.string()}}));
}

}  // namespace vapipe::server::test
