// Differential tests of the fused preprocessing: fast path vs. the per-pixel reference over many seeded
// shapes, and vs. OpenCV's resize + copyMakeBorder + cvtColor + convertTo on real photos.
#include "vision/fused_preprocess.hpp"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.hpp"
#include "support/test_data.hpp"
#include "vision/image_io.hpp"

namespace vapipe::vision {
namespace {

// An image of one format with its planes, filled with smooth content plus noise (so interpolation matters).
struct TestImage {
  PixelFormat format;
  int width, height;
  std::vector<std::uint8_t> y, u, v;  // for BGR, `y` holds the interleaved pixels
  ImageView view() const {
    const int cw = (width + 1) / 2;
    switch (format) {
      case PixelFormat::kBgr24:
        return ImageView::bgr(y.data(), width, height, 3 * width + 5);
      case PixelFormat::kNv12:
        return ImageView::nv12(y.data(), width + 3, u.data(), 2 * cw + 1, width, height);
      case PixelFormat::kI420:
        return ImageView::i420(y.data(), width + 3, u.data(), cw + 2, v.data(), cw, width, height);
    }
    return {};
  }
};

TestImage random_image(std::mt19937& rng, PixelFormat format, int width, int height) {
  std::uniform_int_distribution<int> byte(0, 255);
  TestImage image{format, width, height, {}, {}, {}};
  const int ch = (height + 1) / 2;
  const int cw = (width + 1) / 2;
  // Strides deliberately larger than the rows (decoder buffers are padded).
  switch (format) {
    case PixelFormat::kBgr24:
      image.y.resize(static_cast<std::size_t>(3 * width + 5) * height);
      break;
    case PixelFormat::kNv12:
      image.y.resize(static_cast<std::size_t>(width + 3) * height);
      image.u.resize(static_cast<std::size_t>(2 * cw + 1) * ch);
      break;
    case PixelFormat::kI420:
      image.y.resize(static_cast<std::size_t>(width + 3) * height);
      image.u.resize(static_cast<std::size_t>(cw + 2) * ch);
      image.v.resize(static_cast<std::size_t>(cw) * ch);
      break;
  }
  for (auto* plane : {&image.y, &image.u, &image.v}) {
    for (std::size_t i = 0; i < plane->size(); ++i)
      (*plane)[i] = static_cast<std::uint8_t>((i * 7 + byte(rng) / 4) & 0xFF);
  }
  return image;
}

TEST(FusedPreprocess, MatchesTheReferenceOverManySeededShapes) {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> source_size(1, 260);
  std::uniform_int_distribution<int> target_size(8, 200);
  std::uniform_real_distribution<float> unit(0.2f, 1.0f);
  const PixelFormat formats[] = {PixelFormat::kBgr24, PixelFormat::kNv12, PixelFormat::kI420};
  for (int trial = 0; trial < 360; ++trial) {
    const PixelFormat format = formats[trial % 3];
    const TestImage image = random_image(rng, format, source_size(rng), source_size(rng));
    PreprocessOptions options;
    options.width = target_size(rng);
    options.height = target_size(rng);
    options.letterbox = trial % 4 != 0;
    options.rgb = trial % 5 != 0;
    options.pad_value = static_cast<std::uint8_t>(trial % 7 == 0 ? 0 : 114);
    options.yuv_matrix = trial % 2 == 0 ? YuvMatrix::kBt601 : YuvMatrix::kBt709;
    if (trial % 3 == 0) {
      options.mean = {unit(rng) - 0.2f, unit(rng) - 0.2f, unit(rng) - 0.2f};
      options.std = {unit(rng), unit(rng), unit(rng)};
    }
    const std::size_t size = 3u * static_cast<std::size_t>(options.width) * options.height;
    std::vector<float> fast(size, -1000.0f), reference(size, 1000.0f);
    FusedPreprocessor preprocessor(format, image.width, image.height, options, 1 + trial % 4);
    preprocessor.run(image.view(), fast.data());
    const LetterboxTransform t = preprocess_reference(image.view(), options, reference.data());
    EXPECT_EQ(t.pad_x, preprocessor.transform().pad_x);
    double worst = 0.0;
    for (std::size_t i = 0; i < size; ++i) {
      const int c = static_cast<int>(i / (size / 3));
      // In grey levels of the source, whatever mean/std did to the range.
      const double level = std::abs(fast[i] - reference[i]) * options.std[c] / options.scale;
      worst = std::max(worst, level);
    }
    // The brief's bound is one grey level (1/255 after scaling); we are far inside it.
    ASSERT_LE(worst, 0.02) << "trial " << trial << " format " << static_cast<int>(format) << " "
                           << image.width << "x" << image.height << " -> " << options.width << "x"
                           << options.height;
  }
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// The threaded path (helper threads taking chunks of rows) and repeated runs of one preprocessor on different
// frames (cached chroma rows must not leak between frames) give exactly the single-threaded output.
TEST(FusedPreprocess, ThreadsAndRepeatedRunsMatchOneThread) {
  std::mt19937 rng(99);
  const PixelFormat formats[] = {PixelFormat::kBgr24, PixelFormat::kNv12, PixelFormat::kI420};
  for (const PixelFormat format : formats) {
    for (auto [w, h] : {std::pair{1920, 1080}, std::pair{301, 517}, std::pair{700, 40}}) {
      PreprocessOptions options;
      options.width = 320;
      options.height = 288;
      FusedPreprocessor single(format, w, h, options, 1);
      for (const int threads : {2, 3, 4}) {
        FusedPreprocessor threaded(format, w, h, options, threads);
        for (int frame = 0; frame < 3; ++frame) {
          const TestImage image = random_image(rng, format, w, h);
          const std::size_t size = 3u * 320 * 288;
          std::vector<float> expected(size, -1.0f), got(size, -2.0f);
          single.run(image.view(), expected.data());
          threaded.run(image.view(), got.data());
          ASSERT_EQ(expected, got) << static_cast<int>(format) << " " << w << "x" << h << " threads "
                                   << threads << " frame " << frame;
        }
      }
    }
  }
}

// A BGR frame whose buffer ends exactly at its last pixel (stride 3 * width): the fast path reads taps as
// 4 bytes and must not read past the buffer on the last pixel (ASan builds check this).
TEST(FusedPreprocess, TightBgrBufferMatchesTheReference) {
  for (auto [w, h] : {std::pair{1, 1}, std::pair{2, 3}, std::pair{641, 479}, std::pair{1920, 1080}}) {
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(3 * w) * h);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 31 + (i >> 7));
    const ImageView view = ImageView::bgr(pixels.data(), w, h, 3 * w);
    for (auto [ow, oh] : {std::pair{640, 640}, std::pair{97, 1500}}) {
      PreprocessOptions options;
      options.width = ow;
      options.height = oh;
      const std::size_t size = 3u * static_cast<std::size_t>(ow) * oh;
      std::vector<float> fast(size), reference(size);
      preprocess(view, options, fast.data());
      preprocess_reference(view, options, reference.data());
      EXPECT_LE(max_abs_diff(fast, reference), 0.02f / 255.0f) << w << "x" << h << " -> " << ow << "x" << oh;
    }
  }
}

// What a Python YOLOv5 user does: letterbox with cv::resize + copyMakeBorder, BGR->RGB, /255, HWC->CHW.
std::vector<float> opencv_letterbox(const cv::Mat& bgr, const LetterboxTransform& t, int width, int height) {
  cv::Mat resized, padded, rgb, floats;
  cv::resize(bgr, resized, cv::Size(t.resized_width, t.resized_height), 0, 0, cv::INTER_LINEAR);
  cv::copyMakeBorder(resized, padded, t.pad_y, height - t.resized_height - t.pad_y, t.pad_x,
                     width - t.resized_width - t.pad_x, cv::BORDER_CONSTANT, cv::Scalar::all(114));
  cv::cvtColor(padded, rgb, cv::COLOR_BGR2RGB);
  rgb.convertTo(floats, CV_32F, 1.0 / 255.0);
  std::vector<float> chw(3u * static_cast<std::size_t>(width) * height);
  std::vector<cv::Mat> planes;
  for (int c = 0; c < 3; ++c) planes.emplace_back(height, width, CV_32F, chw.data() + c * width * height);
  cv::split(floats, planes);
  return chw;
}

TEST(FusedPreprocess, MatchesOpenCvResizeBorderAndConversionOnPhotos) {
  for (const char* name : {"messi5.jpg", "basketball1.png", "lena.jpg"}) {
    const auto path = test::opencv_data_dir() / name;
    if (!std::filesystem::exists(path)) continue;
    const cv::Mat image = load_image(path.string());
    for (auto [width, height] : {std::pair{640, 640}, std::pair{320, 256}, std::pair{1024, 1024}}) {
      PreprocessOptions options;
      options.width = width;
      options.height = height;
      std::vector<float> fast(3u * static_cast<std::size_t>(width) * height);
      const LetterboxTransform t = preprocess(view_of_bgr(image), options, fast.data());
      EXPECT_LE(max_abs_diff(fast, opencv_letterbox(image, t, width, height)), 2.0f / 255.0f)
          << name << " -> " << width << "x" << height;
    }
  }
}

TEST(FusedPreprocess, Nv12MatchesOpenCvColourConversionThenResize) {
  std::mt19937 rng(7);
  for (auto [w, h] : {std::pair{320, 240}, std::pair{642, 360}, std::pair{130, 402}}) {
    // A smooth NV12 frame (real video is smooth; OpenCV rounds the conversion to bytes, we do not).
    cv::Mat nv12(h * 3 / 2, w, CV_8UC1);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x)
        nv12.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(16 + (x * 3 + y * 2) % 220);
    }
    for (int y = h; y < h * 3 / 2; ++y) {
      for (int x = 0; x < w; ++x)
        nv12.at<std::uint8_t>(y, x) =
            static_cast<std::uint8_t>(90 + (x + 5 * y + static_cast<int>(rng() % 3)) % 80);
    }
    cv::Mat bgr;
    cv::cvtColor(nv12, bgr, cv::COLOR_YUV2BGR_NV12);
    PreprocessOptions options;
    options.width = 320;
    options.height = 320;
    std::vector<float> fast(3u * 320 * 320);
    const LetterboxTransform t =
        preprocess(ImageView::nv12(nv12.data, w, nv12.data + static_cast<std::ptrdiff_t>(w) * h, w, w, h),
                   options, fast.data());
    EXPECT_LE(max_abs_diff(fast, opencv_letterbox(bgr, t, 320, 320)), 2.0f / 255.0f) << w << "x" << h;
  }
}

