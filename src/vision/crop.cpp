#include "vision/crop.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.hpp"

namespace vapipe::vision {

namespace {

void check_crop(const ImageView& source, const CropRegion& crop) {
  if (source.format != PixelFormat::kBgr24) fail("crop: only BGR images are cropped");
  if (crop.width <= 0 || crop.height <= 0 || crop.x < 0 || crop.y < 0 || crop.x + crop.width > source.width ||
      crop.y + crop.height > source.height) {
    fail("crop: region {}x{} at ({}, {}) is not inside the {}x{} image", crop.width, crop.height, crop.x,
         crop.y, source.width, source.height);
  }
}

}  // namespace

CropRegion expand_crop(float x1, float y1, float x2, float y2, int image_width, int image_height,
                       float scale) {
  if (image_width <= 0 || image_height <= 0)
    fail("crop: invalid image size {}x{}", image_width, image_height);
  // gluoncv upscale_bbox_fn: half sizes scaled about the centre, clipped to the image ...
  const float half_width = (x2 - x1) / 2.0f;
  const float half_height = (y2 - y1) / 2.0f;
  const float cx = x1 + half_width;
  const float cy = y1 + half_height;
  const float left = std::max(cx - half_width * scale, 0.0f);
  const float top = std::max(cy - half_height * scale, 0.0f);
  const float right = std::min(cx + half_width * scale, static_cast<float>(image_width));
  const float bottom = std::min(cy + half_height * scale, static_cast<float>(image_height));
  // ... then crop_resize_normalize: int() of each corner (they are >= 0, so a floor), clipped again.
  CropRegion crop;
  crop.x = std::clamp(static_cast<int>(std::floor(left)), 0, image_width - 1);
  crop.y = std::clamp(static_cast<int>(std::floor(top)), 0, image_height - 1);
  const int end_x = std::clamp(static_cast<int>(std::floor(right)), crop.x + 1, image_width);
  const int end_y = std::clamp(static_cast<int>(std::floor(bottom)), crop.y + 1, image_height);
  crop.width = end_x - crop.x;
  crop.height = end_y - crop.y;
  return crop;
}

LetterboxTransform crop_transform(const CropRegion& crop, int target_width, int target_height) {
  LetterboxTransform transform = compute_stretch(crop.width, crop.height, target_width, target_height);
  transform.origin_x = crop.x;
  transform.origin_y = crop.y;
  return transform;
}

ImageView crop_view(const ImageView& source, const CropRegion& crop) {
  check_crop(source, crop);
  const std::uint8_t* first = source.planes[0] + crop.y * source.strides[0] + crop.x * 3;
  return ImageView::bgr(first, crop.width, crop.height, source.strides[0]);
}

LetterboxTransform preprocess_crop(const ImageView& source, const CropRegion& crop, PreprocessOptions options,
                                   float* output) {
  options.letterbox = false;
  const ImageView view = crop_view(source, crop);
  FusedPreprocessor preprocessor(PixelFormat::kBgr24, view.width, view.height, options);
  preprocessor.run(view, output);
  return crop_transform(crop, options.width, options.height);
}

LetterboxTransform preprocess_crop_reference(const ImageView& source, const CropRegion& crop,
                                             PreprocessOptions options, float* output) {
  check_crop(source, crop);
  options.letterbox = false;
  const auto row_bytes = static_cast<std::size_t>(crop.width) * 3;
  std::vector<std::uint8_t> packed(row_bytes * static_cast<std::size_t>(crop.height));
  for (int y = 0; y < crop.height; ++y) {
    std::memcpy(packed.data() + static_cast<std::size_t>(y) * row_bytes,
                source.planes[0] + (crop.y + y) * source.strides[0] + crop.x * 3, row_bytes);
  }
  preprocess_reference(
      ImageView::bgr(packed.data(), crop.width, crop.height, static_cast<std::ptrdiff_t>(row_bytes)), options,
      output);
  return crop_transform(crop, options.width, options.height);
}

}  // namespace vapipe::vision
