//===- EntryPoint.h - The ABI of a compiled MoE-MLIR module -----*- C++ -*-===//
//
// What a module compiled by moe-compile exports for runners (moe-run): the
// entry point `moe_entry` and the JSON `moe_module_description`
// (docs/moe-run.md, "The module description").
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TARGET_ENTRYPOINT_H
#define MOE_TARGET_ENTRYPOINT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace mlir {
namespace moe {

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

#endif // MOE_TARGET_ENTRYPOINT_H
