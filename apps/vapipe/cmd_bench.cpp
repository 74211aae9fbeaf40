#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <random>

#include <fmt/format.h>

#include "apps/vapipe/commands.hpp"
#include "core/error.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::cli {
namespace {

struct BenchOptions {
  std::string path;
  std::string net;
  std::int64_t batch = 1;
  int threads = 0;
  int runs = 50;
  int warmup = 5;
  bool as_json = false;
};

double peak_rss_mb() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

double percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(fraction * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

void run_bench(const BenchOptions& options) {
  using Clock = std::chrono::steady_clock;
  if (options.runs < 1) fail("--runs must be at least 1, got {}", options.runs);
  const auto load_start = Clock::now();
  const auto model = Model::load(options.path);
  const auto network = model->network(options.net);
  const std::int64_t stage = network->stage_for(options.batch);
  ExecutionContext context(network, {.threads = options.threads});
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - load_start).count();

  // Seeded random input in the model's own range (0..1 images): the same work every run.
  std::vector<std::vector<float>> buffers;
  std::vector<ConstTensorView> inputs;
  std::mt19937 generator(42);
  std::uniform_real_distribution<float> distribution(0.0F, 1.0F);
  for (const auto& info : network->inputs(stage)) {
    Shape shape = info.shape;
    shape[0] = options.batch;
    auto& buffer = buffers.emplace_back(static_cast<std::size_t>(shape_volume(shape)));
    for (auto& value : buffer) value = distribution(generator);
    inputs.push_back({buffer.data(), DType::kF32, shape});
  }
  for (int i = 0; i < options.warmup; ++i) context.run(inputs);
  std::vector<double> times_ms;
  for (int i = 0; i < options.runs; ++i) {
    const auto start = Clock::now();
    context.run(inputs);
    times_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  const double median = percentile(times_ms, 0.5);
  const double p90 = percentile(times_ms, 0.9);
  const double per_image = median / static_cast<double>(options.batch);
  if (options.as_json) {
    const nlohmann::json report = {{"file", options.path},
                                   {"net", network->name()},
                                   {"precision", network->precision()},
                                   {"isa", cpu_isa()},
                                   {"native", cpu_has_native(network->precision())},
                                   {"batch", options.batch},
                                   {"stage", stage},
                                   {"threads", options.threads},
                                   {"runs", options.runs},
                                   {"median_ms", median},
                                   {"p90_ms", p90},
                                   {"per_image_ms", per_image},
                                   {"min_ms", *std::min_element(times_ms.begin(), times_ms.end())},
                                   {"load_ms", load_ms},
                                   {"peak_rss_mb", peak_rss_mb()}};
    fmt::print("{}\n", report.dump());
  } else {
    fmt::print(
        "net={} precision={} isa={} native={} batch={} stage={} threads={} runs={} load_ms={:.1f} "
        "peak_rss_mb={:.1f}\n",
        network->name(), network->precision(), cpu_isa(), cpu_has_native(network->precision()), options.batch,
        stage, options.threads, options.runs, load_ms, peak_rss_mb());
    fmt::print("median_ms={:.3f} p90_ms={:.3f} per_image_ms={:.3f}\n", median, p90, per_image);
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  static BenchOptions options;
  auto* command =
      app.add_subcommand("bench", "Measure inference latency of a network (warm-up, then median and p90)");
  command->add_option("package", options.path, "Package file (.vpk)")->required();
  command->add_option("--net", options.net, "Network name (default: the first)");
  command->add_option("--batch", options.batch, "Images per run; the smallest stage that fits runs")
      ->check(positive_number());
  command->add_option("--threads", options.threads, "Worker threads (0 = every core)")->check(thread_count());
  command->add_option("--runs", options.runs, "Timed runs")->check(positive_number());
  command->add_option("--warmup", options.warmup, "Untimed runs first")->check(non_negative_number());
  command->add_flag("--json", options.as_json, "Print one JSON object");
  command->callback([] { run_bench(options); });
}

}  // namespace vapipe::cli
