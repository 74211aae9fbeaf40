#include "ops/plain_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "core/error.hpp"

namespace vapipe::ops {
namespace {

std::vector<std::int64_t> row_major_strides(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

}  // namespace

void resize_nearest(const float* input, const Shape& in_shape, float* output, const Shape& out_shape,
                    const std::vector<std::vector<std::int64_t>>& source) {
  const std::size_t rank = in_shape.size();
  const auto in_strides = row_major_strides(in_shape);
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
  const auto in_strides = row_major_strides(in_shape);
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
  bool sixteens = true;  // every chunk a whole number of 16-byte blocks (channels-last s8 feature maps)
  for (auto size : chunk_sizes) sixteens = sixteens && (size * bytes) % 16 == 0;
  if (sixteens) {
    // Many short chunks (a pixel's 16-128 channels): fixed-size copies the compiler inlines as vector moves,
    // instead of a library memcpy call per chunk.
#pragma omp parallel for schedule(static)
    for (std::int64_t o = 0; o < outer; ++o) {
      std::byte* target = output + o * row * bytes;
      for (std::size_t i = 0; i < chunk_sizes.size(); ++i) {
        const std::int64_t size = chunk_sizes[i] * bytes;
        const std::byte* source = static_cast<const std::byte*>(buffers[i]) + o * size;
        for (std::int64_t k = 0; k < size; k += 16) std::memcpy(target + k, source + k, 16);
        target += size;
      }
    }
    return;
  }
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

namespace {

// Rounds to the nearest integer, ties to even (the default FP rounding mode) for |x| <= 2^22, by adding and
// removing 1.5 * 2^23: vectorizes where std::nearbyint does not. The values here are clamped to
// [-128, 255] first. (Needs IEEE arithmetic: no -ffast-math, which would fold it away.)
inline float round_half_even(float x) {
  constexpr float kMagic = 12582912.0F;  // 1.5 * 2^23
  return (x + kMagic) - kMagic;
}

template <typename Integer>
void quantize_planes(const float* input, Integer* output, std::int64_t batch, std::int64_t channels,
                     std::int64_t spatial, float scale) {
  constexpr float kLow = std::is_signed_v<Integer> ? -128.0F : 0.0F;
  constexpr float kHigh = std::is_signed_v<Integer> ? 127.0F : 255.0F;
  constexpr std::int64_t kChunk = 256;  // pixels per chunk: the planes' rows stay in L1 while interleaved
  const std::int64_t chunks = (spatial + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
      const std::int64_t begin = chunk * kChunk;
      const std::int64_t count = std::min(kChunk, spatial - begin);
      Integer* pixels = output + (n * spatial + begin) * channels;
      if (channels == 3 || channels == 4) {
        // Each pixel's channels packed into one 32-bit word, stored with one (unaligned) store: for 3
        // channels the next pixel's store overwrites the spare byte, and the chunk's last pixel is stored
        // byte by byte so that nothing is written past the tensor.
        alignas(64) std::uint32_t packed[kChunk] = {};
        for (std::int64_t c = 0; c < channels; ++c) {
          const float* plane = input + (n * channels + c) * spatial + begin;
          for (std::int64_t s = 0; s < count; ++s) {
            const float v = std::min(std::max(plane[s] * scale, kLow), kHigh);
            const auto q = static_cast<std::int32_t>(round_half_even(v));
            packed[s] |= (static_cast<std::uint32_t>(q) & 0xFFU) << (8 * c);
          }
        }
        auto* bytes = reinterpret_cast<unsigned char*>(pixels);
        for (std::int64_t s = 0; s + 1 < count; ++s) std::memcpy(bytes + s * channels, &packed[s], 4);
        std::memcpy(bytes + (count - 1) * channels, &packed[count - 1], static_cast<std::size_t>(channels));
        continue;
      }
      alignas(64) std::int32_t rounded[kChunk];
      for (std::int64_t c = 0; c < channels; ++c) {
        const float* plane = input + (n * channels + c) * spatial + begin;
        for (std::int64_t s = 0; s < count; ++s) {
          const float v = std::min(std::max(plane[s] * scale, kLow), kHigh);
          rounded[s] = static_cast<std::int32_t>(round_half_even(v));
        }
        Integer* target = pixels + c;
        for (std::int64_t s = 0; s < count; ++s) target[s * channels] = static_cast<Integer>(rounded[s]);
      }
    }
  }
}

}  // namespace

void quantize_nchw_to_nhwc(const float* input, void* output, std::int64_t batch, std::int64_t channels,
                           std::int64_t spatial, float scale, bool unsigned_output) {
  if (unsigned_output) {
    quantize_planes(input, static_cast<std::uint8_t*>(output), batch, channels, spatial, scale);
  } else {
    quantize_planes(input, static_cast<std::int8_t*>(output), batch, channels, spatial, scale);
  }
}

void quantize_nchw_to_nhwc_reference(const float* input, void* output, std::int64_t batch,
                                     std::int64_t channels, std::int64_t spatial, float scale,
                                     bool unsigned_output) {
  const float low = unsigned_output ? 0.0F : -128.0F;
  const float high = unsigned_output ? 255.0F : 127.0F;
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t s = 0; s < spatial; ++s) {
        const float scaled = input[(n * channels + c) * spatial + s] * scale;
        const float q = std::nearbyint(std::clamp(scaled, low, high));
        const std::size_t at = static_cast<std::size_t>((n * spatial + s) * channels + c);
        if (unsigned_output) {
          static_cast<std::uint8_t*>(output)[at] = static_cast<std::uint8_t>(q);
        } else {
          static_cast<std::int8_t*>(output)[at] = static_cast<std::int8_t>(q);
        }
      }
    }
  }
}

