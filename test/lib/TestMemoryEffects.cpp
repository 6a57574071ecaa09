//===- TestMemoryEffects.cpp - Print what every op reads and writes -------===//
//
// `moe-test-print-effects` attaches a remark to every op that implements
// MemoryEffectOpInterface, listing its effects per operand, and to every op
// with a workspace, its size. Tests check the dialect's declared effects with
// it, exactly as upstream analyses see them.
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Pass/Pass.h"

using namespace mlir;

namespace {
struct TestPrintEffectsPass
    : PassWrapper<TestPrintEffectsPass, OperationPass<>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(TestPrintEffectsPass)
  StringRef getArgument() const final { return "moe-test-print-effects"; }
  StringRef getDescription() const final {
    return "Print the memory effects and workspace of every op (test only)";
  }

  static StringRef effectName(MemoryEffects::Effect *effect) {
    if (isa<MemoryEffects::Read>(effect))
      return "read";
    if (isa<MemoryEffects::Write>(effect))
      return "write";
    if (isa<MemoryEffects::Allocate>(effect))
      return "allocate";
    return "free";
  }

  void runOnOperation() override {
    getOperation()->walk([](Operation *op) {
      auto iface = dyn_cast<MemoryEffectOpInterface>(op);
      auto workspace = dyn_cast<moe::WorkspaceOpInterface>(op);
      if (workspace && !moe::hasWorkspace(op))
        workspace = nullptr; // every moe op has the interface; most need none
      if (!iface && !workspace)
        return;
      std::string text;
      llvm::raw_string_ostream os(text);
      if (iface) {
        SmallVector<MemoryEffects::EffectInstance> effects;
        iface.getEffects(effects);
        os << "effects:";
        for (const MemoryEffects::EffectInstance &effect : effects) {
          os << " " << effectName(effect.getEffect());
          if (OpOperand *operand = effect.getEffectValue<OpOperand *>())
            os << " operand #" << operand->getOperandNumber();
          else if (auto result = effect.getEffectValue<OpResult>())
            os << " result #" << result.getResultNumber();
          else
            os << " " << effect.getResource()->getName();
          os << ";";
        }
      }
      if (workspace)
        os << " workspace: " << workspace.getWorkspaceSize() << " bytes";
      op->emitRemark() << text;
    });
  }
};
} // namespace

namespace mlir::moe::test {
void registerTestCheckArenaPass();
void registerTestContractDefaultsPass();
void registerTestPasses() {
  PassRegistration<TestPrintEffectsPass>();
  registerTestCheckArenaPass();
  registerTestContractDefaultsPass();
}
} // namespace mlir::moe::test
