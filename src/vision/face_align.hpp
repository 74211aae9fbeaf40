#pragma once
// Face alignment for recognition networks (ArcFace, MobileFaceNet): the similarity transform (rotation,
// uniform scale, translation) that best maps a face's 5 landmarks onto the ArcFace template in least squares
// (insightface's face_align.norm_crop: skimage SimilarityTransform.estimate, i.e. Umeyama without
// reflection), then the face warped through it into the network input (cv2.warpAffine, bilinear, border 0)
// with the colour order and normalization fused in: one pass, no aligned image in between.
#include <array>
#include <span>

#include "vision/fused_preprocess.hpp"
#include "vision/image_view.hpp"

namespace vapipe::vision {

// x' = a x - b y + tx, y' = b x + a y + ty.
struct SimilarityTransform {
  double a = 1.0, b = 0.0, tx = 0.0, ty = 0.0;
  std::array<double, 2> map(double x, double y) const { return {a * x - b * y + tx, b * x + a * y + ty}; }
  // The inverse (also a similarity); throws vapipe::Error when the transform is degenerate (scale 0).
  SimilarityTransform inverse() const;
};

using Point2 = std::array<float, 2>;

// insightface's arcface_dst: left eye, right eye, nose, left and right mouth corner of a 112x112 face (as
// seen in the image; the landmark order of the face detectors' tasks).
inline constexpr std::array<Point2, 5> kArcFaceTemplate112 = {{{38.2946f, 51.6963f},
                                                               {73.5318f, 51.5014f},
                                                               {56.0252f, 71.7366f},
                                                               {41.5493f, 92.3655f},
                                                               {70.7299f, 92.2041f}}};

// The template for a square input of `size` pixels (norm_crop's rule: scaled by size / 112, or by size / 128
// and shifted 8 pixels right where size is a multiple of 128).
std::array<Point2, 5> arcface_template(int size);

// Least-squares similarity from `from` to `to` (the same number of points, at least 2, not all equal).
// Throws vapipe::Error when it is undefined.
SimilarityTransform estimate_similarity(std::span<const Point2> from, std::span<const Point2> to);

// Writes 3 x options.height x options.width floats at `output`: output pixel (x, y) is the BGR source
// sampled at to_face.inverse() of (x, y) (bilinear; taps outside the image are 0), in options' colour order,
// (v * scale - mean) / std. options.letterbox is ignored.
void align_face(const ImageView& bgr, const SimilarityTransform& to_face, const PreprocessOptions& options,
                float* output);

// The plain version for the differential test: every pixel through the inverse in double precision.
void align_face_reference(const ImageView& bgr, const SimilarityTransform& to_face,
                          const PreprocessOptions& options, float* output);

}  // namespace vapipe::vision