namespace {

// Eight independent partial sums (the compiler vectorizes them without reassociating anything), added
// in a fixed order: the same inputs always give the same bits.
inline float dot(const float* a, const float* b, std::int64_t n) {
  float partial[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) partial[j] += a[i + j] * b[i + j];
  }
  float tail = 0.0F;
  for (; i < n; ++i) tail += a[i] * b[i];
  return tail + (((partial[0] + partial[4]) + (partial[1] + partial[5])) +
                 ((partial[2] + partial[6]) + (partial[3] + partial[7])));
}

}  // namespace

void gated_head_1x1(const float* input, const float* weights, const float* bias, float* output,
                    std::int64_t pixels, std::int64_t in_channels, std::int64_t out_channels, int per_anchor,
                    int gate_channel, float gate_logit) {
  const std::int64_t anchors = out_channels / per_anchor;
#pragma omp parallel for schedule(static)
  for (std::int64_t p = 0; p < pixels; ++p) {
    const float* x = input + p * in_channels;
    float* y = output + p * out_channels;
    for (std::int64_t a = 0; a < anchors; ++a) {
      const std::int64_t first = a * per_anchor;
      const std::int64_t gate = first + gate_channel;
      const float logit =
          dot(x, weights + gate * in_channels, in_channels) + (bias != nullptr ? bias[gate] : 0.0F);
      y[gate] = logit;
      if (logit <= gate_logit) continue;  // (a NaN gate computes the anchor)
      for (std::int64_t o = first; o < first + per_anchor; ++o) {
        if (o == gate) continue;
        y[o] = dot(x, weights + o * in_channels, in_channels) + (bias != nullptr ? bias[o] : 0.0F);
      }
    }
  }
}

