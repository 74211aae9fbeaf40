// `vapipe compare REF.vpk TEST.vpk --images DIR`: runs both packages on the same images and reports how
// close TEST stays to REF: per-tensor cosine / euclidean similarity / SQNR for every output both have (the
// seed toolchain's npz compare), then detection agreement: mAP of TEST's detections scored against REF's
// as ground truth. Fails (exit 1) when a tensor is below --tolerance, naming the worst ones.
// `vapipe compare REF.jsonl TEST.jsonl`: two runs' JSON Lines results (`vapipe run`), frames matched by channel
// and frame index: the same detection agreement (e.g. a decode option against the normal decode).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"
#include "models/average_precision.hpp"
#include "models/post_processor.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"
#include "vision/image_io.hpp"

namespace vapipe::cli {
namespace {

struct CompareOptions {
  std::string reference;
  std::string test;
  std::string images;
  std::size_t count = 0;
  std::string tolerance = "0.99,0.90";
  std::string network;
  float conf_threshold = 0.25F;
  int threads = 0;
  bool json = false;
};

// Running sums over every image, so the similarities are those of the concatenated tensors.
struct TensorAgreement {
  std::string name;
  Shape shape;
  std::size_t reference_index = 0, test_index = 0;
  // Packages compiled before raw heads became channels-last have [N, C, H, W] outputs where newer ones
  // have [N, H, W, C]: the test tensor is permuted into the reference's layout before comparing.
  enum class Permute : std::uint8_t {
    kNone,
    kTestIsChannelsLast,
    kTestIsChannelMajor
  } permute = Permute::kNone;
  double aa = 0.0, bb = 0.0, ab = 0.0, dd = 0.0, mm = 0.0;

  void add(const float* a, const float* b, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      const double x = a[i], y = b[i];
      aa += x * x;
      bb += y * y;
      ab += x * y;
      dd += (x - y) * (x - y);
      mm += 0.25 * (x + y) * (x + y);
    }
  }
  double cosine() const { return aa == 0.0 && bb == 0.0 ? 1.0 : ab / std::sqrt(aa * bb + 1e-300); }
  // TPU-MLIR's euclidean similarity: 1 - |a - b| / |(a + b) / 2|.
  double euclidean() const { return mm == 0.0 ? (dd == 0.0 ? 1.0 : 0.0) : 1.0 - std::sqrt(dd / mm); }
  double sqnr_db() const {
    return dd == 0.0 ? std::numeric_limits<double>::infinity() : 10.0 * std::log10(aa / dd);
  }
};

std::pair<double, double> parse_tolerance(const std::string& text) {
  const auto comma = text.find(',');
  try {
    std::size_t used = 0;
    const double cosine = std::stod(text.substr(0, comma), &used);
    const double euclidean = comma == std::string::npos ? 0.0 : std::stod(text.substr(comma + 1));
    if (cosine < -1.0 || cosine > 1.0 || euclidean > 1.0) throw std::out_of_range("range");
    return {cosine, euclidean};
  } catch (const std::exception&) {
    fail("--tolerance '{}' is not COSINE[,EUCLIDEAN] (e.g. 0.99,0.90)", text);
  }
}

// One side of the comparison: a network with its context, preprocessing and post-processing.
struct Side {
  std::shared_ptr<const Network> network;
  std::unique_ptr<ExecutionContext> context;
  vision::PreprocessOptions pre;
  std::unique_ptr<models::PostProcessor> post;
  Shape input_shape;
  std::vector<float> input;

  Side(const std::string& path, const CompareOptions& options, float conf_threshold) {
    const auto model = Model::load(path);
    network = model->network(options.network);
    const auto inputs = network->inputs(network->stage_for(1));
    if (inputs.size() != 1 || inputs[0].shape.size() != 4 || inputs[0].shape[1] != 3)
      fail("{}: network '{}' does not take one image input [N, 3, H, W]", path, network->name());
    input_shape = inputs[0].shape;
    input_shape[0] = 1;
    pre = vision::PreprocessOptions::from_metadata(network->metadata());
    pre.height = static_cast<int>(input_shape[2]);
    pre.width = static_cast<int>(input_shape[3]);
    auto post_options = models::PostprocessOptions::from_metadata(network->metadata());
    post_options.thresholds.conf_threshold = conf_threshold;
    post = std::make_unique<models::PostProcessor>(network->metadata(),
                                                   network->outputs(network->stage_for(1)), post_options);
    context = std::make_unique<ExecutionContext>(network, ContextOptions{.threads = options.threads});
    input.resize(static_cast<std::size_t>(shape_volume(input_shape)));
  }

