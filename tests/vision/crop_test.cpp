// Crops for top-down networks (vision/crop.hpp): the optimized crop (a strided view fed to the fused
// preprocessor) against the plain one (a packed copy fed to preprocess_reference) over seeded random images and
// boxes, the authors' crop rule, and the mapping of points back to the source image.
#include "vision/crop.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace vapipe::vision {
namespace {

TEST(Crop, OptimizedMatchesTheReferenceOverSeededImagesAndBoxes) {
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<int> image_size(1, 300);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (int trial = 0; trial < 200; ++trial) {
    const int width = image_size(rng);
    const int height = image_size(rng);
    // Rows padded like a decoder's or an OpenCV ROI's, so the crop's stride is not its width.
    const int stride = width * 3 + trial % 13;
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(stride) * height);
    for (auto& value : pixels) value = static_cast<std::uint8_t>(byte(rng));
    const ImageView image = ImageView::bgr(pixels.data(), width, height, stride);
    // Boxes partly outside the image and degenerate ones included.
    const float x1 = (unit(rng) * 1.4f - 0.2f) * static_cast<float>(width);
    const float y1 = (unit(rng) * 1.4f - 0.2f) * static_cast<float>(height);
    const float x2 = x1 + unit(rng) * static_cast<float>(width) * (trial % 17 == 0 ? 0.0f : 1.0f);
    const float y2 = y1 + unit(rng) * static_cast<float>(height);
    const CropRegion crop = expand_crop(x1, y1, x2, y2, width, height);
    ASSERT_GE(crop.width, 1);
    ASSERT_GE(crop.height, 1);
    ASSERT_LE(crop.x + crop.width, width);
    ASSERT_LE(crop.y + crop.height, height);
    PreprocessOptions options;
    options.width = trial % 2 == 0 ? 192 : 8 + trial;
    options.height = trial % 2 == 0 ? 256 : 8 + 2 * trial % 150;
    options.rgb = trial % 3 != 0;
    options.mean = {0.485f, 0.456f, 0.406f};
    options.std = {0.229f, 0.224f, 0.225f};
    const std::size_t size = 3u * static_cast<std::size_t>(options.width) * options.height;
    std::vector<float> fast(size, -1000.0f), reference(size, 1000.0f);
    const LetterboxTransform t = preprocess_crop(image, crop, options, fast.data());
    const LetterboxTransform r = preprocess_crop_reference(image, crop, options, reference.data());
    EXPECT_EQ(t.origin_x, r.origin_x);
    EXPECT_EQ(t.scale_x, r.scale_x);
    double worst = 0.0;
    for (std::size_t i = 0; i < size; ++i) {
      const std::size_t c = i / (size / 3);
      const float level = std::abs(fast[i] - reference[i]) * options.std[c] / options.scale;
      worst = std::max(worst, static_cast<double>(level));
    }
    // In grey levels of the source: the same bound as the whole-image differential test.
    ASSERT_LE(worst, 0.02) << "trial " << trial << " image " << width << "x" << height << " crop "
                           << crop.width << "x" << crop.height << " at " << crop.x << "," << crop.y;
  }
}

TEST(Crop, FollowsTheAuthorsUpscaleClipAndTruncate) {
  // A 100 x 240 box centred at (200, 140) grows to 125 x 300: x 137.5..262.5 truncated to 137..262, y -10..290
  // clipped to the 275 rows.
  const CropRegion crop = expand_crop(150.0f, 20.0f, 250.0f, 260.0f, 640, 275);
  EXPECT_EQ(crop.x, 137);
  EXPECT_EQ(crop.y, 0);
  EXPECT_EQ(crop.width, 262 - 137);
  EXPECT_EQ(crop.height, 275);
}

TEST(Crop, MapsNetworkPointsBackIntoTheSourceImage) {
  const CropRegion crop{100, 40, 96, 128};  // half the 192 x 256 input
  const LetterboxTransform t = crop_transform(crop, 192, 256);
  float x = 192.0f, y = 0.0f;
  t.map_point_back(x, y);
  EXPECT_FLOAT_EQ(x, 196.0f);
  EXPECT_FLOAT_EQ(y, 40.0f);
  x = 48.0f;
  y = 128.0f;
  t.map_point_back(x, y);
  EXPECT_FLOAT_EQ(x, 124.0f);
  EXPECT_FLOAT_EQ(y, 104.0f);
}

}  // namespace
}  // namespace vapipe::vision
