#include "compiler/graph_passes.hpp"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "core/error.hpp"

namespace vapipe::compiler {
namespace {

using ir::Graph;
using ir::Node;

struct Uses {
  std::vector<std::vector<std::size_t>> consumers;  // per tensor: consuming node indices
  std::vector<int> producer;                        // per tensor: producing node index or -1
  std::vector<bool> is_output;
};

Uses compute_uses(const Graph& graph) {
  Uses uses;
  uses.consumers.resize(graph.tensors.size());
  uses.producer.assign(graph.tensors.size(), -1);
  uses.is_output.assign(graph.tensors.size(), false);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const auto& node = graph.nodes[i];
    if (node.op.empty()) continue;
    for (int input : node.inputs) {
      if (input >= 0) uses.consumers[static_cast<std::size_t>(input)].push_back(i);
    }
    for (int output : node.outputs) uses.producer[static_cast<std::size_t>(output)] = static_cast<int>(i);
  }
  for (int output : graph.outputs) uses.is_output[static_cast<std::size_t>(output)] = true;
  return uses;
}

void drop_deleted(Graph& graph) {
  std::erase_if(graph.nodes, [](const Node& node) { return node.op.empty(); });
}

bool has_sum(const Node& conv) { return conv.inputs.size() > 3 && conv.inputs[3] >= 0; }

const ir::Tensor& tensor(const Graph& graph, int index) {
  return graph.tensors.at(static_cast<std::size_t>(index));
}

// Per-channel values of a constant that, broadcast against an [N, C, H, W] output, varies only along C.
std::optional<std::vector<float>> per_channel(const Graph& graph, int index, std::int64_t channels) {
  const auto& t = tensor(graph, index);
  if (!t.data || t.dtype != DType::kF32 || t.shape.size() > 4) return std::nullopt;
  const auto values = t.data->as<float>();
  if (values.size() == 1) return std::vector<float>(static_cast<std::size_t>(channels), values[0]);
  const std::size_t offset = 4 - t.shape.size();
  for (std::size_t d = 0; d < t.shape.size(); ++d) {
    const std::size_t aligned = d + offset;
    if (aligned != 1 && t.shape[d] != 1) return std::nullopt;
    if (aligned == 1 && t.shape[d] != channels) return std::nullopt;
  }
  return std::vector<float>(values.begin(), values.end());
}

void rename_output(Node& conv, Node& absorbed) {
  conv.outputs[0] = absorbed.outputs[0];
  absorbed.op.clear();
}

// A tensor read from `source` at rows dy, dy + 2, ... and columns dx, dx + 2, ... of every image and channel.
struct Phase {
  int source = -1;
  std::int64_t dy = 0, dx = 0;
};

// The phase `t` holds when it is made by up to two chained Slices that together step by 2 over the whole
// height and width and take every batch and channel.
std::optional<Phase> phase_of(const Graph& graph, const Uses& uses, int t) {
  const Shape out = tensor(graph, t).shape;
  if (out.size() != 4) return std::nullopt;
  std::vector<std::int64_t> start(4, 0), step(4, 1);  // of `t` in the tensor reached so far
  int source = t;
  for (int hop = 0; hop < 2; ++hop) {
    const int p = uses.producer[static_cast<std::size_t>(source)];
    if (p < 0 || graph.nodes[static_cast<std::size_t>(p)].op != "Slice") break;
    const Node& slice = graph.nodes[static_cast<std::size_t>(p)];
    const auto starts = slice.attrs.value("starts", std::vector<std::int64_t>{});
    const auto steps = slice.attrs.value("steps", std::vector<std::int64_t>(starts.size(), 1));
    if (starts.size() != 4 || steps.size() != 4) return std::nullopt;
    for (std::size_t d = 0; d < 4; ++d) {
      start[d] = starts[d] + steps[d] * start[d];
      step[d] *= steps[d];
    }
    source = slice.inputs.at(0);
  }
  if (source == t) return std::nullopt;
  const Shape& in = tensor(graph, source).shape;
  if (in.size() != 4 || in[2] % 2 != 0 || in[3] % 2 != 0) return std::nullopt;
  for (std::size_t d = 0; d < 2; ++d) {
    if (start[d] != 0 || step[d] != 1 || out[d] != in[d]) return std::nullopt;
  }
  for (std::size_t d = 2; d < 4; ++d) {
    if (step[d] != 2 || start[d] < 0 || start[d] > 1 || out[d] != in[d] / 2) return std::nullopt;
  }
  return Phase{source, start[2], start[3]};
}

}  // namespace

