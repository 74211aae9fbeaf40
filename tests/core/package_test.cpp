#include "core/package.hpp"

#include <gtest/gtest.h>

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include <fmt/format.h>

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
        {"w", DType::kF32, {4, 2}, ConstBytes::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8})});
    const int output = graph.add_tensor({"y", DType::kF32, {4, 2}, std::nullopt});
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

// Integer convolutions (pre-quantized ONNX on its own integers) mean something a version-2 runtime would
// misread (weight_scales as multipliers, zero points, u8 tensors): version 3, refused by older builds.
TEST(Package, IntegerConvolutionsAreVersionThree) {
  const auto dir = test::scratch_dir();
  Package package = make_package();
  package.networks[0].precision = "int8";
  package.networks[0].stages[0].graph.tensors[2].dtype = DType::kU8;
  package.networks[0].stages[0].graph.tensors[2].scale = 1.0F;
  package.networks[0].stages[1].graph.nodes[0].attrs["integer"] = true;
  write_package(package, (dir / "integer.vpk").string());
  EXPECT_EQ(version_of((dir / "integer.vpk").string()), 3U);
  const Package loaded = read_package((dir / "integer.vpk").string());
  EXPECT_EQ(loaded.networks[0].stages[0].graph.tensors[2].dtype, DType::kU8);
  EXPECT_TRUE(loaded.networks[0].stages[1].graph.nodes[0].attrs.value("integer", false));
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

// The manifest of `package` rewritten by `edit` into an otherwise valid file (layout and checksums
// recomputed), the way a buggy or hostile writer would make it.
std::string write_with_manifest(const Package& package, const std::string& name,
                                const std::function<void(nlohmann::json&)>& edit) {
  const auto path = (test::scratch_dir() / name).string();
  write_package(package, path);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint64_t manifest_size = 0, blob_offset = 0, blob_size = 0;
  std::memcpy(&manifest_size, bytes.data() + 24, sizeof(manifest_size));
  std::memcpy(&blob_offset, bytes.data() + 32, sizeof(blob_offset));
  std::memcpy(&blob_size, bytes.data() + 40, sizeof(blob_size));
  auto manifest = nlohmann::json::parse(bytes.substr(64, manifest_size));
  edit(manifest);
  // Laid out again as write_package does: header, manifest, the blob 64-byte aligned after it.
  const std::string text = manifest.dump();
  const std::string blob = bytes.substr(blob_offset, blob_size);
  manifest_size = text.size();
  blob_offset = (64 + manifest_size + 63) / 64 * 64;
  bytes.resize(64);
  bytes += text;
  bytes.resize(blob_offset, '\0');
  bytes += blob;
  std::memcpy(bytes.data() + 24, &manifest_size, sizeof(manifest_size));
  std::memcpy(bytes.data() + 32, &blob_offset, sizeof(blob_offset));
  const auto crc = [&](std::size_t offset, std::size_t size) {
    return static_cast<std::uint32_t>(::crc32(::crc32(0L, Z_NULL, 0),
                                              reinterpret_cast<const Bytef*>(bytes.data() + offset),
                                              static_cast<uInt>(size)));
  };
  const std::uint32_t manifest_crc = crc(64, manifest_size);
  std::memcpy(bytes.data() + 48, &manifest_crc, sizeof(manifest_crc));
  const std::uint32_t header_crc = crc(0, 56);
  std::memcpy(bytes.data() + 56, &header_crc, sizeof(header_crc));
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

std::string load_error(const std::string& path) {
  try {
    read_package(path);
  } catch (const Error& error) {
    return error.what();
  }
  return "(accepted)";
}

TEST(Package, FileLargerThanTheModelLimitIsRefusedBeforeMapping) {
  const auto path = (test::scratch_dir() / "huge.vpk").string();
  write_package(make_package(), path);
  std::filesystem::resize_file(path, kMaxPackageBytes + 1);  // sparse: no disk used
  EXPECT_EQ(load_error(path), fmt::format("{}: {} bytes is more than a model package may have ({} bytes)",
                                          path, kMaxPackageBytes + 1, kMaxPackageBytes));
}

TEST(Package, ConstantWhoseBytesDoNotMatchItsShapeIsRefused) {
  const auto path = write_with_manifest(make_package(), "short.vpk", [](nlohmann::json& manifest) {
    manifest["networks"][0]["stages"][0]["tensors"][1]["shape"] = {64, 2};
  });
  EXPECT_NE(load_error(path).find("tensor 'w': 32 bytes of data, its shape 64x2 of f32 needs 512"),
            std::string::npos)
      << load_error(path);
}

TEST(Package, ShapeBeyondTheElementLimitOrNegativeIsRefused) {
  for (const auto& shape : {nlohmann::json{1 << 20, 1 << 20, 1 << 20}, nlohmann::json{-1, 2}}) {
    const auto path = write_with_manifest(make_package(), "dims.vpk", [&](nlohmann::json& manifest) {
      manifest["networks"][0]["stages"][0]["tensors"][0]["shape"] = shape;
    });
    EXPECT_NE(load_error(path).find("tensor 'x': shape"), std::string::npos) << load_error(path);
    EXPECT_NE(load_error(path).find("is negative or has more than 2147483648 elements"), std::string::npos);
  }
}

// Found by the package fuzzer: a float where an integer belongs was cast to int64 (undefined beyond range).
TEST(Package, NonIntegerOrOutOfRangeNumbersAreRefused) {
  const auto edited = [](const char* name, const std::function<void(nlohmann::json&)>& edit) {
    return load_error(write_with_manifest(make_package(), name, edit));
  };
  const auto message = [](const std::string& text, const char* part) {
    EXPECT_NE(text.find(part), std::string::npos) << text;
  };
  message(edited("float-dim.vpk",
                 [](nlohmann::json& m) {
                   m["networks"][0]["stages"][0]["tensors"][0]["shape"] = {1.11e72, 2};
                 }),
          "tensor 'x': shape: 1.11e+72 is not an integer in range");
  message(
      edited("big-index.vpk",
             [](nlohmann::json& m) { m["networks"][0]["stages"][0]["inputs"] = {std::int64_t{1} << 40}; }),
      "graph inputs: 1099511627776 is not an integer in range");
  message(edited("float-batch.vpk", [](nlohmann::json& m) { m["networks"][0]["stages"][0]["batch"] = 1.5; }),
          "stage batch: 1.5 is not an integer in range");
}

TEST(Package, ConstantOffsetThatWrapsAroundIsRefused) {
  // offset + size overflows 64 bits to a small number: it must not pass as "inside the weights".
  const auto path = write_with_manifest(make_package(), "wrap.vpk", [](nlohmann::json& manifest) {
    manifest["networks"][0]["stages"][0]["tensors"][1]["data"] = {{"offset", 18446744073709551552ULL},
                                                                  {"size", 96}};
  });
  EXPECT_NE(load_error(path).find("lies outside the weights section"), std::string::npos) << load_error(path);
}

}  // namespace
}  // namespace vapipe::ir
