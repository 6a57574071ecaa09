//===- Passes.td - Passes of the moe dialect ---------------*- tablegen -*-===//
#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

class MoEMemoryPass<string name, string summaryText> : Pass<name, "ModuleOp"> {
  let summary = summaryText;
  list<Option> commonOptions = [
    Option<"tokenHint", "token-hint", "int64_t", /*default=*/"16384",
           "Token count at which sizes linear in a dynamic token count are "
           "compared (ties are broken by growth)">,
    Option<"reportFile", "report", "std::string", /*default=*/"\"\"",
           "Write a JSON memory report (per op: live bytes, workspace, "
           "total, live buffers; the peak before and after) to this file. "
           "Defaults to --moe-memory-report">,
    Option<"timelineFile", "timeline", "std::string", /*default=*/"\"\"",
           "Write an SVG picture of buffer lifetimes over the op sequence, "
           "peak marked, before and after, to this file. Defaults to "
           "--moe-memory-timeline">,
  ];
  list<Statistic> commonStatistics = [
    Statistic<"peakBefore", "peak-bytes-before",
              "Transient peak before the pass, in bytes at the token hint">,
    Statistic<"peakAfter", "peak-bytes-after",
              "Transient peak after the pass, in bytes at the token hint">,
  ];
}

def MoEDeferSharedExperts : MoEMemoryPass<"moe-defer-shared-experts",
    "Run shared experts after routed experts that leave their input intact"> {
  let description = [{
    sglang's rule (PR #25279) as a compiler decision. A `moe.shared_experts`
    op that runs before a `moe.routed_experts` op of the same block on the
    same hidden input moves, with its output allocation, to right after the
    routed op, so that the routed op's workspace is freed before the shared
    experts' buffers exist. It moves only when:

    * the routed op does not write the hidden input, decided from its declared
      memory effects (an `inplace` routed op writes it; the verifier keeps the
      flag honest), not from a flag;
    * no op between the two writes an operand of the shared op, reads or
      writes its output, or has unknown effects;
    * the function is not marked `moe.fuse_shared_experts_inside_sbo`
      (sglang's single-batch-overlap path runs the shared experts itself);
    * the token count is not statically 0.

    Otherwise the IR stays exactly as it was. The computation is unchanged, so
    results are bit-identical.
  }];
  let options = commonOptions;
  let statistics = [
    Statistic<"numDeferred", "deferred", "Shared-expert ops moved">,
  ];
}

def MoESchedulePeakMemory : MoEMemoryPass<"moe-schedule-peak-memory",
    "Reorder a block's ops for the least peak memory"> {
  let description = [{
    Reorders the ops of every block of every function into the legal order of
    least peak transient memory, for any op that declares memory effects
    (upstream `linalg` on memrefs and `memref.copy` included).

    Legal orders keep SSA use-def edges and read/write hazards (RAW, WAR,
    WAW) between values that may alias, derived from MemoryEffectOpInterface:
    allocations are distinct from everything, function arguments with
    `moe.role` or `llvm.noalias` are distinct, other arguments may alias one
    another, any other value may alias anything; ops with unknown effects are
    barriers; ops with regions move as a whole with their recursive effects.

    Memory follows the alloc-run-free model: a buffer is live from just before
    its first user to just after its last user; an op's workspace while it
    runs. Sizes linear in a dynamic token count are compared at `token-hint`.

    The search is exact (dynamic programming over the sets of ops already run,
    with branch and bound) while the state count stays within `state-budget`;
    beyond it, the best of a portfolio (the input, greedy least-growth-first,
    least peak memory first, depth-first, depth-first by footprint and
    breadth-first orders, each improved locally). The result is never worse
    than the input, keeps the input order as far as possible among orders of
    equal peak, and is deterministic. Afterwards each `memref.alloc` sits
    right before the first op that uses its buffer and each `memref.dealloc`
    right after the last.
  }];
  let options = !listconcat(commonOptions, [
    Option<"stateBudget", "state-budget", "int64_t", /*default=*/"100000",
           "Largest number of states of the exact search">,
    Option<"maxExactNodes", "max-exact-ops", "int64_t", /*default=*/"1024",
           "Segments with more ops than this are scheduled heuristically">,
  ]);
  let statistics = !listconcat(commonStatistics, [
    Statistic<"numBlocks", "blocks", "Blocks scheduled">,
    Statistic<"numReordered", "reordered", "Blocks whose order changed">,
    Statistic<"numExact", "exact", "Blocks scheduled by exact search">,
  ]);
}

def MoEPlanMemory : MoEMemoryPass<"moe-plan-memory",
    "Pack a function's buffers and workspaces into one arena"> {
  let description = [{
    Gives every buffer of a function's entry block (and every op's workspace)
    an offset in one arena, by best fit in decreasing size over their
    lifetimes in the current order, with offsets linear in the token count so
    the plan holds for every token count. The arena is one `memref.alloc`
    marked `moe.arena`; each buffer becomes a `memref.view` into it at its
    offset, and its `memref.dealloc` disappears; ops with a workspace carry
    `moe.workspace_offset = array<i64: perToken, constant>`. The report gives
    the arena size against the lower bound (the largest live set, workspaces
    included).

    Offsets and sizes are multiples of `alignment` bytes (default 256, the
    runtime's; 16 when 256 would make the arena exceed the limit) for every
    token count. The plan is only applied when the arena is no larger than the unplanned peak
    (at the token hint); otherwise, and for a function whose dynamic sizes do
    not all use one token-count value, the function is left unchanged and the
    report says why. The arena is freed at the end of the block: a buffer
    goes into it only when every alias of it (BufferViewFlowAnalysis) stays
    in the block and nothing but its own dealloc frees it, and only in the
    default memory space. Other buffers (returned, yielded out, passed to
    another block or to a call without `llvm.nocapture`, freed or
    reallocated by another op, used by an op with unknown effects, in
    another memory space) keep their allocation, with a remark saying why;
    so do `memref.alloca`s.
  }];
  let options = !listconcat(commonOptions, [
    Option<"alignment", "alignment", "int64_t", /*default=*/"256",
           "Bytes every planned offset and size is a multiple of, for every "
           "token count (a power of two)">,
  ]);
  let statistics = !listconcat(commonStatistics, [
    Statistic<"arenaBytes", "arena-bytes", "Arena size in bytes at the token hint">,
    Statistic<"numPlanned", "planned-buffers", "Buffers placed in the arena">,
  ]);
}

def MoEOptimize : MoEMemoryPass<"moe-optimize",
    "The memory pipeline: defer shared experts, schedule, plan"> {
  let description = [{
    Runs moe-defer-shared-experts, moe-schedule-peak-memory and
    moe-plan-memory in that order, and reports memory before the first and
    after the last.
  }];
  let options = !listconcat(commonOptions, [
    Option<"stateBudget", "state-budget", "int64_t", /*default=*/"100000",
           "Largest number of states of the exact search">,
    Option<"maxExactNodes", "max-exact-ops", "int64_t", /*default=*/"1024",
           "Segments with more ops than this are scheduled heuristically">,
    Option<"alignment", "alignment", "int64_t", /*default=*/"256",
           "Bytes every planned offset and size is a multiple of, for every "
           "token count (a power of two)">,
    Option<"plan", "plan", "bool", /*default=*/"true",
           "Pack buffers into one arena (moe-plan-memory)">,
  ]);
  let statistics = [
    Statistic<"peakBefore", "peak-bytes-before",
              "Transient peak after deferral, before scheduling, in bytes at "
              "the token hint">,
    Statistic<"peakAfter", "peak-bytes-after",
              "Transient peak at the end (the arena when planned), in bytes at "
              "the token hint">,
  ];
}

def MoEBufferize : Pass<"moe-bufferize", "ModuleOp"> {
  let summary = "Turn a tensor-form module into the buffer form";
  let description = [{
    On a module with tensors (moe ops in destination-passing style, functions
    taking and returning tensors), runs upstream One-Shot Bufferize with the
    moe ops' models (moe/Dialect/MoE/Transforms/
    BufferizableOpInterfaceImpl.h) and gives the result the buffer form that
    moe-gen writes and the memory passes expect:

    1. `one-shot-bufferize{bufferize-function-boundaries
       function-boundary-type-conversion=identity-layout-map
       buffer-alignment=0}`: contiguous buffers, plain `memref.alloc`s;
    2. `buffer-results-to-out-params{hoist-static-allocs hoist-dynamic-allocs
       modify-public-functions}`: a returned tensor becomes an output
       argument that the last op writes directly (no copy); its result
       attributes (`moe.role = "output"`, `moe.name`) move with it;
    3. `ownership-based-buffer-deallocation`, `canonicalize`,
       `buffer-deallocation-simplification`, `bufferization-lower-deallocations`,
       `canonicalize`: a `memref.dealloc` for every allocation.

    A module without tensors is left unchanged, so the pass can lead any
    pipeline. A routed op whose init is its hidden tensor is written in place
    when that tensor is dead afterwards; otherwise bufferization fails with a
    located error rather than copy it (docs/dialect.md, "Two forms").
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def MoESelectInPlace : Pass<"moe-select-inplace", "ModuleOp"> {
  let summary = "Choose, per layer, whether the routed experts write in place";
  let description = [{
    The seed's decision at the tensor level. On tensors, whether
    `moe.routed_experts` writes its result into its hidden input's buffer is
    the compiler's choice: its init is either the hidden tensor itself (in
    place; every other use of the hidden tensor, such as the shared experts,
    then moves before it) or a `tensor.empty` (out of place; moe-optimize
    later defers the shared experts after it). For every function with
    tensor-form routed ops, the pass evaluates assignments of the two variants
    to the routed ops with the memory model itself: each candidate is
    bufferized (moe-bufferize) and optimized (moe-optimize) on a copy of the
    module, and its peak is the optimized function's modelled peak at
    `token-hint`. The search starts from the better of "all in place" and
    "all out of place" (in place on a tie) and then flips one layer at a
    time, taking a flip that lowers the peak or keeps it and puts one more
    layer in place, until none does; so the result is never above either
    uniform choice. Variants that cannot bufferize without a copy (a use of
    the hidden tensor that cannot move before the routed op, a result that
    is the function's own input) are never chosen. Every routed op gets a
    remark with the peaks of its two variants (the other layers as chosen);
    `report` writes them as JSON.

    Functions in buffer form are left alone: there `inplace` is the IR's
    own, verified flag.
  }];
  let options = [
    Option<"tokenHint", "token-hint", "int64_t", /*default=*/"16384",
           "Token count at which peaks linear in a dynamic token count are "
           "compared">,
    Option<"reportFile", "report", "std::string", /*default=*/"\"\"",
           "Write the decision (per routed op: the chosen variant and the "
           "peaks of both; per function: the chosen, all-in-place and "
           "all-out-of-place peaks) as JSON to this file">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
  let statistics = [
    Statistic<"numInPlace", "in-place", "Routed ops chosen to write in place">,
    Statistic<"numOutOfPlace", "out-of-place",
              "Routed ops chosen to write out of place">,
  ];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
