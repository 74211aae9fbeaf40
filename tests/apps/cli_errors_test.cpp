// Bad input to every subcommand: one clear error line and a non-zero exit (written with the compiler).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/package.hpp"
#include "support/test_data.hpp"

namespace {

// A minimal ONNX ModelProto in protobuf wire format, written by hand: this test links no ONNX library.
// One graph input "x" (float, `dims`), one node `op` named `node_name` from x to y, output "y".
std::string field(int number, const std::string& bytes) {
  std::string out;
  auto varint = [&](std::uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  };
  varint(static_cast<std::uint64_t>(number) << 3 | 2);
  varint(bytes.size());
  return out + bytes;
}
std::string varint_field(int number, std::uint64_t value) {
  std::string out(1, static_cast<char>(number << 3));
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}
std::string value_info(const std::string& name, const std::vector<std::uint64_t>& dims) {
  std::string shape;
  for (auto d : dims) shape += field(1, varint_field(1, d));
  const std::string tensor = varint_field(1, 1) + field(2, shape);
  return field(1, name) + field(2, field(1, tensor));
}
std::string write_model(const std::filesystem::path& path, const std::string& op,
                        const std::string& node_name, const std::vector<std::uint64_t>& dims) {
  const std::string node = field(1, "x") + field(2, "y") + field(3, node_name) + field(4, op);
  const std::string graph =
      field(1, node) + field(2, "g") + field(11, value_info("x", dims)) + field(12, value_info("y", {}));
  const std::string model =
      varint_field(1, 8) + field(7, graph) + field(8, field(1, "") + varint_field(2, 17));
  std::ofstream(path, std::ios::binary) << model;
  return path.string();
}

struct CliResult {
  int exit_code = -1;
  std::vector<std::string> stderr_lines;
};

CliResult run_cli(const std::string& arguments) {
  const auto err = vapipe::test::scratch_dir() / "stderr.txt";
  const std::string command =
      std::string("'") + VAPIPE_CLI + "' " + arguments + " >/dev/null 2>'" + err.string() + "'";
  const int status = std::system(command.c_str());
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream stream(err);
  for (std::string line; std::getline(stream, line);) result.stderr_lines.push_back(line);
  return result;
}

// Exit code != 0 and exactly one line "vapipe: error: ..." that mentions `needle`.
void expect_one_error_line(const CliResult& result, const std::string& needle) {
  EXPECT_NE(result.exit_code, 0);
  ASSERT_EQ(result.stderr_lines.size(), 1U) << (result.stderr_lines.empty() ? "" : result.stderr_lines[0]);
  EXPECT_EQ(result.stderr_lines[0].rfind("vapipe: error:", 0), 0U) << result.stderr_lines[0];
  EXPECT_NE(result.stderr_lines[0].find(needle), std::string::npos) << result.stderr_lines[0];
}

// Files live outside the per-test scratch folder, which run_cli recreates.
std::filesystem::path fixture_dir() {
  auto dir = std::filesystem::temp_directory_path() / "vapipe-tests" / "cli-fixtures";
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(CliErrors, CompileMissingFile) {
  const auto path = fixture_dir() / "no-such-model.onnx";
  expect_one_error_line(run_cli("compile '" + path.string() + "' -o /tmp/x.vpk"), "no-such-model.onnx");
}

TEST(CliErrors, CompileNonOnnxFile) {
  const auto path = fixture_dir() / "garbage.onnx";
  std::ofstream(path) << "definitely not a protobuf \xff\xfe\x01";
  expect_one_error_line(run_cli("compile '" + path.string() + "' -o /tmp/x.vpk"), "garbage.onnx");
}

TEST(CliErrors, CompileUnsupportedOpNamesTheNode) {
  const auto path = write_model(fixture_dir() / "fancy.onnx", "FancyAttention", "attn_7", {1, 4, 8});
  expect_one_error_line(run_cli("compile '" + path + "' -o /tmp/x.vpk"),
                        "fancy.onnx: node 'attn_7' (op FancyAttention, opset 17) is not supported");
}

TEST(CliErrors, CompileBadBatch) {
  const auto path = write_model(fixture_dir() / "relu.onnx", "Relu", "relu_1", {1, 4});
  for (const char* batch : {"0", "-2", "four", "1,,4"}) {
    expect_one_error_line(run_cli("compile '" + path + "' -o /tmp/x.vpk --batch=" + batch), "--batch");
  }
  expect_one_error_line(run_cli("compile '" + path + "' -o /tmp/x.vpk --input-size 640by480"),
                        "--input-size");
}

TEST(CliErrors, CompileInt8EmptyImageFolderOrCorruptTable) {
  const auto path = write_model(fixture_dir() / "relu.onnx", "Relu", "relu_1", {1, 4});
  const auto empty = fixture_dir() / "empty-images";
  std::filesystem::create_directories(empty);
  expect_one_error_line(run_cli("compile '" + path + "' -o /tmp/x.vpk --precision int8 --calib-images '" +
                                empty.string() + "'"),
                        "no images found");
  expect_one_error_line(run_cli("compile '" + path + "' -o /tmp/x.vpk --precision int8"), "--calib-images");
  const auto table = fixture_dir() / "corrupt.calib";
  std::ofstream(table) << "vapipe-calibration 1\nmethod kl\ntensor x 1.0 0 nan?\n";
  expect_one_error_line(
      run_cli("compile '" + path + "' -o /tmp/x.vpk --precision int8 --calib-table '" + table.string() + "'"),
      "corrupt.calib' line 3: max 'nan?' is not a number");
  expect_one_error_line(run_cli("compile '" + path + "' -o /tmp/x.vpk --precision int4"),
                        "--precision 'int4'");
}

TEST(CliErrors, CompileAutoPrecisionSaysWhatItChose) {
  // Without calibration data auto never picks int8; what it picks depends on the CPU, and it says so.
  const auto path = write_model(fixture_dir() / "relu.onnx", "Relu", "relu_1", {1, 4});
  const auto result = run_cli("compile '" + path + "' -o /tmp/x.vpk --precision auto");
  EXPECT_EQ(result.exit_code, 0);
  ASSERT_FALSE(result.stderr_lines.empty());
  EXPECT_EQ(result.stderr_lines[0].rfind("vapipe: --precision auto: ", 0), 0U) << result.stderr_lines[0];
  EXPECT_EQ(result.stderr_lines[0].find("int8"), std::string::npos) << result.stderr_lines[0];
}

TEST(CliErrors, InfoTruncatedPackage) {
  const auto path = fixture_dir() / "truncated.vpk";
  std::ofstream(path, std::ios::binary) << "VPK";
  expect_one_error_line(run_cli("info '" + path.string() + "'"), "truncated.vpk");
}

// A real package, compiled by the CLI, then cut short or damaged: every command that loads it refuses it.
std::string compiled_relu_package() {
  const auto onnx = write_model(fixture_dir() / "relu-for-package.onnx", "Relu", "relu_1", {1, 4});
  const auto package = (fixture_dir() / "relu.vpk").string();
  const auto result = run_cli("compile '" + onnx + "' -o '" + package + "' --batch 1,2");
  EXPECT_EQ(result.exit_code, 0) << (result.stderr_lines.empty() ? "" : result.stderr_lines[0]);
  return package;
}

TEST(CliErrors, TruncatedRealPackage) {
  const auto package = compiled_relu_package();
  const auto cut = (fixture_dir() / "relu-cut.vpk").string();
  std::filesystem::copy_file(package, cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, std::filesystem::file_size(cut) - 1);
  expect_one_error_line(run_cli("info '" + cut + "'"), "relu-cut.vpk: truncated");
  expect_one_error_line(run_cli("bench '" + cut + "' --runs 1"), "relu-cut.vpk: truncated");
}

TEST(CliErrors, CorruptRealPackage) {
  const auto package = compiled_relu_package();
  const auto corrupt = (fixture_dir() / "relu-corrupt.vpk").string();
  std::filesystem::copy_file(package, corrupt, std::filesystem::copy_options::overwrite_existing);
  {
    std::fstream file(corrupt, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(70);  // inside the manifest
    file.put('#');
  }
  expect_one_error_line(run_cli("info '" + corrupt + "'"), "checksum mismatch");
}

TEST(CliErrors, BatchLargerThanEveryStage) {
  const auto package = compiled_relu_package();
  expect_one_error_line(run_cli("bench '" + package + "' --batch 3 --runs 1"),
                        "batch size 3 exceeds the largest compiled stage (2)");
  expect_one_error_line(run_cli("bench '" + package + "' --net nope --runs 1"), "no network named 'nope'");
}

// Issue 17: `info` crashed (rc 139) on a package whose network has "stages": [] with valid checksums.
// The loader refuses it, so every command says the same one line.
TEST(CliErrors, APackageWithoutStagesIsRefusedByEveryCommand) {
  vapipe::ir::Package package;
  vapipe::ir::Network network;
  network.name = "hollow";
  package.networks.push_back(network);
  const auto path = (fixture_dir() / "no-stages.vpk").string();
  vapipe::ir::write_package(package, path);
  for (const char* command : {"info", "info --json", "info --layers", "bench"}) {
    SCOPED_TRACE(command);
    expect_one_error_line(run_cli(std::string(command) + " '" + path + "'"),
                          "no-stages.vpk: network 'hollow' has no stages");
  }
}

// Issue 17: --threads 100000 crashed inside libgomp. Every command that takes it refuses it up front and
// names the limit, without starting a thread.
TEST(CliErrors, ThreadsAboveTheMaximumAreOneErrorLine) {
  const auto package = compiled_relu_package();
  const auto onnx = write_model(fixture_dir() / "relu.onnx", "Relu", "relu_1", {1, 4});
  const std::string limit = std::to_string(std::max(256U, std::thread::hardware_concurrency()));
  for (const std::string& command :
       {"bench '" + package + "' --runs 1", "detect '" + package + "' /nonexistent.jpg",
        "compile '" + onnx + "' -o /tmp/x.vpk --precision int8 --calib-images /tmp",
        "compare '" + package + "' '" + package + "' --images /tmp",
        std::string("run -c /nonexistent.json")}) {
    for (const char* threads : {"100000", "-1", "2.5"}) {
      SCOPED_TRACE(command + " --threads " + threads);
      const auto result = run_cli(command + " --threads " + threads);
      expect_one_error_line(result, "--threads");
      if (!result.stderr_lines.empty()) {
        EXPECT_NE(result.stderr_lines[0].find(limit), std::string::npos);
      }
    }
  }
}

// Issue 17: range errors printed CLI11's bound, the largest double in full (a 300-digit number), on two
// lines. Now one line that says the bound in words.
TEST(CliErrors, RangeErrorsSayTheBoundInWords) {
  const auto package = compiled_relu_package();
  struct Case {
    std::string arguments;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"bench '" + package + "' --batch 0", "--batch: '0' must be a number above 0"},
      {"bench '" + package + "' --runs -3", "--runs: '-3' must be a number above 0"},
      {"run -c /nonexistent.json --duration -1", "--duration: '-1' must be a number, 0 or more"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.arguments);
    const auto result = run_cli(c.arguments);
    expect_one_error_line(result, c.needle);
    if (!result.stderr_lines.empty()) {
      EXPECT_LT(result.stderr_lines[0].size(), 200U) << result.stderr_lines[0];
    }
  }
}

// A PNG whose IHDR claims `width`x`height` (valid chunk CRCs, no pixel data).
void write_png_header(const std::filesystem::path& path, std::uint32_t width, std::uint32_t height) {
  auto crc = [](const std::string& bytes) {
    std::uint32_t value = 0xFFFFFFFFU;
    for (const unsigned char byte : bytes) {
      value ^= byte;
      for (int bit = 0; bit < 8; ++bit) value = (value >> 1) ^ (0xEDB88320U & (0U - (value & 1U)));
    }
    return ~value;
  };
  auto be32 = [](std::uint32_t value) {
    return std::string{static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                       static_cast<char>(value >> 8), static_cast<char>(value)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    return be32(static_cast<std::uint32_t>(data.size())) + type + data + be32(crc(type + data));
  };
  const std::string ihdr = be32(width) + be32(height) + std::string{8, 2, 0, 0, 0};
  std::ofstream(path, std::ios::binary)
      << std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) << chunk("IEND", "");
}

// Issue 17, messages: a folder given as a model or an image said "no such file"; a PNG claiming
// 100000x100000 printed OpenCV's raw assertion; a truncated JPEG was used with libjpeg's unattributed
// warning.
TEST(CliErrors, ImageAndModelMessages) {
  const auto folder = fixture_dir() / "a-folder.vpk";
  std::filesystem::create_directories(folder);
  expect_one_error_line(run_cli("bench '" + folder.string() + "'"), "a-folder.vpk: is a folder, not a file");
  expect_one_error_line(run_cli("compile '" + folder.string() + "' -o /tmp/x.vpk"),
                        "a-folder.vpk: is a folder, not a file");
  const auto package = compiled_relu_package();
  expect_one_error_line(run_cli("detect '" + package + "' '" + fixture_dir().string() + "'"),
                        "is a folder, not a file");

  const auto model = vapipe::test::models_dir() / "yolofastestv2.onnx";
  const auto messi = vapipe::test::opencv_data_dir() / "messi5.jpg";
  if (!std::filesystem::exists(model) || !std::filesystem::exists(messi)) {
    GTEST_SKIP() << "needs " << model << " and " << messi;
  }
  const auto detector = (fixture_dir() / "yolofastestv2.vpk").string();
  ASSERT_EQ(run_cli("compile '" + model.string() + "' -o '" + detector + "'").exit_code, 0);
  const auto huge = fixture_dir() / "huge.png";
  write_png_header(huge, 100000, 100000);
  expect_one_error_line(run_cli("detect '" + detector + "' '" + huge.string() + "'"),
                        "huge.png': its header claims 100000x100000 pixels");

  const auto cut = fixture_dir() / "cut.jpg";
  std::filesystem::copy_file(messi, cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, std::filesystem::file_size(cut) / 2);
  const auto result = run_cli("detect '" + detector + "' '" + cut.string() + "'");
  EXPECT_EQ(result.exit_code, 0);
  bool named = false;
  for (const auto& line : result.stderr_lines)
    named |= line.find("cut.jpg': JPEG without its end-of-image marker") != std::string::npos;
  EXPECT_TRUE(named) << "no warning names the truncated JPEG";
}

// Issue 17: crafted metadata with a detection head stride of 0 gave silently wrong boxes (every box in the
// top-left corner); a yolofastestv2 grid of 0 cells divided by zero. The loader refuses such heads,
// naming the network and the key, for every command.
TEST(CliErrors, CraftedHeadMetadataIsRefusedNamingTheNetworkAndTheKey) {
  const auto model = vapipe::test::models_dir() / "yolofastestv2.onnx";
  const auto messi = vapipe::test::opencv_data_dir() / "messi5.jpg";
  if (!std::filesystem::exists(model) || !std::filesystem::exists(messi)) {
    GTEST_SKIP() << "needs " << model << " and " << messi;
  }
  const auto detector = (fixture_dir() / "yolofastestv2-head.vpk").string();
  ASSERT_EQ(run_cli("compile '" + model.string() + "' -o '" + detector + "'").exit_code, 0);
  const vapipe::ir::Package good = vapipe::ir::read_package(detector);
  struct Case {
    std::string pointer;  // JSON pointer into the metadata
    nlohmann::json value;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"/head/outputs/0/strides/1", 0, "network 'yolofastestv2': metadata head.outputs[0].strides[1] is 0"},
      {"/head/outputs/0/strides/0", -16, "head.outputs[0].strides[0] is -16"},
      {"/head/outputs/0/grids/0/0", 0, "head.outputs[0].grids[0][0] is 0"},
      {"/head/outputs/0/anchors/1", nlohmann::json::array({{12, 19}}),
       "head.outputs[0].anchors[1] has 1 anchors"},
      {"/head/outputs/0/anchors/0/2/1", 0, "head.outputs[0].anchors[0][2][1] is 0"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.pointer);
    vapipe::ir::Package crafted = good;
    crafted.networks.at(0).metadata[nlohmann::json::json_pointer(c.pointer)] = c.value;
    const auto path = (fixture_dir() / "crafted-head.vpk").string();
    vapipe::ir::write_package(crafted, path);
    for (const std::string& command :
         {"info '" + path + "'", "detect '" + path + "' '" + messi.string() + "'"})
      expect_one_error_line(run_cli(command), c.needle);
  }
  // A raw YOLOv5 head (what `compile` writes for yolov5n) with a stride of 0, on a small package.
  vapipe::ir::Package relu = vapipe::ir::read_package(compiled_relu_package());
  relu.networks.at(0).metadata = {
      {"model_type", "yolov5"},
      {"head", {{"form", "raw"}, {"outputs", {{{"tensor", "y"}, {"stride", 0}, {"anchors", {{10, 13}}}}}}}}};
  const auto path = (fixture_dir() / "crafted-stride.vpk").string();
  vapipe::ir::write_package(relu, path);
  expect_one_error_line(
      run_cli("bench '" + path + "' --runs 1"),
      "crafted-stride.vpk: network 'relu-for-package': metadata head.outputs[0].stride is 0; it "
      "must be a number above 0");
}

// Issue 17: --input-size on a model exported with a fixed input size failed with the Reshape (or
// broadcast) its graph bakes the size into. It now says that the input is fixed, and what would help.
TEST(CliErrors, InputSizeOnAFixedSizeExportSaysTheExportIsFixed) {
  const auto model = vapipe::test::models_dir() / "yolofastestv2.onnx";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "needs " << model;
  expect_one_error_line(run_cli("compile '" + model.string() + "' -o /tmp/x.vpk --input-size 320x320"),
                        "yolofastestv2.onnx: input 'input.1' is fixed at 352x352 (HxW) in this export");
  const auto result = run_cli("compile '" + model.string() + "' -o /tmp/x.vpk --input-size 320x320");
  ASSERT_EQ(result.stderr_lines.size(), 1U);
  EXPECT_NE(
      result.stderr_lines[0].find("--input-size needs a model exported with a dynamic height and width"),
      std::string::npos)
      << result.stderr_lines[0];
  // A dynamic export takes --input-size (before, the model-type probe imported it without the size and
  // asked for --input-size while it was given).
  const auto dynamic = vapipe::test::models_dir() / "yunet.onnx";
  if (std::filesystem::exists(dynamic)) {
    const auto result_dynamic =
        run_cli("compile '" + dynamic.string() + "' -o '" + (fixture_dir() / "yunet-320.vpk").string() +
                "' --input-size 320x256");
    EXPECT_EQ(result_dynamic.exit_code, 0)
        << (result_dynamic.stderr_lines.empty() ? "" : result_dynamic.stderr_lines[0]);
  }
  // The size it was exported at still compiles.
  EXPECT_EQ(run_cli("compile '" + model.string() + "' -o '" + (fixture_dir() / "yf-352.vpk").string() +
                    "' --input-size 352x352")
                .exit_code,
            0);
}

TEST(CliErrors, CombineMissingInput) {
  const auto path = fixture_dir() / "absent.vpk";
  expect_one_error_line(run_cli("combine '" + path.string() + "' -o /tmp/y.vpk"), "absent.vpk");
}

// Face recognition keys: a gallery needs a face embedding network in the model's package, a threshold needs a
// gallery, and `detect --gallery` the same chain; each refused in one line naming the key.
TEST(CliErrors, AGalleryNeedsAFaceEmbeddingChain) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto dir = fixture_dir() / "gallery-errors";
  std::filesystem::create_directories(dir / "faces");
  auto write_config = [&](const nlohmann::json& extra) {
    nlohmann::json model = {{"name", "det"},
                            {"path", (vapipe::test::models_dir() / "yolofastestv2.onnx").string()},
                            {"obj_threshold", 0.25},
                            {"class_threshold", 0.25},
                            {"nms_threshold", 0.45}};
    model.update(extra);
    const nlohmann::json config = {
        {"cards",
         {{{"devid", 0},
           {"cameras",
            {{{"address", (vapipe::test::opencv_data_dir() / "vtest.avi").string()},
              {"chan_num", 1},
              {"model_names", {"det"}}}}}}}},
        {"models", {model}}};
    const auto path = dir / "cameras.json";
    std::ofstream(path) << config.dump(2);
    return path.string();
  };
  // `run` logs the model cache it uses first: the error is its last line.
  auto expect_error_last = [](const CliResult& result, const std::string& needle) {
    EXPECT_NE(result.exit_code, 0);
    ASSERT_FALSE(result.stderr_lines.empty());
    EXPECT_EQ(result.stderr_lines.back().rfind("vapipe: error:", 0), 0U) << result.stderr_lines.back();
    EXPECT_NE(result.stderr_lines.back().find(needle), std::string::npos) << result.stderr_lines.back();
  };
  const std::string cache = "--cache-dir '" + (fixture_dir() / "cache").string() + "'";
  expect_error_last(
      run_cli("run -c '" + write_config({{"gallery", (dir / "faces").string()}}) + "' --duration 1 " + cache),
      "models[0].gallery: the package");
  // Refused by the config's parser, before anything loads.
  expect_one_error_line(
      run_cli("run -c '" + write_config({{"recognition_threshold", 0.4}}) + "' --duration 1 " + cache),
      "models[0].recognition_threshold: is used only with \"gallery\"");
  const auto package = (dir / "yolofastestv2.vpk").string();
  ASSERT_EQ(run_cli("compile '" + (vapipe::test::models_dir() / "yolofastestv2.onnx").string() + "' -o '" +
                    package + "'")
                .exit_code,
            0);
  const auto image = (vapipe::test::opencv_data_dir() / "messi5.jpg").string();
  expect_one_error_line(
      run_cli("detect '" + package + "' '" + image + "' --gallery '" + (dir / "faces").string() + "'"),
      "--gallery: the package has no face embedding network");
}

}  // namespace
