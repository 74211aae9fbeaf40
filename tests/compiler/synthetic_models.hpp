#pragma once
// Small ONNX graphs shared by the compiler's synthetic tests (tests/compiler/compiler_synthetic_test.cpp,
// which checks what each lowers to) and the fuzz corpus (fuzz/make_seeds.cpp, which starts the ONNX and
// .vpk fuzzers from them): one definition, so the seeds cover exactly the graphs the tests prove correct.
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "compiler/onnx_builder.hpp"

namespace vapipe::test::synthetic {

// x [1,4,6,6] -> Reshape to [N, 2, -1] with N read from Shape(x) -> Transpose -> Gather(axis 2, index 1):
// the shape chain folds away, y [1,72] = x[72..143].
inline OnnxBuilder shape_chain_model() {
  OnnxBuilder b(11);
  b.input("x", {1, 4, 6, 6});
  b.initializer_i64("idx0", {}, {0});
  b.initializer_i64("two", {1}, {2});
  b.initializer_i64("minus1", {1}, {-1});
  b.initializer_i64("one", {}, {1});
  b.node("Shape", {"x"}, {"shape"});
  b.node("Gather", {"shape", "idx0"}, {"n"});
  auto& unsq = b.node("Unsqueeze", {"n"}, {"n1"});
  OnnxBuilder::attr(unsq, "axes", std::vector<std::int64_t>{0});
  auto& cat = b.node("Concat", {"n1", "two", "minus1"}, {"target"});
  OnnxBuilder::attr(cat, "axis", std::int64_t{0});
  b.node("Reshape", {"x", "target"}, {"r"});
  auto& tr = b.node("Transpose", {"r"}, {"t"});
  OnnxBuilder::attr(tr, "perm", std::vector<std::int64_t>{0, 2, 1});
  auto& g = b.node("Gather", {"t", "one"}, {"y"});
  OnnxBuilder::attr(g, "axis", std::int64_t{2});
  b.output("y");
  return b;
}

// x [1,3,2,2] -> Split by sizes {1,2} -> Slice of the second part (inputs, not attributes) [1,2,2,1] and a
// nearest Resize by scales of the first [1,1,4,4]. Outputs: "up", "sl".
inline OnnxBuilder split_slice_resize_model() {
  OnnxBuilder b(13);
  b.input("x", {1, 3, 2, 2});
  b.initializer_i64("sizes", {2}, {1, 2});
  b.initializer_i64("starts", {1}, {1});
  b.initializer_i64("ends", {1}, {std::numeric_limits<std::int64_t>::max()});
  b.initializer_i64("axes", {1}, {3});
  b.initializer("scales", {4}, {1.0F, 1.0F, 2.0F, 2.0F});
  auto& split = b.node("Split", {"x", "sizes"}, {"a", "bb"});
  OnnxBuilder::attr(split, "axis", std::int64_t{1});
  b.node("Slice", {"bb", "starts", "ends", "axes"}, {"sl"});
  auto& resize = b.node("Resize", {"a", "", "scales"}, {"up"});
  OnnxBuilder::attr_s(resize, "mode", "nearest");
  OnnxBuilder::attr_s(resize, "coordinate_transformation_mode", "asymmetric");
  OnnxBuilder::attr_s(resize, "nearest_mode", "floor");
  b.output("up");
  b.output("sl");
  return b;
}

// An FP16 model (FP16 input, weights and output around one Conv): y = 2x + 1 once lowered to F32.
inline OnnxBuilder fp16_model() {
  OnnxBuilder b(17);
  b.input("x", {1, 1, 2, 2}, onnx::TensorProto_DataType_FLOAT16);
  b.initializer_f16("w", {1, 1, 1, 1}, {0x4000});  // 2.0
  b.initializer_f16("b", {1}, {0x3C00});           // 1.0
  auto& cast = b.node("Cast", {"x"}, {"xf"});
  OnnxBuilder::attr(cast, "to", std::int64_t{onnx::TensorProto_DataType_FLOAT});
  b.node("Conv", {"xf", "w", "b"}, {"c"});
  b.node("Identity", {"c"}, {"ci"});
  auto& back = b.node("Cast", {"ci"}, {"y"});
  OnnxBuilder::attr(back, "to", std::int64_t{onnx::TensorProto_DataType_FLOAT16});
  b.output("y", {1, 1, 2, 2}, onnx::TensorProto_DataType_FLOAT16);
  return b;
}

}  // namespace vapipe::test::synthetic
