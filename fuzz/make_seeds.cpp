// Writes the synthetic seeds of the fuzz corpora (fuzz/make_seeds.sh runs it): tiny ONNX models covering
// the lowered op families (convolution with fusable activations and pooling here; shape chains, split/slice/
// resize and FP16 from the compiler tests' graphs, tests/compiler/synthetic_models.hpp), the .vpk packages of
// their lowered graphs, and SEI packets in every codec and framing.
// Weights are a few random floats: nothing here is a real model.
//
//   fuzz_make_seeds <corpus folder>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "compiler/onnx_builder.hpp"
#include "compiler/onnx_importer.hpp"
#include "compiler/onnx_model.hpp"
#include "compiler/synthetic_models.hpp"
#include "core/package.hpp"
#include "io/sei_codec.hpp"

namespace {

using vapipe::test::OnnxBuilder;
namespace synthetic = vapipe::test::synthetic;

OnnxBuilder conv_model() {
  std::mt19937 rng(1);
  OnnxBuilder b(17);
  b.input("x", {1, 3, 8, 8});
  b.random_initializer("w", {4, 3, 3, 3}, rng);
  b.random_initializer("bias", {4}, rng);
  b.random_initializer("w2", {4, 4, 1, 1}, rng);
  auto& conv = b.node("Conv", {"x", "w", "bias"}, {"c"});
  OnnxBuilder::attr(conv, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Sigmoid", {"c"}, {"s"});
  b.node("Mul", {"c", "s"}, {"a"});
  auto& pool = b.node("MaxPool", {"a"}, {"p"});
  OnnxBuilder::attr(pool, "kernel_shape", std::vector<std::int64_t>{2, 2});
  OnnxBuilder::attr(pool, "strides", std::vector<std::int64_t>{2, 2});
  b.node("Conv", {"p", "w2"}, {"c2"});
  b.node("LeakyRelu", {"c2"}, {"l2"});
  auto& average = b.node("AveragePool", {"l2"}, {"ap"});
  OnnxBuilder::attr(average, "kernel_shape", std::vector<std::int64_t>{1, 1});
  auto& cat = b.node("Concat", {"p", "ap"}, {"y"});
  OnnxBuilder::attr(cat, "axis", std::int64_t{1});
  b.output("y");
  return b;
}

void write_file(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus folder>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path corpus = argv[1];
  for (const char* target : {"onnx", "package", "sei"}) std::filesystem::create_directories(corpus / target);

  const std::pair<const char*, OnnxBuilder> models[] = {
      {"conv", conv_model()},
      {"shape_chain", synthetic::shape_chain_model()},
      {"split_slice_resize", synthetic::split_slice_resize_model()},
      {"fp16", synthetic::fp16_model()}};
  for (const auto& [name, builder] : models) {
    const auto onnx_path = builder.save(corpus / "onnx" / (std::string(name) + ".onnx"));
    const auto model = vapipe::compiler::load_onnx(onnx_path);
    vapipe::ir::Network network;
    network.name = name;
    network.metadata = {{"model_type", "yolov5s"}, {"class_names", {"person", "car"}}};
    for (std::int64_t batch : {1, 2}) {
      network.stages.push_back({batch, vapipe::compiler::lower_onnx(model, {.batch = batch})});
    }
    vapipe::ir::Package package;
    package.networks.push_back(std::move(network));
    vapipe::ir::write_package(package, (corpus / "package" / (std::string(name) + ".vpk")).string());
  }

  // First byte: bit 0 H.265, bit 1 Annex-B, bits 2.. the length size (sei_fuzzer.cpp).
  using namespace vapipe::io;
  const std::vector<MetadataBox> boxes = {{10, 20, 110, 220, 0.9F, 0, 3}, {5, 5, 50, 60, 0.4F, 2, -1}};
  // The extension message too (docs/metadata.md): landmarks, a known and an unknown face.
  std::vector<MetadataBox> faces = boxes;
  faces[0].keypoints = {{30, 60, 1}, {80, 60, 1}, {55, 90, 1}, {35, 120, 1}, {75, 120, 1}};
  faces[0].identity = MetadataIdentity{"0016", 0.62F};
  faces[1].identity = MetadataIdentity{"", 0.18F};
  const std::vector<std::uint8_t> slice = {0x00, 0x00, 0x00, 0x01, 0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01};
  for (int selector : {0b00, 0b01, 0b10, 0b11, 0b0100, 0b1000}) {
    const VideoCodec codec = (selector & 1) != 0 ? VideoCodec::kH265 : VideoCodec::kH264;
    const int length_sizes[] = {1, 2, 4};
    const NalFraming framing = (selector & 2) != 0
                                   ? NalFraming::annexb()
                                   : NalFraming::length_prefixed(length_sizes[(selector >> 2) % 3]);
    SeiInserter inserter(codec, framing);
    std::vector<std::uint8_t> seed = {static_cast<std::uint8_t>(selector)};
    const auto packet = framing.annex_b ? inserter.insert(slice, boxes) : inserter.make_nal(boxes);
    seed.insert(seed.end(), packet.begin(), packet.end());
    write_file(corpus / "sei" / ("boxes_" + std::to_string(selector) + ".bin"), seed);
    seed.resize(1);
    const auto with_faces = framing.annex_b ? inserter.insert(slice, faces) : inserter.make_nal(faces);
    seed.insert(seed.end(), with_faces.begin(), with_faces.end());
    write_file(corpus / "sei" / ("faces_" + std::to_string(selector) + ".bin"), seed);
  }
  return 0;
}
