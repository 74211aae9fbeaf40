#include "compiler/calibration_run.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <span>

#include "core/error.hpp"
#include "core/progress_bar.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"
#include "vision/image_io.hpp"

namespace vapipe::compiler {

namespace {

// A batch-1 graph run on image files with every activation as an output (plain f32, dequantized where the
// graph stores s8/bf16), through the network's own preprocessing.
class ActivationProbe {
 public:
  ActivationProbe(const ir::Graph& graph, const nlohmann::json& metadata, int threads) {
    if (graph.inputs.size() != 1) fail("calibration needs a network with one image input");
    input_shape_ = graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape;
    if (input_shape_.size() != 4 || input_shape_[0] != 1 || input_shape_[1] != 3)
      fail("calibration needs an image input [1, 3, H, W], got {}", shape_to_string(input_shape_));
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
    context_ = std::make_unique<ExecutionContext>(network, ContextOptions{.threads = threads});
    outputs_ = network->outputs(1);
    pre_ = vision::PreprocessOptions::from_metadata(metadata);
    pre_.height = static_cast<int>(input_shape_[2]);
    pre_.width = static_cast<int>(input_shape_[3]);
    input_.resize(static_cast<std::size_t>(shape_volume(input_shape_)));
  }

  void run(const std::string& path) {
    const cv::Mat image = vision::load_image(path);
    vision::FusedPreprocessor preprocessor(vision::PixelFormat::kBgr24, image.cols, image.rows, pre_);
    preprocessor.run(vision::view_of_bgr(image), input_.data());
    context_->run({ConstTensorView{input_.data(), DType::kF32, input_shape_}});
  }
  std::size_t size() const { return outputs_.size(); }
  const std::string& name(std::size_t o) const { return outputs_[o].name; }
  std::span<const float> values(std::size_t o) const {
    const auto view = context_->output(o);
    return {static_cast<const float*>(view.data), static_cast<std::size_t>(shape_volume(view.shape))};
  }

 private:
  Shape input_shape_;
  std::unique_ptr<ExecutionContext> context_;
  std::vector<TensorInfo> outputs_;
  vision::PreprocessOptions pre_;
  std::vector<float> input_;
};

}  // namespace

CalibrationTable calibrate(const ir::Graph& graph, const nlohmann::json& metadata,
                           const CalibrationOptions& options) {
  const auto images = vision::list_image_files(options.images_dir, options.count, "--calib-images");
  ActivationProbe probe(graph, metadata, options.threads);
  const bool histograms = options.method != CalibrationMethod::kMax;
  std::optional<ProgressBar> progress;
  if (options.show_progress)
    progress.emplace("calibrate " + std::to_string(images.size()) + " images",
                     images.size() * (histograms ? 2 : 1));
  std::vector<TensorStats> stats(probe.size());
  // Pass 1: extremes; pass 2: histograms over [0, max|x|] (TensorRT's two-pass entropy calibration).
  for (const auto& path : images) {
    probe.run(path);
    for (std::size_t o = 0; o < probe.size(); ++o) stats[o].add_range(probe.values(o));
    if (progress) progress->advance();
  }
  if (histograms) {
    for (auto& s : stats) s.histogram.range = s.abs_max();
    for (const auto& path : images) {
      probe.run(path);
      for (std::size_t o = 0; o < probe.size(); ++o) stats[o].histogram.add(probe.values(o));
      if (progress) progress->advance();
    }
  }
  if (progress) progress->finish();

  std::map<std::string, TensorStats> by_name;
  for (std::size_t o = 0; o < probe.size(); ++o) by_name[probe.name(o)] = std::move(stats[o]);
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

std::vector<std::string> sensitive_layers(const ir::Graph& fp32, const ir::Graph& int8,
                                          const nlohmann::json& metadata,
                                          const std::vector<std::string>& images, double min_cosine,
                                          int threads) {
  ActivationProbe reference(fp32, metadata, threads);
  ActivationProbe quantized(int8, metadata, threads);
  std::map<std::string, std::size_t> reference_index;
  for (std::size_t o = 0; o < reference.size(); ++o) reference_index[reference.name(o)] = o;
  struct Sums {
    double ab = 0.0, aa = 0.0, bb = 0.0;
  };
  std::map<std::string, Sums> sums;  // by int8 conv node name
  for (const auto& path : images) {
    reference.run(path);
    quantized.run(path);
    for (const auto& node : int8.nodes) {
      if (node.attrs.value("precision", std::string()) != "int8") continue;
      const std::string& output = int8.tensors[static_cast<std::size_t>(node.outputs.at(0))].name;
      std::size_t q = 0;
      while (q < quantized.size() && quantized.name(q) != output) ++q;
      const auto found = reference_index.find(output);
      if (q == quantized.size() || found == reference_index.end()) continue;
      const auto a = reference.values(found->second);
      const auto b = quantized.values(q);
      Sums& s = sums[node.name];
      for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
        const auto x = static_cast<double>(a[i]);
        const auto y = static_cast<double>(b[i]);
        s.ab += x * y;
        s.aa += x * x;
        s.bb += y * y;
      }
    }
  }
  std::vector<std::string> sensitive;
  for (const auto& [name, s] : sums) {
    const double cosine = s.aa == 0.0 && s.bb == 0.0 ? 1.0 : s.ab / std::sqrt(s.aa * s.bb + 1e-300);
    if (cosine < min_cosine) sensitive.push_back(name);
  }
  return sensitive;
}

}  // namespace vapipe::compiler
