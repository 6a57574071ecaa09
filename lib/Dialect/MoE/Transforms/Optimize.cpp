//===- Optimize.cpp - The moe memory pipeline -----------------------------===//
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"
#include "MemoryReport.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEOPTIMIZE
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
struct OptimizePass : public moe::impl::MoEOptimizeBase<OptimizePass> {
  using MoEOptimizeBase::MoEOptimizeBase;
  void runOnOperation() override {
    PeakMemorySchedulerOptions options;
    options.stateBudget = stateBudget;
    options.maxExactNodes = maxExactNodes;
    MemoryReporter reporter(getOperation(), tokenHint, reportFile, timelineFile,
                            getArgument());
    SmallVector<FunctionOpInterface> funcs;
    getOperation()->walk([&](FunctionOpInterface f) {
      if (!f.isExternal())
        funcs.push_back(f);
    });
    for (FunctionOpInterface func : funcs) {
      reporter.before(func);
      deferSharedExperts(func);
      SmallVector<Block *> blocks;
      func->walk([&](Block *block) { blocks.push_back(block); });
      for (Block *block : blocks) {
        std::string error;
        if (failed(moe::schedulePeakMemory(*block, tokenHint, options, error)))
          block->getParentOp()->emitWarning()
              << "moe-optimize left a block unscheduled: " << error;
      }
      if (plan) {
        MemoryPlan memoryPlan = planMemory(func, tokenHint);
        reporter.after(func, &memoryPlan);
      } else {
        reporter.after(func);
      }
    }
    peakBefore = reporter.totalPeakBefore();
    peakAfter = reporter.totalPeakAfter();
    if (failed(reporter.write()))
      signalPassFailure();
  }
};
} // namespace
