#include "models/linear_assignment.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "core/error.hpp"

namespace vapipe::models {
namespace {

void check_shape(std::span<const double> cost, int rows, int cols) {
  if (rows < 0 || cols < 0 ||
      cost.size() != static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols)) {
    fail("assignment: cost matrix of {} values does not match {} x {}", cost.size(), rows, cols);
  }
}

// Classic shortest-augmenting-path Hungarian with row/column potentials, for n <= m (n rows, m columns), 1-based
// internally. `at(i, j)` reads the cost of row i-1, column j-1.
template <typename At>
void hungarian(int n, int m, At at, AssignmentScratch& scratch) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto& u = scratch.u;
  auto& v = scratch.v;
  auto& way = scratch.way;
  auto& min_v = scratch.min_v;
  auto& used = scratch.used;
  auto& row_of_col = scratch.match;
  u.assign(static_cast<std::size_t>(n) + 1, 0.0);
  v.assign(static_cast<std::size_t>(m) + 1, 0.0);
  way.assign(static_cast<std::size_t>(m) + 1, 0);
  min_v.resize(static_cast<std::size_t>(m) + 1);
  used.resize(static_cast<std::size_t>(m) + 1);
  row_of_col.assign(static_cast<std::size_t>(m) + 1, 0);  // p[j]: row matched to column j, 0 = none
  auto idx = [](int k) { return static_cast<std::size_t>(k); };
  for (int i = 1; i <= n; ++i) {
    row_of_col[0] = i;
    int j0 = 0;
    std::fill(min_v.begin(), min_v.end(), kInf);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[idx(j0)] = 1;
      const int i0 = row_of_col[idx(j0)];
      double delta = kInf;
      int j1 = 0;
      for (int j = 1; j <= m; ++j) {
        if (used[idx(j)]) continue;
        const double reduced = at(i0 - 1, j - 1) - u[idx(i0)] - v[idx(j)];
        if (reduced < min_v[idx(j)]) {
          min_v[idx(j)] = reduced;
          way[idx(j)] = j0;
        }
        if (min_v[idx(j)] < delta) {
          delta = min_v[idx(j)];
          j1 = j;
        }
      }
      for (int j = 0; j <= m; ++j) {
        if (used[idx(j)]) {
          u[idx(row_of_col[idx(j)])] += delta;
          v[idx(j)] -= delta;
        } else {
          min_v[idx(j)] -= delta;
        }
      }
      j0 = j1;
    } while (row_of_col[idx(j0)] != 0);
    do {
      const int j1 = way[idx(j0)];
      row_of_col[idx(j0)] = row_of_col[idx(j1)];
      j0 = j1;
    } while (j0 != 0);
  }
}

double total_cost(std::span<const double> cost, int cols, const std::vector<int>& row_to_col) {
  double sum = 0.0;
  for (std::size_t r = 0; r < row_to_col.size(); ++r) {
    if (row_to_col[r] >= 0)
      sum += cost[r * static_cast<std::size_t>(cols) + static_cast<std::size_t>(row_to_col[r])];
  }
  return sum;
}

}  // namespace

double solve_assignment(std::span<const double> cost, int rows, int cols, std::vector<int>& row_to_col) {
  AssignmentScratch scratch;
  return solve_assignment(cost, rows, cols, row_to_col, scratch);
}

double solve_assignment(std::span<const double> cost, int rows, int cols, std::vector<int>& row_to_col,
                        AssignmentScratch& scratch) {
  check_shape(cost, rows, cols);
  row_to_col.assign(static_cast<std::size_t>(rows), -1);
  if (rows == 0 || cols == 0) return 0.0;
  const auto c = static_cast<std::size_t>(cols);
  const std::vector<int>& match = scratch.match;
  if (rows <= cols) {
    hungarian(
        rows, cols,
        [&](int r, int k) { return cost[static_cast<std::size_t>(r) * c + static_cast<std::size_t>(k)]; },
        scratch);
    for (int j = 1; j <= cols; ++j) {
      if (match[static_cast<std::size_t>(j)] != 0)
        row_to_col[static_cast<std::size_t>(match[static_cast<std::size_t>(j)] - 1)] = j - 1;
    }
  } else {
    // Transposed: columns play the rows.
    hungarian(
        cols, rows,
        [&](int k, int r) { return cost[static_cast<std::size_t>(r) * c + static_cast<std::size_t>(k)]; },
        scratch);
    for (int r = 1; r <= rows; ++r) {
      if (match[static_cast<std::size_t>(r)] != 0)
        row_to_col[static_cast<std::size_t>(r - 1)] = match[static_cast<std::size_t>(r)] - 1;
    }
  }
  return total_cost(cost, cols, row_to_col);
}

double solve_assignment_reference(std::span<const double> cost, int rows, int cols,
                                  std::vector<int>& row_to_col) {
  check_shape(cost, rows, cols);
  if (std::min(rows, cols) > 7) fail("assignment reference: {} x {} is too large to enumerate", rows, cols);
  row_to_col.assign(static_cast<std::size_t>(rows), -1);
  const int pairs = std::min(rows, cols);
  if (pairs == 0) return 0.0;
  // Enumerate injective maps from the smaller side into the larger one, depth first.
  const bool by_row = rows <= cols;
  const int small = by_row ? rows : cols;
  const int large = by_row ? cols : rows;
  std::vector<int> current(static_cast<std::size_t>(small), -1);
  std::vector<int> best;
  std::vector<char> taken(static_cast<std::size_t>(large), 0);
  double best_cost = std::numeric_limits<double>::infinity();
  auto value = [&](int s, int l) {
    return by_row ? cost[static_cast<std::size_t>(s) * static_cast<std::size_t>(cols) +
                         static_cast<std::size_t>(l)]
                  : cost[static_cast<std::size_t>(l) * static_cast<std::size_t>(cols) +
                         static_cast<std::size_t>(s)];
  };
  auto recurse = [&](auto& self, int s, double sum) -> void {
    if (s == small) {
      if (sum < best_cost) {
        best_cost = sum;
        best = current;
      }
      return;
    }
    for (int l = 0; l < large; ++l) {
      if (taken[static_cast<std::size_t>(l)]) continue;
      taken[static_cast<std::size_t>(l)] = 1;
      current[static_cast<std::size_t>(s)] = l;
      self(self, s + 1, sum + value(s, l));
      taken[static_cast<std::size_t>(l)] = 0;
    }
  };
  recurse(recurse, 0, 0.0);
  for (int s = 0; s < small; ++s) {
    const int l = best[static_cast<std::size_t>(s)];
    if (by_row) {
      row_to_col[static_cast<std::size_t>(s)] = l;
    } else {
      row_to_col[static_cast<std::size_t>(l)] = s;
    }
  }
  return total_cost(cost, cols, row_to_col);
}

}  // namespace vapipe::models
