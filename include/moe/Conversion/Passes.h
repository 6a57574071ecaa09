//===- Passes.h - Conversions of the moe dialect ----------------*- C++ -*-===//
#ifndef MOE_CONVERSION_PASSES_H
#define MOE_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir {
namespace moe {

#define GEN_PASS_DECL
#include "moe/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "moe/Conversion/Passes.h.inc"

/// Adds the lowering from moe IR on memrefs (after convert-moe-to-runtime)
/// to the LLVM dialect: linalg to loops, scf/cf, memref (allocations through
/// the runtime), arith, index, func, and reconciles casts.
/// The patterns of convert-moe-to-runtime: every moe op becomes a call of
/// its op contract's runtime function (moe-runtime/OpContract.h), and a
/// contiguous memref.copy becomes moert_copy. Types are unchanged (memrefs
/// stay memrefs; `converter` may be the identity). The ops must be
/// lowerable: contiguous buffers, a planned workspace's arena in its block.
void populateMoEToRuntimeConversionPatterns(const TypeConverter &converter,
                                            RewritePatternSet &patterns);
/// moe ops and contiguous memref.copy are illegal; everything else is legal.
void configureMoEToRuntimeConversionTarget(ConversionTarget &target);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_PASSES_H
