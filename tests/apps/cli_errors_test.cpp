// Bad input to every subcommand: one clear error line and a non-zero exit (written with the compiler).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

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

TEST(CliErrors, CombineMissingInput) {
  const auto path = fixture_dir() / "absent.vpk";
  expect_one_error_line(run_cli("combine '" + path.string() + "' -o /tmp/y.vpk"), "absent.vpk");
}

}  // namespace
