#include "vision/fused_preprocess.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
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

// The per-column arithmetic runs over contiguous arrays so the compiler vectorizes it; on x86-64 each
// kernel is also compiled for AVX2 and AVX-512 and picked at load time (the build targets baseline x86-64).
// Not under ThreadSanitizer: the ifunc resolvers run during relocation, before the TSan runtime exists, and
// GCC instruments them (the process dies before main).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define VAPIPE_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VAPIPE_VECTOR_CLONES
#endif

// BGR: left[x] / right[x] hold the 4 bytes at the column's taps (B, G, R in the low three).
VAPIPE_VECTOR_CLONES void blend_bgr_columns(const std::uint32_t* __restrict left,
                                            const std::uint32_t* __restrict right,
                                            const float* __restrict weight, int width,
                                            float* __restrict out_b, float* __restrict out_g,
                                            float* __restrict out_r) {
  for (int x = 0; x < width; ++x) {
    const std::uint32_t l = left[x];
    const std::uint32_t r = right[x];
    const float w = weight[x];
    const auto lb = static_cast<float>(static_cast<std::int32_t>(l & 0xFF));
    const auto lg = static_cast<float>(static_cast<std::int32_t>((l >> 8) & 0xFF));
    const auto lr = static_cast<float>(static_cast<std::int32_t>((l >> 16) & 0xFF));
    const auto rb = static_cast<float>(static_cast<std::int32_t>(r & 0xFF));
    const auto rg = static_cast<float>(static_cast<std::int32_t>((r >> 8) & 0xFF));
    const auto rr = static_cast<float>(static_cast<std::int32_t>((r >> 16) & 0xFF));
    out_b[x] = lb + w * (rb - lb);
    out_g[x] = lg + w * (rg - lg);
    out_r[x] = lr + w * (rr - lr);
  }
}

// YUV: luma_*[x] the taps' Y, chroma_*[x] their U | V << 8; the same integer conversion as yuv_to_bgr.
VAPIPE_VECTOR_CLONES void blend_yuv_columns(const std::uint32_t* __restrict luma_left,
                                            const std::uint32_t* __restrict luma_right,
                                            const std::uint32_t* __restrict chroma_left,
                                            const std::uint32_t* __restrict chroma_right,
                                            const float* __restrict weight, detail::YuvCoefficients k,
                                            int width, float* __restrict out_b, float* __restrict out_g,
                                            float* __restrict out_r) {
  constexpr int kHalf = 1 << (detail::kYuvShift - 1);
  auto channel = [](int value) {
    return static_cast<float>(std::min(std::max(value >> detail::kYuvShift, 0), 255));
  };
  for (int x = 0; x < width; ++x) {
    const int la = std::max(0, static_cast<int>(luma_left[x]) - 16) * k.y_gain + kHalf;
    const int lb = std::max(0, static_cast<int>(luma_right[x]) - 16) * k.y_gain + kHalf;
    const int ua = static_cast<int>(chroma_left[x] & 0xFF) - 128;
    const int va = static_cast<int>(chroma_left[x] >> 8) - 128;
    const int ub = static_cast<int>(chroma_right[x] & 0xFF) - 128;
    const int vb = static_cast<int>(chroma_right[x] >> 8) - 128;
    const float left_b = channel(la + k.u_to_b * ua);
    const float left_g = channel(la + k.u_to_g * ua + k.v_to_g * va);
    const float left_r = channel(la + k.v_to_r * va);
    const float right_b = channel(lb + k.u_to_b * ub);
    const float right_g = channel(lb + k.u_to_g * ub + k.v_to_g * vb);
    const float right_r = channel(lb + k.v_to_r * vb);
    const float w = weight[x];
    out_b[x] = left_b + w * (right_b - left_b);
    out_g[x] = left_g + w * (right_g - left_g);
    out_r[x] = left_r + w * (right_r - left_r);
  }
}

// One output row of one plane: vertical blend of two resized rows, then scale and offset.
VAPIPE_VECTOR_CLONES void blend_rows(const float* __restrict top, const float* __restrict bottom, float wy,
                                     float multiplier, float offset, int width, float* __restrict out) {
  for (int x = 0; x < width; ++x) out[x] = (top[x] + wy * (bottom[x] - top[x])) * multiplier + offset;
}

std::uint32_t load4(const std::uint8_t* bytes) {
  std::uint32_t value;
  std::memcpy(&value, bytes, sizeof value);
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap32(value);
  return value;
}

