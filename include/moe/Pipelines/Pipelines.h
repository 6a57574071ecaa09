//===- Pipelines.h - Pass pipelines of MoE-MLIR -----------------*- C++ -*-===//
#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir {
namespace moe {

/// From IR whose moe ops are already runtime calls (convert-moe-to-runtime)
/// to the LLVM dialect: linalg to loops, affine and scf to cf, memref (buffers
/// from the runtime allocator, through the generic allocation functions),
/// arith, index, cf and func to LLVM.
void buildLowerToLLVMPipeline(OpPassManager &pm);

/// Registers `moe-lower-to-llvm`: convert-moe-to-runtime followed by the
/// pipeline above.
void registerLowerToLLVMPipeline();

/// The options of `moe-lower-to-runtime`.
struct LowerToRuntimeOptions
    : public PassPipelineOptions<LowerToRuntimeOptions> {
  Option<bool> optimize{
      *this, "optimize",
      llvm::cl::desc("Run moe-select-inplace (tensor form) and moe-optimize"),
      llvm::cl::init(true)};
  Option<int64_t> tokenHint{
      *this, "token-hint",
      llvm::cl::desc("Token count at which sizes linear in a dynamic token "
                     "count are compared"),
      llvm::cl::init(16384)};
  Option<bool> exportEntry{
      *this, "export-entry",
      llvm::cl::desc("Export the entry function to runners (moe-export-entry)"),
      llvm::cl::init(true)};
  Option<std::string> entry{
      *this, "entry",
      llvm::cl::desc("The function to export (default: the only public "
                     "function with a body)")};
};

/// From a module in tensor or buffer form to the LLVM dialect with calls into
/// the runtime, the stages docs/pipelines.md lists:
///   1. moe-select-inplace (with `optimize`; tensor form only),
///   2. moe-bufferize (tensor form only),
///   3. moe-optimize (with `optimize`),
///   4. moe-export-entry (with `export-entry`),
///   5. convert-moe-to-runtime and the moe-lower-to-llvm stages.
void buildLowerToRuntimePipeline(OpPassManager &pm,
                                 const LowerToRuntimeOptions &options);

/// Registers `moe-lower-to-runtime`.
void registerLowerToRuntimePipeline();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
