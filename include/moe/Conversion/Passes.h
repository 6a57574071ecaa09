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

void buildLowerToLLVMPipeline(OpPassManager &pm);

/// Registers `moe-lower-to-llvm`: convert-moe-to-runtime followed by the
/// pipeline above.
void registerLowerToLLVMPipeline();

/// The description of `func` that runners read (JSON: arguments with names,
/// roles, dtypes and shapes; intermediate buffers; the moe ops in order with
/// their operands and attributes; the planned peak, with every line of the
/// arena's size when it is a maximum). Sizes are compared at `tokenHint`.
/// Fails with a located error for what a runner cannot execute.
FailureOr<std::string> describeEntryFunction(func::FuncOp func, bool optimized,
                                             int64_t tokenHint = 16384);

/// Adds `void moe_entry(void **args, int64_t tokens)`, which builds a memref
/// for each argument of `func` from `args[i]` (contiguous, the token count
/// for dynamic dimensions) and calls it, and the global
/// `moe_module_description` holding `description`.
LogicalResult addEntryPoint(ModuleOp module, func::FuncOp func,
                            StringRef description);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_PASSES_H
