#pragma once
// Still images for `vapipe detect` and calibration.
#include <string>

#include <opencv2/core.hpp>

#include "vision/image_view.hpp"

namespace vapipe::vision {

// Decodes an image file to 8-bit BGR. Throws vapipe::Error naming the path when it is missing or not a
// decodable image.
cv::Mat load_image(const std::string& path);

// Writes an image (format from the extension); throws vapipe::Error naming the path on failure.
void save_image(const std::string& path, const cv::Mat& image);

// A view of an 8-bit, 3-channel BGR Mat (throws vapipe::Error for any other type).
ImageView view_of_bgr(const cv::Mat& image);

}  // namespace vapipe::vision
