// The one JSON form of a detection (models/detection_json.hpp: `vapipe detect --json`, JSON Lines, MQTT, the
// API, the viewer's records) with everything a detection may carry, field by field as docs/metadata.md
// documents it, and the label the annotated output draws (models/detection_label.hpp).
#include <gtest/gtest.h>

#include "models/detection_json.hpp"
#include "models/detection_label.hpp"

namespace vapipe::models {
namespace {

using nlohmann::ordered_json;

Detection face() {
  Detection d;
  d.class_id = 0;
  d.score = 0.91f;
  d.x1 = 10.5f;
  d.y1 = 20.0f;
  d.x2 = 110.0f;
  d.y2 = 160.25f;
  d.track_id = 3;
  d.keypoints = {{30.0f, 60.0f, 1.0f}, {80.0f, 61.5f, 0.75f}};
  d.embedding = {0.6f, 0.0f, -0.8f};
  d.identity = Identity{"0016", 0.62f};
  return d;
}

TEST(DetectionJson, KeypointsIdentityAndEmbeddingInTheirDocumentedOrder) {
  const ordered_json json = detection_to_json(face(), "face");
  const ordered_json expected = {{"class_id", 0},
                                 {"label", "face"},
                                 {"score", 0.91f},
                                 {"box", {10.5f, 20.0f, 110.0f, 160.25f}},
                                 {"track_id", 3},
                                 {"keypoints", {{30.0f, 60.0f, 1.0f}, {80.0f, 61.5f, 0.75f}}},
                                 {"identity", {{"name", "0016"}, {"known", true}, {"similarity", 0.62f}}},
                                 {"embedding", {0.6f, 0.0f, -0.8f}}};
  EXPECT_EQ(json.dump(), expected.dump());  // keys in this order, values as written
}

TEST(DetectionJson, UnknownFaceIsNamedUnknownWithItsSimilarity) {
  Detection d = face();
  d.identity = Identity{"", 0.18f};
  d.embedding.clear();
  const ordered_json json = detection_to_json(d, "face");
  EXPECT_EQ(json.at("identity").dump(),
            ordered_json({{"name", "unknown"}, {"known", false}, {"similarity", 0.18f}}).dump());
  EXPECT_FALSE(json.contains("embedding"));
}

TEST(DetectionJson, PlainBoxHasNoOptionalFields) {
  Detection d = face();
  d.keypoints.clear();
  d.embedding.clear();
  d.identity.reset();
  d.track_id = -1;
  const ordered_json json = detection_to_json(d, "person");
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"class_id", "label", "score", "box", "track_id"}));
  EXPECT_EQ(json.at("track_id"), -1);
}

TEST(DetectionLabel, ClassOrIdentityThenTrack) {
  Detection d = face();
  EXPECT_EQ(display_label(d, "face"), "0016 0.62 #3");
  d.identity = Identity{"", 0.184f};
  EXPECT_EQ(display_label(d, "face"), "unknown 0.18 #3");
  d.identity.reset();
  EXPECT_EQ(display_label(d, "face"), "face 0.91 #3");
  d.track_id = -1;
  EXPECT_EQ(display_label(d, "face"), "face 0.91");
  d.identity = Identity{"Zo\xc3\xab", -0.05f};
  EXPECT_EQ(display_label(d, "face"), "Zo\xc3\xab -0.05");
}

// A secondary classifier's top-1 class (models/tasks/classifier.cpp): in JSON after the other fields, and in
// the label after the class and score, before the track.
TEST(DetectionJson, ClassifierAttributeInJsonAndLabel) {
  Detection d;
  d.class_id = 2;
  d.score = 0.91f;
  d.x2 = 10.0f;
  d.y2 = 5.0f;
  d.track_id = 2;
  d.attribute = Attribute{"sports car", 0.64f};
  const ordered_json expected = {
      {"class_id", 2},  {"label", "car"},
      {"score", 0.91f}, {"box", {0.0f, 0.0f, 10.0f, 5.0f}},
      {"track_id", 2},  {"attribute", {{"label", "sports car"}, {"score", 0.64f}}}};
  EXPECT_EQ(detection_to_json(d, "car").dump(), expected.dump());
  EXPECT_EQ(display_label(d, "car"), "car 0.91 sports car 0.64 #2");
  d.attribute.reset();
  EXPECT_EQ(display_label(d, "car"), "car 0.91 #2");
}

}  // namespace
}  // namespace vapipe::models
