//===- Arguments.h - What data each argument of a layer gets ---*- C++ -*-===//
//
// moe-run fills every argument from the seed (docs/moe-run.md, "Data"): its
// distribution follows from its role, dtype and shape and from how the ops
// use it (routing tables given as arguments; fp8 weights and their block
// scales, paired through the op contract's OperandSpec::scales).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TOOLS_MOE_RUN_ARGUMENTS_H
#define MOE_TOOLS_MOE_RUN_ARGUMENTS_H

#include "Data.h"
#include "Description.h"

#include <string>
#include <vector>

namespace moerun {

/// How one argument is filled: `dist` on the stream of `stream`
/// (streamKey(seed, stream)): the argument's own name, except for the block
/// scales of an fp8 weight, which are drawn on the weight's stream (they are
/// a function of the weight's would-be values).
struct ArgumentData {
  Distribution dist;
  std::string stream;
  /// Tensor parallelism: where this rank's shard lies in the whole tensor
  /// (`dist` is the whole tensor's).
  ShardMap shard;
};

/// The group size of the program's collectives (moe.all_reduce's
/// group_size; 1 without any), or -1 (and `error`) when they disagree.
int64_t groupSizeOf(const std::vector<TypedOp> &ops, std::string &error);

/// For each argument, the argument whose fp8 block scales it holds (-1:
/// none): the operands the contract names as an f8e4m3 weight's `scales`
/// (moe.routed_experts' and moe.shared_experts' w13_scale and w2_scale), for
/// ops of `d` whose weight and scales are both arguments. The first pairing
/// of an argument wins.
std::vector<int64_t> fp8ScalesOf(const ModuleDescription &d);

/// The documented data of every argument of `d`. `ops` (from analyzeOps; may
/// be null when the ops are not understood) identifies routing tables given
/// as arguments.
/// With `tp` > 1 (a tensor-parallel program: its all-reduce's group size)
/// the expert weights and their block scales are rank `rank`'s shard of the
/// whole layer's (w13's gate and up rows, w2's columns, split in `tp`), so
/// that the ranks together hold the weights a single-rank run of the whole
/// layer draws.
std::vector<ArgumentData> argumentData(const ModuleDescription &d,
                                       const std::vector<TypedOp> *ops,
                                       int64_t rank = 0, int64_t tp = 1);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_ARGUMENTS_H
