//===- Ranks.h - moe-run --ranks N ------------------------------*- C++ -*-===//
#ifndef MOE_TOOLS_MOE_RUN_RANKS_H
#define MOE_TOOLS_MOE_RUN_RANKS_H

#include "Description.h"
#include "Module.h"
#include "Options.h"

#include <vector>

namespace moerun {

/// Runs opt.ranks ranks of `module` at T tokens, checks and reports them
/// (Ranks.cpp); returns the exit code.
int runRanks(const Options &opt, const Module &module,
             const ModuleDescription &desc,
             const std::vector<TypedOp> &typedOps, int64_t T);

} // namespace moerun

#endif // MOE_TOOLS_MOE_RUN_RANKS_H
