//===- TestCheckArena.cpp - Check that planned memory stays planned -------===//
//
// `moe-test-check-arena` checks the output of moe-plan-memory (and
// moe-optimize) on any IR: every alias of an arena (`memref.alloc
// {moe.arena}`), followed with upstream's BufferViewFlowAnalysis, is used
// only inside the arena's block and before the arena's one dealloc; none is
// returned, passed out of the block, freed or reallocated by another op, or
// passed to a call that may keep it. A violation is an error (the pass
// fails), located at the offending use. The planner's own rules
// (BufferAliases) are not used here: this is the independent check of their
// result, for lit tests and scripts/plan-robustness.py.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Transforms/BufferViewFlowAnalysis.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Pass/Pass.h"

using namespace mlir;

namespace mlir::moe::test {
/// Checks every arena nested in `root`; emits an error per violation.
LogicalResult checkPlannedMemory(Operation *root);
} // namespace mlir::moe::test

namespace {
struct TestCheckArenaPass : PassWrapper<TestCheckArenaPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TestCheckArenaPass)
  StringRef getArgument() const final { return "moe-test-check-arena"; }
  StringRef getDescription() const final {
    return "Check that no planned memory escapes its arena's block or "
           "lifetime, or is freed by another op (test only)";
  }

  static bool freesOperand(Operation *user, OpOperand &use) {
    if (isa<memref::DeallocOp, memref::ReallocOp>(user))
      return true;
    if (auto dealloc = dyn_cast<bufferization::DeallocOp>(user))
      return use.getOperandNumber() < dealloc.getMemrefs().size();
    auto iface = dyn_cast<MemoryEffectOpInterface>(user);
    if (!iface)
      return false;
    SmallVector<MemoryEffects::EffectInstance> effects;
    iface.getEffects(effects);
    return llvm::any_of(effects, [&](const MemoryEffects::EffectInstance &e) {
      return isa<MemoryEffects::Free>(e.getEffect()) &&
             (!e.getValue() || e.getValue() == use.get());
    });
  }

  static bool mayKeep(CallOpInterface call, OpOperand &use) {
    auto func = dyn_cast_or_null<FunctionOpInterface>(call.resolveCallable());
    OperandRange args = call.getArgOperands();
    if (!func || args.empty())
      return true;
    unsigned index = use.getOperandNumber() - args.getBeginOperandIndex();
    return index >= func.getNumArguments() ||
           !func.getArgAttr(index, "llvm.nocapture");
  }

  static LogicalResult checkArena(Operation *arena, BufferViewFlowAnalysis &flow) {
    Block *block = arena->getBlock();
    SmallVector<Operation *> deallocs;
    for (Operation *user : arena->getUsers())
      if (isa<memref::DeallocOp>(user))
        deallocs.push_back(user);
    if (deallocs.size() != 1 || deallocs.front()->getBlock() != block)
      return arena->emitError("an arena must have one dealloc, in its block");
    Operation *dealloc = deallocs.front();
    bool ok = true;
    auto fail = [&](Location at, const Twine &what) {
      emitError(at, "planned memory ") << what;
      ok = false;
    };
    for (Value alias : flow.resolve(arena->getResult(0))) {
      Operation *where = alias.getDefiningOp();
      if (!where)
        where = alias.getParentBlock()->getParentOp();
      bool argOfBlock = isa<BlockArgument>(alias) && alias.getParentBlock() == block;
      if (!argOfBlock && !block->findAncestorOpInBlock(*where)) {
        fail(alias.getLoc(), "flows out of the arena's block");
        continue;
      }
      for (OpOperand &use : alias.getUses()) {
        Operation *user = use.getOwner();
        if (user == dealloc)
          continue;
        Operation *ancestor = block->findAncestorOpInBlock(*user);
        if (!ancestor) {
          fail(user->getLoc(), "is used outside the arena's block");
          continue;
        }
        if (dealloc->isBeforeInBlock(ancestor))
          fail(user->getLoc(), "is used after the arena is freed");
        if (user->hasTrait<OpTrait::ReturnLike>() &&
            isa<FunctionOpInterface>(user->getParentOp()))
          fail(user->getLoc(), "is returned");
        if (freesOperand(user, use))
          fail(user->getLoc(), "is freed or reallocated by an op other than "
                               "the arena's dealloc");
        if (auto call = dyn_cast<CallOpInterface>(user); call && mayKeep(call, use))
          fail(user->getLoc(), "is passed to a call that may keep it");
      }
    }
    return success(ok);
  }

  void runOnOperation() override {
    if (failed(moe::test::checkPlannedMemory(getOperation())))
      signalPassFailure();
  }
};
} // namespace

namespace mlir::moe::test {
LogicalResult checkPlannedMemory(Operation *root) {
  bool ok = true;
  root->walk([&](FunctionOpInterface func) {
    std::optional<BufferViewFlowAnalysis> flow;
    func->walk([&](memref::AllocOp alloc) {
      if (!alloc->hasAttr(moe::kArenaAttrName))
        return;
      if (!flow)
        flow.emplace(func);
      ok &= succeeded(TestCheckArenaPass::checkArena(alloc, *flow));
    });
  });
  return success(ok);
}

void registerTestCheckArenaPass() { PassRegistration<TestCheckArenaPass>(); }
} // namespace mlir::moe::test
