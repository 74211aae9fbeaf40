#pragma once
// Minimum-cost assignment (Hungarian / Kuhn-Munkres with potentials, O(n^2 m)) for the tracker's
// track-to-detection matching, plus an exhaustive reference for differential tests.
#include <span>
#include <vector>

namespace vapipe::models {

// Buffers kept between calls so that per-frame matching does not allocate once warmed up.
struct AssignmentScratch {
  std::vector<double> u, v, min_v;
  std::vector<int> way, match;
  std::vector<char> used;
};

// `cost` is a rows x cols matrix, row-major. Assigns min(rows, cols) pairs, each row and column at most once,
// minimizing the summed cost. Writes row_to_col (size rows; -1 for an unassigned row) and returns the summed
// cost. Costs must be finite (encode "forbidden" as a large cost and filter afterwards).
double solve_assignment(std::span<const double> cost, int rows, int cols, std::vector<int>& row_to_col,
                        AssignmentScratch& scratch);
double solve_assignment(std::span<const double> cost, int rows, int cols, std::vector<int>& row_to_col);

// Tries every assignment: only for tiny sizes (min(rows, cols) <= 7); same contract as solve_assignment.
double solve_assignment_reference(std::span<const double> cost, int rows, int cols,
                                  std::vector<int>& row_to_col);

}  // namespace vapipe::models
