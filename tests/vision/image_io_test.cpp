#include "vision/image_io.hpp"

#include <fstream>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "core/error.hpp"
#include "support/test_data.hpp"
#include "vision/osd.hpp"

namespace vapipe::vision {
namespace {

TEST(ImageIo, MissingFileErrorNamesThePath) {
  try {
    load_image("/nonexistent/dir/photo.jpg");
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/dir/photo.jpg"), std::string::npos);
  }
}

TEST(ImageIo, UndecodableFileErrorNamesThePath) {
  const auto path = test::scratch_dir() / "not-an-image.jpg";
  std::ofstream(path) << "hello";
  try {
    load_image(path.string());
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos);
  }
}

TEST(ImageIo, DrawnBoxesRoundTripThroughAFile) {
  cv::Mat image(120, 160, CV_8UC3, cv::Scalar::all(0));
  const OsdBox boxes[] = {{20, 30, 100, 90, 0, "person 0.91"}};
  draw_boxes(image, boxes);
  EXPECT_GT(cv::countNonZero(image.reshape(1)), 100);
  const auto path = (test::scratch_dir() / "annotated.png").string();
  save_image(path, image);
  const cv::Mat loaded = load_image(path);
  EXPECT_EQ(loaded.cols, 160);
  EXPECT_EQ(cv::norm(loaded, image, cv::NORM_INF), 0.0);
}

}  // namespace
}  // namespace vapipe::vision