std::uint32_t load2(const std::uint8_t* bytes) {
  std::uint16_t value;
  std::memcpy(&value, bytes, sizeof value);
  if constexpr (std::endian::native == std::endian::big) value = __builtin_bswap16(value);
  return value;
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
      const std::string align = pre->value("letterbox_align", std::string("center"));
      if (align != "center" && align != "top_left")
        fail("network metadata: preprocess.letterbox_align '{}' is unknown (expected center or top_left)",
             align);
      options.letterbox_top_left = align == "top_left";
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

LetterboxTransform PreprocessOptions::transform_for(int source_width, int source_height) const {
  if (!letterbox) return compute_stretch(source_width, source_height, width, height);
  LetterboxTransform transform = compute_letterbox(source_width, source_height, width, height);
  if (letterbox_top_left) transform.pad_x = transform.pad_y = 0;
  return transform;
}

// Helper threads of one preprocessor. A job is published under a generation number; chunks are claimed
// with a compare-exchange on (generation << 32 | next chunk), so a helper waking late can never take a chunk
// of a newer job with the views of an older one, and the caller waits only for chunks that were taken.
class FusedPreprocessor::Helpers {
 public:
  Helpers(FusedPreprocessor& owner, int count) : owner_(owner) {
    for (int i = 1; i <= count; ++i) threads_.emplace_back([this, i] { serve(i); });
  }
  ~Helpers() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& thread : threads_) thread.join();
  }
  Helpers(const Helpers&) = delete;
  Helpers& operator=(const Helpers&) = delete;

  void run(const ImageView& source, float* output, int rows, int chunk_rows) {
    const int chunks = (rows + chunk_rows - 1) / chunk_rows;
    std::uint64_t generation = 0;
    {
      const std::lock_guard lock(mutex_);
      generation = ++generation_;
      job_ = {source, output, rows, chunk_rows, chunks};
      done_.store(0, std::memory_order_relaxed);
      ticket_.store(generation << 32, std::memory_order_release);
    }
    wake_.notify_all();
    work(job_, generation, 0);
    for (int spins = 0; done_.load(std::memory_order_acquire) < chunks; ++spins) {
      if (spins > 64) std::this_thread::yield();  // a helper holds a chunk: let it run
    }
  }

 private:
  struct Job {
    ImageView source;
    float* output = nullptr;
    int rows = 0;
    int chunk_rows = 0;
    int chunks = 0;
  };

  void work(const Job& job, std::uint64_t generation, int participant) {
    std::uint64_t ticket = ticket_.load(std::memory_order_acquire);
    for (;;) {
      if ((ticket >> 32) != generation || static_cast<int>(ticket & 0xFFFFFFFFu) >= job.chunks) return;
      if (!ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel)) continue;
      const int chunk = static_cast<int>(ticket & 0xFFFFFFFFu);
      const int first = chunk * job.chunk_rows;
      owner_.run_rows(job.source, job.output, owner_.scratch_[participant], first,
                      std::min(job.rows, first + job.chunk_rows));
      done_.fetch_add(1, std::memory_order_acq_rel);
      ticket = ticket_.load(std::memory_order_acquire);
    }
  }

  void serve(int participant) {
    std::uint64_t seen = 0;
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
      }
      work(job, seen, participant);
    }
  }

  FusedPreprocessor& owner_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::uint64_t generation_ = 0;
  Job job_;
  std::atomic<std::uint64_t> ticket_{0};
  std::atomic<int> done_{0};
};

FusedPreprocessor::~FusedPreprocessor() = default;

