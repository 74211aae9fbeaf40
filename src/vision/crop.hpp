#pragma once
// Crops of a source image for top-down (second-stage) networks such as a pose network on a person box. The
// crop rule is the SimplePose authors' (gluoncv's detector_to_simple_pose, which Ultralight-SimplePose's demo
// calls): the box grown by `scale` about its centre in each axis independently, clipped to the image,
// truncated to whole pixels, then stretched to the network input (no aspect-ratio correction and no padding:
// the network was trained on such stretched crops).
#include "vision/fused_preprocess.hpp"
#include "vision/image_view.hpp"
#include "vision/letterbox.hpp"

namespace vapipe::vision {

struct CropRegion {
  int x = 0, y = 0;  // top-left, source pixels
  int width = 0, height = 0;
};

// The authors' crop of box (x1, y1, x2, y2) in an image of this size: never empty (at least 1 x 1 inside the
// image, even for a degenerate box).
CropRegion expand_crop(float x1, float y1, float x2, float y2, int image_width, int image_height,
                       float scale = 1.25f);

// Network input pixels -> source pixels for a crop stretched to target_width x target_height.
LetterboxTransform crop_transform(const CropRegion& crop, int target_width, int target_height);

// The part of a BGR view inside `crop` (the same pixels, no copy).
ImageView crop_view(const ImageView& source, const CropRegion& crop);

// Fills one batch slot (3 x options.height x options.width floats at `output`) from `crop` of a BGR image:
// a stretch (options.letterbox is ignored), colour order and normalization from `options`. Builds its tables
// per call (a crop's size changes every call).
LetterboxTransform preprocess_crop(const ImageView& source, const CropRegion& crop, PreprocessOptions options,
                                   float* output);

// The plain version for the differential test: copies the crop's pixels to a packed image and runs
// preprocess_reference on it.
LetterboxTransform preprocess_crop_reference(const ImageView& source, const CropRegion& crop,
                                             PreprocessOptions options, float* output);

}  // namespace vapipe::vision
