// vapipe.Model, vapipe.Network, vapipe.Context: the runtime of include/vapipe/runtime.hpp. Context.run
// reads C-contiguous float32 arrays in place (the runtime binds them as the network's input memory) and
// writes the outputs straight into new numpy arrays, which own their memory; the GIL is released while the
// network runs.
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "core/error.hpp"
#include "python/bindings.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::python {

namespace {

py::list tensor_infos(const std::vector<TensorInfo>& infos) {
  py::list list;
  for (const auto& info : infos) {
    py::dict item;
    item["name"] = info.name;
    item["dtype"] = std::string(dtype_name(info.dtype));
    item["shape"] = py::tuple(py::cast(info.shape));
    list.append(std::move(item));
  }
  return list;
}

py::object json_to_python(const nlohmann::json& json) {
  return py::module_::import("json").attr("loads")(json.dump());
}

// One worker's execution context. Python threads may share the object: runs take turns (a context holds
// one set of activations), without the GIL.
class PyContext {
 public:
  PyContext(std::shared_ptr<const Network> network, int threads)
      : network_(network),
        inputs_(network->inputs(network->max_batch())),
        context_(std::move(network), {.threads = threads}) {}

  py::list run(const py::object& input) {
    std::vector<py::array> arrays;
    if (py::isinstance<py::list>(input) || py::isinstance<py::tuple>(input)) {
      for (const auto& item : input) arrays.push_back(checked_input(item, arrays.size()));
    } else {
      arrays.push_back(checked_input(input, 0));
    }
    if (arrays.empty()) fail("Context.run: network '{}' needs its inputs, none given", network_->name());
    std::vector<ConstTensorView> inputs;
    for (const auto& array : arrays) {
      inputs.push_back({array.data(), DType::kF32, Shape(array.shape(), array.shape() + array.ndim())});
    }
    const std::int64_t batch = inputs[0].shape.empty() ? 0 : inputs[0].shape[0];
    if (batch < 1 || batch > network_->max_batch()) {
      fail("Context.run: network '{}': input 0 has batch {} (its first dimension), expected 1 to {}",
           network_->name(), batch, network_->max_batch());
    }
    const std::int64_t stage = network_->stage_for(batch);
    // The outputs are new numpy arrays the runtime writes into: no copy, and they outlive the next run.
    std::vector<py::array_t<float>> outputs;
    std::vector<TensorView> views;
    for (const auto& info : network_->outputs(stage)) {
      py::array_t<float> array(std::vector<py::ssize_t>(info.shape.begin(), info.shape.end()));
      views.push_back({array.mutable_data(), DType::kF32, info.shape});
      outputs.push_back(std::move(array));
    }
    {
      py::gil_scoped_release release;
      std::lock_guard lock(mutex_);
      context_.run(inputs, views);
    }
    py::list result;
    for (auto& array : outputs) {
      // A partial batch ran padded: the rows of the given samples only (a view that keeps the array alive).
      if (batch < stage && array.ndim() > 0 && array.shape(0) == stage)
        result.append(py::object(array[py::slice(0, static_cast<py::ssize_t>(batch), 1)]));
      else
        result.append(std::move(array));
    }
    return result;
  }

  const std::shared_ptr<const Network>& network() const { return network_; }

