//===- SchedulePeakMemory.cpp - Reorder blocks for least peak memory ------===//
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"
#include "MemoryReport.h"
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOESCHEDULEPEAKMEMORY
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

FailureOr<PeakMemorySchedule>
mlir::moe::schedulePeakMemory(Block &block, int64_t tokenHint,
                              const PeakMemorySchedulerOptions &options,
                              std::string &error, EffectsCache *effects) {
  BlockMemoryModel model(block, tokenHint, effects);
  if (!model.isValid()) {
    error = model.getError();
    return failure();
  }
  PeakMemorySchedule schedule = moe::schedulePeakMemory(model, options);
  // Every rank must meet the others at the same collectives in the same
  // order (or they deadlock). Collectives write the communicator, so the
  // dependence graph orders them; this checks the result, whatever the
  // search did.
  auto isCollective = [](Operation *op) {
    return op
        ->walk([](Operation *nested) {
          const contract::OpSpec *spec = getContract(nested);
          return spec && spec->collective ? WalkResult::interrupt()
                                          : WalkResult::advance();
        })
        .wasInterrupted();
  };
  int lastCollective = -1;
  for (unsigned node : schedule.order) {
    if (!isCollective(model.getNodes()[node].op))
      continue;
    if (int(node) < lastCollective) {
      error = "the schedule would reorder collectives (every rank must run "
              "them in one order)";
      return failure();
    }
    lastCollective = int(node);
  }
  // Applying the input order still places allocations and deallocations
  // next to their uses.
  model.applyOrder(schedule.order);
  return schedule;
}

FunctionSchedule mlir::moe::schedulePeakMemory(
    FunctionOpInterface func, int64_t tokenHint,
    const PeakMemorySchedulerOptions &options, StringRef passName,
    EffectsCache *effects) {
  FunctionSchedule result;
  SmallVector<Block *> blocks;
  func->walk([&](Block *block) { blocks.push_back(block); });
  for (Block *block : blocks) {
    std::string error;
    FailureOr<PeakMemorySchedule> schedule =
        moe::schedulePeakMemory(*block, tokenHint, options, error, effects);
    if (failed(schedule)) {
      block->getParentOp()->emitWarning()
          << passName << " left a block unchanged: " << error;
      continue;
    }
    if (block == &func.getFunctionBody().front())
      result.entry = *schedule;
    result.blocks.push_back(std::move(*schedule));
  }
  return result;
}

SmallVector<FunctionOpInterface> mlir::moe::getFunctionsWithBody(Operation *op) {
  SmallVector<FunctionOpInterface> funcs;
  op->walk([&](FunctionOpInterface f) {
    if (f.isExternal())
      return;
    // The memory passes work on buffers; a tensor-form function has none.
    if (f->walk([](Operation *nested) {
           return isa_and_nonnull<MoEDialect>(nested->getDialect()) &&
                          isTensorForm(nested)
                      ? WalkResult::interrupt()
                      : WalkResult::advance();
         }).wasInterrupted()) {
      f->emitRemark() << "left unchanged: its moe ops are on tensors; "
                         "bufferize it first (moe-bufferize)";
      return;
    }
    funcs.push_back(f);
  });
  return funcs;
}

namespace {
struct SchedulePeakMemoryPass
    : public moe::impl::MoESchedulePeakMemoryBase<SchedulePeakMemoryPass> {
  using MoESchedulePeakMemoryBase::MoESchedulePeakMemoryBase;
  void runOnOperation() override {
    PeakMemorySchedulerOptions options;
    options.stateBudget = stateBudget;
    options.maxExactNodes = maxExactNodes;
    MemoryReporter reporter(getOperation(), tokenHint, reportFile, timelineFile,
                            getArgument());
    for (FunctionOpInterface func : getFunctionsWithBody(getOperation())) {
      reporter.before(func);
      FunctionSchedule schedules =
          moe::schedulePeakMemory(func, tokenHint, options, getArgument());
      for (const PeakMemorySchedule &schedule : schedules.blocks) {
        ++numBlocks;
        peakBefore += schedule.inputPeak.evaluate(tokenHint);
        peakAfter += schedule.peak.evaluate(tokenHint);
        if (schedule.method != "input")
          ++numReordered;
        if (schedule.optimal)
          ++numExact;
      }
      reporter.after(func);
    }
    if (failed(reporter.write()))
      signalPassFailure();
  }
};
} // namespace
