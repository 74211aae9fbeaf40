#pragma once
// Shared by the pipeline integration tests: clips made from vtest.avi, configs written as JSON, the
// YOLOv5n model compiled once into a cache every test process shares, and the JSON Lines read back.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/test_clips.hpp"
#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"
#include "support/test_data.hpp"

namespace vapipe::pipeline::test {

namespace fs = std::filesystem;

inline fs::path yolov5n_onnx() { return vapipe::test::models_dir() / "yolov5n.onnx"; }

// Content-keyed (see model_loader.cpp), written atomically: safe to share between test processes.
inline fs::path model_cache() { return fs::temp_directory_path() / "vapipe-tests" / "model-cache"; }

// vtest.avi (10 fps, 768x576) as H.264 in MP4 with B-frames (veryfast), so frames come out of the decoder
// in another order than packets go in.
inline fs::path bframes_mp4() {
  return io::test::make_clip("bframes.mp4", "-an -c:v libx264 -preset veryfast -bf 2");
}

struct Record {
  int channel = 0;
  std::int64_t frame = 0;
  double pts_time = 0.0;
  bool inferred = false;
  nlohmann::json detections;
};

inline std::vector<Record> read_records(const fs::path& file) {
  std::vector<Record> records;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    const auto json = nlohmann::json::parse(line);
    records.push_back({json.at("channel").get<int>(), json.at("frame").get<std::int64_t>(),
                       json.at("pts_time").get<double>(), json.at("inferred").get<bool>(),
                       json.at("detections")});
  }
  return records;
}

inline std::map<int, std::vector<Record>> by_channel(const std::vector<Record>& records) {
  std::map<int, std::vector<Record>> channels;
  for (const auto& r : records) channels[r.channel].push_back(r);
  return channels;
}

// A config with one camera of `chan_num` channels and one model; `model_extra` and `camera_extra` are
// merged into the model and camera objects.
inline std::string make_config(const std::string& address, int chan_num, const nlohmann::json& model_extra,
                               const nlohmann::json& camera_extra = nlohmann::json::object()) {
  nlohmann::json camera = {{"address", address}, {"chan_num", chan_num}, {"model_names", {"det"}}};
  camera.update(camera_extra);
  nlohmann::json model = {{"name", "det"},
                          {"path", yolov5n_onnx().string()},
                          {"obj_threshold", 0.25},
                          {"nms_threshold", 0.45},
                          {"class_threshold", 0.25}};
  model.update(model_extra);
  const nlohmann::json config = {{"cards", {{{"devid", 0}, {"cameras", {camera}}}}}, {"models", {model}}};
  return config.dump(2);
}

inline RunOptions quiet_options() {
  RunOptions options;
  options.stats_line = false;
  options.cache_dir = model_cache();
  options.reconnect.initial_delay = std::chrono::milliseconds(200);
  options.reconnect.max_delay = std::chrono::milliseconds(1000);
  return options;
}

inline RunSummary run_config(const std::string& json, RunOptions options = quiet_options()) {
  Pipeline pipeline(parse_config(json, "test.json"), options);
  return pipeline.run();
}

}  // namespace vapipe::pipeline::test