void fuse_space_to_depth(Graph& graph) {
  const Uses uses = compute_uses(graph);
  for (auto& concat : graph.nodes) {
    if (concat.op != "Concat" || concat.inputs.size() != 4 ||
        concat.attrs.value("axis", std::int64_t{0}) != 1)
      continue;
    nlohmann::json offsets = nlohmann::json::array();
    int source = -1;
    std::vector<bool> seen(4, false);
    for (int input : concat.inputs) {
      const auto phase = phase_of(graph, uses, input);
      if (!phase || (source >= 0 && phase->source != source)) break;
      const auto cell = static_cast<std::size_t>(phase->dy * 2 + phase->dx);
      if (seen[cell]) break;
      seen[cell] = true;
      source = phase->source;
      offsets.push_back({phase->dy, phase->dx});
    }
    if (offsets.size() != 4) continue;
    concat.op = "SpaceToDepth";
    concat.inputs = {source};
    concat.attrs = {{"block", 2}, {"offsets", std::move(offsets)}};
  }
}

void fold_batch_norm(Graph& graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    const Uses uses = compute_uses(graph);
    for (auto& conv : graph.nodes) {
      // ConvTranspose too: the unfused BatchNormalization after a pose model's upsampling head.
      if ((conv.op != "Conv" && conv.op != "ConvTranspose") || has_sum(conv) ||
          !conv.attrs.value("post_ops", nlohmann::json::array()).empty())
        continue;
      const int y = conv.outputs[0];
      const auto& consumers = uses.consumers[static_cast<std::size_t>(y)];
      if (consumers.size() != 1 || uses.is_output[static_cast<std::size_t>(y)]) continue;
      Node& next = graph.nodes[consumers[0]];
      if (next.op.empty()) continue;
      const Shape& ys = tensor(graph, y).shape;
      const std::int64_t channels = ys[1];
      std::vector<float> scale(static_cast<std::size_t>(channels), 1.0F),
          shift(static_cast<std::size_t>(channels), 0.0F);
      if (next.op == "Eltwise" && next.attrs.value("alg", "") == "linear") {
        std::fill(scale.begin(), scale.end(), next.attrs.value("alpha", 1.0F));
        std::fill(shift.begin(), shift.end(), next.attrs.value("beta", 0.0F));
      } else if (next.op == "Binary" && tensor(graph, next.outputs[0]).shape == ys) {
        const std::string alg = next.attrs.value("alg", "");
        const int other = next.inputs[0] == y ? next.inputs[1] : next.inputs[0];
        if (next.inputs[0] == next.inputs[1]) continue;
        const auto values = per_channel(graph, other, channels);
        if (!values) continue;
        if (alg == "mul") {
          scale = *values;
        } else if (alg == "add") {
          shift = *values;
        } else if (alg == "sub" && next.inputs[0] == y) {
          for (std::size_t c = 0; c < shift.size(); ++c) shift[c] = -(*values)[c];
        } else {
          continue;
        }
      } else {
        continue;
      }
      const auto& w = tensor(graph, conv.inputs[1]);
      const auto weights = w.data->as<float>();
      const std::size_t per_out = weights.size() / static_cast<std::size_t>(channels);
      std::vector<float> new_weights(weights.begin(), weights.end());
      std::vector<float> new_bias(static_cast<std::size_t>(channels), 0.0F);
      if (conv.inputs.size() > 2 && conv.inputs[2] >= 0) {
        const auto bias = tensor(graph, conv.inputs[2]).data->as<float>();
        std::copy(bias.begin(), bias.end(), new_bias.begin());
      }
      if (conv.op == "ConvTranspose") {
        // Weights [C_in, C_out / group, kh, kw]: output channel g * (C_out / group) + m of input channel i
        // (group g = i / (C_in / group)) is the block at (i, m).
        const std::int64_t group = conv.attrs.value("group", std::int64_t{1});
        const auto per_group = static_cast<std::size_t>(w.shape[1]);
        const auto in_per_group = static_cast<std::size_t>(w.shape[0] / group);
        const std::size_t block = weights.size() / (static_cast<std::size_t>(w.shape[0]) * per_group);
        for (std::size_t i = 0; i < static_cast<std::size_t>(w.shape[0]); ++i) {
          for (std::size_t m = 0; m < per_group; ++m) {
            const float factor = scale[(i / in_per_group) * per_group + m];
            for (std::size_t k = 0; k < block; ++k) new_weights[(i * per_group + m) * block + k] *= factor;
          }
        }
      }
      for (std::size_t c = 0; c < new_bias.size(); ++c) {
        if (conv.op == "Conv") {
          for (std::size_t k = 0; k < per_out; ++k) new_weights[c * per_out + k] *= scale[c];
        }
        new_bias[c] = new_bias[c] * scale[c] + shift[c];
      }
      const std::string base = tensor(graph, next.outputs[0]).name;
      const Shape w_shape = w.shape;
      conv.inputs.resize(std::max<std::size_t>(conv.inputs.size(), 3), -1);
      conv.inputs[1] = graph.add_tensor(
          {base + "/weight", DType::kF32, w_shape, ir::ConstBytes::from_vector(std::move(new_weights))});
      conv.inputs[2] = graph.add_tensor(
          {base + "/bias", DType::kF32, {channels}, ir::ConstBytes::from_vector(std::move(new_bias))});
      rename_output(conv, next);
      changed = true;
      break;  // uses are stale now
    }
    drop_deleted(graph);
  }
}

