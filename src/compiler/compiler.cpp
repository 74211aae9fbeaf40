#include "compiler/compiler.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "compiler/calibration_run.hpp"
#include "compiler/graph_passes.hpp"
#include "compiler/head_cut.hpp"
#include "compiler/metadata.hpp"
#include "compiler/onnx_importer.hpp"
#include "compiler/precision.hpp"
#include "compiler/quantized_onnx.hpp"
#include "core/error.hpp"
#include "core/head_metadata.hpp"
#include "core/progress_bar.hpp"
#include "models/task.hpp"
#include "vapipe/runtime.hpp"
#include "vision/image_io.hpp"

namespace vapipe::compiler {
namespace {

const std::vector<std::string> kModelTypes = {"auto", "yolov5", "yolov8", "yolofastestv2", "raw"};

void check_options(const CompileOptions& options) {
  if (std::find(kModelTypes.begin(), kModelTypes.end(), options.model_type) == kModelTypes.end() &&
      models::find_task(options.model_type) == nullptr) {
    std::string tasks;
    for (const models::TaskKind* kind : models::task_kinds()) tasks += fmt::format("{}, ", kind->model_type);
    fail("unknown model type '{}' (expected yolov5, yolov8, yolofastestv2, {}raw or auto)",
         options.model_type, tasks);
  }
  if (options.batches.empty()) fail("no batch sizes given");
  for (auto batch : options.batches) {
    if (batch <= 0 || batch > 1024) fail("batch size {} is out of range (1..1024)", batch);
  }
  if (options.input_size && (options.input_size->first <= 0 || options.input_size->second <= 0)) {
    fail("input size {}x{} is invalid", options.input_size->first, options.input_size->second);
  }
  const auto& p = options.precision;
  if (!p.empty() && p != "f32" && p != "int8" && p != "bf16" && p != "auto")
    fail("--precision '{}' is unknown (expected f32, int8, bf16 or auto)", p);
  calibration_method_from_name(options.calib_method);
  if (!(options.percentile > 0.0 && options.percentile <= 100.0))
    fail("--percentile {} is outside (0, 100]", options.percentile);
  if (!(options.int8_tolerance >= 0.0 && options.int8_tolerance <= 1.0))
    fail("--int8-tolerance {} is outside [0, 1]", options.int8_tolerance);
  if (!p.empty() && p != "int8" && p != "auto" && !options.keep_float.empty())
    fail("--keep-float applies to --precision int8 only");
}

// The declared output shape when it is fully static; otherwise the shape of a batch-1 full import (at
// --input-size: a model with a symbolic height and width needs it to be imported at all).
Shape output_shape(const OnnxModel& model, const std::optional<std::pair<int, int>>& input_size) {
  const auto& graph = model.proto.graph();
  if (graph.output_size() == 0) fail("{}: the graph has no outputs", model.label);
  Shape shape;
  const auto& type = graph.output(0).type();
  if (type.has_tensor_type() && type.tensor_type().has_shape()) {
    for (const auto& dim : type.tensor_type().shape().dim())
      shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  }
  if (!shape.empty() && std::all_of(shape.begin(), shape.end(), [](std::int64_t d) { return d > 0; }))
    return shape;
  ImportRequest request;
  request.input_size = input_size;
  const ir::Graph full = lower_onnx(model, request);
  return full.tensors.at(static_cast<std::size_t>(full.outputs.at(0))).shape;
}

struct Plan {
  std::string model_type;
  bool cut = false;
  std::vector<std::string> head_outputs;
};

// The graph's outputs as declared by the export (-1 for a dimension it leaves open).
std::vector<TensorInfo> declared_outputs(const OnnxModel& model) {
  std::vector<TensorInfo> outputs;
  for (const auto& output : model.proto.graph().output()) {
    TensorInfo info;
    info.name = output.name();
    if (output.type().has_tensor_type() && output.type().tensor_type().has_shape()) {
      for (const auto& dim : output.type().tensor_type().shape().dim())
        info.shape.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
    }
    outputs.push_back(std::move(info));
  }
  return outputs;
}

Plan make_plan(const OnnxModel& model, const CompileOptions& options) {
  Plan plan;
  if (options.model_type == "auto") {
    const models::TaskKind* task = models::recognize_task(declared_outputs(model));
    plan.model_type = task != nullptr ? std::string(task->model_type)
                                      : detect_model_type(model, output_shape(model, options.input_size));
  } else {
    plan.model_type = options.model_type;
  }
  // YOLO heads are cut before their decode: the post-processor decodes the raw grids of the few candidates
  // (YOLOv8: before the DFL, whose softmax over every cell's 64 bins was ~40% of the full graph's time).
  // Only a detection-only YOLOv8 export (one output) is cut: a segmentation export's second output (mask
  // prototypes) is not behind the detection head, and its decoder is another task's (issue 20, item 2).
  const bool yolov8_detect = plan.model_type == "yolov8" && model.proto.graph().output_size() == 1;
  plan.cut = !options.full_graph && (plan.model_type == "yolov5" || yolov8_detect);
  if (plan.cut) plan.head_outputs = find_head_outputs(model, plan.model_type);
  return plan;
}

// Raw YOLO heads are written channels-last (the decoders read either layout; the metadata says which): a
// cell's values are then contiguous, and the head convolutions write that layout without a transpose.
bool channels_last_heads(const Plan& plan) { return plan.cut; }

// The export's own height and width of the first graph input, when both are fixed numbers.
std::optional<std::pair<std::string, std::pair<std::int64_t, std::int64_t>>> fixed_input_size(
    const OnnxModel& model) {
  const auto& graph = model.proto.graph();
  for (const auto& input : graph.input()) {
    const bool initializer = std::any_of(graph.initializer().begin(), graph.initializer().end(),
                                         [&](const auto& init) { return init.name() == input.name(); });
    if (initializer) continue;  // IR < 4 lists initializers as inputs
    const auto& dims = input.type().tensor_type().shape().dim();
    if (dims.size() != 4 || !dims[2].has_dim_value() || !dims[3].has_dim_value()) return std::nullopt;
    return std::pair{input.name(), std::pair{dims[2].dim_value(), dims[3].dim_value()}};
  }
  return std::nullopt;
}

// Lowering failed with the --input-size override (`error`). When the graph lowers at the export's own
// size, the export baked that size into its graph (reshape targets, grid constants): a Reshape or
// broadcast message would not tell the user that, so say it. Otherwise returns and the caller rethrows.
void explain_fixed_input_size(const OnnxModel& model, ImportRequest request, const Error& error) {
  const auto fixed = fixed_input_size(model);
  if (!fixed || !request.input_size) return;
  const auto [height, width] = fixed->second;
  const auto [asked_width, asked_height] = *request.input_size;
  if (asked_width == width && asked_height == height) return;
  request.input_size.reset();
  try {
    lower_onnx(model, request);
  } catch (const Error&) {
    return;  // it fails at its own size too: the override is not the cause
  }
  std::string cause = error.what();
  if (cause.rfind(model.label + ": ", 0) == 0) cause.erase(0, model.label.size() + 2);
  fail(
      "{}: input '{}' is fixed at {}x{} (HxW) in this export: its graph bakes that size in ({}), so "
      "--input-size {}x{} cannot change it; --input-size needs a model exported with a dynamic height and "
      "width (e.g. torch.onnx.export with dynamic_axes), or leave it out",
      model.label, fixed->first, height, width, cause, asked_width, asked_height);
}

ir::Graph import_stage(const OnnxModel& model, const Plan& plan, const CompileOptions& options,
                       std::int64_t batch) {
  ImportRequest request;
  request.batch = batch;
  request.input_size = options.input_size;
  request.outputs = plan.head_outputs;
  ir::Graph graph;
  try {
    graph = lower_onnx(model, request);
  } catch (const Error& error) {
    explain_fixed_input_size(model, request, error);
    throw;
  }
  if (plan.cut) sort_outputs_by_stride(graph);
  eliminate_dead_code(graph);
  return graph;
}

// Activation ranges for int8: from the given table, else by calibrating a batch-1 graph on the images.
CalibrationTable calibration_table(const OnnxModel& model, const Plan& plan, const CompileOptions& options,
                                   const nlohmann::json& metadata) {
  if (!options.calib_table_in.empty()) return read_calibration_table(options.calib_table_in);
  ir::Graph graph = import_stage(model, plan, options, 1);
  if (options.optimize) optimize_graph(graph);
  CalibrationOptions calibration;
  calibration.images_dir = options.calib_images;
  calibration.count = options.calib_count;
  calibration.method = calibration_method_from_name(options.calib_method);
  calibration.percentile = options.percentile;
  calibration.threads = options.threads;
  calibration.show_progress = options.show_progress;
  CalibrationTable table = calibrate(graph, metadata, calibration);
  if (!options.calib_table_out.empty()) write_calibration_table(table, options.calib_table_out);
  return table;
}

// int8 for a file of QLinearConv imported as written: each convolution's integer arithmetic on oneDNN's int8
// kernels with the file's own grids (compiler/precision.hpp, convert_integer_convolutions); said once at info
// level. Falls back to f32 (the same arithmetic in float) when no convolution fits.
void apply_file_integers(ir::Network& network, const OnnxModel& model, const CompileOptions& options) {
  const std::set<std::string> keep_float(options.keep_float.begin(), options.keep_float.end());
  for (const auto& name : keep_float) {
    const auto& nodes = network.stages.front().graph.nodes;
    if (std::none_of(nodes.begin(), nodes.end(), [&](const ir::Node& node) { return node.name == name; }))
      fail("--keep-float '{}': the compiled graph has no node of that name (see vapipe info --layers)", name);
  }
  std::size_t converted = 0, total = 0;
  for (auto& stage : network.stages)
    converted = convert_integer_convolutions(stage.graph, keep_float, &total);
  std::map<std::string, int> float_ops;
  for (const auto& node : model.proto.graph().node()) {
    if (node.op_type() != "QLinearConv" && node.op_type().rfind("QLinear", 0) == 0)
      ++float_ops[node.op_type()];
  }
  std::string others;
  for (const auto& [op, count] : float_ops) others += fmt::format(", {} {}", count, op);
  spdlog::info(
      "{}: static quantization: {} of {} QLinearConv run int8 on the file's own integers (uint8 activations "
      "with their zero points, ONNX Runtime's requantization){}{}",
      model.label, converted, total, converted < total ? "; the others as written, in float" : "",
      others.empty() ? "" : fmt::format("; as written, in float:{}", others.substr(1)));
  if (converted == 0) return;
  network.precision = "int8";
  network.metadata["quantization"] = {{"method", "file"},
                                      {"images", 0},
                                      {"keep_float", options.keep_float},
                                      {"int8_head", options.int8_head}};
}

void apply_network_precision(ir::Network& network, const std::string& precision, const OnnxModel& model,
                             const Plan& plan, const CompileOptions& options) {
  // QLinearConv files are imported as written and run int8 on their own integers.
  if (precision == "int8" && has_qlinear_convolutions(model))
    return apply_file_integers(network, model, options);
  network.precision = precision;
  if (precision == "f32") return;
  PrecisionOptions precision_options;
  precision_options.precision = precision;
  precision_options.keep_float.insert(options.keep_float.begin(), options.keep_float.end());
  precision_options.quantize_outputs = options.int8_head;
  if (precision == "int8") {
    if (options.calib_images.empty() && options.calib_table_in.empty())
      fail("--precision int8 needs calibration data: --calib-images DIR or an existing --calib-table FILE");
    const CalibrationTable table = calibration_table(model, plan, options, network.metadata);
    const ir::Graph& graph = network.stages.front().graph;
    for (const auto& [name, range] : table.ranges) {
      if (!graph.find_tensor(name)) {
        fail(
            "calibration table '{}': tensor '{}' is not in this model (a table made for another model or "
            "other compile options?)",
            options.calib_table_in.empty() ? options.calib_table_out : options.calib_table_in, name);
      }
    }
    precision_options.ranges = table.ranges;
    std::vector<std::string> sensitive;
    if (options.int8_tolerance > 0.0) {
      // Sensitive-layer search: compare every int8 convolution's output with FP32's on (up to 16 of) the
      // calibration images; those below the tolerance stay float.
      if (options.calib_images.empty()) fail("--int8-tolerance needs --calib-images (it runs the images)");
      auto images = vision::list_image_files(options.calib_images, options.calib_count, "--calib-images");
      if (images.size() > 16) images.resize(16);
      ir::Graph fp32 = import_stage(model, plan, options, 1);
      if (options.optimize) optimize_graph(fp32);
      ir::Graph int8 = fp32;
      apply_precision(int8, precision_options);
      sensitive =
          sensitive_layers(fp32, int8, network.metadata, images, options.int8_tolerance, options.threads);
      precision_options.keep_float.insert(sensitive.begin(), sensitive.end());
    }
    network.metadata["quantization"] = {{"method", calibration_method_name(table.method)},
                                        {"images", table.images},
                                        {"keep_float", options.keep_float},
                                        {"int8_head", options.int8_head}};
    if (options.int8_tolerance > 0.0) {
      network.metadata["quantization"]["int8_tolerance"] = options.int8_tolerance;
      network.metadata["quantization"]["sensitive_layers"] = sensitive;
    }
    if (table.method == CalibrationMethod::kPercentile)
      network.metadata["quantization"]["percentile"] = table.percentile;
  }
  for (auto& stage : network.stages) apply_precision(stage.graph, precision_options);
}

// The model as the compiler imports it: ONNX Runtime's dynamic quantization folded into float Conv/MatMul
// (compiler/quantized_onnx.hpp), said once at info level since it changes what runs.
OnnxModel load_for_import(const std::string& path) {
  OnnxModel model = load_onnx(path);
  if (const int folded = fold_dynamic_quantization(model); folded > 0) {
    spdlog::info(
        "{}: {} ConvInteger/MatMulInteger of ONNX Runtime's dynamic quantization run as float Conv/MatMul "
        "with their weights dequantized at compile time (activations not quantized at run time)",
        model.label, folded);
  }
  return model;
}

// The precision of `options` for a model that is (`file_quantized`) or is not statically pre-quantized.
std::string resolve_precision(const CompileOptions& options, bool file_quantized) {
  // A pre-quantized file's own integers are exact on int8 kernels only with VNNI (docs/compiler.md).
  if (options.precision.empty()) return file_quantized && cpu_has_native("int8") ? "int8" : "f32";
  if (options.precision != "auto") return options.precision;
  const bool calibration = !options.calib_images.empty() || !options.calib_table_in.empty();
  if ((calibration || file_quantized) && cpu_has_native("int8")) return "int8";
  if (cpu_has_native("bf16")) return "bf16";
  return "f32";
}

// A statically quantized file without QLinearConv (QuantizeLinear/DequantizeLinear only, "QDQ") has no int8
// path of its own yet: asked for int8, it runs as written, its integer arithmetic in float
// (src/ops/quantize.cpp), said once at info level. QLinearConv files run int8 (apply_file_integers).
void run_qdq_as_written(const OnnxModel& model, std::string& precision) {
  if (precision != "int8" || !has_static_quantization(model) || has_qlinear_convolutions(model)) return;
  spdlog::info(
      "{}: its static quantization (QuantizeLinear/DequantizeLinear, no QLinearConv) runs as written, in "
      "float (f32 precision): vapipe's int8 path takes QLinearConv files",
      model.label);
  precision = "f32";
}

}  // namespace

std::string resolve_precision(const CompileOptions& options) {
  const bool needs_file = options.precision.empty() || options.precision == "auto";
  return resolve_precision(options, needs_file && has_static_quantization(load_onnx(options.onnx_path)));
}

ir::Graph import_onnx_graph(const CompileOptions& options, std::int64_t batch) {
  check_options(options);
  const OnnxModel model = load_for_import(options.onnx_path);
  const Plan plan = make_plan(model, options);
  ir::Graph graph = import_stage(model, plan, options, batch);
  if (channels_last_heads(plan)) make_outputs_channels_last(graph);  // the outputs compile_onnx writes
  return graph;
}

ir::Network compile_onnx(const CompileOptions& options) {
  check_options(options);
  OnnxModel model = load_for_import(options.onnx_path);
  const bool file_quantized = has_static_quantization(model);
  std::string precision = resolve_precision(options, file_quantized);
  if (file_quantized && options.precision.empty() && precision == "f32") {
    spdlog::info(
        "{}: statically pre-quantized; runs as written, in f32: this CPU has no native int8 (VNNI), on which "
        "its integers would be exact (--precision int8 runs it int8 anyway, approximately)",
        model.label);
  }
  run_qdq_as_written(model, precision);
  std::vector<std::int64_t> batches = options.batches;
  std::sort(batches.begin(), batches.end());
  batches.erase(std::unique(batches.begin(), batches.end()), batches.end());

  std::optional<ProgressBar> progress;
  if (options.show_progress) progress.emplace("compile " + model.label, batches.size() + 1);
  const Plan plan = make_plan(model, options);
  spdlog::debug("{}: model type {}, opset {}, {}", model.label, plan.model_type, model.opset,
                plan.cut ? "raw-head cut" : "full graph");
  if (progress) progress->advance();

  ir::Network network;
  network.name =
      options.name.empty() ? std::filesystem::path(options.onnx_path).stem().string() : options.name;
  network.dynamic_shape = options.dynamic_shape;
  for (auto batch : batches) {
    ir::Graph graph = import_stage(model, plan, options, batch);
    if (options.optimize) optimize_graph(graph);
    network.stages.push_back({batch, std::move(graph)});
    if (progress) progress->advance();
  }
  network.metadata = build_metadata(model, plan.model_type, plan.cut, network.stages.front().graph);
  // A head whose grid is larger than the input (a cut in the wrong place) gets stride height / rows = 0.
  try {
    ir::check_head_metadata(network.name, network.metadata);
  } catch (const Error& error) {
    fail("{}: {}", model.label, error.what());
  }
  if (progress) progress->finish();
  progress.reset();
  apply_network_precision(network, precision, model, plan, options);
  if (channels_last_heads(plan)) {
    // After the precision pass, which keeps the head convolutions (graph outputs) float by default.
    for (auto& stage : network.stages) make_outputs_channels_last(stage.graph);
    for (auto& entry : network.metadata["head"]["outputs"]) entry["layout"] = "nhwc";
  }
  return network;
}

}  // namespace vapipe::compiler
