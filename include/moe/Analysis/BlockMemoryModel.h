//===- BlockMemoryModel.h - Dependences and memory of a block ---*- C++ -*-===//
//
// The model that peak-memory scheduling works on. For one block it computes
//
//  * the schedulable nodes: every op except the terminator, `memref.alloc` /
//    `memref.alloca`, the `memref.dealloc` of those allocations, and ops that
//    are free of memory effects and have no regions ("free ops": constants,
//    `memref.dim`, views). Free ops and allocations are not scheduled; they are
//    emitted right before the first node that needs them, and each dealloc right
//    after the last node that uses its buffer;
//  * the dependence graph between nodes: SSA use-def edges (through free ops
//    and allocation operands) and read/write hazards (RAW, WAR, WAW) derived
//    from MemoryEffectOpInterface on buffers that may alias; ops with regions
//    use their recursive effects, where an effect on a value inside the op (a
//    loop's iteration argument, a nested region's result) is an effect on the
//    memory outside that flows into it (BufferAliases), and only memory
//    allocated inside the op is private to it; ops with unknown effects are
//    barriers;
//  * the buffers (allocations of the block) with their sizes, linear in the
//    token count, and the nodes that use them;
//  * each node's workspace (moe::WorkspaceOpInterface).
//
// Peak memory follows the alloc-run-free model: a buffer is live from just
// before its first user to just after its last user (to the end of the block
// if it is never deallocated); an op's workspace is live while it runs.
// Function arguments are live throughout and are reported separately.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_ANALYSIS_BLOCKMEMORYMODEL_H
#define MOE_ANALYSIS_BLOCKMEMORYMODEL_H

#include "moe/Support/LinearSize.h"

#include "mlir/IR/Block.h"
#include "mlir/IR/Operation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir {
namespace moe {

/// The size of an arena made by moe-plan-memory, `memref.alloc(%bytes)
/// {moe.arena} : memref<?xi8>`, as the lines in the token count whose maximum
/// it is (one line when static or when no max is taken). Fails when %bytes is
/// not built from constants, the token count, muli, addi and maxui.
FailureOr<SmallVector<LinearSize>> getArenaSizeLines(Operation *arenaAlloc);

/// The memory effects of ops (getEffectsRecursively), each computed once.
/// For some ops the query is costly (upstream linalg ops build their indexing
/// maps on every call), and a pipeline that models a block several times
/// (moe-optimize: the input, the schedule, the plan) would pay it each time.
/// Entries stay valid while ops only move; do not query an op that was
/// modified or erased after it was cached (use a new cache).
class EffectsCache {
public:
  using Effects = std::optional<SmallVector<MemoryEffects::EffectInstance>>;
  const Effects &get(Operation *op);

private:
  DenseMap<Operation *, Effects> cache;
};

class BlockMemoryModel {
public:
  struct Node {
    Operation *op = nullptr;
    /// Position among the nodes in the block's current order.
    unsigned index = 0;
    /// Nodes that must run before / after this one (deduplicated, sorted).
    SmallVector<unsigned, 4> preds, succs;
    /// Buffers this node uses (reads, writes, or needs to exist), sorted.
    SmallVector<unsigned, 4> buffers;
    LinearSize workspace;
    /// True when the op's effects are unknown (a barrier).
    bool unknownEffects = false;
  };

  struct Buffer {
    Operation *alloc = nullptr;
    Operation *dealloc = nullptr; // null: live to the end of the block
    LinearSize size;
    /// Nodes that use the buffer, sorted by index.
    SmallVector<unsigned, 4> users;
  };

  /// Builds the model of `block`. `tokenHint` is the token count at which
  /// symbolic sizes are compared. `effects`, when given, answers and keeps
  /// the ops' effect queries.
  explicit BlockMemoryModel(Block &block, int64_t tokenHint = 16384,
                            EffectsCache *effects = nullptr);

