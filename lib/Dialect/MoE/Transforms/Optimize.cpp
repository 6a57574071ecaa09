//===- Optimize.cpp - The moe memory pipeline -----------------------------===//
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"
#include "MemoryReport.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

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
      int64_t after = 0;
      SmallVector<Block *> blocks;
      func->walk([&](Block *block) { blocks.push_back(block); });
      for (Block *block : blocks) {
        std::string error;
        FailureOr<PeakMemorySchedule> schedule =
            moe::schedulePeakMemory(*block, tokenHint, options, error);
        if (failed(schedule)) {
          block->getParentOp()->emitWarning()
              << "moe-optimize left a block unscheduled: " << error;
          continue;
        }
        if (block == &func.getFunctionBody().front()) {
          peakBefore += schedule->inputPeak.evaluate(tokenHint);
          after = schedule->peak.evaluate(tokenHint);
        }
      }
      if (plan) {
        MemoryPlan memoryPlan = planMemory(func, tokenHint);
        if (memoryPlan.applied)
          after = memoryPlan.arenaSize.evaluate(tokenHint);
        reporter.after(func, &memoryPlan);
      } else {
        reporter.after(func);
      }
      peakAfter += after;
    }
    if (failed(reporter.write()))
      signalPassFailure();
  }
};
} // namespace
