// Calibration: thresholds by method on known distributions, the text table (round trip, corrupt input),
// the image folder rules, and on the real YOLOv5n: determinism and detections that survive INT8.
#include "compiler/calibration.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "compiler/calibration_run.hpp"
#include "compiler/compiler.hpp"
#include "core/error.hpp"
#include "models/post_processor.hpp"
#include "support/test_data.hpp"
#include "vapipe/runtime.hpp"
#include "vision/fused_preprocess.hpp"
#include "vision/image_io.hpp"

namespace vapipe::compiler {
namespace {

TensorStats stats_of(const std::vector<float>& values) {
  TensorStats stats;
  stats.add_range(values);
  stats.histogram.range = stats.abs_max();
  stats.histogram.add(values);
  return stats;
}

std::vector<float> samples(int kind, std::size_t count = 400000) {
  std::mt19937 generator(5);
  std::normal_distribution<float> normal(0.0F, 1.0F);
  std::uniform_real_distribution<float> uniform(-1.0F, 1.0F);
  std::vector<float> values(count);
  for (auto& v : values) v = kind == 0 ? normal(generator) : uniform(generator);
  return values;
}

TEST(Calibration, KlClipsTheTailOfAGaussianButNotAUniform) {
  const TensorStats gaussian = stats_of(samples(0));
  const float kl = kl_threshold(gaussian.histogram);
  // Entropy calibration of N(0, 1) on 8 bits lands between 3 and 4.5 sigma, well inside the ~5 sigma max.
  EXPECT_GT(kl, 3.0F);
  EXPECT_LT(kl, 4.5F);
  EXPECT_LT(kl, gaussian.abs_max());
  const TensorStats uniform = stats_of(samples(1));
  EXPECT_NEAR(kl_threshold(uniform.histogram), uniform.abs_max(), 0.01F);
}

TEST(Calibration, PercentileAndMaxOnAHandMadeHistogram) {
  Histogram histogram;
  histogram.range = 2048.0F;  // bin width 1
  histogram.counts[0] = 90;
  histogram.counts[9] = 9;
  histogram.counts[2047] = 1;
  EXPECT_FLOAT_EQ(percentile_threshold(histogram, 90.0), 1.0F);
  EXPECT_FLOAT_EQ(percentile_threshold(histogram, 99.0), 10.0F);
  EXPECT_FLOAT_EQ(percentile_threshold(histogram, 100.0), 2048.0F);
  EXPECT_THROW(percentile_threshold(histogram, 0.0), Error);

  std::map<std::string, TensorStats> stats{{"a", stats_of({-3.0F, 0.5F, 2.0F})}};
  const auto ranges = thresholds_from_stats(stats, CalibrationMethod::kMax, 99.99);
  EXPECT_FLOAT_EQ(ranges.at("a").threshold, 3.0F);
  EXPECT_FLOAT_EQ(ranges.at("a").min, -3.0F);
  EXPECT_FLOAT_EQ(ranges.at("a").max, 2.0F);
}

TEST(Calibration, TableRoundTripsExactly) {
  CalibrationTable table;
  table.method = CalibrationMethod::kPercentile;
  table.percentile = 99.9;
  table.images = 7;
  table.ranges["/model.0/act/Mul_output_0"] = {4.0766544F, -0.27846456F, 25.454231F};
  table.ranges["images"] = {1.0F, 0.0F, 1.0F};
  const auto path = (test::scratch_dir() / "table.txt").string();
  write_calibration_table(table, path);
  const CalibrationTable read = read_calibration_table(path);
  EXPECT_EQ(read.method, CalibrationMethod::kPercentile);
  EXPECT_DOUBLE_EQ(read.percentile, 99.9);
  EXPECT_EQ(read.images, 7U);
  ASSERT_EQ(read.ranges.size(), 2U);
  const auto& range = read.ranges.at("/model.0/act/Mul_output_0");
  EXPECT_EQ(range.threshold, 4.0766544F);  // bit-exact: 9 significant digits
  EXPECT_EQ(range.min, -0.27846456F);
  EXPECT_EQ(range.max, 25.454231F);
}

TEST(Calibration, CorruptTablesAreClearErrors) {
  const auto dir = test::scratch_dir();
  const std::string good = "vapipe-calibration 1\nmethod kl\nimages 2\ntensor a 1.5 -0.2 3\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "is empty"},
      {"\x89PNG\r\n\x1a\n binary", "line 1: expected the header"},
      {"vapipe-calibration 2\n", "line 1: expected the header"},
      {"vapipe-calibration 1\nmethod entropy\ntensor a 1 0 1\n", "line 2: calibration method 'entropy'"},
      {"vapipe-calibration 1\nmethod kl\ntensor a 1.5x -0.2 3\n", "line 3: threshold '1.5x' is not a number"},
      {"vapipe-calibration 1\nmethod kl\ntensor a 1.5 -0.2\n", "line 3: unexpected record"},
      {good + "tensor a 2 0 1\n", "line 5: tensor 'a' is listed twice"},
      {"vapipe-calibration 1\nmethod kl\ntensor a -1 0 1\n", "line 3: threshold must be >= 0"},
      {"vapipe-calibration 1\nmethod kl\n", "lists no tensors"},
      {"vapipe-calibration 1\ntensor a 1 0 1\n", "no 'method' line"},
  };
  for (const auto& [text, message] : cases) {
    const auto path = (dir / "bad.txt").string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    try {
      read_calibration_table(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(message), std::string::npos) << error.what();
      EXPECT_NE(std::string(error.what()).find("bad.txt"), std::string::npos) << error.what();
    }
  }
  EXPECT_THROW(read_calibration_table((dir / "missing.txt").string()), Error);
}

TEST(Calibration, ImageFolderRules) {
  const auto dir = test::scratch_dir();
  EXPECT_THROW(vision::list_image_files((dir / "nope").string(), 0, "--calib-images"), Error);
  std::ofstream(dir / "notes.txt") << "not an image";
  try {
    vision::list_image_files(dir.string(), 0, "--calib-images");
    ADD_FAILURE() << "an image folder without images was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("no images found"), std::string::npos) << error.what();
  }
  for (const char* name : {"b.PNG", "a.jpg", "c.jpeg"}) std::ofstream(dir / name) << "x";
  const auto images = vision::list_image_files(dir.string(), 2, "--calib-images");
  ASSERT_EQ(images.size(), 2U);
  EXPECT_EQ(std::filesystem::path(images[0]).filename(), "a.jpg");
  EXPECT_EQ(std::filesystem::path(images[1]).filename(), "b.PNG");
}

// A calibration folder of opencv-doc photos (not messi5/basketball1, which the detection check uses).
std::filesystem::path calibration_folder() {
  const auto dir = std::filesystem::temp_directory_path() / "vapipe-tests" / "calibration-images";
  std::filesystem::create_directories(dir);
  for (const char* name :
       {"aero3.jpg", "baboon.jpg", "building.jpg", "fruits.jpg", "home.jpg", "stuff.jpg"}) {
    const auto source = test::opencv_data_dir() / name;
    if (std::filesystem::exists(source) && !std::filesystem::exists(dir / name))
      std::filesystem::copy_file(source, dir / name);
  }
  return dir;
}

CompileOptions yolo_options(const std::string& method) {
  CompileOptions options;
  options.onnx_path = (test::models_dir() / "yolov5n.onnx").string();
  options.precision = "int8";
  options.calib_images = calibration_folder().string();
  options.calib_count = 4;
  options.calib_method = method;
  options.threads = 2;
  return options;
}

TEST(CalibrationModels, DeterministicForEveryMethod) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "baboon.jpg");
  const auto dir = test::scratch_dir();
  for (const std::string method : {"kl", "max", "percentile"}) {
    SCOPED_TRACE(method);
    CompileOptions options = yolo_options(method);
    options.calib_table_out = (dir / (method + "-1.txt")).string();
    const ir::Network first = compile_onnx(options);
    options.calib_table_out = (dir / (method + "-2.txt")).string();
    compile_onnx(options);
    std::ifstream a(dir / (method + "-1.txt")), b(dir / (method + "-2.txt"));
    const std::string text_a((std::istreambuf_iterator<char>(a)), {}),
        text_b((std::istreambuf_iterator<char>(b)), {});
    EXPECT_GT(text_a.size(), 1000U);
    EXPECT_EQ(text_a, text_b);
    EXPECT_EQ(first.precision, "int8");
    EXPECT_EQ(first.metadata.at("quantization").at("method"), method);
    // The table is reusable: compiling from it gives the same graph.
    CompileOptions reuse = yolo_options(method);
    reuse.calib_images.clear();
    reuse.calib_table_in = options.calib_table_out;
    const ir::Network again = compile_onnx(reuse);
    ASSERT_EQ(again.stages.front().graph.tensors.size(), first.stages.front().graph.tensors.size());
    for (std::size_t t = 0; t < again.stages.front().graph.tensors.size(); ++t) {
      EXPECT_EQ(again.stages.front().graph.tensors[t].scale, first.stages.front().graph.tensors[t].scale);
    }
  }
}

