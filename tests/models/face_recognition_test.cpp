// Face recognition (issue 19): the face embedding task (models/tasks/face_embedding.cpp) recognized on both
// MobileFaceNet exports with each one's preprocessing, its decode, and the gallery (models/face_gallery.hpp)
// built by SCRFD + MobileFaceNet from real photos: identities by file and by folder, bad photos reported by
// name and skipped, the same person matched across two photos and a stranger left unknown. vapipe's
// MobileFaceNet outputs are checked against ONNX Runtime with every shared model in OrtAgreement.*.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "compiler/compiler.hpp"
#include "core/error.hpp"
#include "models/face_gallery.hpp"
#include "models/task.hpp"
#include "support/test_data.hpp"
#include "vision/image_io.hpp"

namespace vapipe {
namespace {

namespace fs = std::filesystem;

fs::path faces_dir() { return test::models_dir() / ".." / "data" / "faces"; }

std::shared_ptr<const Network> compile(const std::string& file, std::vector<std::int64_t> batches = {1}) {
  compiler::CompileOptions options;
  options.onnx_path = (test::models_dir() / file).string();
  options.batches = std::move(batches);
  return std::make_shared<const Network>(
      std::make_shared<const ir::Network>(compiler::compile_onnx(options)));
}

TEST(FaceEmbedding, BothMobileFaceNetExportsAreRecognizedWithTheirOwnPreprocessing) {
  VAPIPE_REQUIRE_MODEL("mobilefacenet.onnx");
  VAPIPE_REQUIRE_MODEL("mobilefacenet_prelu.onnx");
  const auto torch = compile("mobilefacenet.onnx");
  const auto paddle = compile("mobilefacenet_prelu.onnx");
  for (const auto& network : {torch, paddle}) {
    const auto& metadata = network->metadata();
    EXPECT_EQ(metadata.at("model_type"), "face_embedding") << network->name();
    EXPECT_EQ(metadata.at("preprocess").at("crop").at("rule"), "face_align") << network->name();
    EXPECT_EQ(metadata.at("head").at("dimensions"), 128) << network->name();
    EXPECT_EQ(metadata.at("class_names"), nlohmann::json::array({"face"}));
  }
  // PyTorch export: RGB, (x - 127.5) / 128; PaddlePaddle (input "x"): BGR, (x - 127.5) / 127.5.
  EXPECT_EQ(torch->metadata().at("preprocess").at("color"), "rgb");
  EXPECT_EQ(torch->metadata().at("preprocess").at("std")[0], 128.0);
  EXPECT_EQ(paddle->metadata().at("preprocess").at("color"), "bgr");
  EXPECT_EQ(paddle->metadata().at("preprocess").at("std")[0], 127.5);
}

TEST(FaceEmbedding, DecodeGivesAUnitVectorAndAZeroVectorStaysZero) {
  const models::TaskKind* task = models::find_task("face_embedding");
  ASSERT_NE(task, nullptr);
  const std::vector<TensorInfo> outputs = {{"output", DType::kF32, {2, 128}}};
  EXPECT_TRUE(task->recognizes(outputs));
  EXPECT_FALSE(task->recognizes({{"output", DType::kF32, {1, 1000}}}));  // a classifier's logits
  EXPECT_FALSE(task->recognizes({{"output", DType::kF32, {1, 17, 64, 48}}}));
  const nlohmann::json metadata = {{"head", {{"tensor", "output"}}}};
  const auto decoder = task->make_decoder(metadata, outputs);
  std::vector<float> values(256, 0.0f);
  for (int i = 0; i < 128; ++i) values[static_cast<std::size_t>(i)] = static_cast<float>(i % 7) - 3.0f;
  const std::vector<ConstTensorView> views = {ConstTensorView{values.data(), DType::kF32, {2, 128}}};
  std::vector<models::Detection> decoded;
  decoder->decode(views, 0, {}, decoded);
  ASSERT_EQ(decoded.size(), 1U);
  double norm = 0;
  for (float v : decoded[0].embedding) norm += double{v} * double{v};
  EXPECT_NEAR(norm, 1.0, 1e-6);
  EXPECT_NEAR(decoded[0].embedding[1] / decoded[0].embedding[2], -2.0 / -1.0, 1e-5);
  decoded.clear();
  decoder->decode(views, 1, {}, decoded);  // the second image: all zeros
  ASSERT_EQ(decoded.size(), 1U);
  EXPECT_TRUE(
      std::all_of(decoded[0].embedding.begin(), decoded[0].embedding.end(), [](float v) { return v == 0; }));
}

class FaceGalleryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* file : {"scrfd_500m_bnkps.onnx", "mobilefacenet.onnx"})
      if (!fs::exists(test::models_dir() / file))
        GTEST_SKIP() << file << " not found in " << test::models_dir();
    if (!fs::exists(faces_dir() / "0001.jpg")) GTEST_SKIP() << "no face photos in " << faces_dir();
    if (!fs::exists(test::opencv_data_dir() / "fruits.jpg"))
      GTEST_SKIP() << "Debian's opencv-doc not installed";
    detector_ = compile("scrfd_500m_bnkps.onnx");
    embedder_ = compile("mobilefacenet.onnx", {1, 4});
  }
  std::shared_ptr<const Network> detector_, embedder_;
};

