// Kernel micro-benchmarks, each optimized kernel beside its plain reference so the speed-up is visible:
//   vapipe_kernels_bench --benchmark_filter=Preprocess
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "models/nms.hpp"
#include "models/yolo_decoders.hpp"
#include "vision/fused_preprocess.hpp"

namespace {

using vapipe::vision::ImageView;

struct Frame {
  int width, height;
  std::vector<std::uint8_t> pixels;  // BGR, or NV12 (Y then UV)
};

Frame make_frame(int width, int height, bool nv12) {
  Frame frame{width, height,
              std::vector<std::uint8_t>(static_cast<std::size_t>(width) * height * (nv12 ? 3 : 6) / 2)};
  std::mt19937 rng(1);
  for (auto& value : frame.pixels) value = static_cast<std::uint8_t>(rng());
  return frame;
}

ImageView view_of(const Frame& frame, bool nv12) {
  if (!nv12) return ImageView::bgr(frame.pixels.data(), frame.width, frame.height, 3 * frame.width);
  return ImageView::nv12(frame.pixels.data(), frame.width,
                         frame.pixels.data() + static_cast<std::ptrdiff_t>(frame.width) * frame.height,
                         frame.width, frame.width, frame.height);
}

// Args: source width, source height, nv12 (0/1), threads.
void BM_PreprocessFused(benchmark::State& state) {
  const bool nv12 = state.range(2) != 0;
  const Frame frame = make_frame(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), nv12);
  vapipe::vision::PreprocessOptions options;  // 640 x 640 letterbox, RGB, 1/255
  vapipe::vision::FusedPreprocessor preprocessor(
      nv12 ? vapipe::vision::PixelFormat::kNv12 : vapipe::vision::PixelFormat::kBgr24, frame.width,
      frame.height, options, static_cast<int>(state.range(3)));
  std::vector<float> output(3u * 640 * 640);
  for (auto _ : state) {
    preprocessor.run(view_of(frame, nv12), output.data());
    benchmark::DoNotOptimize(output.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PreprocessFused)
    ->Args({1920, 1080, 0, 1})
    ->Args({1920, 1080, 0, 2})
    ->Args({768, 576, 0, 1})
    ->Args({1920, 1080, 1, 1})
    ->Args({1920, 1080, 1, 2})
    ->Unit(benchmark::kMicrosecond);

// The peer: the same letterbox with OpenCV as YOLOv5's Python code and most C++ deployments write it
// (cvtColor for NV12, resize, copyMakeBorder, cvtColor BGR->RGB, convertTo float, split into planes).
void BM_PreprocessOpenCv(benchmark::State& state) {
  const bool nv12 = state.range(2) != 0;
  const Frame frame = make_frame(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), nv12);
  cv::setNumThreads(static_cast<int>(state.range(3)));
  const auto transform = vapipe::vision::compute_letterbox(frame.width, frame.height, 640, 640);
  std::vector<float> output(3u * 640 * 640);
  cv::Mat bgr;
  cv::Mat resized;
  cv::Mat padded;
  cv::Mat rgb;
  cv::Mat as_float;
  for (auto _ : state) {
    if (nv12) {
      const cv::Mat yuv(frame.height * 3 / 2, frame.width, CV_8UC1,
                        const_cast<std::uint8_t*>(frame.pixels.data()));
      cv::cvtColor(yuv, bgr, cv::COLOR_YUV2BGR_NV12);
    } else {
      bgr = cv::Mat(frame.height, frame.width, CV_8UC3, const_cast<std::uint8_t*>(frame.pixels.data()));
    }
    cv::resize(bgr, resized, cv::Size(transform.resized_width, transform.resized_height), 0, 0,
               cv::INTER_LINEAR);
    cv::copyMakeBorder(resized, padded, transform.pad_y, 640 - transform.resized_height - transform.pad_y,
                       transform.pad_x, 640 - transform.resized_width - transform.pad_x, cv::BORDER_CONSTANT,
                       cv::Scalar(114, 114, 114));
    cv::cvtColor(padded, rgb, cv::COLOR_BGR2RGB);
    rgb.convertTo(as_float, CV_32FC3, 1.0 / 255.0);
    std::vector<cv::Mat> planes;
    for (int c = 0; c < 3; ++c) planes.emplace_back(640, 640, CV_32FC1, output.data() + c * 640 * 640);
    cv::split(as_float, planes);
    benchmark::DoNotOptimize(output.data());
  }
  cv::setNumThreads(-1);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PreprocessOpenCv)
    ->Args({1920, 1080, 0, 1})
    ->Args({1920, 1080, 0, 2})
    ->Args({768, 576, 0, 1})
    ->Args({1920, 1080, 1, 1})
    ->Args({1920, 1080, 1, 2})
    ->Unit(benchmark::kMicrosecond);

void BM_PreprocessReference(benchmark::State& state) {
  const bool nv12 = state.range(2) != 0;
  const Frame frame = make_frame(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), nv12);
  vapipe::vision::PreprocessOptions options;
  std::vector<float> output(3u * 640 * 640);
  for (auto _ : state) {
    vapipe::vision::preprocess_reference(view_of(frame, nv12), options, output.data());
    benchmark::DoNotOptimize(output.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PreprocessReference)
    ->Args({1920, 1080, 0, 1})
    ->Args({768, 576, 0, 1})
    ->Args({1920, 1080, 1, 1})
    ->Unit(benchmark::kMicrosecond);

// Candidates like a busy street scene: clusters of overlapping boxes over 80 classes.
std::vector<vapipe::models::Detection> make_candidates(int count) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> position(0.0f, 600.0f);
  std::normal_distribution<float> jitter(0.0f, 6.0f);
  std::uniform_real_distribution<float> score(0.25f, 1.0f);
  std::vector<vapipe::models::Detection> boxes;
  while (static_cast<int>(boxes.size()) < count) {
    const float cx = position(rng), cy = position(rng);
    const int class_id = static_cast<int>(rng() % 80);
    for (int k = 0; k < 10 && static_cast<int>(boxes.size()) < count; ++k) {
      const float x = cx + jitter(rng), y = cy + jitter(rng);
      boxes.push_back({class_id, score(rng), x, y, x + 60 + jitter(rng), y + 120 + jitter(rng)});
    }
  }
  return boxes;
}

void BM_NmsOptimized(benchmark::State& state) {
  const auto candidates = make_candidates(static_cast<int>(state.range(0)));
  vapipe::models::NmsScratch scratch;
  std::vector<vapipe::models::Detection> boxes;
  for (auto _ : state) {
    boxes = candidates;
    vapipe::models::nms(boxes, {0.45f, 300}, scratch);
    benchmark::DoNotOptimize(boxes.data());
  }
}
BENCHMARK(BM_NmsOptimized)->Arg(1000)->Arg(5000)->Unit(benchmark::kMicrosecond);

void BM_NmsReference(benchmark::State& state) {
  const auto candidates = make_candidates(static_cast<int>(state.range(0)));
  std::vector<vapipe::models::Detection> boxes;
  for (auto _ : state) {
    boxes = candidates;
    vapipe::models::nms_reference(boxes, {0.45f, 300});
    benchmark::DoNotOptimize(boxes.data());
  }
}
BENCHMARK(BM_NmsReference)->Arg(1000)->Arg(5000)->Unit(benchmark::kMicrosecond);

// YOLOv8n's raw head at 640 (80x80, 40x40, 20x20 cells, channels-last, 64 box-distribution + 80 class logits),
// class logits like a photo's (almost all far below the 0.25 threshold, one cell in 400 above it): the cost the
// post-processor adds to the cut network, beside the decode of the full graph's [84, 8400] output.
void BM_Yolov8RawDecode(benchmark::State& state) {
  constexpr int kRegMax = 16, kClasses = 80, kChannels = 4 * kRegMax + kClasses;
  std::mt19937 rng(3);
  std::normal_distribution<float> box(0.0f, 2.0f), background(-9.0f, 2.0f);
  std::vector<std::vector<float>> data;
  std::vector<vapipe::models::DflHeadLevel> levels;
  for (const int side : {80, 40, 20}) {
    std::vector<float> level(static_cast<std::size_t>(side * side * kChannels));
    for (std::size_t i = 0; i < level.size(); ++i) {
      const auto channel = static_cast<int>(i % kChannels);
      level[i] = channel < 4 * kRegMax ? box(rng) : (rng() % 400 == 0 ? 2.0f : background(rng));
    }
    data.push_back(std::move(level));
    levels.push_back({data.back().data(), side, side, 640.0f / static_cast<float>(side), true});
  }
  std::vector<vapipe::models::Detection> out;
  for (auto _ : state) {
    out.clear();
    vapipe::models::decode_yolov8_raw(levels, kClasses, kRegMax, {}, out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Yolov8RawDecode)->Unit(benchmark::kMicrosecond);

void BM_Yolov8FullDecode(benchmark::State& state) {
  constexpr int kClasses = 80, kCount = 8400;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> coordinate(0.0f, 640.0f), score(0.0f, 0.02f);
  std::vector<float> data(static_cast<std::size_t>((4 + kClasses) * kCount));
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = i < 4 * kCount ? coordinate(rng) : (rng() % 400 == 0 ? 0.9f : score(rng));
  std::vector<vapipe::models::Detection> out;
  std::vector<float> scratch;
  for (auto _ : state) {
    out.clear();
    vapipe::models::decode_yolov8_full(data.data(), kCount, kClasses, {}, out, scratch);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Yolov8FullDecode)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
