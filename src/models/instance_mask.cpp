#include "models/instance_mask.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace vapipe::models {

namespace {

// The cell of each pixel centre from `first` on: pixel p's centre p + 0.5 in extent [lo, hi) of `cells`
// cells; -1 outside. A centre on a cell boundary is common (a 548-wide photo letterboxed to 320: pixel 342's
// centre is input pixel 200.0 exactly) and belongs to the cell right of it, as exact arithmetic puts it; the
// float extent's rounding (about 1e-5 of a cell) must not move it left, hence the nudge.
constexpr double kBoundaryNudge = 1e-3;  // cells
void cell_of_pixels(int first, int pixels, float lo, float hi, int cells, std::vector<int>& out) {
  out.assign(static_cast<std::size_t>(pixels), -1);
  const float span = hi - lo;
  if (!(span > 0.0f) || cells <= 0) return;
  const double per_pixel = static_cast<double>(cells) / static_cast<double>(span);
  for (int p = 0; p < pixels; ++p) {
    const double position =
        (static_cast<double>(first + p) + 0.5 - static_cast<double>(lo)) * per_pixel + kBoundaryNudge;
    if (position >= 0.0 && position < static_cast<double>(cells))
      out[static_cast<std::size_t>(p)] = static_cast<int>(position);
  }
}

}  // namespace

PixelMask rasterize(const InstanceMask& mask, float x1, float y1, float x2, float y2) {
  PixelMask out;
  out.x = std::max(0, static_cast<int>(std::floor(x1)));
  out.y = std::max(0, static_cast<int>(std::floor(y1)));
  if (mask.empty()) return out;
  out.width = std::max(0, static_cast<int>(std::ceil(x2)) - out.x);
  out.height = std::max(0, static_cast<int>(std::ceil(y2)) - out.y);
  out.pixels.assign(static_cast<std::size_t>(out.width) * static_cast<std::size_t>(out.height), 0);
  std::vector<int> columns, rows;
  cell_of_pixels(out.x, out.width, mask.x1, mask.x2, mask.width, columns);
  cell_of_pixels(out.y, out.height, mask.y1, mask.y2, mask.height, rows);
  for (int py = 0; py < out.height; ++py) {
    const int cy = rows[static_cast<std::size_t>(py)];
    if (cy < 0) continue;
    std::uint8_t* row =
        out.pixels.data() + static_cast<std::size_t>(py) * static_cast<std::size_t>(out.width);
    for (int px = 0; px < out.width; ++px) {
      const int cx = columns[static_cast<std::size_t>(px)];
      row[px] = cx >= 0 && mask.at(cx, cy) ? 1 : 0;
    }
  }
  return out;
}

std::vector<std::uint32_t> rle_encode(const PixelMask& mask) {
  std::vector<std::uint32_t> counts;
  std::uint8_t current = 0;
  std::uint32_t run = 0;
  for (int x = 0; x < mask.width; ++x) {
    for (int y = 0; y < mask.height; ++y) {
      const std::uint8_t value = mask.at(x, y) ? 1 : 0;
      if (value != current) {
        counts.push_back(run);
        current = value;
        run = 0;
      }
      ++run;
    }
  }
  if (run > 0 || !counts.empty()) counts.push_back(run);
  return counts;
}

std::vector<std::uint8_t> rle_decode(std::span<const std::uint32_t> counts, int width, int height) {
  if (width < 0 || height < 0) fail("RLE mask: size {}x{} is negative", width, height);
  const auto total = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height);
  std::uint64_t sum = 0;
  for (const std::uint32_t count : counts) sum += count;
  if (sum != total)
    fail("RLE mask: the counts add up to {} pixels, a {}x{} mask has {}", sum, width, height, total);
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(total), 0);
  std::uint64_t position = 0;  // column-major
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (i % 2 == 1) {
      for (std::uint64_t p = position; p < position + counts[i]; ++p) {
        const std::uint64_t x = p / static_cast<std::uint64_t>(height),
                            y = p % static_cast<std::uint64_t>(height);
        pixels[static_cast<std::size_t>(y * static_cast<std::uint64_t>(width) + x)] = 1;
      }
    }
    position += counts[i];
  }
  return pixels;
}

}  // namespace vapipe::models
