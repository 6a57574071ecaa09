//===- Passes.td - Conversions of the moe dialect ----------*- tablegen -*-===//
#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToRuntime : Pass<"convert-moe-to-runtime", "ModuleOp"> {
  let summary = "Lower moe ops to calls into the moert runtime";
  let description = [{
    Replaces every moe op by a call to its runtime entry point (`moert_gate`,
    `moert_topk`, `moert_routed_experts`, `moert_shared_experts`,
    `moert_add`; see `moe-runtime/moe_runtime.h`), passing the aligned data
    pointers of its buffers, their sizes and dtype codes. The runtime works
    on the current context (`moert_set_current_context`); errors stay in the
    context and later calls do nothing.

    An op whose workspace was planned (`moe.workspace_offset`) gets a pointer
    into the function's arena; other ops pass null and the runtime takes the
    workspace from its allocator while the op runs.

    A `memref.copy` between contiguous buffers becomes `moert_copy`, so that
    it also works on device memory.

    Buffers of moe ops must be contiguous (identity layout): others are
    rejected with an error. Lower `memref.alloc` with
    `finalize-memref-to-llvm{use-generic-functions=true}` so that buffers too
    come from the runtime's allocator (see the `moe-lower-to-llvm` pipeline).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
