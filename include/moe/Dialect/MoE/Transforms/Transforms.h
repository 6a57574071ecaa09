//===- Transforms.h - The moe memory transformations as functions -*- C++ -*-===//
//
// The work of the moe passes, callable from C++ pipelines without a pass
// manager. The passes are thin wrappers that add reports and statistics.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
#define MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H

#include "moe/Analysis/PeakMemoryScheduler.h"

#include "mlir/Interfaces/FunctionInterfaces.h"

#include <optional>

namespace mlir {
namespace moe {

/// Moves each `moe.shared_experts` op past the non-mutating
/// `moe.routed_experts` op on the same hidden input where that is legal (see
/// the pass description). Returns the number of ops moved.
unsigned deferSharedExperts(FunctionOpInterface func);

/// True if `func` holds a moe.shared_experts op (only then can
/// deferSharedExperts change it).
bool hasSharedExperts(FunctionOpInterface func);

/// Reorders `block` for the least peak memory. The block is left unchanged
/// when its model is invalid (the error is returned) or the input order is
/// already best.
FailureOr<PeakMemorySchedule>
schedulePeakMemory(Block &block, int64_t tokenHint,
                   const PeakMemorySchedulerOptions &options, std::string &error,
                   EffectsCache *effects = nullptr);

/// The schedules of the blocks of one function.
struct FunctionSchedule {
  /// Every block that could be modelled, in walk order.
  SmallVector<PeakMemorySchedule> blocks;
  /// The entry block's, when it could be modelled.
  std::optional<PeakMemorySchedule> entry;
};

/// Reorders every block of `func` for the least peak memory. A block that
/// cannot be modelled is left unchanged, with a warning that names `passName`.
FunctionSchedule schedulePeakMemory(FunctionOpInterface func, int64_t tokenHint,
                                    const PeakMemorySchedulerOptions &options,
                                    StringRef passName,
                                    EffectsCache *effects = nullptr);

/// The functions with a body nested in `op` that the memory passes work on:
/// those whose moe ops are on buffers. A function with moe ops on tensors is
/// left out, with a remark.
SmallVector<FunctionOpInterface> getFunctionsWithBody(Operation *op);

/// One buffer or workspace of a memory plan.
struct PlannedItem {
  /// The buffer's SSA name or "workspace of OP #N" (empty unless asked for:
  /// naming values costs as much as planning on large blocks).
  std::string name;
  LinearSize offset, size;
  unsigned firstStep = 0, lastStep = 0;
  bool isWorkspace = false;
};

struct MemoryPlan {
  /// False when the function was left unchanged; `reason` says why.
  bool applied = false;
  std::string reason;
  LinearSize arenaSize;
  /// The transient peak with the plan: the arena, plus the most that the
  /// buffers outside it (MemoryPlan::leftOut, allocas, returned buffers)
  /// hold at one time.
  LinearSize peakAfter;
  /// The transient peak before planning (buffers and workspaces).
  LinearSize peakBefore;
  /// The largest live set: no arena can be smaller.
  LinearSize lowerBound;
  SmallVector<PlannedItem> items;
  /// Buffers left out of the arena (they keep their own allocation), with
  /// the reason: an alias that escapes, is freed by another op or is used by
  /// an op with unknown effects, or a non-default memory space.
  struct LeftOut {
    Operation *alloc;
    std::string reason;
    /// The buffer's SSA name (empty unless items are named).
    std::string name;
  };
  SmallVector<LeftOut> leftOut;
};

/// Packs the buffers and workspaces of `func`'s entry block into one arena,
/// unless the arena would exceed `limit` at the hint (default: the peak of the
/// current order, plus the rounding of each item's constant part).
/// `effects` caches the ops' effect queries; `nameItems` fills the items'
/// names (for reports). Every offset and size is a multiple of `alignment`
/// bytes (a power of two) for every token count.
MemoryPlan planMemory(FunctionOpInterface func, int64_t tokenHint,
                      std::optional<LinearSize> limit = std::nullopt,
                      EffectsCache *effects = nullptr, bool nameItems = true,
                      int64_t alignment = 256);


} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_TRANSFORMS_H
