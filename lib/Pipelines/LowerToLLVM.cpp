//===- LowerToLLVM.cpp - From moe IR to the LLVM dialect ------------------===//
#include "moe/Pipelines/Pipelines.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Target/Export.h"

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

void mlir::moe::buildLowerToRuntimePipeline(
    OpPassManager &pm, const LowerToRuntimeOptions &options) {
  if (options.optimize) {
    MoESelectInPlaceOptions select;
    select.tokenHint = options.tokenHint;
    pm.addPass(createMoESelectInPlace(select));
  }
  pm.addPass(createMoEBufferize());
  if (options.optimize) {
    MoEOptimizeOptions optimize;
    optimize.tokenHint = options.tokenHint;
    pm.addPass(createMoEOptimize(optimize));
  }
  if (options.exportEntry) {
    ExportEntryOptions exportOptions;
    exportOptions.entry = options.entry;
    exportOptions.optimized = options.optimize;
    exportOptions.tokenHint = options.tokenHint;
    pm.addPass(createExportEntryPass(exportOptions));
  }
  pm.addPass(createConvertMoEToRuntime());
  buildLowerToLLVMPipeline(pm);
}

void mlir::moe::registerLowerToRuntimePipeline() {
  PassPipelineRegistration<LowerToRuntimeOptions>(
      "moe-lower-to-runtime",
      "From moe IR in tensor or buffer form to the LLVM dialect with runtime "
      "calls: moe-select-inplace and moe-bufferize (tensor form), "
      "moe-optimize, moe-export-entry, convert-moe-to-runtime, "
      "moe-lower-to-llvm's stages (docs/pipelines.md)",
      buildLowerToRuntimePipeline);
}
