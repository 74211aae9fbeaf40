#pragma once
// Still images for `vapipe detect` and calibration.
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "vision/image_view.hpp"

namespace vapipe::vision {

// Decodes an image file to 8-bit BGR. Throws vapipe::Error naming the path when it is missing or not a
// decodable image.
cv::Mat load_image(const std::string& path);

// Writes an image (format from the extension); throws vapipe::Error naming the path on failure.
void save_image(const std::string& path, const cv::Mat& image);

// Whether the file name ends in one of the image extensions below (any case).
bool has_image_extension(const std::filesystem::path& path);

// Image files (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp) directly in `dir`, sorted by name, at most
// `count` (0 = all). Throws vapipe::Error starting with `what` (the option naming the folder) when the
// folder is missing or holds no image.
std::vector<std::string> list_image_files(const std::string& dir, std::size_t count, const std::string& what);

// A view of an 8-bit, 3-channel BGR Mat (throws vapipe::Error for any other type).
ImageView view_of_bgr(const cv::Mat& image);

}  // namespace vapipe::vision
