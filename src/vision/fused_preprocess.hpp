#pragma once
// Fused preprocessing: one pass from an 8-bit image (BGR, NV12, I420) to one image of an NCHW float batch
// tensor: bilinear resize into the letterbox region (cv::resize INTER_LINEAR semantics, half-pixel
// centres), pad value elsewhere, colour conversion to RGB (or BGR), then (x * scale - mean[c]) / std[c].
// No intermediate full-size image is made.
#include <array>
#include <cstdint>
#include <memory>
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
  // Where a letterboxed image sits: centred (YOLOv5's letterbox), or at the top-left corner with all the
  // padding right and below (metadata "letterbox_align": "top_left", YOLOX's preproc).
  bool letterbox_top_left = false;
  std::uint8_t pad_value = 114;
  bool rgb = true;  // channel order of the output planes
  float scale = 1.0f / 255.0f;
  std::array<float, 3> mean = {0.0f, 0.0f, 0.0f};  // in output channel order, after scaling
  std::array<float, 3> std = {1.0f, 1.0f, 1.0f};
  YuvMatrix yuv_matrix = YuvMatrix::kBt601;

  // The geometry of a source image of this size in the network input (letterbox or stretch, as above).
  LetterboxTransform transform_for(int source_width, int source_height) const;

  // Reads "input" (width, height) and "preprocess" of a network's metadata; absent keys keep defaults.
  static PreprocessOptions from_metadata(const nlohmann::json& metadata);
};

// Precomputes per-column source offsets and weights and per-row source rows for one source size, and
// owns its scratch rows, so run() allocates nothing: make one per video channel (source size) and worker.
class FusedPreprocessor {
 public:
  // threads > 1 starts threads - 1 helper threads (kept for the preprocessor's lifetime) that share the
  // output rows with the caller in small chunks taken from a counter: a helper the OS schedules late simply
  // takes fewer chunks, and run() never waits for one that has taken none. run() times itself and keeps
  // to the caller alone when that is faster (a busy machine), retrying the helpers every 16th run.
  FusedPreprocessor(PixelFormat format, int source_width, int source_height, const PreprocessOptions& options,
                    int threads = 1);
  ~FusedPreprocessor();
  FusedPreprocessor(const FusedPreprocessor&) = delete;
  FusedPreprocessor& operator=(const FusedPreprocessor&) = delete;

  const LetterboxTransform& transform() const { return transform_; }
  const PreprocessOptions& options() const { return options_; }

  // Writes 3 x height x width floats (planar) at `output`. `source` must have the format and size given
  // at construction (throws vapipe::Error otherwise).
  void run(const ImageView& source, float* output);

 private:
  // Per band: two horizontally resized source rows (planar, 3 x resized_width floats each) and the
  // gathered source taps of the row being resized, laid out contiguously so the arithmetic vectorizes.
  struct Scratch {
    std::vector<float> rows;
    std::vector<std::uint32_t> left;  // BGR: the 4 bytes at each column's left / right tap; YUV: luma
    std::vector<std::uint32_t> right;
    std::vector<std::uint32_t> chroma_left;  // YUV: U | V << 8 of each column's left / right tap
    std::vector<std::uint32_t> chroma_right;
    int chroma_row = -1;  // source chroma row held in chroma_left / chroma_right
  };

  class Helpers;

  void run_band(const ImageView& source, float* output, Scratch& scratch, int first_row, int end_row);
  // Output rows [first_row, end_row): padding rows filled, image rows resized.
  void run_rows(const ImageView& source, float* output, Scratch& scratch, int first_row, int end_row);
  void horizontal_pass(const ImageView& source, int source_row, Scratch& scratch, float* planes) const;

  PixelFormat format_;
  PreprocessOptions options_;
  LetterboxTransform transform_;
  int threads_;
  std::array<float, 3> multiplier_{};    // scale / std
  std::array<float, 3> offset_{};        // -mean / std
  std::array<int, 3> source_plane_{};    // for source channel B, G, R: the output plane it feeds
  std::vector<std::int32_t> column_x0_;  // per resized column: left and right source tap (byte offset
  std::vector<std::int32_t> column_x1_;  // in a BGR row, pixel in a luma row)
  std::vector<std::int32_t> chroma_x0_;  // YUV: byte offset of the taps' U sample in a chroma row
  std::vector<std::int32_t> chroma_x1_;
  std::vector<float> column_weight_;  // weight of the right tap
  int wide_columns_ = 0;              // BGR: leading columns whose taps can be read as 4 bytes in the row
  std::vector<std::int32_t> row_y0_;
  std::vector<std::int32_t> row_y1_;
  std::vector<float> row_weight_;
  std::vector<Scratch> scratch_;  // one per thread (the caller's first)
  std::unique_ptr<Helpers> helpers_;
  std::array<double, 2> seconds_{};  // with helpers: moving average of run() alone (0) and with helpers (1)
  unsigned runs_ = 0;
};

// Convenience: builds a FusedPreprocessor for this source and runs it once (allocates its tables).
LetterboxTransform preprocess(const ImageView& source, const PreprocessOptions& options, float* output);

// Plain per-pixel version kept as the ground truth for the differential tests: no tables, no caching.
LetterboxTransform preprocess_reference(const ImageView& source, const PreprocessOptions& options,
                                        float* output);

}  // namespace vapipe::vision
