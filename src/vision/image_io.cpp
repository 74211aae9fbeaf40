#include "vision/image_io.hpp"

#include <filesystem>

#include <opencv2/imgcodecs.hpp>

#include "core/error.hpp"

namespace vapipe::vision {

cv::Mat load_image(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) fail("image '{}': no such file", path);
  cv::Mat image;
  try {
    image = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& exception) {
    fail("image '{}': cannot decode: {}", path, exception.what());
  }
  if (image.empty()) fail("image '{}': not a readable image (unknown format or corrupt file)", path);
  return image;
}

void save_image(const std::string& path, const cv::Mat& image) {
  bool written = false;
  try {
    written = cv::imwrite(path, image);
  } catch (const cv::Exception& exception) {
    fail("image '{}': cannot write: {}", path, exception.what());
  }
  if (!written) fail("image '{}': cannot write (unknown extension or unwritable folder)", path);
}

ImageView view_of_bgr(const cv::Mat& image) {
  if (image.type() != CV_8UC3) fail("expected an 8-bit BGR image, got OpenCV type {}", image.type());
  return ImageView::bgr(image.data, image.cols, image.rows, static_cast<std::ptrdiff_t>(image.step[0]));
}

}  // namespace vapipe::vision
