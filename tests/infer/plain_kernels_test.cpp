#include "ops/plain_kernels.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>
#include <dnnl.hpp>

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

// Seeded differential test of the int8 input quantization: against the plain reference and against the
// oneDNN reorder it replaces (same bytes), on values that hit every rounding and saturation case: ties
// (x.5 in both parities), both ends of the range and beyond, channel counts 1-5 (3 and 4 take the packed
// path), sizes around the kernel's 256-pixel chunks.
TEST(PlainKernels, QuantizeNchwToNhwcMatchesReferenceAndOnednnReorder) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  std::mt19937 generator(11);
  for (int trial = 0; trial < 60; ++trial) {
    const bool unsigned_output = trial % 2 == 0;
    const std::int64_t batch = 1 + generator() % 3;
    const std::int64_t channels = 1 + generator() % 5;
    const std::int64_t height = 1 + generator() % 40;
    const std::int64_t width = 1 + generator() % 40;
    const std::int64_t spatial = height * width;
    const float scale =
        trial % 3 == 0 ? 255.0F : 1.0F / (0.5F + static_cast<float>(generator() % 100) / 50.0F);
    std::vector<float> input(static_cast<std::size_t>(batch * channels * spatial));
    for (auto& value : input) {
      switch (generator() % 4) {
        case 0:
          value = (static_cast<float>(generator() % 700) - 350.0F) / 2.0F / scale;
          break;  // ties
        case 1:
          value = static_cast<float>(generator() % 256) / 255.0F;
          break;  // pixels
        case 2:
          value = (static_cast<float>(generator() % 2000) - 1000.0F) / scale;
          break;  // saturates
        default:
          value = std::uniform_real_distribution<float>(-200.0F, 300.0F)(generator) / scale;
      }
    }
    const std::size_t bytes = input.size();
    std::vector<std::uint8_t> fast(bytes + 8, 0xA5), reference(bytes, 0), onednn(bytes, 0);
    quantize_nchw_to_nhwc(input.data(), fast.data(), batch, channels, spatial, scale, unsigned_output);
    quantize_nchw_to_nhwc_reference(input.data(), reference.data(), batch, channels, spatial, scale,
                                    unsigned_output);
    const dnnl::memory::dims dims{batch, channels, height, width};
    const auto type = unsigned_output ? dnnl::memory::data_type::u8 : dnnl::memory::data_type::s8;
    dnnl::memory from({dims, dnnl::memory::data_type::f32, dnnl::memory::format_tag::abcd}, engine,
                      input.data());
    dnnl::memory to({dims, type, dnnl::memory::format_tag::acdb}, engine, onednn.data());
    dnnl::primitive_attr attr;
    attr.set_output_scales(0, {scale});
    dnnl::reorder(dnnl::reorder::primitive_desc(from, to, attr)).execute(stream, from, to);
    stream.wait();
    const std::string what = "trial " + std::to_string(trial) + ": " + std::to_string(batch) + "x" +
                             std::to_string(channels) + "x" + std::to_string(height) + "x" +
                             std::to_string(width) + (unsigned_output ? " u8" : " s8");
    ASSERT_EQ(0, std::memcmp(fast.data(), reference.data(), bytes)) << what;
    ASSERT_EQ(0, std::memcmp(reference.data(), onednn.data(), bytes)) << what;
    for (std::size_t i = bytes; i < fast.size(); ++i)
      ASSERT_EQ(fast[i], 0xA5) << what << ": wrote past the end";
  }
}

