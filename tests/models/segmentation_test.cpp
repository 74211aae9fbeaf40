// Instance segmentation (src/models/tasks/yolov8_seg.cpp, models/instance_mask.hpp):
//  - recognition of a YOLOv8-seg export from its two outputs;
//  - a seeded differential test on random tensors: the task's masks (computed for the kept detections only,
//    on each box's prototype window) against a plain decode written here from Ultralytics' process_mask
//    (whole prototype maps, crop_mask, whole-image bilinear upsampling, > 0.5), pixel for pixel;
//  - a mask's extent through the letterbox mapping (a box clamped at the image's edge keeps its mask);
//  - COCO RLE: hand-made cases and a seeded round trip; the JSON form.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "models/detection_json.hpp"
#include "models/instance_mask.hpp"
#include "models/post_processor.hpp"
#include "models/task.hpp"
#include "vision/letterbox.hpp"

namespace vapipe::models {
namespace {

std::vector<TensorInfo> seg_outputs(std::int64_t batch, int width, int height, int classes,
                                    int coefficients) {
  const std::int64_t anchors =
      (width / 8) * (height / 8) + (width / 16) * (height / 16) + (width / 32) * (height / 32);
  return {{"output0", DType::kF32, {batch, 4 + classes + coefficients, anchors}},
          {"output1", DType::kF32, {batch, coefficients, height / 4, width / 4}}};
}

nlohmann::json seg_metadata(const std::vector<TensorInfo>& outputs, int width, int height) {
  const TaskKind* kind = recognize_task(outputs);
  if (kind == nullptr || kind->model_type != "yolov8-seg") fail("not recognized as yolov8-seg");
  nlohmann::json metadata = {{"model_type", "yolov8-seg"},
                             {"input", {{"name", "images"}, {"width", width}, {"height", height}}}};
  kind->describe(outputs, width, height, metadata);
  return metadata;
}

TEST(Segmentation, RecognizesYolov8SegOutputsInEitherOrder) {
  auto outputs = seg_outputs(1, 320, 320, 80, 32);
  EXPECT_EQ(outputs[0].shape, (Shape{1, 116, 2100}));
  const TaskKind* kind = recognize_task(outputs);
  ASSERT_NE(kind, nullptr);
  EXPECT_EQ(kind->model_type, "yolov8-seg");
  std::swap(outputs[0], outputs[1]);
  ASSERT_NE(recognize_task(outputs), nullptr);
  EXPECT_EQ(recognize_task(outputs)->model_type, "yolov8-seg");
  const nlohmann::json metadata = seg_metadata(outputs, 320, 320);
  EXPECT_EQ(metadata.at("num_classes"), 80);
  EXPECT_EQ(metadata.at("head").at("boxes"), "output0");
  EXPECT_EQ(metadata.at("head").at("protos"), "output1");
  // A plain YOLOv8 detection output, or a box output with no room for a class, is not this task.
  EXPECT_EQ(recognize_task({{"output0", DType::kF32, {1, 84, 8400}}}), nullptr);
  EXPECT_EQ(
      recognize_task({{"output0", DType::kF32, {1, 36, 2100}}, {"output1", DType::kF32, {1, 32, 80, 80}}}),
      nullptr);
}

// Ultralytics' process_mask for one detection, as plainly as it reads: the whole prototype map, crop at its
// resolution, the whole input upsampled. Returns the input-sized probability map (before the 0.5 threshold).
std::vector<float> reference_mask(const float* coefficients, std::int64_t coefficient_stride,
                                  const float* protos, int coefficient_count, int mw, int mh, int width,
                                  int height, const Detection& d) {
  std::vector<float> low(static_cast<std::size_t>(mw * mh));
  const float sx = static_cast<float>(mw) / static_cast<float>(width);
  const float sy = static_cast<float>(mh) / static_cast<float>(height);
  for (int j = 0; j < mh; ++j) {
    for (int i = 0; i < mw; ++i) {
      float sum = 0.0f;
      for (int k = 0; k < coefficient_count; ++k)
        sum += coefficients[k * coefficient_stride] * protos[(k * mh + j) * mw + i];
      const bool inside = static_cast<float>(i) >= d.x1 * sx && static_cast<float>(i) < d.x2 * sx &&
                          static_cast<float>(j) >= d.y1 * sy && static_cast<float>(j) < d.y2 * sy;
      low[static_cast<std::size_t>(j * mw + i)] = inside ? 1.0f / (1.0f + std::exp(-sum)) : 0.0f;
    }
  }
  auto source = [](int p, int in, int out, int& i0, int& i1, float& lambda) {
    const float s = std::max(
        0.0f, static_cast<float>(in) / static_cast<float>(out) * (static_cast<float>(p) + 0.5f) - 0.5f);
    i0 = static_cast<int>(s);
    i1 = i0 < in - 1 ? i0 + 1 : i0;
    lambda = s - static_cast<float>(i0);
  };
  std::vector<float> full(static_cast<std::size_t>(width * height));
  for (int y = 0; y < height; ++y) {
    int j0 = 0, j1 = 0;
    float ly = 0.0f;
    source(y, mh, height, j0, j1, ly);
    for (int x = 0; x < width; ++x) {
      int i0 = 0, i1 = 0;
      float lx = 0.0f;
      source(x, mw, width, i0, i1, lx);
      auto at = [&](int i, int j) { return low[static_cast<std::size_t>(j * mw + i)]; };
      full[static_cast<std::size_t>(y * width + x)] =
          (1.0f - ly) * ((1.0f - lx) * at(i0, j0) + lx * at(i1, j0)) +
          ly * ((1.0f - lx) * at(i0, j1) + lx * at(i1, j1));
    }
  }
  return full;
}

TEST(Segmentation, MasksOfKeptDetectionsMatchAPlainDecodeOnRandomTensors) {
  constexpr int kWidth = 96, kHeight = 64, kClasses = 3, kCoefficients = 8, kBatch = 2;
  const auto outputs = seg_outputs(kBatch, kWidth, kHeight, kClasses, kCoefficients);
  const nlohmann::json metadata = seg_metadata(outputs, kWidth, kHeight);
  PostprocessOptions options = PostprocessOptions::from_metadata(metadata);
  PostProcessor post(metadata, outputs, options);
  const std::int64_t anchors = outputs[0].shape[2];
  const int mw = kWidth / 4, mh = kHeight / 4;

  std::size_t masks_checked = 0, pixels_set = 0, edge_boxes = 0;
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 random(seed);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f), signed_unit(-1.0f, 1.0f);
    std::vector<float> boxes(static_cast<std::size_t>(shape_volume(outputs[0].shape)));
    std::vector<float> protos(static_cast<std::size_t>(shape_volume(outputs[1].shape)));
    const std::int64_t rows = 4 + kClasses + kCoefficients;
    for (std::int64_t b = 0; b < kBatch; ++b) {
      float* image = boxes.data() + b * rows * anchors;
      for (std::int64_t a = 0; a < anchors; ++a) {
        // Centres anywhere (boxes may cross the input's edge), sizes 2 .. 60 pixels.
        image[a] = unit(random) * kWidth;
        image[anchors + a] = unit(random) * kHeight;
        image[2 * anchors + a] = 2.0f + unit(random) * 58.0f;
        image[3 * anchors + a] = 2.0f + unit(random) * 58.0f;
        // About one anchor in 20 scores above the 0.25 default.
        for (int c = 0; c < kClasses; ++c)
          image[(4 + c) * anchors + a] =
              unit(random) < 0.02f ? 0.3f + 0.7f * unit(random) : 0.2f * unit(random);
        for (int k = 0; k < kCoefficients; ++k)
          image[(4 + kClasses + k) * anchors + a] = 3.0f * signed_unit(random);
      }
    }
    for (float& p : protos) p = signed_unit(random);
    const std::array<ConstTensorView, 2> views = {
        ConstTensorView{boxes.data(), DType::kF32, outputs[0].shape},
        ConstTensorView{protos.data(), DType::kF32, outputs[1].shape}};
    for (std::int64_t b = 0; b < kBatch; ++b) {
      const auto detections = post.run(views, b);
      ASSERT_FALSE(detections.empty()) << "seed " << seed;
      const float* image = boxes.data() + b * rows * anchors;
      const float* image_protos = protos.data() + b * kCoefficients * mh * mw;
      for (const Detection& d : detections) {
        // The anchor the detection came from, found from its box and score (not from `candidate`).
        std::int64_t anchor = -1;
        for (std::int64_t a = 0; a < anchors && anchor < 0; ++a) {
          const float cx = image[a], cy = image[anchors + a], w = image[2 * anchors + a],
                      h = image[3 * anchors + a];
          const auto near = [](float p, float q) { return std::abs(p - q) < 1e-4f; };
          if (near(cx - 0.5f * w, d.x1) && near(cy - 0.5f * h, d.y1) && near(cx + 0.5f * w, d.x2) &&
              near(cy + 0.5f * h, d.y2) && image[(4 + d.class_id) * anchors + a] == d.score)
            anchor = a;
        }
        ASSERT_GE(anchor, 0) << "seed " << seed << ": no anchor has the box of a detection";
        const auto reference = reference_mask(image + (4 + kClasses) * anchors + anchor, anchors,
                                              image_protos, kCoefficients, mw, mh, kWidth, kHeight, d);
        // The task keeps the box's pixels, clipped to the input; the reference covers the whole input.
        const int x0 = std::clamp(static_cast<int>(std::floor(d.x1)), 0, kWidth);
        const int x1 = std::clamp(static_cast<int>(std::ceil(d.x2)), 0, kWidth);
        const int y0 = std::clamp(static_cast<int>(std::floor(d.y1)), 0, kHeight);
        const int y1 = std::clamp(static_cast<int>(std::ceil(d.y2)), 0, kHeight);
        edge_boxes += d.x1 < 0.0f || d.y1 < 0.0f || d.x2 > kWidth || d.y2 > kHeight ? 1 : 0;
        ASSERT_EQ(d.mask.width, x1 - x0);
        ASSERT_EQ(d.mask.height, y1 - y0);
        EXPECT_EQ(d.mask.x1, static_cast<float>(x0));
        EXPECT_EQ(d.mask.y2, static_cast<float>(y1));
        for (int y = y0; y < y1; ++y) {
          for (int x = x0; x < x1; ++x) {
            const float value = reference[static_cast<std::size_t>(y * kWidth + x)];
            const bool set = d.mask.at(x - x0, y - y0);
            pixels_set += set ? 1 : 0;
            // Summation order is the same; only a value within float rounding of the threshold may differ.
            if (set != (value > 0.5f)) {
              EXPECT_LT(std::abs(value - 0.5f), 1e-5f)
                  << "seed " << seed << " image " << b << " pixel (" << x << ", " << y << "): task " << set
                  << ", reference " << value;
            }
          }
        }
        ++masks_checked;
      }
    }
  }
  // The draw exercised what it should: many masks, set pixels, boxes crossing the input's edge.
  EXPECT_GE(masks_checked, 100U);
  EXPECT_GE(pixels_set, 10000U);
  EXPECT_GE(edge_boxes, 10U);
}