TEST_F(FaceGalleryTest, LoadsIdentitiesReportsBadPhotosAndMatchesTheSamePerson) {
  const fs::path gallery = test::scratch_dir() / "gallery";
  fs::create_directories(gallery / "pair");
  fs::copy_file(faces_dir() / "0001.jpg", gallery / "alice.jpg");
  // 0016 and 0024 are one person: a folder per identity holds both.
  fs::copy_file(faces_dir() / "0016.jpg", gallery / "pair" / "a.jpg");
  fs::copy_file(faces_dir() / "0024.png", gallery / "pair" / "b.png");
  // A photo cut short, a photo without a face, and a file that is no image.
  {
    std::ifstream in(faces_dir() / "0003.jpg", std::ios::binary);
    std::vector<char> head(300);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(gallery / "broken.jpg", std::ios::binary).write(head.data(), in.gcount());
  }
  fs::copy_file(test::opencv_data_dir() / "fruits.jpg", gallery / "fruits.jpg");
  std::ofstream(gallery / "notes.txt") << "not a photo";
  // A file name that is not UTF-8 (Latin-1 "é"): no identity can be named by it in JSON.
  fs::copy_file(faces_dir() / "0003.jpg", gallery / "caf\xe9.jpg");

  models::StillImageFaces faces(detector_, embedder_);
  const models::FaceGallery loaded = models::FaceGallery::load(gallery, faces);
  EXPECT_EQ(loaded.names(), (std::vector<std::string>{"alice", "pair"}));
  ASSERT_EQ(loaded.entries().size(), 3U);
  ASSERT_EQ(loaded.skipped().size(), 3U);
  EXPECT_EQ(loaded.skipped()[0].source, "broken.jpg");
  EXPECT_NE(loaded.skipped()[0].reason.find("cannot be decoded"), std::string::npos)
      << loaded.skipped()[0].reason;
  EXPECT_EQ(loaded.skipped()[1].source, "caf\xef\xbf\xbd.jpg");  // reported as text: U+FFFD for the byte
  EXPECT_EQ(loaded.skipped()[1].reason, "its name is not UTF-8 text (rename the file or folder)");
  EXPECT_EQ(loaded.skipped()[2].source, "fruits.jpg");
  EXPECT_EQ(loaded.skipped()[2].reason, "no face found");

  // 0002 is alice in another photo; 0025 someone else.
  const auto embed = [&](const char* file) {
    const auto found = faces.faces(vision::load_image((faces_dir() / file).string()));
    EXPECT_FALSE(found.empty()) << file;
    return found.empty() ? std::vector<float>() : found.front().embedding;
  };
  const models::Identity same = loaded.match(embed("0002.jpg"), 0.5f);
  EXPECT_EQ(same.name, "alice") << "similarity " << same.similarity;
  EXPECT_GE(same.similarity, 0.5f);
  const models::Identity stranger = loaded.match(embed("0025.jpg"), 0.5f);
  EXPECT_FALSE(stranger.known()) << stranger.name << " " << stranger.similarity;
  EXPECT_LT(stranger.similarity, 0.5f);
  // The pair's second photo matches its first better than anyone else's.
  const models::Identity pair = loaded.match(embed("0024.png"), 0.5f);
  EXPECT_EQ(pair.name, "pair");
  EXPECT_GT(pair.similarity, 0.99f) << "0024.png is in the gallery itself";
}

TEST_F(FaceGalleryTest, AMissingFolderIsAnErrorNamingIt) {
  models::StillImageFaces faces(detector_, embedder_);
  try {
    models::FaceGallery::load(test::scratch_dir() / "nowhere", faces);
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("nowhere': no such folder"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace vapipe
