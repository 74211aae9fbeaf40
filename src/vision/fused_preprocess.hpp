#pragma once
// Fused preprocessing: one pass from an 8-bit image (BGR, NV12, I420) to one image of an NCHW float batch
// tensor: bilinear resize into the letterbox region (cv::resize INTER_LINEAR semantics, half-pixel
// centres), pad value elsewhere, colour conversion to RGB (or BGR), then (x * scale - mean[c]) / std[c].
// No intermediate full-size image is made.
#include <array>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "vision/image_view.hpp"
#include "vision/letterbox.hpp"

namespace vapipe::vision {

// YUV -> RGB matrices for limited-range ("TV") video; kBt601 matches cv::COLOR_YUV2BGR_NV12.
enum class YuvMatrix : std::uint8_t { kBt601, kBt709 };

struct PreprocessOptions {
  int width = 640;  // network input size
  int height = 640;
  bool letterbox = true;  // false: stretch to width x height
  std::uint8_t pad_value = 114;
  bool rgb = true;  // channel order of the output planes
  float scale = 1.0f / 255.0f;
  std::array<float, 3> mean = {0.0f, 0.0f, 0.0f};  // in output channel order, after scaling
  std::array<float, 3> std = {1.0f, 1.0f, 1.0f};
  YuvMatrix yuv_matrix = YuvMatrix::kBt601;

  // Reads "input" (width, height) and "preprocess" of a network's metadata; absent keys keep defaults.
  static PreprocessOptions from_metadata(const nlohmann::json& metadata);
};

// Precomputes per-column source offsets and weights and per-row source rows for one source size, and
// owns its scratch rows, so run() allocates nothing: make one per video channel (source size) and worker.
class FusedPreprocessor {
 public:
  // threads > 1 splits the output rows into bands processed in parallel (OpenMP).
  FusedPreprocessor(PixelFormat format, int source_width, int source_height, const PreprocessOptions& options,
                    int threads = 1);

  const LetterboxTransform& transform() const { return transform_; }
  const PreprocessOptions& options() const { return options_; }

  // Writes 3 x height x width floats (planar) at `output`. `source` must have the format and size given
  // at construction (throws vapipe::Error otherwise).
  void run(const ImageView& source, float* output);

 private:
  void run_band(const ImageView& source, float* output, int band, int first_row, int end_row);
  void horizontal_pass(const ImageView& source, int source_row, float* planes) const;

  PixelFormat format_;
  PreprocessOptions options_;
  LetterboxTransform transform_;
  int threads_;
  std::array<float, 3> multiplier_{};    // scale / std
  std::array<float, 3> offset_{};        // -mean / std
  std::array<int, 3> source_plane_{};    // for source channel B, G, R: the output plane it feeds
  std::vector<std::int32_t> column_x0_;  // per resized column: left and right source tap (pixels)
  std::vector<std::int32_t> column_x1_;
  std::vector<float> column_weight_;  // weight of the right tap
  std::vector<std::int32_t> row_y0_;
  std::vector<std::int32_t> row_y1_;
  std::vector<float> row_weight_;
  // Per band: two horizontally resized source rows, planar (3 x resized_width each).
  std::vector<std::vector<float>> scratch_;
};

// Convenience: builds a FusedPreprocessor for this source and runs it once (allocates its tables).
LetterboxTransform preprocess(const ImageView& source, const PreprocessOptions& options, float* output);

// Plain per-pixel version kept as the ground truth for the differential tests: no tables, no caching.
LetterboxTransform preprocess_reference(const ImageView& source, const PreprocessOptions& options,
                                        float* output);

}  // namespace vapipe::vision