TEST(CalibrationModels, TableOfAnotherModelIsRefused) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  const auto path = (test::scratch_dir() / "other.txt").string();
  std::ofstream(path) << "vapipe-calibration 1\nmethod kl\ntensor some/other/tensor 1 0 1\n";
  CompileOptions options = yolo_options("kl");
  options.calib_table_in = path;
  try {
    compile_onnx(options);
    ADD_FAILURE() << "a table of another model was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("'some/other/tensor' is not in this model"), std::string::npos)
        << error.what();
  }
}

TEST(CalibrationModels, Int8ToleranceKeepsSensitiveLayersFloat) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "baboon.jpg");
  CompileOptions options = yolo_options("max");
  options.input_size = std::make_pair(160, 160);
  options.calib_count = 2;
  const auto int8_convs = [](const ir::Network& network) {
    int count = 0;
    for (const auto& node : network.stages.front().graph.nodes)
      count += node.attrs.contains("precision") ? 1 : 0;
    return count;
  };
  const int all = int8_convs(compile_onnx(options));
  EXPECT_GE(all, 50);
  // Any int8 layer differs from FP32 a little: a tolerance of 1 keeps every one float ...
  options.int8_tolerance = 1.0;
  const ir::Network strict = compile_onnx(options);
  EXPECT_EQ(int8_convs(strict), 0);
  EXPECT_EQ(strict.metadata.at("quantization").at("sensitive_layers").size(), static_cast<std::size_t>(all));
  // ... and a loose one none; a realistic one some, named in the metadata.
  options.int8_tolerance = 0.5;
  EXPECT_EQ(int8_convs(compile_onnx(options)), all);
  options.int8_tolerance = 0.99;
  const ir::Network some = compile_onnx(options);
  const auto& sensitive = some.metadata.at("quantization").at("sensitive_layers");
  EXPECT_EQ(int8_convs(some), all - static_cast<int>(sensitive.size()));
}