  /// False when a size could not be expressed (a buffer with more than one
  /// dynamic dimension, or a non-numeric element type); `getError` says why.
  bool isValid() const { return error.empty(); }
  const std::string &getError() const { return error; }
  Operation *getErrorOp() const { return errorOp; }

  Block &getBlock() const { return *block; }
  int64_t getTokenHint() const { return tokenHint; }
  ArrayRef<Node> getNodes() const { return nodes; }
  ArrayRef<Buffer> getBuffers() const { return buffers; }
  unsigned getNumNodes() const { return nodes.size(); }
  /// Bytes of the function's arguments (live throughout, not transient).
  LinearSize getArgumentBytes() const { return argumentBytes; }
  /// Number of dependence edges.
  unsigned getNumEdges() const { return numEdges; }

  /// Compares two sizes at the token hint, then by growth.
  int compare(const LinearSize &a, const LinearSize &b) const {
    return LinearSize::compareAt(a, b, tokenHint);
  }
  bool less(const LinearSize &a, const LinearSize &b) const {
    return compare(a, b) < 0;
  }
  const LinearSize &max(const LinearSize &a, const LinearSize &b) const {
    return less(a, b) ? b : a;
  }

  /// True if `order` (node indices) is a permutation that respects every
  /// dependence edge.
  bool isLegalOrder(ArrayRef<unsigned> order) const;

  /// The memory of one step of an order.
  struct Step {
    unsigned node;
    /// Transient bytes live while the node runs (buffers and its workspace).
    LinearSize during;
    /// Buffer bytes live just before it runs (after earlier frees).
    LinearSize liveBefore;
    /// Buffers live while it runs.
    SmallVector<unsigned, 8> liveBuffers;
  };
  struct Simulation {
    SmallVector<Step> steps;
    LinearSize peak;
    /// Index into `steps` of the first step that reaches the peak.
    unsigned peakStep = 0;
    /// The largest sum of sizes of buffers live at one time (no workspace):
    /// no packing of these buffers into one arena can be smaller.
    LinearSize largestLiveSet;
  };
  /// Simulates `order`. With `recordBuffers`, each step lists its live
  /// buffers (quadratic in the worst case; for reports).
  Simulation simulate(ArrayRef<unsigned> order, bool recordBuffers = false) const;
  /// The peak of `order`, in linear time.
  LinearSize peakOf(ArrayRef<unsigned> order) const;

  /// The nodes in their current order.
  SmallVector<unsigned> getInputOrder() const;

  /// Rewrites the block into `order`: each node in turn, preceded by the free
  /// ops and allocations it needs that are not yet placed and followed by the
  /// deallocations of the buffers it used last. Free ops nothing needs, and
  /// unused allocations, keep their place relative to the next node.
  void applyOrder(ArrayRef<unsigned> order);

private:
  void build();
  void classifyOps();
  void collectBufferUses();
  void addHazardEdges();
  void finalizeEdges();
  void addEdge(unsigned from, unsigned to);

  Block *block;
  int64_t tokenHint;
  EffectsCache *effectsCache;
  std::string error;
  Operation *errorOp = nullptr;

  SmallVector<Node> nodes;
  SmallVector<Buffer> buffers;
  DenseMap<Operation *, unsigned> nodeOf;
  DenseMap<Operation *, unsigned> bufferOfAlloc;
  /// Ops that are neither nodes nor allocations/deallocations of buffers.
  llvm::SmallPtrSet<Operation *, 16> freeOps;
  LinearSize argumentBytes;
  unsigned numEdges = 0;
  SmallVector<std::pair<unsigned, unsigned>> rawEdges;
  /// Each node's effects while the model is built (empty when unknown).
  std::vector<SmallVector<MemoryEffects::EffectInstance>> nodeEffects;
};

} // namespace moe
} // namespace mlir

#endif // MOE_ANALYSIS_BLOCKMEMORYMODEL_H
