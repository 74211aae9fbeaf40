// The C++ runtime's side of tests/python and bench/python_bench.py: runs a package's network on a raw
// float32 input with the runtime alone (outputs kept in the context) and writes each output raw, or times
// the runs.
//
//   python_run_reference PACKAGE INPUT.raw BATCH OUTPUT_PREFIX   -> OUTPUT_PREFIX.0.raw, .1.raw, ...
//   python_run_reference PACKAGE INPUT.raw BATCH --time RUNS     -> the mean milliseconds of one run
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "vapipe/runtime.hpp"

namespace {
std::size_t element_count(const vapipe::Shape& shape) {
  return static_cast<std::size_t>(
      std::accumulate(shape.begin(), shape.end(), std::int64_t{1}, std::multiplies<>()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s PACKAGE INPUT.raw BATCH (OUTPUT_PREFIX | --time RUNS)\n", argv[0]);
    return 2;
  }
  try {
    const auto network = vapipe::Model::load(argv[1])->network();
    const std::int64_t batch = std::stoll(argv[3]);
    vapipe::Shape shape = network->inputs(network->stage_for(batch)).at(0).shape;
    shape[0] = batch;
    std::ifstream file(argv[2], std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (bytes.size() != static_cast<std::size_t>(element_count(shape)) * sizeof(float))
      vapipe::fail("{}: {} bytes, expected f32 {}", argv[2], bytes.size(), vapipe::shape_to_string(shape));
    vapipe::ExecutionContext context(network, {.threads = 1});
    const vapipe::ConstTensorView input{bytes.data(), vapipe::DType::kF32, shape};
    if (std::string(argv[4]) == "--time") {
      const int runs = std::stoi(argv[5]);
      context.run({input});  // warm-up: first-touch of the arena, oneDNN's kernel caches
      const auto started = std::chrono::steady_clock::now();
      for (int i = 0; i < runs; ++i) context.run({input});
      const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - started;
      std::printf("%.6f\n", elapsed.count() / runs);
      return 0;
    }
    context.run({input});
    for (std::size_t o = 0; o < context.output_count(); ++o) {
      const auto output = context.output(o);
      std::ofstream out(std::string(argv[4]) + "." + std::to_string(o) + ".raw", std::ios::binary);
      out.write(static_cast<const char*>(output.data),
                static_cast<std::streamsize>(element_count(output.shape) * sizeof(float)));
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "python_run_reference: %s\n", error.what());
    return 1;
  }
}
