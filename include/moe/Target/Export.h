//===- Export.h - A compiled module from moe IR -----------------*- C++ -*-===//
//
// The last steps of compiling moe IR: the pass that exports the entry
// function to runners (`moe-export-entry`: the description and `moe_entry`,
// moe/Target/EntryPoint.h), and the emission of a module in the LLVM dialect
// as a shared library, an object file or LLVM IR. moe-compile and the
// pipeline example (examples/pipeline) use both.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_TARGET_EXPORT_H
#define MOE_TARGET_EXPORT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>
#include <string>

namespace mlir {
namespace moe {

/// The function to export: the one named `name`, or (with an empty name) the
/// only public function with a body. Emits a located error otherwise.
FailureOr<func::FuncOp> findEntryFunction(ModuleOp module, StringRef name);

struct ExportEntryOptions {
  /// The function to export (empty: the only public function with a body).
  std::string entry;
  /// Whether moe-optimize ran (the description says so).
  bool optimized = true;
  /// The token count at which the description compares sizes.
  int64_t tokenHint = 16384;
};

/// `moe-export-entry`: describes the entry function (describeEntryFunction)
/// and adds `moe_entry` and `moe_module_description` (addEntryPoint). Runs
/// on buffer-form moe IR, before convert-moe-to-runtime.
std::unique_ptr<Pass> createExportEntryPass(ExportEntryOptions options = {});
void registerExportEntryPass();

enum class EmitKind { SharedLibrary, Object, LLVMIR };

/// Translates `module` (in the LLVM dialect) to LLVM IR, optimizes it at O2
/// for a generic CPU of the host's architecture, and writes it to `path` as
/// `kind`; a shared library is linked by the compiler driver `linker` (found
/// on PATH unless it is a path). On failure returns a one-line message.
LogicalResult emitModule(ModuleOp module, StringRef path, EmitKind kind,
                         StringRef linker, std::string &error);

} // namespace moe
} // namespace mlir

#endif // MOE_TARGET_EXPORT_H
