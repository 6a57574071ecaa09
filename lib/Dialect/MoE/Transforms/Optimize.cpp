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
    for (FunctionOpInterface func : getFunctionsWithBody(getOperation())) {
      reporter.before(func);
      // The ops only move until the plan, the last to look at them: one
      // effects cache serves every model of the function.
      EffectsCache effects;
      // The plan may never exceed the peak of the function as written. When
      // nothing can be deferred, the order the scheduler starts from is the
      // one written, and its model gives that peak.
      const bool mayDefer = hasSharedExperts(func);
      std::optional<LinearSize> limit;
      if (plan && mayDefer) {
        BlockMemoryModel input(func.getFunctionBody().front(), tokenHint,
                               &effects);
        if (input.isValid())
          limit = input.peakOf(input.getInputOrder());
      }
      deferSharedExperts(func);
      FunctionSchedule schedules = moe::schedulePeakMemory(
          func, tokenHint, options, getArgument(), &effects);
      if (plan && !mayDefer && schedules.entry)
        limit = schedules.entry->inputPeak;
      int64_t after = 0;
      if (schedules.entry) {
        peakBefore += schedules.entry->inputPeak.evaluate(tokenHint);
        after = schedules.entry->peak.evaluate(tokenHint);
      }
      // The report's "after" is the scheduled function, buffer by buffer (a
      // planned one is a single arena); the plan comes beside it.
      reporter.after(func);
      if (plan) {
        MemoryPlan memoryPlan = planMemory(func, tokenHint, limit, &effects,
                                           reporter.enabled(), alignment);
        if (memoryPlan.applied)
          after = memoryPlan.peakAfter.evaluate(tokenHint);
        reporter.attachPlan(func, memoryPlan);
      }
      peakAfter += after;
    }
    if (failed(reporter.write()))
      signalPassFailure();
  }
};
} // namespace
