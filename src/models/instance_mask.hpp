#pragma once
// Instance masks (models::InstanceMask, a bitmap over an extent) in image pixels: rasterized over a box's
// pixels, and COCO's run-length encoding of the result (what the JSON form carries, docs/postprocessing.md).
#include <cstdint>
#include <span>
#include <vector>

#include "models/detection.hpp"

namespace vapipe::models {

// A binary mask over a rectangle of image pixels.
struct PixelMask {
  int x = 0, y = 0;                    // the rectangle's top-left pixel
  int width = 0, height = 0;           // pixels
  std::vector<std::uint8_t> pixels{};  // row-major, 0 or 1

  bool at(int px, int py) const {
    return pixels[static_cast<std::size_t>(py) * static_cast<std::size_t>(width) +
                  static_cast<std::size_t>(px)] != 0;
  }
};

// `mask` over the pixels that `box` (x1..x2, y1..y2, the mask's pixels: a Detection's box) touches, columns
// floor(x1) to ceil(x2) - 1 and rows likewise, never left of or above pixel 0: a pixel is set where its centre
// falls in a set cell (nearest cell). A mask that is empty gives an empty rectangle at the box's corner.
PixelMask rasterize(const InstanceMask& mask, float x1, float y1, float x2, float y2);
inline PixelMask rasterize(const Detection& d) { return rasterize(d.mask, d.x1, d.y1, d.x2, d.y2); }

// COCO's uncompressed RLE (pycocotools' "counts" as a list): lengths of alternating runs of 0 and 1 over the
// pixels in column-major order (down the first column, then the next), the first run of 0 (length 0 where the
// first pixel is set). Sums to width * height.
std::vector<std::uint32_t> rle_encode(const PixelMask& mask);
// The inverse: a width x height row-major 0/1 mask; throws vapipe::Error when the counts do not add up to
// width * height.
std::vector<std::uint8_t> rle_decode(std::span<const std::uint32_t> counts, int width, int height);

}  // namespace vapipe::models