  std::vector<models::Detection> run(const cv::Mat& image) {
    const auto transform = vision::preprocess(vision::view_of_bgr(image), pre, input.data());
    context->run({ConstTensorView{input.data(), DType::kF32, input_shape}});
    std::vector<ConstTensorView> outputs;
    for (std::size_t o = 0; o < context->output_count(); ++o) outputs.push_back(context->output(o));
    auto detections = post->run(outputs, 0);
    vision::map_boxes_back(std::span(detections), transform);
    return detections;
  }
};

// One run's JSON Lines: (channel, frame) -> its detections (class, score, box).
std::map<std::pair<int, std::int64_t>, std::vector<models::Detection>> read_results(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path);
  std::map<std::pair<int, std::int64_t>, std::vector<models::Detection>> frames;
  std::size_t line_number = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_number;
    if (line.empty()) continue;
    try {
      const auto record = nlohmann::json::parse(line);
      auto& detections = frames[{record.at("channel").get<int>(), record.at("frame").get<std::int64_t>()}];
      for (const auto& d : record.at("detections")) {
        models::Detection detection;
        detection.class_id = d.at("class_id").get<int>();
        detection.score = d.at("score").get<float>();
        const auto& box = d.at("box");
        detection.x1 = box.at(0).get<float>();
        detection.y1 = box.at(1).get<float>();
        detection.x2 = box.at(2).get<float>();
        detection.y2 = box.at(3).get<float>();
        detections.push_back(detection);
      }
    } catch (const nlohmann::json::exception& error) {
      fail("{}:{}: not a vapipe results line: {}", path, line_number, error.what());
    }
  }
  return frames;
}

void compare_results(const CompareOptions& options) {
  const auto reference = read_results(options.reference);
  const auto test = read_results(options.test);
  std::vector<std::vector<models::Detection>> truth, predicted;
  std::size_t truth_boxes = 0, only_reference = 0;
  for (const auto& [key, detections] : reference) {
    const auto found = test.find(key);
    if (found == test.end()) {
      ++only_reference;
      continue;
    }
    auto& kept = truth.emplace_back();
    for (const auto& d : detections)
      if (d.score >= options.conf_threshold) kept.push_back(d);
    truth_boxes += kept.size();
    predicted.push_back(found->second);
  }
  if (truth.empty())
    fail("{} and {} have no frame in common (channel, frame)", options.reference, options.test);
  const double map50 = models::mean_average_precision(truth, predicted, 0.5F);
  const double map50_95 = models::mean_average_precision_50_95(truth, predicted);
  if (options.json) {
    const nlohmann::json report = {{"reference", options.reference},
                                   {"test", options.test},
                                   {"frames", truth.size()},
                                   {"reference_only_frames", only_reference},
                                   {"test_only_frames", test.size() - truth.size()},
                                   {"reference_boxes", truth_boxes},
                                   {"map50", map50},
                                   {"map50_95", map50_95}};
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("%s vs %s: %zu frames in common (%zu only in REF, %zu only in TEST)\n",
                options.reference.c_str(), options.test.c_str(), truth.size(), only_reference,
                test.size() - truth.size());
    std::printf(
        "detection agreement (REF conf %.2f as ground truth, %zu boxes): mAP@0.5 %.4f  mAP@0.5:0.95 %.4f\n",
        static_cast<double>(options.conf_threshold), truth_boxes, map50, map50_95);
  }
  std::fflush(stdout);
}