void fuse_activations(Graph& graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    const Uses uses = compute_uses(graph);
    for (auto& conv : graph.nodes) {
      if (conv.op != "Conv") continue;
      const int y = conv.outputs[0];
      if (uses.is_output[static_cast<std::size_t>(y)]) continue;
      const auto& consumers = uses.consumers[static_cast<std::size_t>(y)];
      nlohmann::json post;
      Node* absorbed = nullptr;
      if (consumers.size() == 1) {
        Node& next = graph.nodes[consumers[0]];
        const std::string alg = next.attrs.value("alg", "");
        if (next.op == "Eltwise" &&
            (alg == "relu" || alg == "leaky_relu" || alg == "sigmoid" || alg == "swish" || alg == "clip")) {
          post = {{"op", alg}};
          if (next.attrs.contains("alpha")) post["alpha"] = next.attrs["alpha"];
          if (next.attrs.contains("beta")) post["beta"] = next.attrs["beta"];
          if (alg == "swish" && !post.contains("alpha")) post["alpha"] = 1.0;
          absorbed = &next;
        }
      } else if (consumers.size() == 2) {
        // SiLU as exported by PyTorch: s = Sigmoid(y); Mul(y, s).
        for (int k = 0; k < 2 && absorbed == nullptr; ++k) {
          Node& sig = graph.nodes[consumers[static_cast<std::size_t>(k)]];
          Node& mul = graph.nodes[consumers[static_cast<std::size_t>(1 - k)]];
          if (sig.op != "Eltwise" || sig.attrs.value("alg", "") != "sigmoid") continue;
          if (mul.op != "Binary" || mul.attrs.value("alg", "") != "mul") continue;
          const int s = sig.outputs[0];
          const bool pair =
              (mul.inputs[0] == y && mul.inputs[1] == s) || (mul.inputs[1] == y && mul.inputs[0] == s);
          if (!pair || uses.is_output[static_cast<std::size_t>(s)] ||
              uses.consumers[static_cast<std::size_t>(s)].size() != 1)
            continue;
          post = {{"op", "swish"}, {"alpha", 1.0}};
          sig.op.clear();
          absorbed = &mul;
        }
      }
      if (absorbed == nullptr) continue;
      conv.attrs["post_ops"].push_back(post);
      rename_output(conv, *absorbed);
      changed = true;
      break;
    }
    drop_deleted(graph);
  }
}

