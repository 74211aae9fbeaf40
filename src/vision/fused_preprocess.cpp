#include "vision/fused_preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.hpp"
#include "vision/yuv_to_bgr.hpp"

namespace vapipe::vision {

namespace {

// Source tap of one destination coordinate exactly as cv::resize INTER_LINEAR computes it (half-pixel
// centres, taps clamped at the borders with the weight moved onto the border pixel).
struct Tap {
  std::int32_t first;
  std::int32_t second;
  float weight;  // of `second`
};

Tap linear_tap(int destination, int source_size, int destination_size) {
  const double ratio = static_cast<double>(source_size) / destination_size;
  auto position = static_cast<float>((destination + 0.5) * ratio - 0.5);
  auto first = static_cast<int>(std::floor(position));
  float weight = position - static_cast<float>(first);
  if (first < 0) {
    first = 0;
    weight = 0.0f;
  }
  if (first >= source_size - 1) {
    first = source_size - 1;
    weight = 0.0f;
  }
  return {first, std::min(first + 1, source_size - 1), weight};
}

const char* format_name(PixelFormat format) {
  switch (format) {
    case PixelFormat::kBgr24:
      return "bgr24";
    case PixelFormat::kNv12:
      return "nv12";
    case PixelFormat::kI420:
      return "i420";
  }
  return "?";
}

}  // namespace

PreprocessOptions PreprocessOptions::from_metadata(const nlohmann::json& metadata) {
  PreprocessOptions options;
  try {
    if (const auto input = metadata.find("input"); input != metadata.end()) {
      options.width = input->value("width", options.width);
      options.height = input->value("height", options.height);
    }
    if (const auto pre = metadata.find("preprocess"); pre != metadata.end()) {
      options.rgb = pre->value("color", std::string("rgb")) != "bgr";
      options.scale = pre->value("scale", options.scale);
      options.letterbox = pre->value("letterbox", options.letterbox);
      options.pad_value = static_cast<std::uint8_t>(std::clamp(pre->value("pad_value", 114), 0, 255));
      if (pre->contains("mean")) options.mean = pre->at("mean").get<std::array<float, 3>>();
      if (pre->contains("std")) options.std = pre->at("std").get<std::array<float, 3>>();
    }
  } catch (const nlohmann::json::exception& error) {
    fail("network metadata: bad \"input\"/\"preprocess\": {}", error.what());
  }
  if (options.width <= 0 || options.height <= 0) {
    fail("network metadata: invalid input size {}x{}", options.width, options.height);
  }
  for (float value : options.std) {
    if (value == 0.0f) fail("network metadata: preprocess.std contains 0");
  }
  return options;
}

FusedPreprocessor::FusedPreprocessor(PixelFormat format, int source_width, int source_height,
                                     const PreprocessOptions& options, int threads)
    : format_(format), options_(options), threads_(std::max(1, threads)) {
  transform_ = options.letterbox
                   ? compute_letterbox(source_width, source_height, options.width, options.height)
                   : compute_stretch(source_width, source_height, options.width, options.height);
  for (int c = 0; c < 3; ++c) {
    multiplier_[c] = options.scale / options.std[c];
    offset_[c] = -options.mean[c] / options.std[c];
    source_plane_[c] = options.rgb ? 2 - c : c;  // the map is its own inverse
  }
  const int resized_width = transform_.resized_width;
  const int resized_height = transform_.resized_height;
  column_x0_.resize(resized_width);
  column_x1_.resize(resized_width);
  column_weight_.resize(resized_width);
  for (int x = 0; x < resized_width; ++x) {
    const Tap tap = linear_tap(x, source_width, resized_width);
    column_x0_[x] = tap.first;
    column_x1_[x] = tap.second;
    column_weight_[x] = tap.weight;
  }
  row_y0_.resize(resized_height);
  row_y1_.resize(resized_height);
  row_weight_.resize(resized_height);
  for (int y = 0; y < resized_height; ++y) {
    const Tap tap = linear_tap(y, source_height, resized_height);
    row_y0_[y] = tap.first;
    row_y1_[y] = tap.second;
    row_weight_[y] = tap.weight;
  }
  threads_ = std::min(threads_, resized_height);
  scratch_.assign(threads_, std::vector<float>(static_cast<std::size_t>(6) * resized_width));
}

void FusedPreprocessor::horizontal_pass(const ImageView& source, int source_row, float* planes) const {
  const int width = transform_.resized_width;
  const std::int32_t* x0 = column_x0_.data();
  const std::int32_t* x1 = column_x1_.data();
  const float* weight = column_weight_.data();
  // Output plane of each source channel (B, G, R), so the loops below index nothing at run time.
  float* out_b = planes + source_plane_[0] * static_cast<std::ptrdiff_t>(width);
  float* out_g = planes + source_plane_[1] * static_cast<std::ptrdiff_t>(width);
  float* out_r = planes + source_plane_[2] * static_cast<std::ptrdiff_t>(width);
  if (format_ == PixelFormat::kBgr24) {
    const std::uint8_t* row = source.planes[0] + source_row * source.strides[0];
    for (int x = 0; x < width; ++x) {
      const std::uint8_t* left = row + 3 * x0[x];
      const std::uint8_t* right = row + 3 * x1[x];
      const float w = weight[x];
      const float lb = left[0], lg = left[1], lr = left[2];
      out_b[x] = lb + w * (static_cast<float>(right[0]) - lb);
      out_g[x] = lg + w * (static_cast<float>(right[1]) - lg);
      out_r[x] = lr + w * (static_cast<float>(right[2]) - lr);
    }
    return;
  }
  // YUV: convert only the two taps of each output column (a third of a 1080p row at 640 wide).
  const detail::YuvCoefficients k = detail::yuv_coefficients(options_.yuv_matrix);
  const std::uint8_t* luma = source.planes[0] + source_row * source.strides[0];
  const std::ptrdiff_t chroma_row = source_row / 2;
  const std::uint8_t* row_u = source.planes[1] + chroma_row * source.strides[1];
  const std::uint8_t* row_v =
      format_ == PixelFormat::kI420 ? source.planes[2] + chroma_row * source.strides[2] : row_u + 1;
  const int u_step = format_ == PixelFormat::kI420 ? 1 : 2;  // NV12 interleaves U,V
  for (int x = 0; x < width; ++x) {
    const int a = x0[x];
    const int b = x1[x];
    float left[3];
    float right[3];
    detail::yuv_to_bgr(k, luma[a], row_u[(a >> 1) * u_step], row_v[(a >> 1) * u_step], left);
    detail::yuv_to_bgr(k, luma[b], row_u[(b >> 1) * u_step], row_v[(b >> 1) * u_step], right);
    const float w = weight[x];
    out_b[x] = left[0] + w * (right[0] - left[0]);
    out_g[x] = left[1] + w * (right[1] - left[1]);
    out_r[x] = left[2] + w * (right[2] - left[2]);
  }
}

void FusedPreprocessor::run_band(const ImageView& source, float* output, int band, int first_row,
                                 int end_row) {
  const int width = options_.width;
  const int resized_width = transform_.resized_width;
  const int pad_x = transform_.pad_x;
  const std::ptrdiff_t plane_size = static_cast<std::ptrdiff_t>(width) * options_.height;
  float* rows[2] = {scratch_[band].data(),
                    scratch_[band].data() + 3 * static_cast<std::ptrdiff_t>(resized_width)};
  int cached[2] = {-1, -1};
  for (int y = first_row; y < end_row; ++y) {
    const int y0 = row_y0_[y];
    const int y1 = row_y1_[y];
    // Downscaling moves the taps down monotonically: reuse a horizontally resized row when we can.
    if (cached[0] != y0) {
      if (cached[1] == y0) {
        std::swap(rows[0], rows[1]);
        std::swap(cached[0], cached[1]);
      } else {
        horizontal_pass(source, y0, rows[0]);
        cached[0] = y0;
      }
    }
    if (y1 != y0 && cached[1] != y1) {
      horizontal_pass(source, y1, rows[1]);
      cached[1] = y1;
    }
    const float wy = row_weight_[y];
    const std::ptrdiff_t row_start = static_cast<std::ptrdiff_t>(transform_.pad_y + y) * width;
    for (int c = 0; c < 3; ++c) {
      const float* top = rows[0] + c * static_cast<std::ptrdiff_t>(resized_width);
      const float* bottom = (y1 == y0 ? rows[0] : rows[1]) + c * static_cast<std::ptrdiff_t>(resized_width);
      float* out_row = output + c * plane_size + row_start;
      const float multiplier = multiplier_[c];
      const float offset = offset_[c];
      const float pad = static_cast<float>(options_.pad_value) * multiplier + offset;
      std::fill(out_row, out_row + pad_x, pad);
      float* out = out_row + pad_x;
      for (int x = 0; x < resized_width; ++x) {
        out[x] = (top[x] + wy * (bottom[x] - top[x])) * multiplier + offset;
      }
      std::fill(out + resized_width, out_row + width, pad);
    }
  }
}

void FusedPreprocessor::run(const ImageView& source, float* output) {
  if (source.format != format_ || source.width != transform_.source_width ||
      source.height != transform_.source_height) {
    fail("preprocess: got a {} {}x{} image, prepared for {} {}x{}", format_name(source.format), source.width,
         source.height, format_name(format_), transform_.source_width, transform_.source_height);
  }
  const int width = options_.width;
  const std::ptrdiff_t plane_size = static_cast<std::ptrdiff_t>(width) * options_.height;
  for (int c = 0; c < 3; ++c) {
    const float pad = static_cast<float>(options_.pad_value) * multiplier_[c] + offset_[c];
    float* plane = output + c * plane_size;
    std::fill(plane, plane + static_cast<std::ptrdiff_t>(transform_.pad_y) * width, pad);
    std::fill(plane + static_cast<std::ptrdiff_t>(transform_.pad_y + transform_.resized_height) * width,
              plane + plane_size, pad);
  }
  const int rows = transform_.resized_height;
  const int bands = threads_;
#pragma omp parallel for num_threads(bands) schedule(static) if (bands > 1)
  for (int band = 0; band < bands; ++band) {
    const int first = static_cast<int>(static_cast<std::int64_t>(rows) * band / bands);
    const int end = static_cast<int>(static_cast<std::int64_t>(rows) * (band + 1) / bands);
    run_band(source, output, band, first, end);
  }
}

LetterboxTransform preprocess(const ImageView& source, const PreprocessOptions& options, float* output) {
  FusedPreprocessor preprocessor(source.format, source.width, source.height, options);
  preprocessor.run(source, output);
  return preprocessor.transform();
}

LetterboxTransform preprocess_reference(const ImageView& source, const PreprocessOptions& options,
                                        float* output) {
  const LetterboxTransform transform =
      options.letterbox ? compute_letterbox(source.width, source.height, options.width, options.height)
                        : compute_stretch(source.width, source.height, options.width, options.height);
  const detail::YuvCoefficients k = detail::yuv_coefficients(options.yuv_matrix);
  const double ratio_x = static_cast<double>(source.width) / transform.resized_width;
  const double ratio_y = static_cast<double>(source.height) / transform.resized_height;
  // Source coordinate of a destination pixel centre, clamped into the image (same weights as cv::resize).
  auto locate = [](int d, double ratio, int size, int& first, int& second, double& weight) {
    const double position = std::clamp((d + 0.5) * ratio - 0.5, 0.0, static_cast<double>(size - 1));
    first = static_cast<int>(std::floor(position));
    second = std::min(first + 1, size - 1);
    weight = position - first;
  };
  const std::size_t plane_size = static_cast<std::size_t>(options.width) * options.height;
  for (int y = 0; y < options.height; ++y) {
    for (int x = 0; x < options.width; ++x) {
      double bgr[3];
      const int rx = x - transform.pad_x;
      const int ry = y - transform.pad_y;
      if (rx < 0 || ry < 0 || rx >= transform.resized_width || ry >= transform.resized_height) {
        bgr[0] = bgr[1] = bgr[2] = options.pad_value;
      } else {
        int x0, x1, y0, y1;
        double wx, wy;
        locate(rx, ratio_x, source.width, x0, x1, wx);
        locate(ry, ratio_y, source.height, y0, y1, wy);
        float p00[3] = {}, p01[3] = {}, p10[3] = {}, p11[3] = {};
        detail::fetch_bgr(source, k, x0, y0, p00);
        detail::fetch_bgr(source, k, x1, y0, p01);
        detail::fetch_bgr(source, k, x0, y1, p10);
        detail::fetch_bgr(source, k, x1, y1, p11);
        for (int c = 0; c < 3; ++c) {
          const double top = (1 - wx) * static_cast<double>(p00[c]) + wx * static_cast<double>(p01[c]);
          const double bottom = (1 - wx) * static_cast<double>(p10[c]) + wx * static_cast<double>(p11[c]);
          bgr[c] = (1 - wy) * top + wy * bottom;
        }
      }
      for (int c = 0; c < 3; ++c) {
        const double value = bgr[options.rgb ? 2 - c : c];
        output[c * plane_size + static_cast<std::size_t>(y) * options.width + x] = static_cast<float>(
            (value * static_cast<double>(options.scale) - static_cast<double>(options.mean[c])) /
            static_cast<double>(options.std[c]));
      }
    }
  }
  return transform;
}

}  // namespace vapipe::vision
