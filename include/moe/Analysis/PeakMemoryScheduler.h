//===- PeakMemoryScheduler.h - Orders of least peak memory ------*- C++ -*-===//
//
// Finds a legal order of a block's nodes (see BlockMemoryModel) whose peak
// transient memory is least:
//
//  * exact: dynamic programming over the sets of nodes already run (the order
//    ideals of the dependence graph), with branch and bound against the best
//    heuristic order, while the number of states stays within a budget;
//  * beyond the budget: a portfolio: the input order and the heuristic
//    orders greedy least-growth-first, least peak memory first, depth-first,
//    depth-first by footprint and breadth-first, each improved locally by
//    moving single nodes; the best wins.
//
// The result is never worse than the input order; among orders of equal peak
// it follows the input order as far as possible (the lexicographically first
// such order by input position, when exact); it is deterministic.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_ANALYSIS_PEAKMEMORYSCHEDULER_H
#define MOE_ANALYSIS_PEAKMEMORYSCHEDULER_H

#include "moe/Analysis/BlockMemoryModel.h"

namespace mlir {
namespace moe {

struct PeakMemorySchedulerOptions {
  /// Largest number of DP states (order ideals) before falling back to
  /// heuristics.
  int64_t stateBudget = 100000;
  /// Segments of more nodes than this are scheduled heuristically.
  int64_t maxExactNodes = 1024;
  /// Node steps that local improvement may simulate (0: none).
  int64_t improvementBudget = 2000000;
};

struct PeakMemorySchedule {
  SmallVector<unsigned> order;
  LinearSize inputPeak;
  LinearSize peak;
  /// "input" (already optimal or nothing better found), "exact", "greedy",
  /// "lpmf", "dfs", "dfs-size", "bfs" or "improved".
  std::string method;
  /// True when `peak` is proven least (exact search finished).
  bool optimal = false;
  int64_t statesExplored = 0;
};

PeakMemorySchedule schedulePeakMemory(const BlockMemoryModel &model,
                                      const PeakMemorySchedulerOptions &options = {});

} // namespace moe
} // namespace mlir

#endif // MOE_ANALYSIS_PEAKMEMORYSCHEDULER_H