void run_compare(const CompareOptions& options) {
  if (options.reference.ends_with(".jsonl") && options.test.ends_with(".jsonl")) {
    compare_results(options);
    return;
  }
  if (options.images.empty()) fail("--images is required to compare packages");
  const auto [min_cosine, min_euclidean] = parse_tolerance(options.tolerance);
  const auto images = vision::list_image_files(options.images, options.count, "--images");
  // REF's confident detections are the ground truth; TEST's are scored down to a low threshold so the
  // precision/recall curve is traced (as COCO evaluation does).
  Side reference(options.reference, options, options.conf_threshold);
  Side test(options.test, options, 0.001F);

  std::vector<TensorAgreement> tensors;
  std::vector<std::string> skipped;
  const auto reference_outputs = reference.network->outputs(1);
  const auto test_outputs = test.network->outputs(1);
  for (std::size_t r = 0; r < reference_outputs.size(); ++r) {
    const Shape& ref_shape = reference_outputs[r].shape;
    auto permute = TensorAgreement::Permute::kNone;
    const auto match = std::find_if(test_outputs.begin(), test_outputs.end(), [&](const TensorInfo& info) {
      if (info.name != reference_outputs[r].name) return false;
      if (info.shape == ref_shape) return true;
      const Shape& s = info.shape;
      if (s.size() != 4 || ref_shape.size() != 4 || s[0] != ref_shape[0]) return false;
      if (s == Shape{ref_shape[0], ref_shape[2], ref_shape[3], ref_shape[1]}) {
        permute = TensorAgreement::Permute::kTestIsChannelsLast;
        return true;
      }
      if (s == Shape{ref_shape[0], ref_shape[3], ref_shape[1], ref_shape[2]}) {
        permute = TensorAgreement::Permute::kTestIsChannelMajor;
        return true;
      }
      return false;
    });
    if (match == test_outputs.end() || reference.input_shape != test.input_shape) {
      skipped.push_back(reference_outputs[r].name);
      continue;
    }
    TensorAgreement agreement;
    agreement.name = reference_outputs[r].name;
    agreement.shape = reference_outputs[r].shape;
    agreement.reference_index = r;
    agreement.test_index = static_cast<std::size_t>(match - test_outputs.begin());
    agreement.permute = permute;
    tensors.push_back(std::move(agreement));
  }

  std::vector<std::vector<models::Detection>> truth, predicted;
  std::vector<float> permuted;
  for (const auto& path : images) {
    const cv::Mat image = vision::load_image(path);
    truth.push_back(reference.run(image));
    predicted.push_back(test.run(image));
    for (auto& t : tensors) {
      const auto a = reference.context->output(t.reference_index);
      const auto b = test.context->output(t.test_index);
      const auto* test_data = static_cast<const float*>(b.data);
      if (t.permute != TensorAgreement::Permute::kNone) {
        // Element (n, c, y, x) of the channel-major side is at ((n * H + y) * W + x) * C + c channels-last.
        const Shape& major = t.permute == TensorAgreement::Permute::kTestIsChannelsLast ? a.shape : b.shape;
        const std::int64_t channels = major[1], plane = major[2] * major[3];
        const bool to_major = t.permute == TensorAgreement::Permute::kTestIsChannelsLast;
        permuted.resize(static_cast<std::size_t>(shape_volume(b.shape)));
        for (std::int64_t n = 0; n < major[0]; ++n) {
          for (std::int64_t c = 0; c < channels; ++c) {
            for (std::int64_t i = 0; i < plane; ++i) {
              const std::int64_t nchw = (n * channels + c) * plane + i;
              const std::int64_t nhwc = (n * plane + i) * channels + c;
              permuted[static_cast<std::size_t>(to_major ? nchw : nhwc)] = test_data[to_major ? nhwc : nchw];
            }
          }
        }
        test_data = permuted.data();
      }
      t.add(static_cast<const float*>(a.data), test_data, static_cast<std::size_t>(shape_volume(a.shape)));
    }
  }
  std::size_t truth_boxes = 0;
  for (const auto& boxes : truth) truth_boxes += boxes.size();
  const double map50 = models::mean_average_precision(truth, predicted, 0.5F);
  const double map50_95 = models::mean_average_precision_50_95(truth, predicted);

  std::vector<const TensorAgreement*> failing;
  for (const auto& t : tensors) {
    if (t.cosine() < min_cosine || t.euclidean() < min_euclidean) failing.push_back(&t);
  }
  std::sort(failing.begin(), failing.end(),
            [](const auto* a, const auto* b) { return a->cosine() < b->cosine(); });

  if (options.json) {
    nlohmann::json report = {{"reference", options.reference},
                             {"test", options.test},
                             {"reference_precision", reference.network->precision()},
                             {"test_precision", test.network->precision()},
                             {"images", images.size()},
                             {"reference_boxes", truth_boxes},
                             {"map50", map50},
                             {"map50_95", map50_95},
                             {"tensors", nlohmann::json::array()},
                             {"skipped", skipped}};
    for (const auto& t : tensors) {
      report["tensors"].push_back({{"name", t.name},
                                   {"cosine", t.cosine()},
                                   {"euclidean", t.euclidean()},
                                   {"sqnr_db", std::isfinite(t.sqnr_db()) ? t.sqnr_db() : 999.0}});
    }
    std::printf("%s\n", report.dump().c_str());
  } else {
    std::printf("%s (%s) vs %s (%s), %zu images\n", options.reference.c_str(),
                reference.network->precision().c_str(), options.test.c_str(),
                test.network->precision().c_str(), images.size());
    std::printf("%-40s %-16s %9s %9s %9s\n", "tensor", "shape", "cosine", "euclid", "SQNR dB");
    for (const auto& t : tensors) {
      std::printf("%-40s %-16s %9.5f %9.5f %9.2f%s\n", t.name.c_str(), shape_to_string(t.shape).c_str(),
                  t.cosine(), t.euclidean(), t.sqnr_db(),
                  t.cosine() < min_cosine || t.euclidean() < min_euclidean ? "  FAIL" : "");
    }
    for (const auto& name : skipped)
      std::printf("%-40s not comparable (missing or other shape in TEST)\n", name.c_str());
    std::printf(
        "detection agreement (REF conf %.2f as ground truth, %zu boxes): mAP@0.5 %.4f  mAP@0.5:0.95 %.4f\n",
        static_cast<double>(options.conf_threshold), truth_boxes, map50, map50_95);
  }
  std::fflush(stdout);
  if (!failing.empty()) {
    std::string worst;
    for (std::size_t i = 0; i < std::min<std::size_t>(failing.size(), 3); ++i) {
      worst += fmt::format("{}'{}' (cosine {:.5f}, euclidean {:.5f})", i == 0 ? "" : ", ", failing[i]->name,
                           failing[i]->cosine(), failing[i]->euclidean());
    }
    fail("{} of {} tensors below the tolerance {}: {}", failing.size(), tensors.size(), options.tolerance,
         worst);
  }
}

}  // namespace

