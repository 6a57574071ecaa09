//===- BufferAliases.h - Where a buffer's aliases go ------------*- C++ -*-===//
//
// Questions about the aliases of buffers that the memory model and the plan
// must answer exactly, on any IR: whether a buffer may be moved into an arena
// (every alias known, used only inside its block, freed only by its own
// dealloc), and which memory outside an op a value inside it may be.
//
// Aliases are followed with upstream's BufferViewFlowAnalysis: through
// view-like ops (subview, cast, reinterpret_cast, …), region results and
// region/block arguments (RegionBranchOpInterface, BranchOpInterface), and,
// for any other op, from every memref operand to every memref result (calls,
// selects, unknown ops).
//
//===----------------------------------------------------------------------===//
#ifndef MOE_ANALYSIS_BUFFERALIASES_H
#define MOE_ANALYSIS_BUFFERALIASES_H

#include "mlir/Dialect/Bufferization/Transforms/BufferViewFlowAnalysis.h"
#include "mlir/IR/Block.h"
#include "mlir/IR/Operation.h"

#include <memory>
#include <optional>
#include <string>

namespace mlir {
namespace moe {

class BufferAliases {
public:
  /// Aliases among the values nested in `scope` (a function, or the op that
  /// holds a block). The flow analysis is built on first use.
  explicit BufferAliases(Operation *scope) : scope(scope) {}

  /// Every value that may be `value` or a view of it later in the program,
  /// `value` included.
  BufferViewFlowAnalysis::ValueSetT getAliases(Value value);

  /// Why the buffer that `alloc` (an allocation in `block`) makes cannot be
  /// placed in an arena that `block` allocates and frees, or nullopt when it
  /// can: it lives in a non-default memory space, or one of its aliases is
  /// used outside `block`, leaves it (returned, passed to another block or to
  /// a call, turned into a tensor or an address), is freed or reallocated by
  /// an op other than `ownDealloc`, or is used by an op whose effects are
  /// unknown. `ownDealloc` (may be null) is the `memref.dealloc` of `alloc`'s
  /// own result that the plan replaces.
  std::optional<std::string> whyNotPlannable(Operation *alloc,
                                             Operation *ownDealloc,
                                             Block &block);

  /// The memory outside `op` that `value` (defined inside `op`, e.g. a loop's
  /// iteration argument) may be: the values defined outside `op` that flow
  /// into it. Empty when `value` can only be memory allocated inside `op`;
  /// nullopt when some of it has an origin we cannot see (a global, an
  /// argument of a region whose inputs are unknown, an op's result).
  std::optional<SmallVector<Value>> getOriginsOutside(Value value,
                                                      Operation *op);

private:
  BufferViewFlowAnalysis &analysis();

  Operation *scope;
  std::unique_ptr<BufferViewFlowAnalysis> flow;
};

} // namespace moe
} // namespace mlir

#endif // MOE_ANALYSIS_BUFFERALIASES_H
