// The imports of ArgMax, ReduceMean/ReduceMax and Tile on small ONNX graphs built in C++: what they accept,
// and the named refusals where vapipe's float32 activations or a batch-B stage of a batch-1 export would
// change the result (int64 indices, reductions and repeats over the batch axis).
#include <gtest/gtest.h>

#include <string>

#include "compiler/compiler.hpp"
#include "compiler/onnx_builder.hpp"
#include "compiler/reference_executor.hpp"
#include "core/error.hpp"
#include "support/test_data.hpp"

namespace vapipe::compiler {
namespace {

using test::OnnxBuilder;

ir::Graph compile_at(const std::string& path, std::int64_t batch) {
  CompileOptions options;
  options.onnx_path = path;
  options.batches = {batch};
  return compile_onnx(options).stages.at(0).graph;
}

// The compile error of `path` at `batch` (empty when it compiles).
std::string refusal(const std::string& path, std::int64_t batch = 1) {
  try {
    compile_at(path, batch);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

// x [1, 3, 4] -> ArgMax(axis 1, keepdims 0) -> `reader` of the indices.
std::string argmax_model(const std::string& reader, const std::string& name) {
  OnnxBuilder b(13);
  b.input("x", {1, 3, 4});
  auto& argmax = b.node("ArgMax", {"x"}, {"i"});
  OnnxBuilder::attr(argmax, "axis", std::int64_t{1});
  OnnxBuilder::attr(argmax, "keepdims", std::int64_t{0});
  if (reader == "output") {
    b.output("i", {}, onnx::TensorProto_DataType_INT64);
  } else if (reader == "Cast") {
    OnnxBuilder::attr(b.node("Cast", {"i"}, {"y"}), "to", std::int64_t{onnx::TensorProto_DataType_FLOAT});
    b.output("y");
  } else {
    b.initializer_i64("two", {}, {2});
    b.node(reader, {"i", "two"}, {"y"}, "divide");
    b.output("y", {}, onnx::TensorProto_DataType_INT64);
  }
  return b.save(test::scratch_dir() / name);
}

TEST(CompilerLinearOps, ArgMaxIndicesCastToFloatCompile) {
  const ir::Graph graph = compile_at(argmax_model("Cast", "argmax_cast.onnx"), 1);
  // Column maxima of a 3x4 matrix, one per row position: rows 2, 0, 1, 2.
  const std::vector<float> x{0, 5, 1, 1, 1, 0, 7, 1, 3, 2, 0, 4};
  const auto y = run_reference(graph, {x});
  EXPECT_EQ(y.at(0), (std::vector<float>{2, 0, 1, 2}));
}

TEST(CompilerLinearOps, ArgMaxInt64IndicesAsOutputOrIntegerOperandAreRefusedByName) {
  const std::string as_output = refusal(argmax_model("output", "argmax_output.onnx"));
  EXPECT_NE(as_output.find("(op ArgMax, opset 13) is not supported: its int64 indices are a graph output"),
            std::string::npos)
      << as_output;
  const std::string divided = refusal(argmax_model("Div", "argmax_div.onnx"));
  EXPECT_NE(divided.find("its int64 indices are read by 'divide' (op Div)"), std::string::npos) << divided;
}

// x [1, 2, 3, 4] -> op -> y; `configure` sets the node's attributes.
template <typename Configure>
std::string one_op_model(const std::string& op, const std::string& name, Configure configure) {
  OnnxBuilder b(13);
  b.input("x", {1, 2, 3, 4});
  b.initializer_i64("repeats", {4}, {2, 1, 1, 2});
  configure(b.node(
      op, op == "Tile" ? std::vector<std::string>{"x", "repeats"} : std::vector<std::string>{"x"}, {"y"}));
  b.output("y");
  return b.save(test::scratch_dir() / name);
}

TEST(CompilerLinearOps, ReductionsAndRepeatsOverTheBatchAxisAreRefusedInLargerStages) {
  const auto over_batch = [](onnx::NodeProto& node) { OnnxBuilder::attr(node, "axes", {0, 2}); };
  const std::string reduce = one_op_model("ReduceMean", "reduce_batch.onnx", over_batch);
  EXPECT_EQ(refusal(reduce, 1), "");  // at the exported batch it means what the model says
  EXPECT_NE(refusal(reduce, 2).find("reducing over axis 0 (the batch)"), std::string::npos)
      << refusal(reduce, 2);
  const std::string tile = one_op_model("Tile", "tile_batch.onnx", [](onnx::NodeProto&) {});
  EXPECT_EQ(refusal(tile, 1), "");
  EXPECT_NE(refusal(tile, 2).find("repeating axis 0 (the batch)"), std::string::npos) << refusal(tile, 2);
}

TEST(CompilerLinearOps, ReduceMaxOverOtherAxesRunsEachSampleOfABatchStageAlone) {
  const std::string path = one_op_model("ReduceMax", "reduce_max.onnx", [](onnx::NodeProto& node) {
    OnnxBuilder::attr(node, "axes", {-1, 1});
    OnnxBuilder::attr(node, "keepdims", std::int64_t{0});
  });
  const ir::Graph one = compile_at(path, 1);
  const ir::Graph three = compile_at(path, 3);
  EXPECT_EQ(three.tensors.at(static_cast<std::size_t>(three.outputs.at(0))).shape, (Shape{3, 3}));
  std::vector<float> all, singles;
  for (std::uint32_t i = 0; i < 3; ++i) {
    const auto x = test::random_values(24, 40 + i);
    all.insert(all.end(), x.begin(), x.end());
    const auto y = run_reference(one, {x}).at(0);
    singles.insert(singles.end(), y.begin(), y.end());
  }
  EXPECT_EQ(run_reference(three, {all}).at(0), singles);
}

}  // namespace
}  // namespace vapipe::compiler
