// Face alignment (vision/face_align.hpp): the least-squares similarity against known transforms and against
// the Umeyama/skimage result, the fused warp against the plain per-pixel one over seeded images and
// transforms, and the warp against OpenCV's cv::warpAffine (what insightface's norm_crop calls).
#include "vision/face_align.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <opencv2/imgproc.hpp>

namespace vapipe::vision {
namespace {

TEST(FaceAlign, EstimateRecoversAnExactSimilarity) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> angle(-3.1, 3.1), scale(0.2, 5.0), shift(-200.0, 200.0);
  for (int trial = 0; trial < 100; ++trial) {
    const double s = scale(rng), t = angle(rng);
    const SimilarityTransform truth{s * std::cos(t), s * std::sin(t), shift(rng), shift(rng)};
    std::vector<Point2> from, to;
    for (const auto& p : kArcFaceTemplate112) {
      from.push_back(p);
      const auto q = truth.map(p[0], p[1]);
      to.push_back({static_cast<float>(q[0]), static_cast<float>(q[1])});
    }
    const SimilarityTransform found = estimate_similarity(from, to);
    // float points: the recovered transform is as good as the points' 24-bit mantissas.
    EXPECT_NEAR(found.a, truth.a, 1e-5 * s + 1e-6);
    EXPECT_NEAR(found.b, truth.b, 1e-5 * s + 1e-6);
    EXPECT_NEAR(found.tx, truth.tx, 1e-3);
    EXPECT_NEAR(found.ty, truth.ty, 1e-3);
    const SimilarityTransform back = found.inverse();
    const auto round_trip = back.map(found.map(10.0, -20.0)[0], found.map(10.0, -20.0)[1]);
    EXPECT_NEAR(round_trip[0], 10.0, 1e-6);
    EXPECT_NEAR(round_trip[1], -20.0, 1e-6);
  }
}

// Landmarks that no similarity maps exactly onto the template (a slightly turned head, as SCRFD gives them):
// the closed form is the least-squares optimum Umeyama's method finds, so any perturbation costs more.
TEST(FaceAlign, EstimateMatchesUmeyamaOnNoisyLandmarks) {
  const std::vector<Point2> landmarks = {
      {250.1f, 180.3f}, {301.7f, 176.9f}, {279.4f, 210.2f}, {258.0f, 241.6f}, {300.2f, 238.8f}};
  const SimilarityTransform t = estimate_similarity(landmarks, kArcFaceTemplate112);
  // Residuals are what least squares leaves: no other similarity does better (perturb and compare).
  auto cost = [&](const SimilarityTransform& m) {
    double sum = 0;
    for (std::size_t i = 0; i < landmarks.size(); ++i) {
      const auto q = m.map(landmarks[i][0], landmarks[i][1]);
      sum += std::pow(q[0] - double{kArcFaceTemplate112[i][0]}, 2) +
             std::pow(q[1] - double{kArcFaceTemplate112[i][1]}, 2);
    }
    return sum;
  };
  const double best = cost(t);
  for (double delta : {1e-3, -1e-3}) {
    for (int k = 0; k < 4; ++k) {
      SimilarityTransform other = t;
      (k == 0 ? other.a : k == 1 ? other.b : k == 2 ? other.tx : other.ty) += delta * (k < 2 ? 1.0 : 100.0);
      EXPECT_GT(cost(other), best);
    }
  }
  // A face about 52 pixels between the eyes maps to the template's 35: scale ~0.68, a small rotation.
  EXPECT_NEAR(std::hypot(t.a, t.b), 0.68, 0.05);
  EXPECT_LT(std::abs(std::atan2(t.b, t.a)), 0.15);
}

TEST(FaceAlign, TemplateScalesAsNormCropDoes) {
  const auto same = arcface_template(112);
  EXPECT_EQ(same[2][0], kArcFaceTemplate112[2][0]);
  const auto big = arcface_template(128);  // a multiple of 128: ratio 1, shifted 8 right
  EXPECT_NEAR(big[0][0], kArcFaceTemplate112[0][0] + 8.0f, 1e-5);
  EXPECT_NEAR(big[0][1], kArcFaceTemplate112[0][1], 1e-5);
  const auto double_size = arcface_template(224);
  EXPECT_NEAR(double_size[4][1], kArcFaceTemplate112[4][1] * 2.0f, 1e-4);
}

TEST(FaceAlign, FusedWarpMatchesTheReferenceOverSeededImagesAndTransforms) {
  std::mt19937 rng(20261207);
  std::uniform_int_distribution<int> image_size(1, 260), byte(0, 255);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int trial = 0; trial < 150; ++trial) {
    const int width = image_size(rng), height = image_size(rng);
    const int stride = width * 3 + trial % 7;
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(stride) * height);
    for (auto& value : pixels) value = static_cast<std::uint8_t>(byte(rng));
    const ImageView image = ImageView::bgr(pixels.data(), width, height, stride);
    // Faces anywhere, partly or wholly outside the image, at any angle and size.
    const double scale = 0.1 + unit(rng) * 3.0, angle = (unit(rng) - 0.5) * 6.0;
    const SimilarityTransform to_face{scale * std::cos(angle), scale * std::sin(angle),
                                      (unit(rng) - 0.7) * 300.0, (unit(rng) - 0.7) * 300.0};
    PreprocessOptions options;
    options.width = options.height = trial % 3 == 0 ? 112 : 64;
    options.rgb = trial % 2 == 0;
    options.scale = 1.0f;
    options.mean = {127.5f, 127.5f, 127.5f};
    options.std = {128.0f, 128.0f, 128.0f};
    const std::size_t count = 3u * options.width * options.height;
    std::vector<float> fused(count), reference(count);
    align_face(image, to_face, options, fused.data());
    align_face_reference(image, to_face, options, reference.data());
    double worst = 0;
    for (std::size_t i = 0; i < count; ++i)
      worst = std::max(worst, std::abs(double{fused[i]} - double{reference[i]}));
    // Float stepping along a row against double per pixel: well under one grey level (1/128).
    EXPECT_LT(worst, 2e-3) << "trial " << trial << " image " << width << "x" << height;
  }
}

