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

// A label near the right, top or bottom edge is moved inside the frame, never cut: its text has as many
// pixels as the same label drawn in the middle of a large canvas (white text on the label's colour).
TEST(ImageIo, LabelsAtTheFrameEdgesStayWhole) {
  const auto text_pixels = [](const cv::Mat& image) {
    cv::Mat white;
    cv::inRange(image, cv::Scalar(200, 200, 200), cv::Scalar(255, 255, 255), white);
    return cv::countNonZero(white);
  };
  const std::string label = "person 0.87";
  cv::Mat reference(432, 768, CV_8UC3, cv::Scalar::all(0));
  const OsdBox middle[] = {{300, 200, 360, 260, 0, label}};
  draw_boxes(reference, middle);
  const int whole = text_pixels(reference);
  ASSERT_GT(whole, 50);
  const OsdBox at_edges[][1] = {{{740, 200, 767, 260, 0, label}},  // right edge
                                {{300, 0, 360, 60, 0, label}},     // top edge: inside the box
                                {{700, 420, 767, 431, 0, label}},  // bottom-right corner, a flat box
                                {{-20, -30, 40, 20, 0, label}}};   // partly outside, top-left
  for (const auto& boxes : at_edges) {
    cv::Mat image(432, 768, CV_8UC3, cv::Scalar::all(0));
    draw_boxes(image, boxes);
    EXPECT_EQ(text_pixels(image), whole) << "box at " << boxes[0].x1 << "," << boxes[0].y1;
  }
}

// An instance mask is blended half and half with the box's colour (class 0: Ultralytics' red, BGR 56, 56, 255)
// on exactly its pixels, under the box's outline; a mask reaching past the frame is cut, not wrapped.
TEST(ImageIo, MasksAreBlendedOnTheirPixelsOnly) {
  cv::Mat image(120, 160, CV_8UC3, cv::Scalar(100, 100, 100));
  OsdBox box{20, 30, 100, 90, 0, ""};
  box.mask = {20, 30, 80, 60, std::vector<std::uint8_t>(80 * 60, 0)};
  for (int y = 10; y < 50; ++y)
    for (int x = 10; x < 40; ++x) box.mask.pixels[static_cast<std::size_t>(y * 80 + x)] = 1;
  OsdBox edge{150, 100, 170, 130, 0, ""};  // reaches past the right and bottom edges
  edge.mask = {150, 100, 20, 30, std::vector<std::uint8_t>(20 * 30, 1)};
  const OsdBox boxes[] = {box, edge};
  draw_boxes(image, boxes);
  // at(row, column): mask pixel (10, 10) of the box, its last one (39, 49).
  EXPECT_EQ(image.at<cv::Vec3b>(40, 30), cv::Vec3b(78, 78, 177));
  EXPECT_EQ(image.at<cv::Vec3b>(79, 59), cv::Vec3b(78, 78, 177));
  EXPECT_EQ(image.at<cv::Vec3b>(50, 80), cv::Vec3b(100, 100, 100));  // beside it
  EXPECT_EQ(image.at<cv::Vec3b>(35, 40), cv::Vec3b(100, 100, 100));  // above it
  EXPECT_EQ(image.at<cv::Vec3b>(119, 159), cv::Vec3b(78, 78, 177));  // the edge mask's last pixel in frame
}

}  // namespace
}  // namespace vapipe::vision
