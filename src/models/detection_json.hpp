#pragma once
// The one JSON form of a Detection, shared by `vapipe detect --json`, the JSON Lines output and the API:
// {"class_id", "label", "score", "box": [x1, y1, x2, y2], "track_id"} plus, where the task gives them,
// "keypoints": [[x, y, score], ...] in the task's order (docs/metadata.md), "identity": {"name", "known",
// "similarity"} (an unknown face: name "unknown", known false), "embedding": [...] (L2-normalized),
// "attribute": {"label", "score"} (a secondary classifier's top-1 class) and "mask": {"origin": [x, y],
// "size": [height, width], "counts": [...]}: the instance mask over the box's pixels (the rectangle of `size`
// whose top-left pixel is `origin`, rasterize in models/instance_mask.hpp) as COCO's uncompressed RLE,
// column-major, first run of 0 (docs/postprocessing.md).
#include <string>

#include <nlohmann/json.hpp>

#include "models/detection.hpp"
#include "models/instance_mask.hpp"

namespace vapipe::models {

inline nlohmann::ordered_json detection_to_json(const Detection& d, const std::string& label) {
  nlohmann::ordered_json json = {{"class_id", d.class_id},
                                 {"label", label},
                                 {"score", d.score},
                                 {"box", {d.x1, d.y1, d.x2, d.y2}},
                                 {"track_id", d.track_id}};
  if (!d.keypoints.empty()) {
    nlohmann::ordered_json points = nlohmann::ordered_json::array();
    for (const Keypoint& p : d.keypoints) points.push_back({p.x, p.y, p.score});
    json["keypoints"] = std::move(points);
  }
  if (d.identity) {
    json["identity"] = {{"name", std::string(d.identity->display_name())},
                        {"known", d.identity->known()},
                        {"similarity", d.identity->similarity}};
  }
  if (!d.embedding.empty()) json["embedding"] = d.embedding;
  if (d.attribute) json["attribute"] = {{"label", d.attribute->label}, {"score", d.attribute->score}};
  if (!d.mask.empty()) {
    const PixelMask pixels = rasterize(d);
    json["mask"] = {{"origin", {pixels.x, pixels.y}},
                    {"size", {pixels.height, pixels.width}},
                    {"counts", rle_encode(pixels)}};
  }
  return json;
}

}  // namespace vapipe::models