void fuse_residual_sum(Graph& graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    const Uses uses = compute_uses(graph);
    for (auto& add : graph.nodes) {
      if (add.op != "Binary" || add.attrs.value("alg", "") != "add" || add.inputs.size() != 2) continue;
      const int out = add.outputs[0];
      const Shape& os = tensor(graph, out).shape;
      if (add.inputs[0] == add.inputs[1]) continue;
      if (tensor(graph, add.inputs[0]).shape != os || tensor(graph, add.inputs[1]).shape != os) continue;
      if (tensor(graph, add.inputs[0]).is_constant() || tensor(graph, add.inputs[1]).is_constant()) continue;
      // The later-produced input is the Conv to extend; the other must exist when that Conv runs.
      int best = -1;
      int best_index = -1;
      for (int k = 0; k < 2; ++k) {
        const int b = add.inputs[static_cast<std::size_t>(k)];
        const int a = add.inputs[static_cast<std::size_t>(1 - k)];
        const int producer = uses.producer[static_cast<std::size_t>(b)];
        if (producer < 0) continue;
        const Node& conv = graph.nodes[static_cast<std::size_t>(producer)];
        // ConvTranspose too: the unfused BatchNormalization after a pose model's upsampling head.
        if ((conv.op != "Conv" && conv.op != "ConvTranspose") || has_sum(conv) ||
            uses.is_output[static_cast<std::size_t>(b)])
          continue;
        if (uses.consumers[static_cast<std::size_t>(b)].size() != 1) continue;
        if (uses.producer[static_cast<std::size_t>(a)] >= producer) continue;
        if (producer > best_index) {
          best_index = producer;
          best = k;
        }
      }
      if (best < 0) continue;
      Node& conv = graph.nodes[static_cast<std::size_t>(best_index)];
      const int a = add.inputs[static_cast<std::size_t>(1 - best)];
      conv.inputs.resize(4, -1);
      conv.inputs[3] = a;
      conv.attrs["post_ops"].push_back({{"op", "sum"}});
      rename_output(conv, add);
      changed = true;
      break;
    }
    drop_deleted(graph);
  }
}

void eliminate_dead_code(Graph& graph) {
  std::vector<bool> live(graph.tensors.size(), false);
  for (int output : graph.outputs) live[static_cast<std::size_t>(output)] = true;
  for (std::size_t i = graph.nodes.size(); i-- > 0;) {
    auto& node = graph.nodes[i];
    const bool needed = std::any_of(node.outputs.begin(), node.outputs.end(),
                                    [&](int t) { return live[static_cast<std::size_t>(t)]; });
    if (!needed) {
      node.op.clear();
      continue;
    }
    for (int input : node.inputs) {
      if (input >= 0) live[static_cast<std::size_t>(input)] = true;
    }
  }
  drop_deleted(graph);
  // Compact: inputs first (in order), then tensors in order of first reference.
  std::vector<int> remap(graph.tensors.size(), -1);
  std::vector<ir::Tensor> kept;
  auto keep = [&](int index) {
    if (index < 0) return -1;
    auto& slot = remap[static_cast<std::size_t>(index)];
    if (slot < 0) {
      slot = static_cast<int>(kept.size());
      kept.push_back(graph.tensors[static_cast<std::size_t>(index)]);
    }
    return slot;
  };
  for (auto& index : graph.inputs) index = keep(index);
  for (auto& node : graph.nodes) {
    for (auto& index : node.inputs) index = keep(index);
    for (auto& index : node.outputs) index = keep(index);
  }
  for (auto& index : graph.outputs) index = keep(index);
  graph.tensors = std::move(kept);
}

void optimize_graph(Graph& graph) {
  eliminate_dead_code(graph);
  fuse_space_to_depth(graph);
  fold_batch_norm(graph);
  fuse_activations(graph);
  fuse_residual_sum(graph);
  fuse_activations(graph);  // an activation after a residual sum (ResNet's relu(x + f(x)))
  eliminate_dead_code(graph);
}

}  // namespace vapipe::compiler
