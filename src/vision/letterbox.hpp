#pragma once
// Letterbox geometry (YOLOv5's letterbox(auto=False)): scale the image to fit the network input keeping its
// aspect ratio, centre it, pad the rest. The transform maps detections back to source pixels.
#include <span>

namespace vapipe::vision {

struct LetterboxTransform {
  // resized / source size per axis. Equal for a letterbox up to the rounding of the resized size;
  // kept separate so a plain stretch (letterbox off, e.g. Yolo-FastestV2) uses the same mapping.
  float scale_x = 1.0f;
  float scale_y = 1.0f;
  int pad_x = 0;  // left padding in network input pixels
  int pad_y = 0;  // top padding
  int resized_width = 0;
  int resized_height = 0;
  int source_width = 0;
  int source_height = 0;
  int target_width = 0;
  int target_height = 0;
  // Source pixels of the transformed region's top-left corner: 0 for a whole image, the crop's corner for a
  // crop (vision/crop.hpp), so one mapping serves both.
  int origin_x = 0;
  int origin_y = 0;

  // Maps a box from network input pixels to source image pixels, clamped to [0, source size] (source size:
  // of the transformed region; the origin is added after clamping).
  void map_back(float& x1, float& y1, float& x2, float& y2) const;
  // Maps a point the same way.
  void map_point_back(float& x, float& y) const;
  // Maps a rectangle without clamping: an instance mask's extent, which must keep its size where the box
  // it belongs to is clamped at the image's edge.
  void map_extent_back(float& x1, float& y1, float& x2, float& y2) const;
};

// scale = min(W/w, H/h); resized size rounded half-to-even like Python's round(); the padding split as
// YOLOv5 does it: left = round(dw/2 - 0.1), right = round(dw/2 + 0.1) (the odd pixel goes right/bottom).
LetterboxTransform compute_letterbox(int source_width, int source_height, int target_width,
                                     int target_height);
// The whole input is the resized image (aspect ratio not kept, no padding).
LetterboxTransform compute_stretch(int source_width, int source_height, int target_width, int target_height);

// Maps every box (anything with float x1, y1, x2, y2 members, e.g. models::Detection) back to source pixels,
// its keypoints (x, y members) and its mask's extent (mask.x1 .. y2, unclamped) where it has them.
template <typename Box>
void map_boxes_back(std::span<Box> boxes, const LetterboxTransform& transform) {
  for (auto& box : boxes) {
    transform.map_back(box.x1, box.y1, box.x2, box.y2);
    if constexpr (requires { box.keypoints; }) {
      for (auto& point : box.keypoints) transform.map_point_back(point.x, point.y);
    }
    if constexpr (requires { box.mask.x1; }) {
      transform.map_extent_back(box.mask.x1, box.mask.y1, box.mask.x2, box.mask.y2);
    }
  }
}

}  // namespace vapipe::vision