// Persons found by a compiled network in an opencv-doc photo, as `vapipe detect` would (conf 0.25).
std::vector<models::Detection> persons_in(const ir::Network& compiled, const std::string& file) {
  auto network = std::make_shared<const Network>(std::make_shared<const ir::Network>(compiled));
  ExecutionContext context(network, {.threads = 2});
  vision::PreprocessOptions pre = vision::PreprocessOptions::from_metadata(network->metadata());
  const cv::Mat image = vision::load_image((test::opencv_data_dir() / file).string());
  std::vector<float> input(3 * 640 * 640);
  const vision::LetterboxTransform transform =
      vision::preprocess(vision::view_of_bgr(image), pre, input.data());
  context.run({ConstTensorView{input.data(), DType::kF32, {1, 3, 640, 640}}});
  std::vector<ConstTensorView> outputs;
  for (std::size_t o = 0; o < context.output_count(); ++o) outputs.push_back(context.output(o));
  models::PostProcessor post(network->metadata(), network->outputs(1),
                             models::PostprocessOptions::from_metadata(network->metadata()));
  std::vector<models::Detection> detections = post.run(outputs, 0);
  vision::map_boxes_back(std::span(detections), transform);
  std::vector<models::Detection> persons;
  for (const auto& d : detections) {
    if (post.label(d.class_id) == "person") persons.push_back(d);
  }
  return persons;
}

TEST(CalibrationModels, Int8YoloStillFindsThePeople) {
  VAPIPE_REQUIRE_MODEL("yolov5n.onnx");
  VAPIPE_REQUIRE_FILE(test::opencv_data_dir() / "messi5.jpg");
  CompileOptions options = yolo_options("kl");
  options.calib_count = 0;
  const ir::Network int8 = compile_onnx(options);
  // messi5.jpg: the FP32 model finds 4 persons above 0.5 (Messi and the players behind him);
  // basketball1.png: the player on the left (0.83) for sure.
  const auto messi = persons_in(int8, "messi5.jpg");
  const auto is_messi = [](const models::Detection& d) { return d.x1 < 120 && d.x2 > 300 && d.y2 > 280; };
  EXPECT_TRUE(std::any_of(messi.begin(), messi.end(), is_messi)) << messi.size() << " persons";
  EXPECT_GE(messi.size(), 3U);
  const auto basketball = persons_in(int8, "basketball1.png");
  const auto is_player = [](const models::Detection& d) {
    return d.score > 0.5F && d.x1 < 60 && d.x2 > 120 && d.y1 < 120 && d.y2 > 400;
  };
  EXPECT_TRUE(std::any_of(basketball.begin(), basketball.end(), is_player))
      << basketball.size() << " persons";
}

}  // namespace
}  // namespace vapipe::compiler
