// The `vapipe._vapipe` extension; python/vapipe/__init__.py is the package users import.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.hpp"
#include "core/log.hpp"
#include "python/bindings.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::python {

std::string path_of(const py::handle& path, const char* what) {
  if (py::isinstance<py::str>(path)) return path.cast<std::string>();
  if (py::hasattr(path, "__fspath__")) return py::str(path.attr("__fspath__")()).cast<std::string>();
  fail("{}: expected a path (str or os.PathLike), got {}", what,
       py::str(py::type::handle_of(path).attr("__name__")).cast<std::string>());
}

}  // namespace vapipe::python

PYBIND11_MODULE(_vapipe, m) {
  namespace py = pybind11;
  using namespace vapipe::python;
  // The log goes to stderr as the CLI's does (warnings and errors only; set_log_level to see more).
  if (spdlog::get("vapipe") == nullptr) {
    auto logger = spdlog::stderr_color_mt("vapipe");
    spdlog::set_default_logger(logger);
    spdlog::set_formatter(vapipe::make_log_formatter("[%Y-%m-%d %H:%M:%S.%e] [%l] %v"));
    spdlog::set_level(spdlog::level::warn);
  }
  m.doc() = "vapipe: compile detection models and run them on images and video streams";
  static py::exception<vapipe::Error> error(m, "Error", PyExc_RuntimeError);
  // The same text as the CLI's "vapipe: error: ..." line.
  py::register_exception_translator([](std::exception_ptr pointer) {
    try {
      if (pointer) std::rethrow_exception(pointer);
    } catch (const vapipe::Error& e) {
      error(vapipe::printable(e.what()).c_str());
    }
  });
  m.def("version", [] { return std::string(vapipe::version()); });
  m.def("git_revision", [] { return std::string(vapipe::git_revision()); });
  m.def("version_line", &vapipe::version_line, "The line `vapipe --version` prints");
  m.def("cpu_isa", &vapipe::cpu_isa, "The instruction set oneDNN dispatches to on this CPU");
  m.def(
      "set_log_level",
      [](const std::string& level) {
        const auto parsed = spdlog::level::from_str(level);
        if (parsed == spdlog::level::off && level != "off")
          vapipe::fail("set_log_level: '{}' is not one of trace, debug, info, warning, error, off", level);
        spdlog::set_level(parsed);
      },
      py::arg("level"));
  bind_runtime(m);
  bind_detection(m);
  bind_detector(m);
  bind_pipeline(m);
  bind_compile(m);
}
