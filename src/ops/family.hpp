#pragma once
// What an operator family file (src/ops/<family>.cpp) works with: the four contexts of an operator (import,
// shapes, reference, lowering), the registry it adds itself to, and oneDNN's names. Included by the family
// files only.
#include <dnnl.hpp>

#include "core/error.hpp"
#include "ops/import_context.hpp"
#include "ops/lowering.hpp"
#include "ops/plain_kernels.hpp"
#include "ops/reference.hpp"
#include "ops/registry.hpp"
#include "ops/shape_inference.hpp"

namespace vapipe::ops::family {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using Dims = memory::dims;
using Tag = memory::format_tag;
using nlohmann::json;

inline constexpr memory::data_type kF32 = memory::data_type::f32;
inline constexpr memory::data_type kS8 = memory::data_type::s8;
inline constexpr memory::data_type kU8 = memory::data_type::u8;
inline constexpr memory::data_type kBf16 = memory::data_type::bf16;

}  // namespace vapipe::ops::family
