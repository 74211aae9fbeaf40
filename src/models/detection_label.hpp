#pragma once
// The text drawn over a detection, one rule for the annotated video output and `vapipe detect --save`:
// "<class label> <score>", or for a face matched against a gallery "<name or unknown> <similarity>", then
// " <attribute> <score>" where a secondary classifier ran on it, then " #<track>" when the detection is
// tracked ("person 0.87 #4", "0016 0.62 #3", "unknown 0.18", "car 0.91 sports car 0.64 #2").
#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "models/detection.hpp"

namespace vapipe::models {

inline std::string display_label(const Detection& d, std::string_view class_label) {
  std::string text = d.identity ? fmt::format("{} {:.2f}", d.identity->display_name(), d.identity->similarity)
                                : fmt::format("{} {:.2f}", class_label, d.score);
  if (d.attribute)
    fmt::format_to(std::back_inserter(text), " {} {:.2f}", d.attribute->label, d.attribute->score);
  if (d.track_id >= 0) fmt::format_to(std::back_inserter(text), " #{}", d.track_id);
  return text;
}

}  // namespace vapipe::models
