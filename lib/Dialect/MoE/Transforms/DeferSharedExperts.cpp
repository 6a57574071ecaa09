//===- DeferSharedExperts.cpp - sglang's deferral as a compiler rule ------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"
#include "MemoryReport.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDEFERSHAREDEXPERTS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

/// True if `op` may write memory that `value` views. Ops with unknown effects
/// may write anything.
static bool mayWrite(Operation *op, Value value) {
  std::optional<SmallVector<MemoryEffects::EffectInstance>> effects =
      getEffectsRecursively(op);
  if (!effects)
    return true;
  for (const MemoryEffects::EffectInstance &effect : *effects) {
    if (!isa<MemoryEffects::Write, MemoryEffects::Free>(effect.getEffect()))
      continue;
    Value written = effect.getValue();
    if (!written && !isa<SideEffects::DefaultResource>(effect.getResource()))
      continue; // not memory (e.g. the communicator of a collective)
    if (!written || mayAlias(written, value))
      return true;
  }
  return false;
}

/// True if `op` (or an op nested in it) uses a memref that may alias
/// `buffer`.
static bool usesBuffer(Operation *op, Value buffer) {
  bool uses = false;
  op->walk([&](Operation *nested) {
    for (Value operand : nested->getOperands())
      if (isa<BaseMemRefType>(operand.getType()) && mayAlias(operand, buffer))
        uses = true;
  });
  return uses;
}

/// Why `shared` cannot move past `routed`, or null if it can.
static const char *whyNotDeferrable(SharedExpertsOp shared,
                                    RoutedExpertsOp routed) {
  auto tokens = cast<ShapedType>(shared.getHidden().getType()).getDimSize(0);
  if (tokens == 0)
    return "the token count is statically 0";
  if (mayWrite(routed, shared.getHidden()))
    return "the routed experts write the hidden input";
  if (mayWrite(routed, shared.getW13()) || mayWrite(routed, shared.getW2()) ||
      llvm::any_of(shared.getScales(),
                   [&](Value scale) { return mayWrite(routed, scale); }))
    return "the routed experts write a weight of the shared experts";
  Value output = getUnderlyingBuffer(shared.getOutput());
  if (usesBuffer(routed, output))
    return "the routed experts use the shared experts' output";
  for (Operation *op = shared->getNextNode(); op != routed.getOperation();
       op = op->getNextNode()) {
    if (isa<memref::DeallocOp>(op) &&
        llvm::none_of(shared->getOperands(), [&](Value operand) {
          return mayAlias(operand, op->getOperand(0));
        }))
      continue; // Freeing a buffer the shared experts do not use: harmless.
    if (usesBuffer(op, output))
      return "an op in between uses the shared experts' output";
    for (Value operand : shared->getOperands())
      if (operand != shared.getOutput() && mayWrite(op, operand))
        return "an op in between may write an input of the shared experts";
    for (Value operand : op->getOperands())
      if (Operation *def = operand.getDefiningOp(); def == shared.getOperation())
        return "an op in between uses a result of the shared experts";
  }
  return nullptr;
}

bool mlir::moe::hasSharedExperts(FunctionOpInterface func) {
  return func
      ->walk([](SharedExpertsOp) { return WalkResult::interrupt(); })
      .wasInterrupted();
}

unsigned mlir::moe::deferSharedExperts(FunctionOpInterface func) {
  if (func->hasAttr(MoEDialect::getFuseSharedExpertsInsideSboAttrName()))
    return 0;
  unsigned moved = 0;
  SmallVector<SharedExpertsOp> candidates;
  func->walk([&](SharedExpertsOp op) { candidates.push_back(op); });
  for (SharedExpertsOp shared : candidates) {
    // The first routed op after it in its block on the same hidden input.
    RoutedExpertsOp routed;
    for (Operation *op = shared->getNextNode(); op; op = op->getNextNode())
      if (auto r = dyn_cast<RoutedExpertsOp>(op);
          r && r.getHidden() == shared.getHidden()) {
        routed = r;
        break;
      }
    if (!routed || whyNotDeferrable(shared, routed))
      continue;
    shared->moveAfter(routed);
    // Its output buffer is allocated just before it now, unless an op
    // between the allocation and the shared op's new place uses the buffer
    // too. (The allocation dominated the shared op, so it is before the
    // routed op.) Found by walking that stretch, not by isBeforeInBlock:
    // each move invalidates the block's op order, and recomputing it for
    // every deferred op made the pass quadratic in the block's size.
    if (auto alloc = shared.getOutput().getDefiningOp<memref::AllocOp>();
        alloc && alloc->getBlock() == shared->getBlock()) {
      Block *block = shared->getBlock();
      llvm::SmallPtrSet<Operation *, 8> users;
      for (Operation *user : alloc->getUsers())
        if (Operation *op = block->findAncestorOpInBlock(*user))
          users.insert(op);
      bool usedBefore = false;
      for (Operation *op = alloc->getNextNode(); op && op != shared.getOperation();
           op = op->getNextNode())
        if (users.contains(op)) {
          usedBefore = true;
          break;
        }
      if (!usedBefore)
        alloc->moveBefore(shared);
    }
    ++moved;
  }
  return moved;
}

namespace {
struct DeferSharedExpertsPass
    : public moe::impl::MoEDeferSharedExpertsBase<DeferSharedExpertsPass> {
  using MoEDeferSharedExpertsBase::MoEDeferSharedExpertsBase;
  void runOnOperation() override {
    MemoryReporter reporter(getOperation(), tokenHint, reportFile, timelineFile,
                            getArgument());
    for (FunctionOpInterface func : getFunctionsWithBody(getOperation())) {
      // Only functions with shared experts can change.
      if (!hasSharedExperts(func))
        continue;
      reporter.before(func);
      numDeferred += deferSharedExperts(func);
      reporter.after(func);
    }
    if (failed(reporter.write()))
      signalPassFailure();
  }
};
} // namespace