// Seeded differential test of the gated 1x1 head against a plain double-precision convolution.
TEST(PlainKernels, GatedHeadMatchesPlainConvolutionWhereTheGatePasses) {
  std::mt19937 generator(17);
  std::uniform_real_distribution<float> value(-1.0F, 1.0F);
  for (int trial = 0; trial < 20; ++trial) {
    const std::int64_t pixels = 1 + generator() % 300;
    const std::int64_t in_channels = 1 + generator() % 70;  // below, at and past the 8-wide partial sums
    const int per_anchor = 5 + static_cast<int>(generator() % 10);
    const std::int64_t anchors = 1 + generator() % 3;
    const std::int64_t out_channels = per_anchor * anchors;
    const int gate_channel = static_cast<int>(generator() % static_cast<unsigned>(per_anchor));
    std::vector<float> input(static_cast<std::size_t>(pixels * in_channels));
    std::vector<float> weights(static_cast<std::size_t>(out_channels * in_channels));
    std::vector<float> bias(static_cast<std::size_t>(out_channels));
    for (auto* values : {&input, &weights, &bias}) {
      for (auto& v : *values) v = value(generator);
    }
    const bool with_bias = trial % 4 != 3;
    const float gate_logit = trial % 5 == 4 ? -1e30F : value(generator) * 0.5F;
    constexpr float kUntouched = 1e30F;
    std::vector<float> output(static_cast<std::size_t>(pixels * out_channels), kUntouched);
    gated_head_1x1(input.data(), weights.data(), with_bias ? bias.data() : nullptr, output.data(), pixels,
                   in_channels, out_channels, per_anchor, gate_channel, gate_logit);
    const auto plain = [&](std::int64_t p, std::int64_t o) {
      double sum = with_bias ? static_cast<double>(bias[static_cast<std::size_t>(o)]) : 0.0;
      for (std::int64_t i = 0; i < in_channels; ++i) {
        sum += static_cast<double>(input[static_cast<std::size_t>(p * in_channels + i)]) *
               static_cast<double>(weights[static_cast<std::size_t>(o * in_channels + i)]);
      }
      return sum;
    };
    for (std::int64_t p = 0; p < pixels; ++p) {
      for (std::int64_t a = 0; a < anchors; ++a) {
        const std::int64_t gate = a * per_anchor + gate_channel;
        const float logit = output[static_cast<std::size_t>(p * out_channels + gate)];
        ASSERT_NEAR(logit, plain(p, gate), 1e-5) << "trial " << trial << " pixel " << p << " anchor " << a;
        for (std::int64_t o = a * per_anchor; o < (a + 1) * per_anchor; ++o) {
          const float y = output[static_cast<std::size_t>(p * out_channels + o)];
          if (logit > gate_logit) {
            ASSERT_NEAR(y, plain(p, o), 1e-5) << "trial " << trial << " pixel " << p << " channel " << o;
          } else if (o != gate) {
            ASSERT_EQ(y, kUntouched) << "trial " << trial << " pixel " << p << " channel " << o;
          }
        }
      }
    }
  }
}

// Seeded differential test of the chunked concatenation, both paths: chunks that are whole 16-byte blocks
// (inlined vector moves: channels-last s8 and f32 feature maps) and any other size (memcpy).
TEST(PlainKernels, ConcatPlainMatchesNaiveCopyForEveryChunkSize) {
  std::mt19937 generator(23);
  for (int trial = 0; trial < 40; ++trial) {
    const std::size_t element_bytes = trial % 2 == 0 ? 1 : 4;
    const bool blocks = trial % 4 < 2;
    const std::int64_t outer = 1 + generator() % 200;
    std::vector<std::int64_t> chunks(1 + generator() % 4);
    for (auto& chunk : chunks) {
      const std::int64_t per_block = 16 / static_cast<std::int64_t>(element_bytes);
      chunk = blocks ? per_block * (1 + generator() % 8) : 1 + generator() % 50;
    }
    std::vector<std::vector<std::uint8_t>> inputs;
    std::vector<void*> buffers;
    std::int64_t row = 0;
    for (auto chunk : chunks) {
      inputs.emplace_back(static_cast<std::size_t>(outer * chunk) * element_bytes);
      for (auto& byte : inputs.back()) byte = static_cast<std::uint8_t>(generator());
      buffers.push_back(inputs.back().data());
      row += chunk;
    }
    std::vector<std::uint8_t> output(static_cast<std::size_t>(outer * row) * element_bytes, 0);
    buffers.push_back(output.data());
    concat_plain(buffers, chunks, outer, element_bytes);
    std::vector<std::uint8_t> expected;
    for (std::int64_t o = 0; o < outer; ++o) {
      for (std::size_t i = 0; i < chunks.size(); ++i) {
        const auto bytes = static_cast<std::size_t>(chunks[i]) * element_bytes;
        const auto* begin = inputs[i].data() + static_cast<std::size_t>(o) * bytes;
        expected.insert(expected.end(), begin, begin + bytes);
      }
    }
    ASSERT_EQ(output, expected) << "trial " << trial;
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