void register_compare(CLI::App& app) {
  auto options = std::make_shared<CompareOptions>();
  auto* command = app.add_subcommand(
      "compare",
      "Compare a package against a reference package on images (tensor similarity, detection mAP)");
  command
      ->add_option("reference", options->reference,
                   "Reference package (.vpk), e.g. the FP32 one, or a run's results (.jsonl)")
      ->required();
  command
      ->add_option("test", options->test, "Package under test (.vpk), e.g. the INT8 one, or results (.jsonl)")
      ->required();
  command->add_option("--images", options->images, "Folder of images (.jpg, .png, ...); packages only");
  command->add_option("--count", options->count, "Use the first N images by name (0 = all)");
  command->add_option("--tolerance", options->tolerance, "Minimum cosine[,euclidean] similarity per tensor")
      ->capture_default_str();
  command->add_option("--net", options->network, "Network of both packages (default: the first)");
  command
      ->add_option("--conf", options->conf_threshold, "Score threshold of the reference's ground-truth boxes")
      ->check(CLI::Range(0.0F, 1.0F))
      ->capture_default_str();
  command->add_option("--threads", options->threads, "Worker threads (0 = every core)")
      ->check(thread_count());
  command->add_flag("--json", options->json, "Print one JSON object");
  command->callback([options] { run_compare(*options); });
}

}  // namespace vapipe::cli
