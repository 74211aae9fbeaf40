#pragma once
// Non-owning views of 8-bit images as they come from OpenCV (interleaved BGR) or from a video decoder
// (NV12, I420). Strides are in bytes, so padded decoder buffers are read in place.
#include <cstddef>
#include <cstdint>

namespace vapipe::vision {

enum class PixelFormat : std::uint8_t { kBgr24, kNv12, kI420 };

struct ImageView {
  PixelFormat format = PixelFormat::kBgr24;
  int width = 0;
  int height = 0;
  const std::uint8_t* planes[3] = {nullptr, nullptr, nullptr};
  std::ptrdiff_t strides[3] = {0, 0, 0};

  static ImageView bgr(const std::uint8_t* data, int width, int height, std::ptrdiff_t stride) {
    return {PixelFormat::kBgr24, width, height, {data, nullptr, nullptr}, {stride, 0, 0}};
  }
  // Y plane, then one interleaved U,V plane at half resolution in both axes.
  static ImageView nv12(const std::uint8_t* y, std::ptrdiff_t y_stride, const std::uint8_t* uv,
                        std::ptrdiff_t uv_stride, int width, int height) {
    return {PixelFormat::kNv12, width, height, {y, uv, nullptr}, {y_stride, uv_stride, 0}};
  }
  static ImageView i420(const std::uint8_t* y, std::ptrdiff_t y_stride, const std::uint8_t* u,
                        std::ptrdiff_t u_stride, const std::uint8_t* v, std::ptrdiff_t v_stride, int width,
                        int height) {
    return {PixelFormat::kI420, width, height, {y, u, v}, {y_stride, u_stride, v_stride}};
  }
};

}  // namespace vapipe::vision
