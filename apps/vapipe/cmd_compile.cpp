#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "apps/vapipe/commands.hpp"
#include "compiler/compiler.hpp"
#include "core/error.hpp"
#include "core/package.hpp"
#include "models/task.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::cli {
namespace {

struct CompileArgs {
  std::string model;
  std::string output;
  std::string name;
  std::string batch = "1";
  std::string shape = "static";
  std::string input_size;
  std::string model_type = "auto";
  bool full_graph = false;
  std::string precision;  // empty: f32, or int8 for a pre-quantized file on a CPU with native int8
  std::string calib_images;
  std::size_t calib_count = 0;
  std::string calib_method = "kl";
  double percentile = 99.99;
  std::vector<std::string> keep_float;
  bool int8_head = false;
  double int8_tolerance = 0.0;
  std::string calib_table;
  int threads = 0;
};

// --calib-table FILE reads FILE when it exists (calibration skipped) and is where a new table goes
// otherwise; without it the table is written beside the package (OUT.calib), never read back implicitly.
void set_calibration_table(const CompileArgs& args, compiler::CompileOptions& options) {
  if (!args.calib_table.empty() && std::filesystem::exists(args.calib_table)) {
    options.calib_table_in = args.calib_table;
    return;
  }
  if (!args.calib_table.empty()) {
    options.calib_table_out = args.calib_table;
    return;
  }
  std::filesystem::path out(args.output);
  options.calib_table_out = out.replace_extension(".calib").string();
}

std::int64_t parse_positive(const std::string& text, const std::string& what) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, value);
  if (text.empty() || result.ec != std::errc() || result.ptr != end || value <= 0) {
    fail("{} '{}' is not a positive integer", what, text);
  }
  return value;
}

std::vector<std::int64_t> parse_batches(const std::string& text) {
  std::vector<std::int64_t> batches;
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const std::string piece =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    batches.push_back(parse_positive(piece, "--batch value"));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return batches;
}

std::pair<int, int> parse_size(const std::string& text) {
  const auto x = text.find_first_of("xX");
  if (x == std::string::npos) fail("--input-size '{}' is not WxH (e.g. 640x384)", text);
  const auto width = parse_positive(text.substr(0, x), "--input-size width");
  const auto height = parse_positive(text.substr(x + 1), "--input-size height");
  if (width > 16384 || height > 16384) fail("--input-size '{}' is too large", text);
  return {static_cast<int>(width), static_cast<int>(height)};
}

