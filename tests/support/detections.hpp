#pragma once
// Detector tests: two decodes' detections compared box by box.
#include <algorithm>
#include <cstddef>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "models/detection.hpp"

namespace vapipe::test {

inline void sort_detections(std::vector<models::Detection>& detections) {
  std::sort(detections.begin(), detections.end(), [](const models::Detection& a, const models::Detection& b) {
    return std::tie(a.x1, a.y1, a.class_id) < std::tie(b.x1, b.y1, b.class_id);
  });
}

// The same detections in any order: classes equal, scores within 1e-6, corners within 1e-3 pixels.
inline void expect_same_detections(std::vector<models::Detection> got,
                                   std::vector<models::Detection> expected, const std::string& what) {
  sort_detections(got);
  sort_detections(expected);
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (std::size_t k = 0; k < got.size(); ++k) {
    SCOPED_TRACE(fmt::format("{} detection {}", what, k));
    EXPECT_EQ(got[k].class_id, expected[k].class_id);
    EXPECT_NEAR(got[k].score, expected[k].score, 1e-6);
    EXPECT_NEAR(got[k].x1, expected[k].x1, 1e-3);
    EXPECT_NEAR(got[k].y1, expected[k].y1, 1e-3);
    EXPECT_NEAR(got[k].x2, expected[k].x2, 1e-3);
    EXPECT_NEAR(got[k].y2, expected[k].y2, 1e-3);
  }
}

}  // namespace vapipe::test
