#pragma once
// The graph IR shared by the compiler (which writes it) and the runtime (which executes it).
// A compiled network is a list of nodes in execution order over tensors with static NCHW shapes.
// Every node uses the op vocabulary below; the ONNX importer lowers ONNX ops to it and folds
// everything that only computes shapes.
//
// Op vocabulary (attrs are JSON; shapes of outputs are always stored in the tensors):
//   Conv        in [X, W, B|-1, (Sum)]   strides[2], pads[4] (top, left, bottom, right), dilations[2], group,
//                                        post_ops: [{"op": "relu"|"leaky_relu"|"sigmoid"|"swish"|"clip"|"sum",
//                                        "alpha": f, "beta": f}] applied in order; "sum" adds input 3
//                                        (same shape as the output) to the result at that point.
//   MaxPool, AveragePool in [X]          kernel[2], strides[2], pads[4], count_include_pad (average only)
//   Concat      in [X...]                axis
//   Split       in [X] out [Y...]        axis, sizes[]
//   Slice       in [X]                   starts[], ends[], steps[] (one per dim, resolved and clamped, step > 0)
//   Resize      in [X]                   mode "nearest" | "linear" | "cubic", coordinate_transformation_mode,
//                                        nearest_mode, scales[]; cubic_coeff_a, exclude_outside (linear, cubic)
//                                        (output shape carries the scale)
//   ConvTranspose in [X, W, B?]          strides[2], pads[4], dilations[2], output_padding[2], group;
//                                        W is ONNX's [C_in, C_out/group, kh, kw]
//   Pad         in [X]                   mode "constant" | "reflect" | "edge", pads[2 * rank] (begins, then
//                                        ends; negative crops), value (constant mode)
//   Eltwise     in [X]                   alg: relu | leaky_relu(alpha) | sigmoid | swish(alpha) | tanh | exp |
//                                        log | sqrt | square | abs | clip(alpha=min, beta=max) |
//                                        pow(alpha * x^beta) | linear(alpha * x + beta) | hardswish |
//                                        hardsigmoid(alpha, beta)
//   Binary      in [A, B]                alg: add | sub | mul | div | max | min | pow ; numpy broadcasting
//   Reshape     in [X]                   (target = output tensor shape)
//   Transpose   in [X]                   perm[]
//   Softmax     in [X]                   axis (opset-13 semantics: along one axis), log (LogSoftmax; default false)
//   Gather      in [X]                   axis, indices[] (constant), indices_shape[]
//   PRelu       in [X, Slope]            x < 0 ? slope * x : x; Slope broadcasts to X (numpy, X's shape kept)
//   MatMul      in [A, B, (Bias)]        A [..., M, K] x B [..., K, N], leading dims broadcast (numpy); Bias
//                                        broadcasts to the output [..., M, N] (Gemm's beta * C)
//   Reduce      in [X]                   alg: mean | max ; axes[] (each once), keepdims
//   Tile        in [X]                   shape[] (output): out[c] = x[c mod dim] per dimension, X padded with
//                                        leading 1s (ONNX Tile and Expand)
//   ArgMax      in [X]                   axis, keepdims, select_last_index; the indices as f32 (exact < 2^24)
//
// Reduced precision (docs/model-format.md, "Precision"): a Conv may carry "precision": "int8" | "bf16".
//   int8: W is an s8 constant (OIHW) with "weight_scales" [O] (real = q * scale, per output channel);
//         "input_scale" and "input_type" ("s8" | "u8") say how an f32 input X is quantized (an s8 input
//         tensor carries its own scale). The output is s8 (its tensor's scale) or f32; a sum addend has
//         the output's dtype. Bias stays f32 (real units).
//         With "integer": true (pre-quantized ONNX on its own integers, compiler/precision.hpp): X and the
//         output hold integers (u8/s8 tensors of scale 1, or an f32 X of integers), "input_zero_point" and
//         "output_zero_point" apply, "weight_scales" are the requantization multipliers, the bias is in
//         accumulator units, and y = saturate(round_half_even(acc * weight_scales[m]) + output_zero_point).
//   bf16: W stays f32 (converted at load); X and the output are bf16 or f32 tensors.
// Activation tensors may then be s8 (with `scale`), u8 (integer convolutions) or bf16; MaxPool, Resize,
// Concat, Split, Slice and Reshape pass them through unchanged (all inputs and outputs of such a node share
// dtype and scale).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.hpp"

namespace vapipe::ir {

// Any tensor of a graph read from a package (constant or activation) has at most this many elements (a
// batch of 16 4K RGB frames has 4e8), so element counts times an 8-byte type never overflow a size_t.
inline constexpr std::int64_t kMaxTensorElements = std::int64_t{1} << 31;

// Bytes of a constant tensor, kept alive by `owner` (a compiler-made vector or the package's mapping),
// so a loaded package hands out weights without copying them.
struct ConstBytes {
  const std::byte* data = nullptr;
  std::size_t size = 0;
  std::shared_ptr<const void> owner;

  template <typename T>
  std::span<const T> as() const {
    return {reinterpret_cast<const T*>(data), size / sizeof(T)};
  }
  static ConstBytes copy_of(const void* source, std::size_t size_bytes);
  template <typename T>
  static ConstBytes from_vector(std::vector<T> values) {
    auto holder = std::make_shared<std::vector<T>>(std::move(values));
    return {reinterpret_cast<const std::byte*>(holder->data()), holder->size() * sizeof(T), holder};
  }
};

struct Tensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  std::optional<ConstBytes> data;  // set for constants (weights, biases, grids)
  float scale = 0.0F;              // s8 activations: real value = q * scale (0 = not quantized)

  bool is_constant() const { return data.has_value(); }
};

struct Node {
  std::string name;  // the ONNX node it came from, for messages and per-layer reports
  std::string op;
  std::vector<int> inputs;  // tensor indices; -1 marks an absent optional input
  std::vector<int> outputs;
  nlohmann::json attrs = nlohmann::json::object();
};

struct Graph {
  std::vector<Tensor> tensors;
  std::vector<Node> nodes;  // execution order
  std::vector<int> inputs;
  std::vector<int> outputs;

  int add_tensor(Tensor tensor);
  std::optional<int> find_tensor(std::string_view name) const;
};

// One compiled batch size of a network: a graph whose input batch dimension is `batch`.
struct Stage {
  std::int64_t batch = 1;
  Graph graph;
};

struct Network {
  std::string name;
  std::string precision = "f32";  // f32 | int8 | bf16 (the mode compiled for; nodes carry their own)
  bool dynamic_shape = false;     // true: inputs may be smaller than the compiled shape (up to it)
  std::vector<Stage> stages;      // ascending batch
  nlohmann::json metadata = nlohmann::json::object();  // model_type, class names, preprocessing, heads
};

struct Package {
  std::vector<Network> networks;
};

nlohmann::json graph_to_json(const Graph& graph,
                             const std::function<nlohmann::json(const ConstBytes&)>& place_data);
Graph graph_from_json(const nlohmann::json& json,
                      const std::function<ConstBytes(const nlohmann::json&)>& find_data);

}  // namespace vapipe::ir
