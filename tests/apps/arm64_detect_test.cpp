// The aarch64 build gives the x86 build's detections: a package compiled here (x86-64) is run by this
// build's `vapipe detect` and by the cross-built aarch64 one under qemu-user, on real photos, and the two
// detection lists must match box for box (same label, corners and score within a tolerance).
//
// The aarch64 side comes from the environment (scripts/ci-arm64.sh sets both):
//   VAPIPE_ARM64_CLI       the cross-built vapipe (build-arm64/apps/vapipe/vapipe)
//   VAPIPE_ARM64_EMULATOR  the command prefix that runs it, e.g. "qemu-aarch64 -L /opt/vapipe-arm64-sysroot"
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/test_data.hpp"

namespace {

namespace fs = std::filesystem;

using vapipe::test::CommandResult;

// Runs a shell command; stdout is captured, stderr goes to `log` (shown when the command fails).
CommandResult run_shell(const std::string& command, const fs::path& log) {
  return vapipe::test::run_shell(command + " 2>'" + log.string() + "'");
}

std::string file_text(const fs::path& path) {
  std::string text;
  if (FILE* file = std::fopen(path.c_str(), "r")) {
    std::array<char, 4096> buffer{};
    for (std::size_t n; (n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0;)
      text.append(buffer.data(), n);
    std::fclose(file);
  }
  return text;
}

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

struct Detection {
  std::string label;
  float score = 0.0F;
  std::array<float, 4> box{};
};

// One JSON line per image (`detect --json`), in the order of the images on the command line.
std::vector<std::vector<Detection>> parse_detections(const std::string& out) {
  std::vector<std::vector<Detection>> images;
  std::size_t begin = 0;
  while (begin < out.size()) {
    const std::size_t end = std::min(out.find('\n', begin), out.size());
    if (end > begin) {
      auto& image = images.emplace_back();
      // Named: a range-for over parse(...).at(...) would iterate a destroyed temporary.
      const auto line = nlohmann::json::parse(out.substr(begin, end - begin));
      for (const auto& d : line.at("detections")) {
        Detection detection{d.at("label").get<std::string>(), d.at("score").get<float>(), {}};
        for (std::size_t i = 0; i < 4; ++i) detection.box[i] = d.at("box")[i].get<float>();
        image.push_back(detection);
      }
    }
    begin = end + 1;
  }
  return images;
}

struct Tolerance {
  float box_px;             // each corner coordinate, in image pixels
  float score;              // absolute
  float threshold;          // detect's --conf: a detection this close to it may exist on one side only
  float must_match = 0.0F;  // > 0: only x86 detections scoring at least this must match; extra ones are fine
};

// Every detection of `x86` has one on `arm64` with the same label, corners and score within `tolerance`
// (greedy, best score first), and none is left over, except those within the tolerance of the threshold.
void expect_same_detections(const std::vector<Detection>& x86, const std::vector<Detection>& arm64,
                            const Tolerance& tolerance, const std::string& image) {
  std::vector<bool> taken(arm64.size(), false);
  const auto optional = [&](const Detection& d) {
    return tolerance.must_match > 0.0F ? d.score < tolerance.must_match
                                       : d.score < tolerance.threshold + tolerance.score;
  };
  for (const Detection& want : x86) {
    std::size_t best = arm64.size();
    float best_distance = tolerance.box_px;
    for (std::size_t i = 0; i < arm64.size(); ++i) {
      if (taken[i] || arm64[i].label != want.label) continue;
      float distance = 0.0F;
      for (std::size_t k = 0; k < 4; ++k)
        distance = std::max(distance, std::fabs(arm64[i].box[k] - want.box[k]));
      if (distance <= best_distance) {
        best = i;
        best_distance = distance;
      }
    }
    if (best == arm64.size()) {
      EXPECT_TRUE(optional(want)) << image << ": x86 " << want.label << " " << want.score << " at ["
                                  << want.box[0] << ", " << want.box[1] << ", " << want.box[2] << ", "
                                  << want.box[3] << "] has no aarch64 match within " << tolerance.box_px
                                  << " px";
      continue;
    }
    taken[best] = true;
    EXPECT_NEAR(arm64[best].score, want.score, tolerance.score) << image << ": " << want.label;
  }
  if (tolerance.must_match > 0.0F) return;
  for (std::size_t i = 0; i < arm64.size(); ++i) {
    EXPECT_TRUE(taken[i] || optional(arm64[i]))
        << image << ": aarch64 " << arm64[i].label << " " << arm64[i].score << " has no x86 match";
  }
}

class Arm64Detect : public ::testing::Test {
 protected:
  void SetUp() override {
    arm64_cli_ = env_or_empty("VAPIPE_ARM64_CLI");
    emulator_ = env_or_empty("VAPIPE_ARM64_EMULATOR");
    if (arm64_cli_.empty()) {
      GTEST_SKIP()
          << "VAPIPE_ARM64_CLI is not set: no aarch64 build to compare with (bash scripts/ci-arm64.sh "
             "cross-builds one and runs this test)";
    }
    ASSERT_TRUE(fs::exists(arm64_cli_)) << "VAPIPE_ARM64_CLI=" << arm64_cli_ << " does not exist";
    // scratch_dir() is shared by every worktree's build of this test: the pid keeps runs apart.
    dir_ = vapipe::test::scratch_dir() / std::to_string(::getpid());
    fs::create_directories(dir_);
  }

  // Compiles `model` on x86 (with `x86_options` for the x86 run, `arm64_options` for the aarch64 one), runs
  // detect with both CLIs on the photos, compares.
  void compare(const std::string& model, const std::string& x86_options, const std::string& arm64_options,
               const Tolerance& tolerance) {
    const auto data = vapipe::test::opencv_data_dir();
    const std::vector<fs::path> images = {data / "messi5.jpg", data / "basketball1.png"};
    for (const auto& image : images) VAPIPE_REQUIRE_FILE(image);
    const auto log = dir_ / "stderr.txt";
    const std::string x86_cli = std::string("'") + VAPIPE_CLI + "'";
    const auto compile = [&](const std::string& options, const fs::path& package) {
      const auto compiled = run_shell(x86_cli + " compile '" + (vapipe::test::models_dir() / model).string() +
                                          "' -o '" + package.string() + "' " + options,
                                      log);
      return compiled.exit_code == 0;
    };
    const auto x86_package = dir_ / "x86.vpk";
    const auto arm64_package = dir_ / "arm64.vpk";
    ASSERT_TRUE(compile(x86_options, x86_package)) << file_text(log);
    ASSERT_TRUE(compile(arm64_options, arm64_package)) << file_text(log);

    std::string arguments;
    for (const auto& image : images) arguments += " '" + image.string() + "'";
    arguments += " --json --conf " + std::to_string(tolerance.threshold);
    const auto x86 = run_shell(x86_cli + " detect '" + x86_package.string() + "'" + arguments, log);
    ASSERT_EQ(x86.exit_code, 0) << file_text(log);
    const auto arm64 = run_shell(
        emulator_ + " '" + arm64_cli_ + "' detect '" + arm64_package.string() + "'" + arguments, log);
    ASSERT_EQ(arm64.exit_code, 0) << emulator_ << " " << arm64_cli_ << ": " << file_text(log);

    const auto x86_images = parse_detections(x86.out);
    const auto arm64_images = parse_detections(arm64.out);
    ASSERT_EQ(x86_images.size(), images.size()) << x86.out;
    ASSERT_EQ(arm64_images.size(), images.size()) << arm64.out;
    std::size_t detections = 0;
    for (std::size_t i = 0; i < images.size(); ++i) {
      expect_same_detections(x86_images[i], arm64_images[i], tolerance, images[i].filename().string());
      detections += x86_images[i].size();
    }
    // The photos hold people (messi5: a player, basketball1: two men): an empty list would compare equal.
    EXPECT_GE(detections, 3U) << x86.out;
  }

  std::string arm64_cli_;
  std::string emulator_;
  fs::path dir_;
};

// FP32: oneDNN's aarch64 kernels against its x86-64 ones, same package; only summation order differs.
TEST_F(Arm64Detect, Fp32DetectionsMatchX86) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  compare("yolofastestv2.onnx", "", "", {.box_px = 0.5F, .score = 1e-3F, .threshold = 0.25F});
}

// INT8 on aarch64 runs (oneDNN: jit_int8 with SVE, its reference s8 gemm without) and keeps the x86 FP32
// detections. INT8 against INT8 across the two ISAs is no close match: x86 without VNNI and aarch64 run
// different oneDNN int8 kernels, and on messi5.jpg scores differ by up to 0.1 and low-score boxes come and go
// (the aarch64 ones are the closer to FP32; the cause is not pinned down). So the reference is x86 FP32 and
// the check is on its confident boxes.
TEST_F(Arm64Detect, Int8KeepsTheX86Fp32Detections) {
  VAPIPE_REQUIRE_MODEL("yolofastestv2.onnx");
  const auto data = vapipe::test::opencv_data_dir();
  const auto calibration = dir_ / "calibration";
  fs::create_directories(calibration);
  for (const char* name : {"messi5.jpg", "basketball1.png", "fruits.jpg", "home.jpg", "baboon.jpg"}) {
    VAPIPE_REQUIRE_FILE(data / name);
    fs::copy_file(data / name, calibration / name, fs::copy_options::overwrite_existing);
  }
  compare("yolofastestv2.onnx", "", "--precision int8 --calib-images '" + calibration.string() + "'",
          {.box_px = 8.0F, .score = 0.15F, .threshold = 0.25F, .must_match = 0.5F});
}

}  // namespace