TEST(Segmentation, OnlyKeptDetectionsCarryMasksAndEachHasOne) {
  constexpr int kWidth = 64, kHeight = 64;
  const auto outputs = seg_outputs(1, kWidth, kHeight, 1, 2);
  const nlohmann::json metadata = seg_metadata(outputs, kWidth, kHeight);
  PostProcessor post(metadata, outputs, PostprocessOptions::from_metadata(metadata));
  const std::int64_t anchors = outputs[0].shape[2];
  std::vector<float> boxes(static_cast<std::size_t>(shape_volume(outputs[0].shape)), 0.0f);
  std::vector<float> protos(static_cast<std::size_t>(shape_volume(outputs[1].shape)), 1.0f);
  // Two overlapping boxes of one class (NMS keeps the higher) and a third apart; coefficient 0 of +4 gives
  // sigmoid(4) inside the box; protos are 1 everywhere.
  auto put = [&](std::int64_t a, float cx, float cy, float w, float h, float score) {
    boxes[static_cast<std::size_t>(a)] = cx;
    boxes[static_cast<std::size_t>(anchors + a)] = cy;
    boxes[static_cast<std::size_t>(2 * anchors + a)] = w;
    boxes[static_cast<std::size_t>(3 * anchors + a)] = h;
    boxes[static_cast<std::size_t>(4 * anchors + a)] = score;
    boxes[static_cast<std::size_t>(5 * anchors + a)] = 4.0f;
  };
  put(3, 20.0f, 20.0f, 16.0f, 16.0f, 0.9f);
  put(4, 21.0f, 20.0f, 16.0f, 16.0f, 0.8f);
  put(7, 52.0f, 50.0f, 8.0f, 12.0f, 0.7f);
  const std::array<ConstTensorView, 2> views = {
      ConstTensorView{boxes.data(), DType::kF32, outputs[0].shape},
      ConstTensorView{protos.data(), DType::kF32, outputs[1].shape}};
  const auto detections = post.run(views, 0);
  ASSERT_EQ(detections.size(), 2U);
  EXPECT_EQ(detections[0].candidate, 3);
  EXPECT_EQ(detections[1].candidate, 7);
  for (const Detection& d : detections) {
    ASSERT_FALSE(d.mask.empty());
    // A box aligned to the prototype grid (multiples of 4): every pixel of it is set, the mask is the box.
    EXPECT_EQ(d.mask.width, static_cast<int>(d.x2 - d.x1));
    EXPECT_EQ(d.mask.height, static_cast<int>(d.y2 - d.y1));
    int set = 0;
    for (int y = 0; y < d.mask.height; ++y)
      for (int x = 0; x < d.mask.width; ++x) set += d.mask.at(x, y) ? 1 : 0;
    EXPECT_GT(set, d.mask.width * d.mask.height * 3 / 4) << "box " << d.x1 << "," << d.y1;
  }
}

