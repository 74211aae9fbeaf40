#pragma once
// Template part of outputs.hpp (kept out of the header's way).
#include <nlohmann/json.hpp>

#include "models/detection_json.hpp"

namespace vapipe::pipeline {

template <typename LabelFn>
std::string format_record(const FrameRecord& record, LabelFn&& label) {
  nlohmann::ordered_json detections = nlohmann::ordered_json::array();
  for (const auto& d : record.detections)
    detections.push_back(models::detection_to_json(d, label(d.class_id)));
  const nlohmann::ordered_json line = {{"channel", record.channel},   {"frame", record.frame},
                                       {"pts", record.pts},           {"pts_time", record.pts_seconds},
                                       {"width", record.width},       {"height", record.height},
                                       {"inferred", record.inferred}, {"detections", std::move(detections)}};
  return line.dump();
}

}  // namespace vapipe::pipeline