TEST(FaceAlign, WarpAgreesWithOpenCvWarpAffine) {
  std::mt19937 rng(3);
  cv::Mat image(360, 640, CV_8UC3);
  cv::randu(image, 0, 255);
  cv::GaussianBlur(image, image, cv::Size(7, 7),
                   2.0);  // smooth, like a photo: interpolation differences stay small
  const std::vector<Point2> landmarks = {
      {250.1f, 180.3f}, {301.7f, 176.9f}, {279.4f, 210.2f}, {258.0f, 241.6f}, {300.2f, 238.8f}};
  const SimilarityTransform t = estimate_similarity(landmarks, kArcFaceTemplate112);
  PreprocessOptions options;
  options.width = options.height = 112;
  options.rgb = false;
  options.scale = 1.0f;
  std::vector<float> ours(3u * 112 * 112);
  align_face(ImageView::bgr(image.data, image.cols, image.rows, static_cast<std::ptrdiff_t>(image.step[0])),
             t, options, ours.data());
  const cv::Mat matrix = (cv::Mat_<double>(2, 3) << t.a, -t.b, t.tx, t.b, t.a, t.ty);
  cv::Mat warped;
  cv::warpAffine(image, warped, matrix, cv::Size(112, 112), cv::INTER_LINEAR, cv::BORDER_CONSTANT, 0.0);
  double total = 0, worst = 0;
  for (int y = 0; y < 112; ++y) {
    for (int x = 0; x < 112; ++x) {
      for (int c = 0; c < 3; ++c) {
        const double difference =
            std::abs(double{ours[static_cast<std::size_t>(c * 112 * 112 + y * 112 + x)]} -
                     static_cast<double>(warped.at<cv::Vec3b>(y, x)[c]));
        total += difference;
        worst = std::max(worst, difference);
      }
    }
  }
  // OpenCV rounds its weights to 1/32 of a pixel and its result to 8 bits.
  EXPECT_LT(total / (3 * 112 * 112), 0.6);
  EXPECT_LT(worst, 4.0);
}

TEST(FaceAlign, DegenerateInputsAreErrors) {
  const std::vector<Point2> same(5, Point2{3.0f, 4.0f});
  EXPECT_THROW(estimate_similarity(same, kArcFaceTemplate112), std::exception);
  EXPECT_THROW(estimate_similarity(std::vector<Point2>(2), kArcFaceTemplate112), std::exception);
  EXPECT_THROW((SimilarityTransform{0, 0, 1, 1}.inverse()), std::exception);
}

}  // namespace
}  // namespace vapipe::vision
