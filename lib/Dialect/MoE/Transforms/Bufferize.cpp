//===- Bufferize.cpp - From the tensor form to the buffer form ------------===//
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEBUFFERIZE
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::buildMoEBufferizePipeline(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions oneShot;
  oneShot.bufferizeFunctionBoundaries = true;
  oneShot.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  // Plain allocations, as in the buffer form: the memory plan aligns.
  oneShot.bufferAlignment = 0;
  pm.addPass(bufferization::createOneShotBufferizePass(oneShot));
  bufferization::BufferResultsToOutParamsPassOptions outParams;
  outParams.hoistStaticAllocs = true;
  outParams.hoistDynamicAllocs = true;
  outParams.modifyPublicFunctions = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(outParams));
  pm.addPass(bufferization::createOwnershipBasedBufferDeallocationPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(bufferization::createBufferDeallocationSimplificationPass());
  pm.addPass(bufferization::createLowerDeallocationsPass());
  pm.addPass(createCanonicalizerPass());
}

/// True if anything in the module is a tensor: an op's operand or result, or
/// a function's argument or result.
static bool hasTensors(ModuleOp module) {
  auto isTensor = llvm::IsaPred<TensorType>;
  return module
      ->walk([&](Operation *op) {
        bool tensors = llvm::any_of(op->getOperandTypes(), isTensor) ||
                       llvm::any_of(op->getResultTypes(), isTensor);
        if (auto func = dyn_cast<FunctionOpInterface>(op))
          tensors |= llvm::any_of(func.getArgumentTypes(), isTensor) ||
                     llvm::any_of(func.getResultTypes(), isTensor);
        return tensors ? WalkResult::interrupt() : WalkResult::advance();
      })
      .wasInterrupted();
}

namespace {
struct BufferizePass : public moe::impl::MoEBufferizeBase<BufferizePass> {
  void runOnOperation() override {
    if (!hasTensors(getOperation()))
      return markAllAnalysesPreserved();
    OpPassManager pm(ModuleOp::getOperationName());
    buildMoEBufferizePipeline(pm);
    if (failed(runPipeline(pm, getOperation())))
      signalPassFailure();
  }
};
} // namespace
