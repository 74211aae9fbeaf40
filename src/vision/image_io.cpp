#include "vision/image_io.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "core/file_kind.hpp"

namespace vapipe::vision {

namespace {

// OpenCV refuses larger images (CV_IO_MAX_IMAGE_PIXELS) by printing its raw assertion to stderr itself.
constexpr std::uint64_t kMaxImagePixels = std::uint64_t{1} << 30;

std::uint32_t big_endian(const unsigned char* bytes, int count) {
  std::uint32_t value = 0;
  for (int i = 0; i < count; ++i) value = value << 8 | bytes[i];
  return value;
}

// Checks what the file's header claims before OpenCV decodes it: a PNG or JPEG whose size is beyond
// OpenCV's limit (a crafted 100000x100000 header), and a JPEG cut short (libjpeg would print an unattributed
// "Premature end of JPEG file" warning and decode the missing part as grey: this says which file).
void check_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint64_t width = 0;
  std::uint64_t height = 0;
  static constexpr unsigned char kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 24 && std::equal(std::begin(kPng), std::end(kPng), bytes.begin())) {
    width = big_endian(&bytes[16], 4);  // IHDR follows the signature
    height = big_endian(&bytes[20], 4);
  } else if (bytes.size() >= 4 && bytes[0] == 0xFF && bytes[1] == 0xD8) {
    // JPEG: walk the marker segments to the first start-of-frame (SOF0..SOF15 but DHT, JPG, DAC).
    for (std::size_t at = 2; at + 9 <= bytes.size() && bytes[at] == 0xFF;) {
      const unsigned char marker = bytes[at + 1];
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
        height = big_endian(&bytes[at + 5], 2);
        width = big_endian(&bytes[at + 7], 2);
        break;
      }
      at += 2 + big_endian(&bytes[at + 2], 2);
    }
    std::size_t end = bytes.size();
    while (end > 2 && bytes[end - 1] == 0) --end;  // some writers pad after the end marker
    // A warning, not an error: some cameras append data after the marker, and their pictures are whole.
    if (end < 4 || bytes[end - 2] != 0xFF || bytes[end - 1] != 0xD9) {
      spdlog::warn(
          "image '{}': JPEG without its end-of-image marker (truncated?): what is missing decodes "
          "as grey",
          path);
    }
  }
  if (width * height > kMaxImagePixels) {
    fail(
        "image '{}': its header claims {}x{} pixels, more than the {} an image may have (corrupt or "
        "crafted file)",
        path, width, height, kMaxImagePixels);
  }
}

}  // namespace

cv::Mat load_image(const std::string& path) {
  if (const auto why = not_a_file_reason(path); !why.empty()) fail("image '{}': {}", path, why);
  check_header(path);
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

bool has_image_extension(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::vector<std::string> kImageExtensions = {".jpg", ".jpeg", ".png", ".bmp",
                                                            ".tif", ".tiff", ".webp"};
  return std::find(kImageExtensions.begin(), kImageExtensions.end(), extension) != kImageExtensions.end();
}

std::vector<std::string> list_image_files(const std::string& dir, std::size_t count,
                                          const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (!fs::is_directory(dir, error)) fail("{} '{}': not a folder", what, dir);
  std::vector<std::string> images;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    if (entry.is_regular_file() && has_image_extension(entry.path())) images.push_back(entry.path().string());
  }
  if (error) fail("{} '{}': cannot list the folder: {}", what, dir, error.message());
  if (images.empty())
    fail("{} '{}': no images found (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp)", what, dir);
  std::sort(images.begin(), images.end());
  if (count > 0 && images.size() > count) images.resize(count);
  return images;
}

}  // namespace vapipe::vision
