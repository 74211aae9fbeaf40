#pragma once
// One limited-range YUV -> BGR pixel conversion shared by the fast and the reference preprocessing, so
// their differential test compares resampling, not two colour formulas.
#include <algorithm>
#include <cstdint>

#include "vision/fused_preprocess.hpp"

namespace vapipe::vision::detail {

// Q20 fixed point, the arithmetic of OpenCV's cvtColor (so our colours equal cv::COLOR_YUV2BGR_NV12's bytes)
// and branch-free: integer min/max compile to cmov, where float clamps compiled to mispredicted branches
// (20 ms per 1080p frame before, measured with vapipe_kernels_bench).
struct YuvCoefficients {
  int y_gain;  // 255 / 219 for the [16, 235] luma range
  int v_to_r;
  int u_to_g;
  int v_to_g;
  int u_to_b;
};
constexpr int kYuvShift = 20;

// BT.601: OpenCV's ITUR_BT_601_* constants; BT.709 from ITU-R BT.709-6 (1.164, 1.793, -0.213, -0.533, 2.112).
inline YuvCoefficients yuv_coefficients(YuvMatrix matrix) {
  if (matrix == YuvMatrix::kBt709) return {1220542, 1880097, -223346, -558891, 2214592};
  return {1220542, 1673527, -409993, -852492, 2116026};
}

inline float clamp_byte(int value) {
  return static_cast<float>(std::min(std::max(value >> kYuvShift, 0), 255));
}

// Writes B, G, R, each rounded and clamped to [0, 255].
inline void yuv_to_bgr(const YuvCoefficients& k, int y, int u, int v, float* bgr) {
  const int luma = std::max(0, y - 16) * k.y_gain + (1 << (kYuvShift - 1));
  const int cu = u - 128;
  const int cv = v - 128;
  bgr[0] = clamp_byte(luma + k.u_to_b * cu);
  bgr[1] = clamp_byte(luma + k.u_to_g * cu + k.v_to_g * cv);
  bgr[2] = clamp_byte(luma + k.v_to_r * cv);
}

// B, G, R of source pixel (x, y) of any supported format.
inline void fetch_bgr(const ImageView& image, const YuvCoefficients& k, int x, int y, float* bgr) {
  switch (image.format) {
    case PixelFormat::kBgr24: {
      const std::uint8_t* pixel = image.planes[0] + y * image.strides[0] + 3 * x;
      bgr[0] = pixel[0];
      bgr[1] = pixel[1];
      bgr[2] = pixel[2];
      return;
    }
    case PixelFormat::kNv12: {
      const std::uint8_t* uv = image.planes[1] + (y / 2) * image.strides[1] + (x / 2) * 2;
      yuv_to_bgr(k, image.planes[0][y * image.strides[0] + x], uv[0], uv[1], bgr);
      return;
    }
    case PixelFormat::kI420:
      yuv_to_bgr(k, image.planes[0][y * image.strides[0] + x],
                 image.planes[1][(y / 2) * image.strides[1] + x / 2],
                 image.planes[2][(y / 2) * image.strides[2] + x / 2], bgr);
      return;
  }
}

}  // namespace vapipe::vision::detail
