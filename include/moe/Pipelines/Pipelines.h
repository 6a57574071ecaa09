//===- Pipelines.h - Pass pipelines of MoE-MLIR -----------------*- C++ -*-===//
#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"

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

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
