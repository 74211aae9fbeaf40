// A statically pre-quantized ONNX (issue 20: the model zoo's MobileNetV2 INT8, QLinearConv) through the CLI:
// `vapipe compile --precision int8` (no calibration data, also what `auto` picks on a CPU with VNNI) runs
// its convolutions as int8 on the file's own integers (uint8 activations with zero points), and `vapipe
// info` shows them int8 with u8 outputs; `--precision f32` runs the file as written, in float; no
// `--precision` is int8 where that is exact (a CPU with VNNI), f32 elsewhere.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/test_data.hpp"

namespace {

vapipe::test::CommandResult run(const std::string& arguments) {
  return vapipe::test::run_shell(std::string("'") + VAPIPE_CLI + "' " + arguments + " 2>&1");
}

TEST(PrequantizedOnnx, CompileRunsTheFilesInt8AndInfoShowsInt8Convolutions) {
  VAPIPE_REQUIRE_MODEL("mobilenetv2-int8.onnx");
  const auto dir = vapipe::test::scratch_dir();
  const std::string model = (vapipe::test::models_dir() / "mobilenetv2-int8.onnx").string();
  const std::string int8 = (dir / "int8.vpk").string(), fp32 = (dir / "f32.vpk").string();

  const auto compiled = run("compile '" + model + "' -o '" + int8 + "' --precision int8");
  ASSERT_EQ(compiled.exit_code, 0) << compiled.out;
  EXPECT_NE(compiled.out.find("int8 (52 int8 convolutions)"), std::string::npos) << compiled.out;

  const auto info = run("info '" + int8 + "' --json --layers");
  ASSERT_EQ(info.exit_code, 0) << info.out;
  const auto network = nlohmann::json::parse(info.out).at("networks").at(0);
  EXPECT_EQ(network.at("precision"), "int8");
  EXPECT_EQ(network.at("quantization").at("method"), "file");
  int int8_convs = 0, float_convs = 0;
  for (const auto& layer : network.at("layers")) {
    if (layer.at("op") != "Conv") continue;
    (layer.at("precision") == "int8" ? int8_convs : float_convs) += 1;
    // The file's own uint8 activations between convolutions (not vapipe's symmetric int8).
    EXPECT_EQ(layer.at("output_dtype"), "u8") << layer.at("name");
  }
  EXPECT_EQ(int8_convs, 52);
  EXPECT_EQ(float_convs, 0);
  const auto text = run("info '" + int8 + "'");
  EXPECT_NE(text.out.find("the model file's own scales"), std::string::npos) << text.out;

  // `auto` on a CPU with native int8 (VNNI) compiles the same int8 package; elsewhere it says what it chose.
  const auto automatic =
      run("compile '" + model + "' -o '" + (dir / "auto.vpk").string() + "' --precision auto");
  ASSERT_EQ(automatic.exit_code, 0) << automatic.out;
  const bool native_int8 = automatic.out.find("vnni") != std::string::npos ||
                           automatic.out.find("bf16)") != std::string::npos ||
                           automatic.out.find("amx") != std::string::npos;
  if (native_int8) {
    EXPECT_NE(automatic.out.find("--precision auto: int8"), std::string::npos) << automatic.out;
    EXPECT_NE(automatic.out.find("int8 (52 int8 convolutions)"), std::string::npos) << automatic.out;
  } else {
    EXPECT_EQ(automatic.out.find("--precision auto: int8"), std::string::npos) << automatic.out;
  }
  const std::string by_default = (dir / "default.vpk").string();
  const auto default_compile = run("compile '" + model + "' -o '" + by_default + "'");
  ASSERT_EQ(default_compile.exit_code, 0) << default_compile.out;
  const auto default_info = run("info '" + by_default + "' --json");
  ASSERT_EQ(default_info.exit_code, 0) << default_info.out;
  EXPECT_EQ(nlohmann::json::parse(default_info.out).at("networks").at(0).at("precision"),
            native_int8 ? "int8" : "f32");

  const auto as_written = run("compile '" + model + "' -o '" + fp32 + "' --precision f32");
  ASSERT_EQ(as_written.exit_code, 0) << as_written.out;
  const auto fp32_info = run("info '" + fp32 + "' --json");
  ASSERT_EQ(fp32_info.exit_code, 0) << fp32_info.out;
  EXPECT_EQ(nlohmann::json::parse(fp32_info.out).at("networks").at(0).at("precision"), "f32");
}

}  // namespace