TEST(FusedPreprocess, PaddingAndNormalizationFollowTheOptions) {
  // A uniform grey image: every output value is known.
  const cv::Mat grey(100, 200, CV_8UC3, cv::Scalar(50, 100, 200));
  PreprocessOptions options;
  options.width = 64;
  options.height = 64;
  options.mean = {0.5f, 0.25f, 0.0f};
  options.std = {0.5f, 0.5f, 1.0f};
  std::vector<float> out(3u * 64 * 64);
  const LetterboxTransform t = preprocess(view_of_bgr(grey), options, out.data());
  EXPECT_EQ(t.pad_y, 16);
  // Row 0 is padding, row 32 is image; channel 0 is R (=200).
  auto at = [&](int c, int y, int x) { return out[static_cast<std::size_t>(c * 64 * 64 + y * 64 + x)]; };
  EXPECT_NEAR(at(0, 0, 10), (114.0f / 255.0f - 0.5f) / 0.5f, 1e-6);
  EXPECT_NEAR(at(0, 32, 10), (200.0f / 255.0f - 0.5f) / 0.5f, 1e-6);
  EXPECT_NEAR(at(1, 32, 10), (100.0f / 255.0f - 0.25f) / 0.5f, 1e-6);
  EXPECT_NEAR(at(2, 32, 10), 50.0f / 255.0f, 1e-6);
}

TEST(FusedPreprocess, RejectsAnImageOfAnotherSize) {
  const cv::Mat image(10, 10, CV_8UC3, cv::Scalar::all(0));
  FusedPreprocessor preprocessor(PixelFormat::kBgr24, 20, 20, PreprocessOptions{});
  std::vector<float> out(3u * 640 * 640);
  EXPECT_THROW(preprocessor.run(view_of_bgr(image), out.data()), Error);
}

TEST(FusedPreprocess, OptionsComeFromNetworkMetadata) {
  const auto metadata = nlohmann::json::parse(R"({"input": {"width": 352, "height": 288},
    "preprocess": {"color": "bgr", "scale": 1.0, "mean": [1, 2, 3], "std": [4, 5, 6], "letterbox": false, "pad_value": 0}})");
  const PreprocessOptions options = PreprocessOptions::from_metadata(metadata);
  EXPECT_EQ(options.width, 352);
  EXPECT_EQ(options.height, 288);
  EXPECT_FALSE(options.rgb);
  EXPECT_FALSE(options.letterbox);
  EXPECT_EQ(options.pad_value, 0);
  EXPECT_EQ(options.std[2], 6.0f);
}

}  // namespace
}  // namespace vapipe::vision
