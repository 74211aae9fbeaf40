// Every model in ../shared/models against ONNX Runtime (onnxruntime-node, tests/support/ort_run.mjs) on a real
// photo. A model vapipe compiles must give ORT's outputs within 1e-3 of each output's largest magnitude (FP16
// exports: 1e-2, below), plus 1e-6 absolute: an output of sigmoid scores that are all near 0 (YuNet's
// objectness at a stride where the photo has no face) differs by 1e-7 where oneDNN's and ORT's logistic round
// differently. A model it does not compile must name its first unsupported operator, and that operator must be
// one of the quantized ones the issue on detectors and masks adds (issue 20), never a float operator (issue 18).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "compiler/compiler.hpp"
#include "compiler/onnx_model.hpp"
#include "core/error.hpp"
#include "support/ort_reference.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;

const std::set<std::string> kQuantizedOperators = {"QuantizeLinear",
                                                   "DequantizeLinear",
                                                   "DynamicQuantizeLinear",
                                                   "QLinearConv",
                                                   "QLinearMatMul",
                                                   "QLinearAdd",
                                                   "QLinearMul",
                                                   "QLinearConcat",
                                                   "QLinearSigmoid",
                                                   "QLinearGlobalAveragePool",
                                                   "ConvInteger",
                                                   "MatMulInteger"};

std::vector<std::string> shared_models() {
  std::vector<std::string> names;
  if (!fs::is_directory(test::models_dir())) return {"(none)"};
  for (const auto& entry : fs::directory_iterator(test::models_dir())) {
    if (entry.path().extension() == ".onnx") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names.empty() ? std::vector<std::string>{"(none)"} : names;
}

// messi5.jpg scaled to the input's H x W, RGB in [0, 1], NCHW: real image statistics, whatever normalization
// the model expects (agreement, not accuracy, is the point).
std::vector<float> photo_input(const Shape& shape) {
  const cv::Mat bgr = cv::imread((test::opencv_data_dir() / "messi5.jpg").string(), cv::IMREAD_COLOR);
  if (bgr.empty()) fail("cannot read messi5.jpg (opencv-doc)");
  cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(static_cast<int>(shape[3]), static_cast<int>(shape[2])));
  std::vector<float> values(static_cast<std::size_t>(shape_volume(shape)));
  const std::int64_t plane = shape[2] * shape[3];
  for (std::int64_t c = 0; c < shape[1]; ++c) {
    for (std::int64_t i = 0; i < plane; ++i) {
      const auto pixel =
          resized.at<cv::Vec3b>(static_cast<int>(i / shape[3]), static_cast<int>(i % shape[3]));
      values[static_cast<std::size_t>(c * plane + i)] =
          static_cast<float>(pixel[static_cast<int>(2 - c % 3)]) / 255.0F;
    }
  }
  return values;
}

class SharedModel : public ::testing::TestWithParam<std::string> {};