void softmax_across(const float* input, float* output, std::int64_t outer, std::int64_t length,
                    std::int64_t inner, bool log) {
  // Chunks of the inner dimension, so each pass over the axis streams contiguous rows and the running
  // maximum and sum stay in registers/L1 (vectorizable: the loops over i have no dependence).
  constexpr std::int64_t kChunk = 256;
  const std::int64_t chunks = (inner + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static)
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
      const std::int64_t begin = chunk * kChunk;
      const std::int64_t count = std::min(kChunk, inner - begin);
      const float* x = input + o * length * inner + begin;
      float* y = output + o * length * inner + begin;
      float top[kChunk];
      float total[kChunk];
      for (std::int64_t i = 0; i < count; ++i) top[i] = x[i];
      for (std::int64_t k = 1; k < length; ++k) {
        for (std::int64_t i = 0; i < count; ++i) top[i] = std::max(top[i], x[k * inner + i]);
      }
      for (std::int64_t i = 0; i < count; ++i) total[i] = 0.0F;
      for (std::int64_t k = 0; k < length; ++k) {
        for (std::int64_t i = 0; i < count; ++i) {
          const float e = std::exp(x[k * inner + i] - top[i]);
          if (!log) y[k * inner + i] = e;
          total[i] += e;
        }
      }
      if (log) {
        for (std::int64_t i = 0; i < count; ++i) total[i] = top[i] + std::log(total[i]);
        for (std::int64_t k = 0; k < length; ++k) {
          for (std::int64_t i = 0; i < count; ++i) y[k * inner + i] = x[k * inner + i] - total[i];
        }
      } else {
        for (std::int64_t i = 0; i < count; ++i) total[i] = 1.0F / total[i];
        for (std::int64_t k = 0; k < length; ++k) {
          for (std::int64_t i = 0; i < count; ++i) y[k * inner + i] *= total[i];
        }
      }
    }
  }
}

namespace {

enum class BinaryAlg : std::uint8_t { kAdd, kSub, kMul, kDiv, kMax, kMin, kPow, kUnknown };

BinaryAlg binary_alg_of(const std::string& alg) {
  if (alg == "add") return BinaryAlg::kAdd;
  if (alg == "sub") return BinaryAlg::kSub;
  if (alg == "mul") return BinaryAlg::kMul;
  if (alg == "div") return BinaryAlg::kDiv;
  if (alg == "max") return BinaryAlg::kMax;
  if (alg == "min") return BinaryAlg::kMin;
  return alg == "pow" ? BinaryAlg::kPow : BinaryAlg::kUnknown;
}

// Strides of `shape` aligned to the output's rank, 0 where a dimension is broadcast.
std::vector<std::int64_t> strides_broadcast_to(const Shape& shape, const Shape& out) {
  std::vector<std::int64_t> strides(out.size(), 0);
  const auto own = row_major_strides(shape);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 1) strides[out.size() - shape.size() + i] = own[i];
  }
  return strides;
}

}  // namespace

bool binary_kernel_supports(const std::string& alg) { return binary_alg_of(alg) != BinaryAlg::kUnknown; }

void binary_broadcast(const std::string& alg, const float* a, const Shape& a_shape, const float* b,
                      const Shape& b_shape, float* y, const Shape& y_shape) {
  const BinaryAlg op = binary_alg_of(alg);
  const auto a_strides = strides_broadcast_to(a_shape, y_shape);
  const auto b_strides = strides_broadcast_to(b_shape, y_shape);
  const std::size_t rank = y_shape.size();
  const std::int64_t total = shape_volume(y_shape);
  std::vector<std::int64_t> index(rank, 0);
  std::int64_t ai = 0;
  std::int64_t bi = 0;
  for (std::int64_t flat = 0; flat < total; ++flat) {
    const float va = a[ai];
    const float vb = b[bi];
    switch (op) {
      case BinaryAlg::kAdd:
        y[flat] = va + vb;
        break;
      case BinaryAlg::kSub:
        y[flat] = va - vb;
        break;
      case BinaryAlg::kMul:
        y[flat] = va * vb;
        break;
      case BinaryAlg::kDiv:
        y[flat] = va / vb;
        break;
      case BinaryAlg::kMax:
        y[flat] = std::max(va, vb);
        break;
      case BinaryAlg::kMin:
        y[flat] = std::min(va, vb);
        break;
      case BinaryAlg::kPow:
        y[flat] = std::pow(va, vb);
        break;
      case BinaryAlg::kUnknown:
        fail("binary_broadcast: unknown algorithm '{}'", alg);
    }
    // Odometer step: the offsets move with the index, so no per-element multiplication.
    for (std::size_t d = rank; d-- > 0;) {
      ai += a_strides[d];
      bi += b_strides[d];
      if (++index[d] < y_shape[d]) break;
      ai -= a_strides[d] * y_shape[d];
      bi -= b_strides[d] * y_shape[d];
      index[d] = 0;
    }
  }
}

}  // namespace vapipe::ops
