#include "ops/plain_kernels.hpp"

#include <gtest/gtest.h>

#include <random>

namespace vapipe::ops {
namespace {

TEST(PlainKernels, NhwcToNchwMatchesNaiveTranspose) {
  std::mt19937 generator(3);
  for (int trial = 0; trial < 50; ++trial) {
    const std::int64_t batch = 1 + generator() % 3;
    const std::int64_t channels = 1 + generator() % 300;
    const std::int64_t spatial = 1 + generator() % 500;
    std::vector<float> input(static_cast<std::size_t>(batch * channels * spatial));
    for (auto& value : input) value = static_cast<float>(generator() % 1000);
    std::vector<float> output(input.size(), -1.0F);
    nhwc_to_nchw(input.data(), output.data(), batch, channels, spatial);
    for (std::int64_t n = 0; n < batch; ++n) {
      for (std::int64_t c = 0; c < channels; ++c) {
        for (std::int64_t s = 0; s < spatial; ++s) {
          ASSERT_EQ(output[(n * channels + c) * spatial + s], input[(n * spatial + s) * channels + c])
              << "n=" << n << " c=" << c << " s=" << s << " of " << batch << "x" << channels << "x"
              << spatial;
        }
      }
    }
  }
}

TEST(PlainKernels, GatherRowsPicksIndices) {
  const std::vector<float> input{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // [2, 3, 2]
  std::vector<float> output(8);
  gather_rows(input.data(), 2, 3, 2, {2, 0}, output.data());
  EXPECT_EQ(output, (std::vector<float>{4, 5, 0, 1, 10, 11, 6, 7}));
}

TEST(PlainKernels, ResizeNearestReadsTheGivenSourceIndices) {
  const std::vector<float> input{1, 2, 3, 4};  // [1, 1, 2, 2]
  std::vector<float> output(16);
  resize_nearest(input.data(), {1, 1, 2, 2}, output.data(), {1, 1, 4, 4},
                 {{0}, {0}, {0, 0, 1, 1}, {0, 0, 1, 1}});
  EXPECT_EQ(output, (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
}

}  // namespace
}  // namespace vapipe::ops
