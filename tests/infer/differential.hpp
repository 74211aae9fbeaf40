#pragma once
// Seeded differential checks: a graph run by the runtime (stages 1 and 4, so batches below 4 run as partial
// batches) against the plain reference executor on random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "compiler/reference_executor.hpp"
#include "core/graph.hpp"
#include "vapipe/runtime.hpp"

namespace vapipe::test {

using GraphFactory = std::function<ir::Graph(std::int64_t batch)>;

inline std::shared_ptr<const Network> make_network(const GraphFactory& factory,
                                                   std::vector<std::int64_t> batches) {
  auto network = std::make_shared<ir::Network>();
  network->name = "test";
  for (auto batch : batches) network->stages.push_back({batch, factory(batch)});
  return std::make_shared<const Network>(network);
}

inline std::vector<float> random_values(const Shape& shape, unsigned seed) {
  std::mt19937 generator(seed);
  std::uniform_real_distribution<float> distribution(-1.0F, 1.0F);
  std::vector<float> values(static_cast<std::size_t>(shape_volume(shape)));
  for (auto& value : values) value = distribution(generator);
  return values;
}

// Runs `batch` samples through the runtime (stages 1 and 4) and the reference; outputs must agree.
inline void expect_matches_reference(const GraphFactory& factory, std::int64_t batch, int threads = 2) {
  const ir::Graph reference_graph = factory(batch);
  std::vector<std::vector<float>> inputs;
  std::vector<ConstTensorView> views;
  for (std::size_t i = 0; i < reference_graph.inputs.size(); ++i) {
    const Shape& shape = reference_graph.tensors[reference_graph.inputs[i]].shape;
    inputs.push_back(random_values(shape, 100 + static_cast<unsigned>(i)));
    views.push_back({inputs.back().data(), DType::kF32, shape});
  }
  const auto expected = compiler::run_reference(reference_graph, inputs);
  ExecutionContext context(make_network(factory, {1, 4}), {.threads = threads});
  context.run(views);
  ASSERT_EQ(context.output_count(), expected.size());
  for (std::size_t o = 0; o < expected.size(); ++o) {
    const auto output = context.output(o);
    const auto* actual = static_cast<const float*>(output.data);
    // Outputs are batch-major: the first expected.size() values belong to the real samples.
    ASSERT_GE(static_cast<std::size_t>(shape_volume(output.shape)), expected[o].size());
    double max_reference = 1.0;
    for (float value : expected[o])
      max_reference = std::max(max_reference, static_cast<double>(std::fabs(value)));
    double worst = 0.0;
    std::size_t worst_index = 0;
    for (std::size_t i = 0; i < expected[o].size(); ++i) {
      const double difference =
          std::fabs(static_cast<double>(actual[i]) - static_cast<double>(expected[o][i]));
      if (difference > worst) {
        worst = difference;
        worst_index = i;
      }
    }
    EXPECT_LE(worst / max_reference, 1e-4)
        << "output " << o << " element " << worst_index << ": runtime " << actual[worst_index]
        << " reference " << expected[o][worst_index];
  }
}

}  // namespace vapipe::test