 private:
  py::array checked_input(const py::handle& item, std::size_t index) const {
    const auto& inputs = inputs_;
    const std::string name = index < inputs.size() ? inputs[index].name : std::string("?");
    if (!py::isinstance<py::array>(item)) {
      fail("Context.run: input {} ('{}') of network '{}' must be a numpy array, got {}", index, name,
           network_->name(), py::str(py::type::handle_of(item).attr("__name__")).cast<std::string>());
    }
    auto array = py::reinterpret_borrow<py::array>(item);
    if (!array.dtype().is(py::dtype::of<float>())) {
      fail(
          "Context.run: input {} ('{}') of network '{}' must be float32, got {} (convert with "
          ".astype(numpy.float32))",
          index, name, network_->name(), py::str(array.dtype()).cast<std::string>());
    }
    if ((array.flags() & py::array::c_style) == 0) {
      fail(
          "Context.run: input {} ('{}') of network '{}' must be C-contiguous (it is read in place; pass "
          "numpy.ascontiguousarray(x))",
          index, name, network_->name());
    }
    if (index < inputs.size()) {
      const Shape& expected = inputs[index].shape;
      Shape given(array.shape(), array.shape() + array.ndim());
      bool fits = given.size() == expected.size() && !given.empty();
      for (std::size_t d = 1; fits && d < given.size(); ++d)
        fits = network_->dynamic_shape() ? given[d] <= expected[d] : given[d] == expected[d];
      if (!fits) {
        Shape shown = expected;
        shown[0] = -1;
        fail("Context.run: input {} ('{}') of network '{}' has shape {}, expected {} (N from 1 to {}{})",
             index, name, network_->name(), shape_to_string(given), shape_to_string(shown),
             network_->max_batch(),
             network_->dynamic_shape() ? ", spatial sizes at most the compiled ones" : "");
      }
    }
    return array;
  }

  std::shared_ptr<const Network> network_;
  std::vector<TensorInfo> inputs_;
  ExecutionContext context_;
  std::mutex mutex_;
};

}  // namespace

void bind_runtime(py::module_& m) {
  py::class_<Network, std::shared_ptr<Network>>(m, "Network", "One network of a compiled package (immutable)")
      .def_property_readonly("name", &Network::name)
      .def_property_readonly("precision", &Network::precision)
      .def_property_readonly("dynamic_shape", &Network::dynamic_shape)
      .def_property_readonly("stage_batches", &Network::stage_batches)
      .def_property_readonly("max_batch", &Network::max_batch)
      .def(
          "inputs",
          [](const Network& n, std::optional<std::int64_t> batch) {
            return tensor_infos(n.inputs(n.stage_for(batch.value_or(n.max_batch()))));
          },
          py::arg("batch") = py::none())
      .def(
          "outputs",
          [](const Network& n, std::optional<std::int64_t> batch) {
            return tensor_infos(n.outputs(n.stage_for(batch.value_or(n.max_batch()))));
          },
          py::arg("batch") = py::none())
      .def_property_readonly("metadata", [](const Network& n) { return json_to_python(n.metadata()); })
      .def("__repr__", [](const Network& n) {
        return fmt::format("<vapipe.Network '{}' {} batches {}>", n.name(), n.precision(),
                           shape_to_string(n.stage_batches()));
      });

  py::class_<Model, std::shared_ptr<Model>>(m, "Model", "A compiled .vpk package")
      .def(py::init([](const py::object& path) {
             const std::string file = path_of(path, "Model");
             py::gil_scoped_release release;
             return std::const_pointer_cast<Model>(Model::load(file));
           }),
           py::arg("path"))
      .def_property_readonly("path", &Model::path)
      .def_property_readonly("network_names", &Model::network_names)
      .def(
          "network",
          [](const Model& model, std::optional<std::string> name) {
            return std::const_pointer_cast<Network>(model.network(name.value_or("")));
          },
          py::arg("name") = py::none())
      .def("__repr__", [](const Model& model) { return fmt::format("<vapipe.Model '{}'>", model.path()); });

  py::class_<PyContext>(m, "Context", "One worker's execution context of a network")
      .def(py::init([](std::shared_ptr<Network> network, int threads) {
             if (network == nullptr) fail("Context: network is None (Model.network() gives one)");
             if (threads < 0 || threads > max_threads())
               fail("Context: threads {} must be 0 (every core) to {}", threads, max_threads());
             py::gil_scoped_release release;
             return std::make_unique<PyContext>(std::move(network), threads);
           }),
           py::arg("network"), py::arg("threads") = 0)
      .def("run", &PyContext::run, py::arg("inputs"))
      .def_property_readonly(
          "network", [](const PyContext& c) { return std::const_pointer_cast<Network>(c.network()); });
}

}  // namespace vapipe::python