FusedPreprocessor::FusedPreprocessor(PixelFormat format, int source_width, int source_height,
                                     const PreprocessOptions& options, int threads)
    : format_(format), options_(options), threads_(std::max(1, threads)) {
  transform_ = options.transform_for(source_width, source_height);
  for (int c = 0; c < 3; ++c) {
    multiplier_[c] = options.scale / options.std[c];
    offset_[c] = -options.mean[c] / options.std[c];
    source_plane_[c] = options.rgb ? 2 - c : c;  // the map is its own inverse
  }
  const int resized_width = transform_.resized_width;
  const int resized_height = transform_.resized_height;
  const bool bgr = format_ == PixelFormat::kBgr24;
  column_x0_.resize(resized_width);
  column_x1_.resize(resized_width);
  column_weight_.resize(resized_width);
  if (!bgr) {
    chroma_x0_.resize(resized_width);
    chroma_x1_.resize(resized_width);
  }
  const int chroma_step = format_ == PixelFormat::kNv12 ? 2 : 1;  // NV12 interleaves U, V
  for (int x = 0; x < resized_width; ++x) {
    const Tap tap = linear_tap(x, source_width, resized_width);
    column_x0_[x] = bgr ? 3 * tap.first : tap.first;
    column_x1_[x] = bgr ? 3 * tap.second : tap.second;
    column_weight_[x] = tap.weight;
    if (!bgr) {
      chroma_x0_[x] = (tap.first >> 1) * chroma_step;
      chroma_x1_[x] = (tap.second >> 1) * chroma_step;
    }
    // A 4-byte read at a tap stays inside the row's 3 * width bytes unless the tap is the last pixel
    // (taps grow with x, so these columns are a prefix).
    if (bgr && tap.second + 1 < source_width) wide_columns_ = x + 1;
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
  threads_ = std::min(threads_, std::max(1, options_.height / 16));
  scratch_.resize(threads_);
  for (Scratch& scratch : scratch_) {
    scratch.rows.resize(static_cast<std::size_t>(6) * resized_width);
    scratch.left.resize(resized_width);
    scratch.right.resize(resized_width);
    if (!bgr) {
      scratch.chroma_left.resize(resized_width);
      scratch.chroma_right.resize(resized_width);
    }
  }
  if (threads_ > 1) helpers_ = std::make_unique<Helpers>(*this, threads_ - 1);
}

void FusedPreprocessor::horizontal_pass(const ImageView& source, int source_row, Scratch& scratch,
                                        float* planes) const {
  const int width = transform_.resized_width;
  const std::int32_t* x0 = column_x0_.data();
  const std::int32_t* x1 = column_x1_.data();
  std::uint32_t* left = scratch.left.data();
  std::uint32_t* right = scratch.right.data();
  // Output plane of each source channel (B, G, R), so the loops below index nothing at run time.
  float* out_b = planes + source_plane_[0] * static_cast<std::ptrdiff_t>(width);
  float* out_g = planes + source_plane_[1] * static_cast<std::ptrdiff_t>(width);
  float* out_r = planes + source_plane_[2] * static_cast<std::ptrdiff_t>(width);
  // Gather the taps into contiguous arrays (scalar loads), then blend them in one vectorized loop.
  if (format_ == PixelFormat::kBgr24) {
    const std::uint8_t* row = source.planes[0] + source_row * source.strides[0];
    const int wide = wide_columns_;  // a local: the stores below may alias members as far as GCC knows
    for (int x = 0; x < wide; ++x) {
      left[x] = load4(row + x0[x]);
      right[x] = load4(row + x1[x]);
    }
    for (int x = wide; x < width; ++x) {  // taps on the last pixel: byte by byte
      const std::uint8_t* l = row + x0[x];
      const std::uint8_t* r = row + x1[x];
      left[x] = l[0] | (l[1] << 8) | (l[2] << 16);
      right[x] = r[0] | (r[1] << 8) | (r[2] << 16);
    }
    blend_bgr_columns(left, right, column_weight_.data(), width, out_b, out_g, out_r);
    return;
  }
  const std::uint8_t* luma = source.planes[0] + source_row * source.strides[0];
  for (int x = 0; x < width; ++x) {
    left[x] = luma[x0[x]];
    right[x] = luma[x1[x]];
  }
  // Chroma has half the rows: two consecutive luma rows share their gathered chroma taps.
  const int chroma_row = source_row / 2;
  if (scratch.chroma_row != chroma_row) {
    const std::int32_t* c0 = chroma_x0_.data();
    const std::int32_t* c1 = chroma_x1_.data();
    std::uint32_t* chroma_left = scratch.chroma_left.data();
    std::uint32_t* chroma_right = scratch.chroma_right.data();
    const std::uint8_t* row_u = source.planes[1] + chroma_row * source.strides[1];
    const std::uint8_t* row_v =
        format_ == PixelFormat::kI420 ? source.planes[2] + chroma_row * source.strides[2] : row_u + 1;
    if (format_ == PixelFormat::kNv12) {  // U, V adjacent: one 2-byte load per tap
      for (int x = 0; x < width; ++x) {
        chroma_left[x] = load2(row_u + c0[x]);
        chroma_right[x] = load2(row_u + c1[x]);
      }
    } else {
      for (int x = 0; x < width; ++x) {
        chroma_left[x] = row_u[c0[x]] | (row_v[c0[x]] << 8);
        chroma_right[x] = row_u[c1[x]] | (row_v[c1[x]] << 8);
      }
    }
    scratch.chroma_row = chroma_row;
  }
  blend_yuv_columns(left, right, scratch.chroma_left.data(), scratch.chroma_right.data(),
                    column_weight_.data(), detail::yuv_coefficients(options_.yuv_matrix), width, out_b, out_g,
                    out_r);
}

void FusedPreprocessor::run_band(const ImageView& source, float* output, Scratch& scratch, int first_row,
                                 int end_row) {
  const int width = options_.width;
  const int resized_width = transform_.resized_width;
  const int pad_x = transform_.pad_x;
  const std::ptrdiff_t plane_size = static_cast<std::ptrdiff_t>(width) * options_.height;
  float* rows[2] = {scratch.rows.data(),
                    scratch.rows.data() + 3 * static_cast<std::ptrdiff_t>(resized_width)};
  int cached[2] = {-1, -1};
  scratch.chroma_row = -1;  // the source may be another frame
  for (int y = first_row; y < end_row; ++y) {
    const int y0 = row_y0_[y];
    const int y1 = row_y1_[y];
    // Downscaling moves the taps down monotonically: reuse a horizontally resized row when we can.
    if (cached[0] != y0) {
      if (cached[1] == y0) {
        std::swap(rows[0], rows[1]);
        std::swap(cached[0], cached[1]);
      } else {
        horizontal_pass(source, y0, scratch, rows[0]);
        cached[0] = y0;
      }
    }
    if (y1 != y0 && cached[1] != y1) {
      horizontal_pass(source, y1, scratch, rows[1]);
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
      blend_rows(top, bottom, wy, multiplier, offset, resized_width, out_row + pad_x);
      std::fill(out_row + pad_x + resized_width, out_row + width, pad);
    }
  }
}

void FusedPreprocessor::run_rows(const ImageView& source, float* output, Scratch& scratch, int first_row,
                                 int end_row) {
  const int width = options_.width;
  const std::ptrdiff_t plane_size = static_cast<std::ptrdiff_t>(width) * options_.height;
  const int image_first = transform_.pad_y;
  const int image_end = transform_.pad_y + transform_.resized_height;
  // Padding above and below the image: one contiguous fill per plane.
  auto fill_rows = [&](int first, int end) {
    if (first >= end) return;
    for (int c = 0; c < 3; ++c) {
      const float pad = static_cast<float>(options_.pad_value) * multiplier_[c] + offset_[c];
      float* plane = output + c * plane_size;
      std::fill(plane + static_cast<std::ptrdiff_t>(first) * width,
                plane + static_cast<std::ptrdiff_t>(end) * width, pad);
    }
  };
  fill_rows(first_row, std::min(end_row, image_first));
  fill_rows(std::max(first_row, image_end), end_row);
  const int first = std::max(first_row, image_first);
  const int end = std::min(end_row, image_end);
  if (first < end) run_band(source, output, scratch, first - image_first, end - image_first);
}

void FusedPreprocessor::run(const ImageView& source, float* output) {
  if (source.format != format_ || source.width != transform_.source_width ||
      source.height != transform_.source_height) {
    fail("preprocess: got a {} {}x{} image, prepared for {} {}x{}", format_name(source.format), source.width,
         source.height, format_name(format_), transform_.source_width, transform_.source_height);
  }
  if (!helpers_) {
    run_rows(source, output, scratch_[0], 0, options_.height);
    return;
  }
  // With helpers, run() times itself and uses the faster of "caller alone" and "caller + helpers", trying
  // the other one every 16th run: on a busy machine a helper that holds a chunk and is preempted costs the
  // caller a scheduler slice, and there one thread wins (measured on the 2-vCPU development VM).
  const int mode_known = (seconds_[0] > 0.0 ? 1 : 0) | (seconds_[1] > 0.0 ? 2 : 0);
  bool threaded = false;
  if (mode_known != 3) {
    threaded = (mode_known & 2) == 0;
  } else {
    threaded = seconds_[1] < seconds_[0];
    if (++runs_ % 16 == 0) threaded = !threaded;
  }
  const auto start = std::chrono::steady_clock::now();
  if (threaded) {
    // Chunks of about an eighth of a thread's share: small enough to balance, large enough that the two
    // resized rows each chunk starts without cost little.
    const int chunk_rows = std::max(16, options_.height / (8 * threads_));
    helpers_->run(source, output, options_.height, chunk_rows);
  } else {
    run_rows(source, output, scratch_[0], 0, options_.height);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double& average = seconds_[threaded ? 1 : 0];
  average = average > 0.0 ? 0.75 * average + 0.25 * seconds : seconds;
}

LetterboxTransform preprocess(const ImageView& source, const PreprocessOptions& options, float* output) {
  FusedPreprocessor preprocessor(source.format, source.width, source.height, options);
  preprocessor.run(source, output);
  return preprocessor.transform();
}

LetterboxTransform preprocess_reference(const ImageView& source, const PreprocessOptions& options,
                                        float* output) {
  const LetterboxTransform transform = options.transform_for(source.width, source.height);
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