TEST(InstanceMask, ExtentFollowsTheLetterboxUnclampedWhereTheBoxIsClamped) {
  // A 200x100 image letterboxed into 64x64: scale 0.32, 16 pixels of padding above and below.
  const vision::LetterboxTransform transform = vision::compute_letterbox(200, 100, 64, 64);
  ASSERT_EQ(transform.pad_y, 16);
  Detection d;
  d.x1 = -4.0f;  // the box starts left of the image (it reaches into nothing the network saw)
  d.y1 = 20.0f;
  d.x2 = 12.0f;
  d.y2 = 36.0f;
  // Mask cells of 1 input pixel over the box clipped to the input: left half set.
  d.mask.x1 = 0.0f;
  d.mask.y1 = 20.0f;
  d.mask.x2 = 12.0f;
  d.mask.y2 = 36.0f;
  d.mask.resize(12, 16);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 6; ++x) d.mask.set(x, y);
  std::vector<Detection> list{d};
  vision::map_boxes_back(std::span(list), transform);
  const Detection& mapped = list[0];
  EXPECT_EQ(mapped.x1, 0.0f);  // clamped
  EXPECT_NEAR(mapped.mask.x2, 12.0f / 0.32f, 1e-3f);
  EXPECT_NEAR(mapped.mask.y1, (20.0f - 16.0f) / 0.32f, 1e-3f);
  const PixelMask pixels = rasterize(mapped);
  EXPECT_EQ(pixels.x, 0);
  EXPECT_EQ(pixels.y, static_cast<int>(std::floor(mapped.y1)));
  EXPECT_EQ(pixels.width, static_cast<int>(std::ceil(mapped.x2)));
  // Set exactly where the pixel centre maps into the extent's rows and its left half (x < 6 input pixels).
  for (int y = 0; y < pixels.height; ++y) {
    const float centre_y = static_cast<float>(pixels.y + y) + 0.5f;
    const bool row_inside = centre_y >= mapped.mask.y1 && centre_y < mapped.mask.y2;
    for (int x = 0; x < pixels.width; ++x) {
      const float input_x = (static_cast<float>(x) + 0.5f) * 0.32f;
      EXPECT_EQ(pixels.at(x, y), row_inside && input_x < 6.0f) << "pixel " << x << ", " << y;
    }
  }
}

