#include "ops/import_context.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace vapipe::ops {

const Constant* ImportContext::const_input(int i) const {
  if (!has_input(i)) return nullptr;
  const Constant* c = constant_of(node().input(i));
  if (c == nullptr) unsupported(fmt::format("input {} must be a constant", i));
  return c;
}

int ImportContext::activation_input(int i) {
  if (!has_input(i)) fail("input {} missing", i);
  return tensor_of(node().input(i));
}

int ImportContext::emit1(const std::string& op, std::vector<int> inputs, nlohmann::json attrs,
                         const std::string& output_name) {
  return emit(op, std::move(inputs), std::move(attrs), {output_name})[0];
}

int ImportContext::emit_reshape(int x, const Shape& target, const std::string& output_name) {
  if (shape_of(x) == target) return x;
  return emit1("Reshape", {x}, {{"shape", target}}, output_name);
}

std::int64_t ImportContext::normalize_axis(std::int64_t axis, std::size_t rank) const {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) fail("{}: axis {} out of range for rank {}", node().op_type(), axis, rank);
  return axis;
}

std::vector<std::int64_t> ImportContext::spatial_attr(const char* name, std::int64_t fallback,
                                                      std::size_t count) const {
  auto values = attribute_ints(node(), name).value_or(std::vector<std::int64_t>(count, fallback));
  if (values.size() != count) unsupported(fmt::format("attribute '{}' must have {} values", name, count));
  return values;
}

std::vector<std::int64_t> ImportContext::window_pads(const Shape& x, const std::vector<std::int64_t>& kernel,
                                                     const std::vector<std::int64_t>& strides,
                                                     const std::vector<std::int64_t>& dilations,
                                                     std::size_t spatial_rank) const {
  const std::string auto_pad = attribute_string(node(), "auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    auto pads = spatial_attr("pads", 0, 2 * spatial_rank);
    if (spatial_rank == 1) pads = {0, pads[0], 0, pads[1]};
    return pads;
  }
  if (auto_pad == "VALID") return {0, 0, 0, 0};
  if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") unsupported("auto_pad '" + auto_pad + "'");
  std::vector<std::int64_t> pads(4);
  for (std::size_t d = 0; d < 2; ++d) {
    const std::int64_t in = x[2 + d];
    const std::int64_t out = (in + strides[d] - 1) / strides[d];
    const std::int64_t total =
        std::max<std::int64_t>((out - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - in, 0);
    const std::int64_t small = total / 2;
    pads[d] = auto_pad == "SAME_UPPER" ? small : total - small;
    pads[d + 2] = total - pads[d];
  }
  return pads;
}

std::vector<std::int64_t> ImportContext::lift_to_2d(std::vector<std::int64_t> values, std::int64_t unit) {
  if (values.size() == 1) values.insert(values.begin(), unit);
  return values;
}

}  // namespace vapipe::ops
