//===- LowerToLLVM.cpp - From moe IR to the LLVM dialect ------------------===//
#include "moe/Pipelines/Pipelines.h"
#include "moe/Conversion/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void mlir::moe::buildLowerToLLVMPipeline(OpPassManager &pm) {
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  // Buffers come from the runtime's allocator, through the generic
  // allocation functions that the runtime defines.
  FinalizeMemRefToLLVMConversionPassOptions memrefOptions;
  memrefOptions.useGenericFunctions = true;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefOptions));
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
}

void mlir::moe::registerLowerToLLVMPipeline() {
  PassPipelineRegistration<>(
      "moe-lower-to-llvm",
      "Lower moe IR on memrefs to the LLVM dialect: convert-moe-to-runtime, "
      "then linalg, scf, memref (buffers from the runtime allocator), arith, "
      "index, cf and func to LLVM",
      [](OpPassManager &pm) {
        pm.addPass(moe::createConvertMoEToRuntime());
        buildLowerToLLVMPipeline(pm);
      });
}