TEST_P(SharedModel, MatchesOnnxRuntimeOrNamesItsFirstUnsupportedQuantizedOperator) {
  const std::string file = GetParam();
  if (file == "(none)") GTEST_SKIP() << "no models in " << test::models_dir() << " (set VAPIPE_MODELS)";
  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / file).string();
  options.model_type = "raw";
  options.full_graph = true;
  std::optional<ir::Network> compiled;
  try {
    try {
      compiled = compiler::compile_onnx(options);
    } catch (const Error& error) {
      // Exports with a dynamic image size (YuNet) compile for a size given on the command line.
      if (std::string(error.what()).find("give --input-size") == std::string::npos) throw;
      options.input_size = {{320, 320}};
      compiled = compiler::compile_onnx(options);
    }
  } catch (const Error& error) {
    const std::string message = error.what();
    std::smatch op;
    ASSERT_TRUE(std::regex_search(message, op, std::regex(R"(\(op (\w+), opset \d+\) is not supported)")))
        << file << ": the compile error names no operator: " << message;
    EXPECT_TRUE(kQuantizedOperators.count(op[1].str()) != 0)
        << file << " stops at " << op[1] << ", a float operator vapipe should have: " << message;
    std::cout << file << ": not compiled yet: " << message << "\n";
    return;
  }
  const auto network =
      std::make_shared<const Network>(std::make_shared<const ir::Network>(std::move(*compiled)));
  const auto inputs = network->inputs(1);
  ASSERT_EQ(inputs.size(), 1U) << file << ": the shared models take one image";
  const Shape& shape = inputs[0].shape;
  ASSERT_EQ(shape.size(), 4U);
  const auto input = photo_input(shape);

  const fs::path dir = test::scratch_dir();
  const int status = test::run_ort(options.onnx_path, dir, inputs[0].name, input, shape);
  if (status == test::kOrtMissing) GTEST_SKIP() << "onnxruntime-node not installed (scripts/setup.sh)";
  ASSERT_EQ(status, 0) << "ONNX Runtime failed: see " << dir / "ort.log";
  const auto ort = nlohmann::json::parse(std::ifstream(dir / "outputs.json"));
  const auto& listing = ort.at("outputs");
  // ORT computes an FP16 export in half precision (11-bit mantissas through the whole network), vapipe in
  // float32: there the reference itself is only good to about 1e-2 of the output's range.
  double relative = ort.at("input_type") == "float16" ? 1e-2 : 1e-3;
  // ONNX Runtime's dynamic quantization (ConvInteger) rounds every activation to 8 bits at run time; vapipe
  // folds it into float convolutions (docs/compiler.md, "Pre-quantized ONNX"), so single values differ by up
  // to ~10% of the range (yolov8n-seg-int8 on this input: 10.7% and 9.3% of output0's and output1's largest
  // value; means 1e-4 and 3e-3 in QuantizedOnnx.*, which checks more).
  const compiler::OnnxModel onnx = compiler::load_onnx(options.onnx_path);
  const auto& nodes = onnx.proto.graph().node();
  if (std::any_of(nodes.begin(), nodes.end(),
                  [](const auto& node) { return node.op_type() == "ConvInteger"; }))
    relative = 0.15;

  ExecutionContext context(network, {.threads = 1});
  context.run({ConstTensorView{input.data(), DType::kF32, shape}});
  const auto outputs = network->outputs(1);
  ASSERT_EQ(outputs.size(), listing.size()) << file;
  for (const auto& expected : listing) {
    const auto name = expected.at("name").get<std::string>();
    const auto found =
        std::find_if(outputs.begin(), outputs.end(), [&](const TensorInfo& t) { return t.name == name; });
    ASSERT_NE(found, outputs.end()) << file << ": no output '" << name << "'";
    const auto index = static_cast<std::size_t>(found - outputs.begin());
    EXPECT_EQ(found->shape, expected.at("shape").get<Shape>()) << file << " output " << name;
    const auto reference = test::read_floats(expected.at("file").get<std::string>());
    const ConstTensorView ours = context.output(index);
    ASSERT_EQ(static_cast<std::size_t>(shape_volume(ours.shape)), reference.size())
        << file << " output " << name;
    const auto* values = static_cast<const float*>(ours.data);
    double largest = 0.0, worst = 0.0;
    std::size_t worst_at = 0;
    for (std::size_t i = 0; i < reference.size(); ++i) {
      largest = std::max(largest, std::fabs(static_cast<double>(reference[i])));
      const double difference = std::fabs(static_cast<double>(values[i]) - static_cast<double>(reference[i]));
      if (!(difference <= worst)) {
        worst = difference;
        worst_at = i;
      }
    }
    EXPECT_LE(worst, relative * largest + 1e-6)
        << file << " output " << name << ": |vapipe - ORT| " << worst << " at " << worst_at << " (vapipe "
        << values[worst_at] << ", ORT " << reference[worst_at] << "), largest |ORT| " << largest;
    std::cout << file << " " << name
              << ": max |vapipe - ORT| / max |ORT| = " << worst / std::max(largest, 1e-30) << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(OrtAgreement, SharedModel, ::testing::ValuesIn(shared_models()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

}  // namespace
}  // namespace vapipe