TEST(InstanceMask, CocoRleOfHandMadeMasks) {
  // 3 wide, 2 high; column-major: (0,0) (0,1) (1,0) (1,1) (2,0) (2,1) = 0 1 1 1 0 0.
  PixelMask mask{0, 0, 3, 2, {0, 1, 0, 1, 1, 0}};
  EXPECT_EQ(rle_encode(mask), (std::vector<std::uint32_t>{1, 3, 2}));
  mask.pixels = {1, 0, 0, 0, 0, 0};  // first pixel set: an empty leading run of 0
  EXPECT_EQ(rle_encode(mask), (std::vector<std::uint32_t>{0, 1, 5}));
  mask.pixels.assign(6, 0);
  EXPECT_EQ(rle_encode(mask), (std::vector<std::uint32_t>{6}));
  mask.pixels.assign(6, 1);
  EXPECT_EQ(rle_encode(mask), (std::vector<std::uint32_t>{0, 6}));
  EXPECT_TRUE(rle_encode(PixelMask{}).empty());
  const std::vector<std::uint32_t> wrong = {1, 3};
  EXPECT_THROW(rle_decode(wrong, 3, 2), Error);
}

TEST(InstanceMask, CocoRleRoundTripsSeededMasks) {
  std::mt19937 random(7);
  for (int round = 0; round < 200; ++round) {
    PixelMask mask;
    mask.width = static_cast<int>(random() % 40);
    mask.height = static_cast<int>(random() % 40);
    mask.pixels.resize(static_cast<std::size_t>(mask.width * mask.height));
    // Blobs and noise: long runs and single pixels.
    const auto density = static_cast<std::uint32_t>(random() % 100);
    std::uint8_t value = 0;
    for (auto& p : mask.pixels) {
      if (random() % 100 < density / 4) value = static_cast<std::uint8_t>(1 - value);
      p = value;
    }
    const auto counts = rle_encode(mask);
    EXPECT_EQ(rle_decode(counts, mask.width, mask.height), mask.pixels) << "round " << round;
  }
}

TEST(InstanceMask, JsonCarriesTheRleOverTheBoxPixels) {
  Detection d;
  d.class_id = 0;
  d.score = 0.8f;
  d.x1 = 10.2f;
  d.y1 = 5.0f;
  d.x2 = 13.9f;  // pixels 10 .. 13
  d.y2 = 7.0f;   // pixels 5 .. 6
  d.mask.x1 = 10.0f;
  d.mask.y1 = 5.0f;
  d.mask.x2 = 14.0f;
  d.mask.y2 = 7.0f;
  d.mask.resize(4, 2);
  d.mask.set(1, 0);
  d.mask.set(1, 1);
  d.mask.set(2, 1);
  const auto json = detection_to_json(d, "person");
  ASSERT_TRUE(json.contains("mask"));
  EXPECT_EQ(json.at("mask").dump(), R"({"origin":[10,5],"size":[2,4],"counts":[2,2,1,1,2]})");
  EXPECT_FALSE(detection_to_json(Detection{}, "person").contains("mask"));
}

}  // namespace
}  // namespace vapipe::models
