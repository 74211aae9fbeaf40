#pragma once
// The 80 COCO class names in the order of the usual COCO detectors' class ids (YOLO, YOLOX, NanoDet): for
// exports that carry no names of their own.
#include <string>
#include <vector>

namespace vapipe::models {

const std::vector<std::string>& coco_class_names();

// COCO's names for an 80-class head; "0", "1", ... for any other class count.
std::vector<std::string> class_names_for(int num_classes);

}  // namespace vapipe::models
