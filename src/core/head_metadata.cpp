#include "core/head_metadata.hpp"

#include <cmath>

#include <fmt/format.h>

#include "core/error.hpp"

namespace vapipe::ir {
namespace {

// A grid side beyond any input size (16384 pixels at stride 1 is 16384 cells; 65536 leaves room).
constexpr double kMaxGridCells = 65536;

struct HeadChecker {
  const std::string& network;

  [[noreturn]] void refuse(const std::string& key, const nlohmann::json& value, const char* rule) const {
    fail("network '{}': metadata {} is {}; {}", network, key, value.dump(), rule);
  }

  // A stride or anchor side: a finite number above 0 (input pixels).
  void positive(const nlohmann::json& value, const std::string& key, const char* rule) const {
    if (!value.is_number() || !std::isfinite(value.get<double>()) || !(value.get<double>() > 0.0))
      refuse(key, value, rule);
  }

  // A grid side: a whole number of cells from 1 to kMaxGridCells.
  void cells(const nlohmann::json& value, const std::string& key) const {
    if (!value.is_number_integer() || value.get<double>() < 1.0 || value.get<double>() > kMaxGridCells)
      refuse(key, value, "it must be a whole number of cells from 1 to 65536");
  }

  // [[w, h], ...]: returns how many.
  std::size_t anchors(const nlohmann::json& value, const std::string& key) const {
    if (!value.is_array() || value.empty()) refuse(key, value, "it must be a non-empty array of [w, h]");
    for (std::size_t a = 0; a < value.size(); ++a) {
      const auto& anchor = value[a];
      const std::string where = fmt::format("{}[{}]", key, a);
      if (!anchor.is_array() || anchor.size() != 2) refuse(where, anchor, "it must be [w, h]");
      positive(anchor[0], where + "[0]", "an anchor's width must be a number above 0 (input pixels)");
      positive(anchor[1], where + "[1]", "an anchor's height must be a number above 0 (input pixels)");
    }
    return value.size();
  }

  void output(const nlohmann::json& entry, const std::string& key) const {
    if (!entry.is_object()) return;  // the decoder says what it needs of a malformed entry
    if (const auto stride = entry.find("stride"); stride != entry.end()) {
      positive(*stride, key + ".stride", "it must be a number above 0 (input pixels per grid cell)");
    }
    if (const auto strides = entry.find("strides"); strides != entry.end()) {
      if (!strides->is_array() || strides->empty())
        refuse(key + ".strides", *strides, "it must be a non-empty array of numbers above 0");
      for (std::size_t s = 0; s < strides->size(); ++s) {
        positive((*strides)[s], fmt::format("{}.strides[{}]", key, s),
                 "it must be a number above 0 (input pixels per grid cell)");
      }
    }
    if (const auto grids = entry.find("grids"); grids != entry.end()) {
      if (!grids->is_array() || grids->empty())
        refuse(key + ".grids", *grids, "it must be a non-empty array of [rows, columns]");
      for (std::size_t g = 0; g < grids->size(); ++g) {
        const auto& grid = (*grids)[g];
        const std::string where = fmt::format("{}.grids[{}]", key, g);
        if (!grid.is_array() || grid.size() != 2) refuse(where, grid, "it must be [rows, columns]");
        cells(grid[0], where + "[0]");
        cells(grid[1], where + "[1]");
      }
    }
    const auto anchor_sets = entry.find("anchors");
    if (anchor_sets == entry.end()) return;
    if (entry.contains("strides")) {
      // yolofastestv2: one anchor set per scale, all the same size (a row holds 5 values per anchor).
      if (!anchor_sets->is_array() || anchor_sets->empty())
        refuse(key + ".anchors", *anchor_sets, "it must be a non-empty array of anchor sets");
      std::size_t first = 0;
      for (std::size_t s = 0; s < anchor_sets->size(); ++s) {
        const std::string where = fmt::format("{}.anchors[{}]", key, s);
        const std::size_t count = anchors((*anchor_sets)[s], where);
        if (s == 0) first = count;
        if (count != first) {
          fail("network '{}': metadata {} has {} anchors, {}.anchors[0] {}; every scale needs as many",
               network, where, count, key, first);
        }
      }
    } else {
      anchors(*anchor_sets, key + ".anchors");
    }
  }
};

}  // namespace

void check_head_metadata(const std::string& network, const nlohmann::json& metadata) {
  if (!metadata.is_object()) return;
  const auto head = metadata.find("head");
  if (head == metadata.end() || !head->is_object()) return;
  const HeadChecker checker{network};
  if (const auto reg_max = head->find("reg_max"); reg_max != head->end()) {
    if (!reg_max->is_number_integer() || reg_max->get<double>() < 1.0 || reg_max->get<double>() > 1024.0)
      checker.refuse("head.reg_max", *reg_max, "it must be a whole number of bins from 1 to 1024");
  }
  const auto outputs = head->find("outputs");
  if (outputs == head->end() || !outputs->is_array()) return;
  for (std::size_t i = 0; i < outputs->size(); ++i) {
    checker.output((*outputs)[i], fmt::format("head.outputs[{}]", i));
  }
}

}  // namespace vapipe::ir
