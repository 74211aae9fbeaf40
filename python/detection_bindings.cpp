// vapipe.Detection: one object of Detector.detect or of a pipeline result, with what its task gives
// (keypoints, mask, embedding, identity, attribute). to_json() is the JSON of `vapipe detect --json` and
// of the JSON Lines output (models/detection_json.hpp), so results compare one to one.
#include <algorithm>

#include <fmt/format.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "models/detection_json.hpp"
#include "models/instance_mask.hpp"
#include "python/bindings.hpp"

namespace vapipe::python {

py::list to_python(std::vector<models::Detection>&& detections, const std::vector<std::string>& labels) {
  py::list list;
  for (auto& d : detections) {
    const auto id = static_cast<std::size_t>(d.class_id);
    std::string label = d.class_id >= 0 && id < labels.size() ? labels[id] : std::to_string(d.class_id);
    list.append(py::cast(PyDetection{std::move(d), std::move(label)}));
  }
  return list;
}

void bind_detection(py::module_& m) {
  py::class_<PyDetection>(m, "Detection", "One detected object, in source image pixels")
      .def_property_readonly("box",
                             [](const PyDetection& p) {
                               const auto& d = p.detection;
                               return py::make_tuple(d.x1, d.y1, d.x2, d.y2);
                             })
      .def_property_readonly("score", [](const PyDetection& p) { return p.detection.score; })
      .def_property_readonly("class_id", [](const PyDetection& p) { return p.detection.class_id; })
      .def_readonly("label", &PyDetection::label)
      .def_property_readonly("track_id", [](const PyDetection& p) { return p.detection.track_id; })
      .def_property_readonly(
          "keypoints",
          [](const PyDetection& p) -> py::object {
            const auto& points = p.detection.keypoints;
            if (points.empty()) return py::none();
            py::array_t<float> array({static_cast<py::ssize_t>(points.size()), py::ssize_t{3}});
            auto view = array.mutable_unchecked<2>();
            for (std::size_t i = 0; i < points.size(); ++i) {
              const auto row = static_cast<py::ssize_t>(i);
              view(row, 0) = points[i].x;
              view(row, 1) = points[i].y;
              view(row, 2) = points[i].score;
            }
            return array;
          })
      .def_property_readonly("embedding",
                             [](const PyDetection& p) -> py::object {
                               const auto& e = p.detection.embedding;
                               if (e.empty()) return py::none();
                               return py::array_t<float>(static_cast<py::ssize_t>(e.size()), e.data());
                             })
      .def_property_readonly("identity",
                             [](const PyDetection& p) -> py::object {
                               const auto& identity = p.detection.identity;
                               if (!identity) return py::none();
                               py::dict result;
                               result["name"] = std::string(identity->display_name());
                               result["known"] = identity->known();
                               result["similarity"] = identity->similarity;
                               return result;
                             })
      .def_property_readonly("attribute",
                             [](const PyDetection& p) -> py::object {
                               const auto& attribute = p.detection.attribute;
                               if (!attribute) return py::none();
                               return py::make_tuple(attribute->label, attribute->score);
                             })
      .def_property_readonly(
          "mask",
          [](const PyDetection& p) -> py::object {
            if (p.detection.mask.empty()) return py::none();
            models::PixelMask mask = models::rasterize(p.detection);
            py::array_t<std::uint8_t> pixels(
                {static_cast<py::ssize_t>(mask.height), static_cast<py::ssize_t>(mask.width)});
            std::copy(mask.pixels.begin(), mask.pixels.end(), pixels.mutable_data());
            return py::make_tuple(py::make_tuple(mask.x, mask.y), std::move(pixels));
          },
          "None, or ((x, y), pixels): the instance mask as 0/1 uint8 pixels of a rectangle whose top-left "
          "image pixel is (x, y)")
      .def("to_json",
           [](const PyDetection& p) { return models::detection_to_json(p.detection, p.label).dump(); })
      .def("__repr__", [](const PyDetection& p) {
        const auto& d = p.detection;
        return fmt::format("<vapipe.Detection {} {:.3f} [{:.1f}, {:.1f}, {:.1f}, {:.1f}]>", p.label, d.score,
                           d.x1, d.y1, d.x2, d.y2);
      });
}

}  // namespace vapipe::python
