#include "vision/image_io.hpp"

#include <algorithm>
#include <cctype>
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

std::vector<std::string> list_image_files(const std::string& dir, std::size_t count,
                                          const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(dir, error)) fail("{} '{}': not a folder", what, dir);
  std::vector<std::string> images;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    if (!entry.is_regular_file()) continue;
    std::string extension = entry.path().extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    static const std::vector<std::string> kImageExtensions = {".jpg", ".jpeg", ".png", ".bmp",
                                                              ".tif", ".tiff", ".webp"};
    if (std::find(kImageExtensions.begin(), kImageExtensions.end(), extension) != kImageExtensions.end())
      images.push_back(entry.path().string());
  }
  if (error) fail("{} '{}': cannot list the folder: {}", what, dir, error.message());
  if (images.empty())
    fail("{} '{}': no images found (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp)", what, dir);
  std::sort(images.begin(), images.end());
  if (count > 0 && images.size() > count) images.resize(count);
  return images;
}

}  // namespace vapipe::vision
