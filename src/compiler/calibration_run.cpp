#include "compiler/calibration_run.hpp"

#include <algorithm>
#include <optional>

#include "core/error.hpp"
#include "core/progress_bar.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"
#include "vision/image_io.hpp"

namespace vapipe::compiler {

CalibrationTable calibrate(const ir::Graph& graph, const nlohmann::json& metadata,
                           const CalibrationOptions& options) {
  const auto images = vision::list_image_files(options.images_dir, options.count, "--calib-images");
  if (graph.inputs.size() != 1) fail("calibration needs a network with one image input");
  const Shape input_shape = graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape;
  if (input_shape.size() != 4 || input_shape[0] != 1 || input_shape[1] != 3)
    fail("calibration needs an image input [1, 3, H, W], got {}", shape_to_string(input_shape));

  // The same graph with every activation as an output, so each run exposes all of them (plain f32).
  auto observed = std::make_shared<ir::Network>();
  observed->name = "calibration";
  observed->metadata = metadata;
  ir::Graph everything = graph;
  everything.outputs.clear();
  for (std::size_t t = 0; t < graph.tensors.size(); ++t) {
    if (!graph.tensors[t].is_constant()) everything.outputs.push_back(static_cast<int>(t));
  }
  observed->stages.push_back({1, std::move(everything)});
  const auto network = std::make_shared<const Network>(observed);
  ExecutionContext context(network, {.threads = options.threads});
  const auto outputs = network->outputs(1);

  vision::PreprocessOptions pre = vision::PreprocessOptions::from_metadata(metadata);
  pre.height = static_cast<int>(input_shape[2]);
  pre.width = static_cast<int>(input_shape[3]);
  std::vector<float> input(static_cast<std::size_t>(shape_volume(input_shape)));

  const bool histograms = options.method != CalibrationMethod::kMax;
  std::optional<ProgressBar> progress;
  if (options.show_progress)
    progress.emplace("calibrate " + std::to_string(images.size()) + " images",
                     images.size() * (histograms ? 2 : 1));
  std::vector<TensorStats> stats(outputs.size());
  const auto run_image = [&](const std::string& path) {
    const cv::Mat image = vision::load_image(path);
    vision::FusedPreprocessor preprocessor(vision::PixelFormat::kBgr24, image.cols, image.rows, pre);
    preprocessor.run(vision::view_of_bgr(image), input.data());
    context.run({ConstTensorView{input.data(), DType::kF32, input_shape}});
  };
  const auto values = [&](std::size_t o) {
    const auto view = context.output(o);
    return std::span(static_cast<const float*>(view.data),
                     static_cast<std::size_t>(shape_volume(view.shape)));
  };
  // Pass 1: extremes; pass 2: histograms over [0, max|x|] (TensorRT's two-pass entropy calibration).
  for (const auto& path : images) {
    run_image(path);
    for (std::size_t o = 0; o < outputs.size(); ++o) stats[o].add_range(values(o));
    if (progress) progress->advance();
  }
  if (histograms) {
    for (auto& s : stats) s.histogram.range = s.abs_max();
    for (const auto& path : images) {
      run_image(path);
      for (std::size_t o = 0; o < outputs.size(); ++o) stats[o].histogram.add(values(o));
      if (progress) progress->advance();
    }
  }
  if (progress) progress->finish();

  std::map<std::string, TensorStats> by_name;
  for (std::size_t o = 0; o < outputs.size(); ++o) by_name[outputs[o].name] = std::move(stats[o]);
  CalibrationTable table;
  table.method = options.method;
  table.percentile = options.percentile;
  table.images = images.size();
  table.ranges = thresholds_from_stats(by_name, options.method, options.percentile);
  // The image input is never clipped: its range is exact (0..1 after scaling) and every pixel counts;
  // KL on a pixel histogram would cut the bright half of an image.
  for (int graph_input : graph.inputs) {
    auto& range = table.ranges[graph.tensors[static_cast<std::size_t>(graph_input)].name];
    range.threshold = std::max(-range.min, range.max);
  }
  return table;
}

}  // namespace vapipe::compiler