void run_compile(const CompileArgs& args) {
  const auto started = std::chrono::steady_clock::now();
  compiler::CompileOptions options;
  options.onnx_path = args.model;
  options.name = args.name;
  options.batches = parse_batches(args.batch);
  if (args.shape != "static" && args.shape != "dynamic")
    fail("--shape '{}' must be static or dynamic", args.shape);
  options.dynamic_shape = args.shape == "dynamic";
  if (!args.input_size.empty()) options.input_size = parse_size(args.input_size);
  options.model_type = args.model_type;
  options.full_graph = args.full_graph;
  options.show_progress = ::isatty(STDERR_FILENO) == 1;
  options.precision = args.precision;
  options.calib_images = args.calib_images;
  options.calib_count = args.calib_count;
  options.calib_method = args.calib_method;
  options.percentile = args.percentile;
  options.keep_float = args.keep_float;
  options.int8_head = args.int8_head;
  options.int8_tolerance = args.int8_tolerance;
  options.threads = args.threads;
  if (args.precision == "int8" || args.precision == "auto") set_calibration_table(args, options);
  const std::string precision = compiler::resolve_precision(options);
  if (args.precision == "auto")
    std::fprintf(stderr, "vapipe: --precision auto: %s (CPU: %s)\n", precision.c_str(), cpu_isa().c_str());
  ir::Package package;
  package.networks.push_back(compiler::compile_onnx(options));
  ir::write_package(package, args.output);
  // After the compile, so a refused command prints its one error line only.
  if ((precision == "int8" || precision == "bf16") && !cpu_has_native(precision)) {
    std::fprintf(stderr,
                 "vapipe: warning: this CPU (%s) has no native %s kernels; the package is portable, but here "
                 "oneDNN falls back to slower ones\n",
                 cpu_isa().c_str(), precision.c_str());
  }

  std::size_t nodes = 0;
  std::size_t low_layers = 0;
  std::size_t weight_bytes = 0;
  // Stages repeat the same weights; the package stores identical blobs once, so count them once.
  std::set<std::pair<std::size_t, std::size_t>> counted;
  const auto& network = package.networks.front();
  for (const auto& stage : network.stages) {
    nodes += stage.graph.nodes.size();
    for (const auto& node : stage.graph.nodes) low_layers += node.attrs.contains("precision") ? 1 : 0;
    for (const auto& tensor : stage.graph.tensors) {
      if (!tensor.data) continue;
      const std::string_view bytes(reinterpret_cast<const char*>(tensor.data->data), tensor.data->size);
      if (counted.insert({tensor.data->size, std::hash<std::string_view>{}(bytes)}).second)
        weight_bytes += tensor.data->size;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("%s: network '%s' (%s), 1 network, %zu stage(s), %zu nodes, %s%s, %.2f MB weights, %.2f s\n",
              args.output.c_str(), network.name.c_str(), network.metadata.value("model_type", "raw").c_str(),
              network.stages.size(), nodes, network.precision.c_str(),
              network.precision == "f32"
                  ? ""
                  : fmt::format(" ({} {} convolutions)", low_layers, network.precision).c_str(),
              static_cast<double>(weight_bytes) / 1e6, seconds);
  const auto quantization = network.metadata.value("quantization", nlohmann::json::object());
  if (quantization.contains("sensitive_layers")) {
    std::printf("--int8-tolerance %g: %zu layer(s) kept float: %s\n", args.int8_tolerance,
                quantization.at("sensitive_layers").size(),
                quantization.at("sensitive_layers").dump().c_str());
  }
  if (!options.calib_table_out.empty() && std::filesystem::exists(options.calib_table_out))
    std::printf("calibration table: %s\n", options.calib_table_out.c_str());
}

}  // namespace

void register_compile(CLI::App& app) {
  auto args = std::make_shared<CompileArgs>();
  auto* command = app.add_subcommand("compile", "Compile an ONNX detector into a .vpk package");
  command->add_option("model", args->model, "ONNX model file")->required();
  command->add_option("-o,--output", args->output, "Output .vpk file")->required();
  command->add_option("--name", args->name, "Network name (default: the model file's stem)");
  command->add_option("--batch", args->batch, "Comma-separated batch sizes, one stage each (e.g. 1,4)");
  command->add_option("--shape", args->shape, "static | dynamic (inputs may be smaller than compiled)");
  command->add_option("--input-size", args->input_size, "WxH input size overriding the export's");
  // The tasks of models/tasks/ listed from their registry, so a new task needs no edit here.
  std::string model_types = "yolov5 | yolov8 | yolofastestv2";
  for (const models::TaskKind* kind : models::task_kinds())
    model_types += fmt::format(" | {}", kind->model_type);
  command->add_option("--model-type", args->model_type, model_types + " | raw | auto");
  command->add_flag("--full-graph", args->full_graph,
                    "Keep the YOLO decode instead of cutting at the raw head");
  command->add_option("--precision", args->precision,
                      "f32 | int8 | bf16 | auto (best the CPU runs natively); int8 on a statically quantized "
                      "ONNX uses the file's own integers. Default: f32, but int8 for a statically quantized "
                      "ONNX on a CPU with native int8 (VNNI)");
  command->add_option("--calib-images", args->calib_images, "int8: folder of calibration images");
  command->add_option("--calib-count", args->calib_count, "int8: use the first N images by name (0 = all)");
  command->add_option("--calib-method", args->calib_method, "int8: kl (entropy) | max | percentile")
      ->capture_default_str();
  command
      ->add_option("--percentile", args->percentile, "int8: percentile of |x| for --calib-method percentile")
      ->capture_default_str();
  command->add_option("--keep-float", args->keep_float,
                      "int8: node names that stay f32 (see vapipe info --layers)");
  command->add_flag(
      "--int8-head", args->int8_head,
      "int8: quantize the convolutions writing the outputs (detection heads) too; default float");
  command->add_option("--int8-tolerance", args->int8_tolerance,
                      "int8: keep float the layers whose output cosine to FP32 is below COS (e.g. 0.99)");
  command->add_option("--calib-table", args->calib_table,
                      "int8: calibration table; read when it exists (calibration skipped), else written");
  command->add_option("--threads", args->threads, "Calibration threads (0 = every core)")
      ->check(thread_count());
  command->callback([args] { run_compile(*args); });
}

}  // namespace vapipe::cli
