#include "infer/plain_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "core/error.hpp"

namespace vapipe::infer {
namespace {

std::vector<std::int64_t> dense_strides(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

std::int64_t nearest_source(std::int64_t dst, std::int64_t in_size, std::int64_t out_size,
                            const std::string& coordinate_mode, const std::string& nearest_mode) {
  const double scale = static_cast<double>(out_size) / static_cast<double>(in_size);
  double x = 0.0;
  if (coordinate_mode == "half_pixel") {
    x = (static_cast<double>(dst) + 0.5) / scale - 0.5;
  } else if (coordinate_mode == "pytorch_half_pixel") {
    x = out_size > 1 ? (static_cast<double>(dst) + 0.5) / scale - 0.5 : 0.0;
  } else if (coordinate_mode == "align_corners") {
    x = out_size > 1
            ? static_cast<double>(dst) * static_cast<double>(in_size - 1) / static_cast<double>(out_size - 1)
            : 0.0;
  } else if (coordinate_mode == "asymmetric") {
    x = static_cast<double>(dst) / scale;
  } else {
    fail("Resize coordinate_transformation_mode '{}' is not supported", coordinate_mode);
  }
  double index = 0.0;
  if (nearest_mode == "floor") {
    index = std::floor(x);
  } else if (nearest_mode == "ceil") {
    index = std::ceil(x);
  } else if (nearest_mode == "round_prefer_ceil") {
    index = std::floor(x + 0.5);
  } else {  // round_prefer_floor, the ONNX default
    index = std::ceil(x - 0.5);
  }
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(index), 0, in_size - 1);
}

}  // namespace

void resize_nearest(const float* input, const Shape& in_shape, float* output, const Shape& out_shape,
                    const std::string& coordinate_mode, const std::string& nearest_mode) {
  const std::size_t rank = in_shape.size();
  std::vector<std::vector<std::int64_t>> source(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    source[d].resize(out_shape[d]);
    for (std::int64_t i = 0; i < out_shape[d]; ++i) {
      source[d][i] = in_shape[d] == out_shape[d]
                         ? i
                         : nearest_source(i, in_shape[d], out_shape[d], coordinate_mode, nearest_mode);
    }
  }
  const auto in_strides = dense_strides(in_shape);
  const std::int64_t total = shape_volume(out_shape);
  std::vector<std::int64_t> index(rank, 0);
  for (std::int64_t flat = 0; flat < total; ++flat) {
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < rank; ++d) offset += source[d][index[d]] * in_strides[d];
    output[flat] = input[offset];
    for (int d = static_cast<int>(rank) - 1; d >= 0; --d) {
      if (++index[d] < out_shape[d]) break;
      index[d] = 0;
    }
  }
}

void strided_slice(const float* input, const Shape& in_shape, const std::vector<std::int64_t>& starts,
                   const std::vector<std::int64_t>& steps, float* output, const Shape& out_shape) {
  const std::size_t rank = in_shape.size();
  const auto in_strides = dense_strides(in_shape);
  const std::int64_t total = shape_volume(out_shape);
  std::vector<std::int64_t> index(rank, 0);
  for (std::int64_t flat = 0; flat < total; ++flat) {
    std::int64_t offset = 0;
    for (std::size_t d = 0; d < rank; ++d) offset += (starts[d] + index[d] * steps[d]) * in_strides[d];
    output[flat] = input[offset];
    for (int d = static_cast<int>(rank) - 1; d >= 0; --d) {
      if (++index[d] < out_shape[d]) break;
      index[d] = 0;
    }
  }
}

void gather_rows(const float* input, std::int64_t outer, std::int64_t axis_size, std::int64_t inner,
                 const std::vector<std::int64_t>& indices, float* output) {
  const auto count = static_cast<std::int64_t>(indices.size());
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < count; ++i) {
      std::memcpy(output + (o * count + i) * inner, input + (o * axis_size + indices[i]) * inner,
                  static_cast<std::size_t>(inner) * sizeof(float));
    }
  }
}

void concat_plain(const std::vector<void*>& buffers, const std::vector<std::int64_t>& chunk_sizes,
                  std::int64_t outer, std::size_t element_bytes) {
  auto* output = static_cast<std::byte*>(buffers[chunk_sizes.size()]);
  std::int64_t row = 0;
  for (auto size : chunk_sizes) row += size;
  const auto bytes = static_cast<std::int64_t>(element_bytes);
#pragma omp parallel for schedule(static)
  for (std::int64_t o = 0; o < outer; ++o) {
    std::byte* target = output + o * row * bytes;
    for (std::size_t i = 0; i < chunk_sizes.size(); ++i) {
      std::memcpy(target, static_cast<const std::byte*>(buffers[i]) + o * chunk_sizes[i] * bytes,
                  static_cast<std::size_t>(chunk_sizes[i] * bytes));
      target += chunk_sizes[i] * bytes;
    }
  }
}

void nhwc_to_nchw(const float* input, float* output, std::int64_t batch, std::int64_t channels,
                  std::int64_t spatial) {
  constexpr std::int64_t kTile = 16;
  const std::int64_t spatial_tiles = (spatial + kTile - 1) / kTile;
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t tile = 0; tile < spatial_tiles; ++tile) {
      const float* source = input + n * spatial * channels;
      float* target = output + n * spatial * channels;
      const std::int64_t s_begin = tile * kTile;
      const std::int64_t s_end = std::min(spatial, s_begin + kTile);
      for (std::int64_t c_begin = 0; c_begin < channels; c_begin += kTile) {
        const std::int64_t c_end = std::min(channels, c_begin + kTile);
        for (std::int64_t c = c_begin; c < c_end; ++c) {
          for (std::int64_t s = s_begin; s < s_end; ++s) target[c * spatial + s] = source[s * channels + c];
        }
      }
    }
  }
}

}  // namespace vapipe::infer
