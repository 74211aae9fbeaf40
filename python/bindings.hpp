#pragma once
// The parts of the `vapipe` Python module (python/module.cpp puts them together). Every vapipe::Error
// becomes vapipe.Error with the CLI's text; long calls (compile, run, detect, a pipeline's stop) release
// the GIL.
#include <string>
#include <vector>

#include <pybind11/pybind11.h>

#include "models/detection.hpp"

namespace vapipe::python {

namespace py = pybind11;

void bind_runtime(py::module_& m);
void bind_detection(py::module_& m);
void bind_detector(py::module_& m);
void bind_pipeline(py::module_& m);
void bind_compile(py::module_& m);

// A detection as the Python module shows it: the C++ one and its class name.
struct PyDetection {
  models::Detection detection;
  std::string label;
};

// A list of vapipe.Detection (needs the GIL).
py::list to_python(std::vector<models::Detection>&& detections, const std::vector<std::string>& labels);

// A Python path (str or os.PathLike) as a string; raises vapipe.Error naming `what` for anything else.
std::string path_of(const py::handle& path, const char* what);

}  // namespace vapipe::python
