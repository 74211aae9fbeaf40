#include "core/package.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "support/test_data.hpp"

namespace vapipe::ir {
namespace {

Package make_package() {
  Network network;
  network.name = "tiny";
  network.metadata = {{"model_type", "raw"}};
  for (std::int64_t batch : {1, 4}) {
    Stage stage;
    stage.batch = batch;
    Graph& graph = stage.graph;
    const int input = graph.add_tensor({"x", DType::kF32, {batch, 2}, std::nullopt});
    // The same weights in both stages: the writer must store them once.
    const int weight = graph.add_tensor(
        {"w", DType::kF32, {batch, 2}, ConstBytes::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8})});
    const int output = graph.add_tensor({"y", DType::kF32, {batch, 2}, std::nullopt});
    graph.nodes.push_back({"add0", "Binary", {input, weight}, {output}, {{"alg", "add"}}});
    graph.inputs = {input};
    graph.outputs = {output};
    network.stages.push_back(std::move(stage));
  }
  Package package;
  package.networks.push_back(std::move(network));
  return package;
}

std::uint32_t version_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::uint32_t version = 0;
  in.seekg(8);
  in.read(reinterpret_cast<char*>(&version), sizeof(version));
  return version;
}

TEST(Package, ReducedPrecisionIsVersionTwoAndKeepsScales) {
  const auto dir = test::scratch_dir();
  write_package(make_package(), (dir / "f32.vpk").string());
  EXPECT_EQ(version_of((dir / "f32.vpk").string()), 1U);  // FP32 packages stay readable by older builds
  Package package = make_package();
  package.networks[0].precision = "int8";
  package.networks[0].stages[0].graph.tensors[2].dtype = DType::kS8;
  package.networks[0].stages[0].graph.tensors[2].scale = 0.25F;
  write_package(package, (dir / "int8.vpk").string());
  EXPECT_EQ(version_of((dir / "int8.vpk").string()), 2U);
  const Package loaded = read_package((dir / "int8.vpk").string());
  EXPECT_EQ(loaded.networks[0].precision, "int8");
  EXPECT_EQ(loaded.networks[0].stages[0].graph.tensors[2].dtype, DType::kS8);
  EXPECT_FLOAT_EQ(loaded.networks[0].stages[0].graph.tensors[2].scale, 0.25F);
  EXPECT_FLOAT_EQ(loaded.networks[0].stages[0].graph.tensors[0].scale, 0.0F);
}

TEST(Package, RoundTripKeepsGraphAndWeights) {
  const auto path = (test::scratch_dir() / "tiny.vpk").string();
  write_package(make_package(), path);
  const Package loaded = read_package(path);
  ASSERT_EQ(loaded.networks.size(), 1U);
  const Network& network = loaded.networks[0];
  EXPECT_EQ(network.name, "tiny");
  EXPECT_EQ(network.metadata.at("model_type"), "raw");
  ASSERT_EQ(network.stages.size(), 2U);
  EXPECT_EQ(network.stages[1].batch, 4);
  const Graph& graph = network.stages[1].graph;
  ASSERT_EQ(graph.nodes.size(), 1U);
  EXPECT_EQ(graph.nodes[0].attrs.at("alg"), "add");
  const auto weights = graph.tensors[1].data->as<float>();
  ASSERT_EQ(weights.size(), 8U);
  EXPECT_FLOAT_EQ(weights[7], 8.0F);
  // Deduplicated: both stages point at the same bytes of the mapping.
  EXPECT_EQ(network.stages[0].graph.tensors[1].data->data, graph.tensors[1].data->data);
}

TEST(Package, TruncatedFileIsRefused) {
  const auto path = (test::scratch_dir() / "cut.vpk").string();
  write_package(make_package(), path);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  try {
    read_package(path);
    FAIL() << "a truncated package was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("truncated"), std::string::npos) << error.what();
  }
}

TEST(Package, FlippedWeightByteIsRefused) {
  const auto path = (test::scratch_dir() / "flip.vpk").string();
  write_package(make_package(), path);
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-3, std::ios::end);
    file.put('\x7f');
  }
  EXPECT_THROW(read_package(path), Error);
}

TEST(Package, NonPackageIsRefused) {
  const auto path = (test::scratch_dir() / "text.vpk").string();
  std::ofstream(path) << "this is not a package, but it is long enough to hold a header of sixty-four bytes";
  try {
    read_package(path);
    FAIL() << "a text file was accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("not a vapipe package"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace vapipe::ir
