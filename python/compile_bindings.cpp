// vapipe.compile's ONNX path: `vapipe compile` as a function (python/vapipe/__init__.py exports PyTorch
// modules to ONNX first). The options are the CLI's, by the same names.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "compiler/compiler.hpp"
#include "core/error.hpp"
#include "core/package.hpp"
#include "python/bindings.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::python {

void bind_compile(py::module_& m) {
  m.def(
      "_compile_onnx",
      [](const std::string& onnx, const std::string& output, const std::vector<std::int64_t>& batch,
         const std::string& precision, const std::optional<std::string>& calib_images,
         const std::string& name, const std::string& shape,
         const std::optional<std::pair<int, int>>& input_size, const std::string& model_type, bool full_graph,
         std::size_t calib_count, const std::string& calib_method, double percentile,
         const std::vector<std::string>& keep_float, bool int8_head, double int8_tolerance,
         const std::optional<std::string>& calib_table, int threads) {
        compiler::CompileOptions options;
        options.onnx_path = onnx;
        options.name = name;
        if (batch.empty()) fail("batch: give at least one batch size (e.g. [1, 4])");
        for (const auto b : batch)
          if (b <= 0) fail("batch value '{}' is not a positive integer", b);
        options.batches = batch;
        if (shape != "static" && shape != "dynamic") fail("shape '{}' must be static or dynamic", shape);
        options.dynamic_shape = shape == "dynamic";
        if (input_size) {
          if (input_size->first <= 0 || input_size->second <= 0 || input_size->first > 16384 ||
              input_size->second > 16384)
            fail("input_size ({}, {}) must be (width, height), each 1 to 16384", input_size->first,
                 input_size->second);
          options.input_size = input_size;
        }
        options.model_type = model_type;
        options.full_graph = full_graph;
        options.precision = precision;
        options.calib_images = calib_images.value_or("");
        options.calib_count = calib_count;
        options.calib_method = calib_method;
        options.percentile = percentile;
        options.keep_float = keep_float;
        options.int8_head = int8_head;
        options.int8_tolerance = int8_tolerance;
        if (threads < 0 || threads > max_threads())
          fail("threads {} must be 0 (every core) to {}", threads, max_threads());
        options.threads = threads;
        // As the CLI: an existing table is read (calibration skipped), else the new one is written there,
        // or beside the package.
        if (precision == "int8" || precision == "auto") {
          if (calib_table && std::filesystem::exists(*calib_table))
            options.calib_table_in = *calib_table;
          else if (calib_table)
            options.calib_table_out = *calib_table;
          else
            options.calib_table_out = std::filesystem::path(output).replace_extension(".calib").string();
        }
        py::gil_scoped_release release;
        ir::Package package;
        package.networks.push_back(compiler::compile_onnx(options));
        ir::write_package(package, output);
      },
      py::arg("onnx"), py::arg("output"), py::arg("batch"), py::arg("precision"), py::arg("calib_images"),
      py::arg("name"), py::arg("shape"), py::arg("input_size"), py::arg("model_type"), py::arg("full_graph"),
      py::arg("calib_count"), py::arg("calib_method"), py::arg("percentile"), py::arg("keep_float"),
      py::arg("int8_head"), py::arg("int8_tolerance"), py::arg("calib_table"), py::arg("threads"));
}

}  // namespace vapipe::python
