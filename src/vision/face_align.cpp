#include "vision/face_align.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/error.hpp"

namespace vapipe::vision {

namespace {

void check_inputs(const ImageView& bgr, const PreprocessOptions& options) {
  if (bgr.format != PixelFormat::kBgr24) fail("face alignment: only BGR images are aligned");
  if (bgr.width <= 0 || bgr.height <= 0) fail("face alignment: empty image");
  if (options.width <= 0 || options.height <= 0)
    fail("face alignment: invalid target size {}x{}", options.width, options.height);
}

// Per output channel c: the source channel (B, G, R = 0, 1, 2) it reads, and v * multiplier + offset.
struct Normalization {
  std::array<int, 3> source{};
  std::array<float, 3> multiplier{};
  std::array<float, 3> offset{};
  explicit Normalization(const PreprocessOptions& options) {
    for (int c = 0; c < 3; ++c) {
      source[static_cast<std::size_t>(c)] = options.rgb ? 2 - c : c;
      multiplier[static_cast<std::size_t>(c)] = options.scale / options.std[static_cast<std::size_t>(c)];
      offset[static_cast<std::size_t>(c)] =
          -options.mean[static_cast<std::size_t>(c)] / options.std[static_cast<std::size_t>(c)];
    }
  }
};

}  // namespace

SimilarityTransform SimilarityTransform::inverse() const {
  const double norm = a * a + b * b;
  if (!(norm > 1e-24) || !std::isfinite(norm)) fail("face alignment: degenerate similarity transform");
  // [a -b; b a]^-1 = [a b; -b a] / norm.
  SimilarityTransform inverse;
  inverse.a = a / norm;
  inverse.b = -b / norm;
  inverse.tx = -(inverse.a * tx - inverse.b * ty);
  inverse.ty = -(inverse.b * tx + inverse.a * ty);
  return inverse;
}

std::array<Point2, 5> arcface_template(int size) {
  if (size <= 0) fail("face alignment: invalid template size {}", size);
  // norm_crop (insightface/utils/face_align.py, estimate_norm).
  const bool by_128 = size % 128 == 0;
  const float ratio = static_cast<float>(size) / (by_128 ? 128.0f : 112.0f);
  const float shift_x = by_128 ? 8.0f * ratio : 0.0f;
  std::array<Point2, 5> points{};
  for (std::size_t i = 0; i < points.size(); ++i)
    points[i] = {kArcFaceTemplate112[i][0] * ratio + shift_x, kArcFaceTemplate112[i][1] * ratio};
  return points;
}

SimilarityTransform estimate_similarity(std::span<const Point2> from, std::span<const Point2> to) {
  if (from.size() != to.size() || from.size() < 2)
    fail("face alignment: {} source and {} target points (need the same number, at least 2)", from.size(),
         to.size());
  // Umeyama (1991) for 2-D points without reflection reduces to a linear least-squares problem in
  // (a, b): with both point sets centred, a = sum(p.q) / sum(|p|^2), b = sum(p x q) / sum(|p|^2), which is
  // what skimage's estimate returns whenever the best fit is a rotation (always, for a face).
  const auto n = static_cast<double>(from.size());
  double fx = 0, fy = 0, gx = 0, gy = 0;
  auto x = [](Point2 p) { return static_cast<double>(p[0]); };
  auto y = [](Point2 p) { return static_cast<double>(p[1]); };
  for (std::size_t i = 0; i < from.size(); ++i) {
    fx += x(from[i]);
    fy += y(from[i]);
    gx += x(to[i]);
    gy += y(to[i]);
  }
  fx /= n, fy /= n, gx /= n, gy /= n;
  double dot = 0, cross = 0, spread = 0;
  for (std::size_t i = 0; i < from.size(); ++i) {
    const double px = x(from[i]) - fx, py = y(from[i]) - fy;
    const double qx = x(to[i]) - gx, qy = y(to[i]) - gy;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    spread += px * px + py * py;
  }
  if (!(spread > 1e-12) || !std::isfinite(spread))
    fail("face alignment: the source points coincide (no similarity transform)");
  SimilarityTransform t;
  t.a = dot / spread;
  t.b = cross / spread;
  t.tx = gx - (t.a * fx - t.b * fy);
  t.ty = gy - (t.b * fx + t.a * fy);
  return t;
}

void align_face(const ImageView& bgr, const SimilarityTransform& to_face, const PreprocessOptions& options,
                float* output) {
  check_inputs(bgr, options);
  const SimilarityTransform back = to_face.inverse();
  const Normalization norm(options);
  const std::size_t plane =
      static_cast<std::size_t>(options.width) * static_cast<std::size_t>(options.height);
  const int max_x = bgr.width - 1, max_y = bgr.height - 1;
  const std::uint8_t* pixels = bgr.planes[0];
  const std::ptrdiff_t stride = bgr.strides[0];
  // Walks each output row along the inverse map (x advances the source position by (a, b)); a tap outside
  // the image reads 0, as cv2.warpAffine's default constant border.
  const auto step_x = static_cast<float>(back.a), step_y = static_cast<float>(back.b);
  for (int y = 0; y < options.height; ++y) {
    const auto start = back.map(0.0, y);
    auto sx = static_cast<float>(start[0]);
    auto sy = static_cast<float>(start[1]);
    float* out = output + static_cast<std::size_t>(y) * static_cast<std::size_t>(options.width);
    for (int x = 0; x < options.width; ++x, sx += step_x, sy += step_y) {
      const float fx = std::floor(sx), fy = std::floor(sy);
      const float wx = sx - fx, wy = sy - fy;
      const int x0 = static_cast<int>(fx), y0 = static_cast<int>(fy);
      float taps[4][3] = {};
      if (x0 >= 0 && y0 >= 0 && x0 < max_x && y0 < max_y) {  // all four taps inside: the common case
        const std::uint8_t* p = pixels + y0 * stride + x0 * 3;
        for (int c = 0; c < 3; ++c) {
          taps[0][c] = p[c];
          taps[1][c] = p[3 + c];
          taps[2][c] = p[stride + c];
          taps[3][c] = p[stride + 3 + c];
        }
      } else if (x0 >= -1 && y0 >= -1 && x0 <= max_x && y0 <= max_y) {
        for (int k = 0; k < 4; ++k) {
          const int tx = x0 + (k & 1), ty = y0 + (k >> 1);
          if (tx < 0 || ty < 0 || tx > max_x || ty > max_y) continue;
          const std::uint8_t* p = pixels + ty * stride + tx * 3;
          for (int c = 0; c < 3; ++c) taps[k][c] = p[c];
        }
      }
      for (std::size_t c = 0; c < 3; ++c) {
        const auto s = static_cast<std::size_t>(norm.source[c]);
        const float top = taps[0][s] + wx * (taps[1][s] - taps[0][s]);
        const float bottom = taps[2][s] + wx * (taps[3][s] - taps[2][s]);
        out[c * plane + static_cast<std::size_t>(x)] =
            (top + wy * (bottom - top)) * norm.multiplier[c] + norm.offset[c];
      }
    }
  }
}

void align_face_reference(const ImageView& bgr, const SimilarityTransform& to_face,
                          const PreprocessOptions& options, float* output) {
  check_inputs(bgr, options);
  const SimilarityTransform back = to_face.inverse();
  const std::size_t plane =
      static_cast<std::size_t>(options.width) * static_cast<std::size_t>(options.height);
  auto sample = [&](int x, int y, int channel) -> double {
    if (x < 0 || y < 0 || x >= bgr.width || y >= bgr.height) return 0.0;
    return bgr.planes[0][y * bgr.strides[0] + x * 3 + channel];
  };
  for (int y = 0; y < options.height; ++y) {
    for (int x = 0; x < options.width; ++x) {
      const auto [sx, sy] = back.map(x, y);
      const double fx = std::floor(sx), fy = std::floor(sy);
      const double wx = sx - fx, wy = sy - fy;
      const int x0 = static_cast<int>(fx), y0 = static_cast<int>(fy);
      for (int c = 0; c < 3; ++c) {
        const int source = options.rgb ? 2 - c : c;
        const double top = (1 - wx) * sample(x0, y0, source) + wx * sample(x0 + 1, y0, source);
        const double bottom = (1 - wx) * sample(x0, y0 + 1, source) + wx * sample(x0 + 1, y0 + 1, source);
        const double value = (1 - wy) * top + wy * bottom;
        output[static_cast<std::size_t>(c) * plane + static_cast<std::size_t>(y * options.width + x)] =
            static_cast<float>(
                (value * double{options.scale} - double{options.mean[static_cast<std::size_t>(c)]}) /
                double{options.std[static_cast<std::size_t>(c)]});
      }
    }
  }
}

}  // namespace vapipe::vision
