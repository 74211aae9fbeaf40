#pragma once
// Where tests find real data: the shared COCO detectors (never committed; ../shared/models or
// $VAPIPE_MODELS) and the photos and clips of Debian's opencv-doc package.
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace vapipe::test {

inline std::filesystem::path models_dir() {
  if (const char* env = std::getenv("VAPIPE_MODELS"); env != nullptr && *env != '\0') return env;
  return std::filesystem::path(VAPIPE_SOURCE_DIR) / ".." / "shared" / "models";
}

inline std::filesystem::path opencv_data_dir() { return "/usr/share/doc/opencv-doc/examples/data"; }

// A scratch folder unique to the running test, removed and recreated on each call.
inline std::filesystem::path scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::temp_directory_path() / "vapipe-tests" /
             (std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace vapipe::test

// Skips (with the reason on the test's output) when a shared model is absent.
#define VAPIPE_REQUIRE_MODEL(file)                                                            \
  do {                                                                                        \
    if (!std::filesystem::exists(::vapipe::test::models_dir() / (file))) {                    \
      GTEST_SKIP() << "model " << (file) << " not found in " << ::vapipe::test::models_dir()  \
                   << " (set VAPIPE_MODELS to the folder holding the shared COCO detectors)"; \
    }                                                                                         \
  } while (false)

#define VAPIPE_REQUIRE_FILE(path)                                                                            \
  do {                                                                                                       \
    if (!std::filesystem::exists(path)) GTEST_SKIP() << (path) << " not found (apt-get install opencv-doc)"; \
  } while (false)
