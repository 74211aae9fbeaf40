// vapipe.Detector: `vapipe detect` as an object (models::ImageDetector, the CLI's own code). Images are
// numpy uint8 BGR arrays (H, W, 3), read in place (rows may be strided, e.g. a crop), or image paths.
#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "core/error.hpp"
#include "models/image_detector.hpp"
#include "python/bindings.hpp"
#include "vision/image_io.hpp"

namespace vapipe::python {

namespace {

// A cv::Mat header over a BGR numpy array, or the loaded file of a path; `keep` holds what it points into.
cv::Mat image_of(const py::handle& item, std::size_t index, std::vector<py::array>& keep) {
  if (py::isinstance<py::str>(item) || py::hasattr(item, "__fspath__")) {
    const std::string path = path_of(item, "Detector.detect");
    py::gil_scoped_release release;
    return vision::load_image(path);
  }
  if (!py::isinstance<py::array>(item)) {
    fail("Detector.detect: image {} must be a numpy array (H, W, 3) of uint8 BGR pixels or a path, got {}",
         index, py::str(py::type::handle_of(item).attr("__name__")).cast<std::string>());
  }
  auto array = py::reinterpret_borrow<py::array>(item);
  if (!array.dtype().is(py::dtype::of<std::uint8_t>()))
    fail("Detector.detect: image {} must be uint8 BGR pixels, got {}", index,
         py::str(array.dtype()).cast<std::string>());
  if (array.ndim() != 3 || array.shape(2) != 3 || array.shape(0) < 1 || array.shape(1) < 1) {
    std::vector<std::int64_t> shape(array.shape(), array.shape() + array.ndim());
    fail("Detector.detect: image {} has shape {}, expected (H, W, 3) BGR", index, shape_to_string(shape));
  }
  if (array.strides(2) != 1 || array.strides(1) != 3 || array.strides(0) < 3 * array.shape(1))
    fail(
        "Detector.detect: image {}: its pixels must be contiguous within rows (pass numpy.ascontiguousarray)",
        index);
  keep.push_back(array);
  return cv::Mat(static_cast<int>(array.shape(0)), static_cast<int>(array.shape(1)), CV_8UC3,
                 const_cast<void*>(array.data()), static_cast<std::size_t>(array.strides(0)));
}

class PyDetector {
 public:
  PyDetector(const std::string& path, const models::ImageDetectorOptions& options)
      : detector_(path, options) {
    for (int c = 0; c < detector_.post().num_classes(); ++c) labels_.push_back(detector_.label(c));
  }

  // One image: its detections; a list of images: a list of lists.
  py::list detect(const py::object& images) {
    const bool several = py::isinstance<py::list>(images) || py::isinstance<py::tuple>(images);
    std::vector<py::array> keep;
    std::vector<cv::Mat> mats;
    if (several) {
      for (const auto& item : images) mats.push_back(image_of(item, mats.size(), keep));
    } else {
      mats.push_back(image_of(images, 0, keep));
    }
    std::vector<std::vector<models::Detection>> results;
    {
      py::gil_scoped_release release;
      std::lock_guard lock(mutex_);
      const auto batch = static_cast<std::size_t>(detector_.max_batch());
      for (std::size_t first = 0; first < mats.size(); first += batch) {
        const std::size_t count = std::min(batch, mats.size() - first);
        for (auto& r : detector_.detect(std::span(mats).subspan(first, count)))
          results.push_back(std::move(r));
      }
    }
    if (!several) return to_python(std::move(results.at(0)), labels_);
    py::list all;
    for (auto& r : results) all.append(to_python(std::move(r), labels_));
    return all;
  }

  const std::vector<std::string>& labels() const { return labels_; }
  std::string network_name() const { return detector_.network().name(); }

 private:
  models::ImageDetector detector_;
  std::vector<std::string> labels_;
  std::mutex mutex_;  // one detection at a time: the detector holds one context
};

}  // namespace

void bind_detector(py::module_& m) {
  m.def(
      "imread",
      [](const py::object& path) {
        const std::string file = path_of(path, "imread");
        std::unique_ptr<cv::Mat> decoded;
        {
          py::gil_scoped_release release;
          decoded = std::make_unique<cv::Mat>(vision::load_image(file));
        }
        // The array takes the decoded picture over: no copy.
        cv::Mat* image = decoded.get();
        py::capsule owner(decoded.release(), [](void* p) { delete static_cast<cv::Mat*>(p); });
        return py::array_t<std::uint8_t>(
            {image->rows, image->cols, 3},
            {static_cast<py::ssize_t>(image->step[0]), py::ssize_t{3}, py::ssize_t{1}}, image->data, owner);
      },
      py::arg("path"), "An image file as the CLI reads it: a uint8 BGR array (H, W, 3)");
  py::class_<PyDetector>(m, "Detector", "Still-image detection as `vapipe detect` does it")
      .def(py::init([](const py::object& path, std::optional<float> conf, std::optional<float> iou,
                       int max_det, int threads, std::optional<std::string> network,
                       const py::object& secondary, const py::object& gallery,
                       std::optional<float> recognition_threshold) {
             const auto check = [](std::optional<float> value, const char* name) {
               if (value && !(*value >= 0.0f && *value <= 1.0f))
                 fail("Detector: {} {} must be between 0 and 1", name, *value);
             };
             check(conf, "conf");
             check(iou, "iou");
             if (max_det < 0) fail("Detector: max_det {} must be at least 0", max_det);
             if (threads < 0 || threads > max_threads())
               fail("Detector: threads {} must be 0 (every core) to {}", threads, max_threads());
             models::ImageDetectorOptions options{
                 .network = network.value_or(""),
                 .secondary = secondary.is_none() ? std::string() : path_of(secondary, "Detector secondary"),
                 .gallery = gallery.is_none() ? std::string() : path_of(gallery, "Detector gallery"),
                 .recognition_threshold = recognition_threshold,
                 .conf_threshold = conf,
                 .iou_threshold = iou,
                 .max_detections = max_det,
                 .threads = threads};
             const std::string file = path_of(path, "Detector");
             py::gil_scoped_release release;
             return std::make_unique<PyDetector>(file, options);
           }),
           py::arg("path"), py::arg("conf") = py::none(), py::arg("iou") = py::none(),
           py::arg("max_det") = 300, py::arg("threads") = 0, py::arg("network") = py::none(),
           py::arg("secondary") = py::none(), py::arg("gallery") = py::none(),
           py::arg("recognition_threshold") = py::none())
      .def("detect", &PyDetector::detect, py::arg("image"))
      .def_property_readonly("labels", &PyDetector::labels)
      .def_property_readonly("network_name", &PyDetector::network_name);
}

}  // namespace vapipe::python
