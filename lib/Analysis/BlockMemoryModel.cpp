//===- BlockMemoryModel.cpp - Dependences and memory of a block -----------===//
#include "moe/Analysis/BlockMemoryModel.h"
#include "moe/Analysis/BufferAliases.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::moe;

const EffectsCache::Effects &EffectsCache::get(Operation *op) {
  auto it = cache.find(op);
  if (it == cache.end())
    it = cache.try_emplace(op, getEffectsRecursively(op)).first;
  return it->second;
}

BlockMemoryModel::BlockMemoryModel(Block &block, int64_t tokenHint,
                                   EffectsCache *effects)
    : block(&block), tokenHint(tokenHint), effectsCache(effects) {
  build();
}

void BlockMemoryModel::build() {
  classifyOps();
  if (!isValid())
    return;
  collectBufferUses();
  addHazardEdges();
  finalizeEdges();
}

/// The sizes `value` may take, as lines in the token count: the value is the
/// largest of them. Understands what moe-plan-memory emits: non-negative
/// constants, the token count (a block argument or `memref.dim`), muli by a
/// constant, addi and maxui. (A negative constant is no byte count: with it
/// the lines could be negative, and differences of sizes overflow.)
static FailureOr<SmallVector<LinearSize>> evaluateLines(Value value) {
  using Lines = SmallVector<LinearSize>;
  Operation *def = value.getDefiningOp();
  if (!def || isa<memref::DimOp>(def))
    return Lines{LinearSize(1, 0)}; // the token count itself
  if (auto constant = dyn_cast<arith::ConstantIndexOp>(def)) {
    if (constant.value() < 0)
      return failure();
    return Lines{LinearSize::bytes(constant.value())};
  }
  if (!isa<arith::AddIOp, arith::MulIOp, arith::MaxUIOp>(def))
    return failure();
  FailureOr<Lines> lhs = evaluateLines(def->getOperand(0));
  FailureOr<Lines> rhs = evaluateLines(def->getOperand(1));
  if (failed(lhs) || failed(rhs))
    return failure();
  Lines result;
  if (isa<arith::MaxUIOp>(def)) {
    result = *lhs;
    result.append(rhs->begin(), rhs->end());
    return result;
  }
  for (const LinearSize &a : *lhs)
    for (const LinearSize &b : *rhs) {
      if (isa<arith::AddIOp>(def)) {
        result.push_back(a + b);
        continue;
      }
      // muli: one side must be a constant.
      LinearSize line = a, factor = b;
      if (line.isConstant())
        std::swap(line, factor);
      if (!factor.isConstant())
        return failure();
      result.push_back(
          LinearSize(LinearSize::saturatingMul(line.perToken, factor.constant),
                     LinearSize::saturatingMul(line.constant, factor.constant)));
    }
  return result;
}

FailureOr<SmallVector<LinearSize>>
mlir::moe::getArenaSizeLines(Operation *alloc) {
  auto type = cast<MemRefType>(alloc->getResult(0).getType());
  if (type.hasStaticShape()) {
    FailureOr<LinearSize> size = getMemRefSize(type);
    if (failed(size))
      return failure();
    return SmallVector<LinearSize>{*size};
  }
  if (alloc->getNumOperands() != 1)
    return failure();
  return evaluateLines(alloc->getOperand(0));
}

/// The arena's size as one line: the one largest at the token hint.
static FailureOr<LinearSize> getArenaSize(Operation &alloc, int64_t tokenHint) {
  FailureOr<SmallVector<LinearSize>> lines = getArenaSizeLines(&alloc);
  if (failed(lines) || lines->empty())
    return failure();
  LinearSize largest = lines->front();
  for (const LinearSize &line : *lines)
    if (LinearSize::compareAt(largest, line, tokenHint) < 0)
      largest = line;
  return largest;
}

static bool isAllocation(Operation *op) {
  return isa<memref::AllocOp, memref::AllocaOp>(op);
}

void BlockMemoryModel::classifyOps() {
  // The last op stays last when it is or may be a terminator (an
  // unregistered op may be one: the verifier accepts it as such, so nothing
  // may follow it).
  Operation *terminator =
      block->mightHaveTerminator() ? &block->back() : nullptr;

  // Arguments of the enclosing function are live throughout.
  for (BlockArgument arg : block->getArguments())
    if (auto type = dyn_cast<MemRefType>(arg.getType()))
      if (FailureOr<LinearSize> size = getMemRefSize(type); succeeded(size))
        argumentBytes += *size;

  for (Operation &op : *block) {
    if (&op == terminator)
      continue;
    if (isAllocation(&op)) {
      auto type = cast<MemRefType>(op.getResult(0).getType());
      FailureOr<LinearSize> size = op.hasAttr(kArenaAttrName)
                                       ? getArenaSize(op, tokenHint)
                                       : getMemRefSize(type);
      if (failed(size)) {
        llvm::raw_string_ostream os(error);
        if (op.hasAttr(kArenaAttrName))
          os << "cannot size an arena (" << kArenaAttrName
             << "): its byte count must be built from non-negative constants, "
                "the token count, muli by a constant, addi and maxui";
        else
          os << "cannot size a buffer of type " << type
             << ": sizes must be linear in one dynamic dimension (the token "
                "count) and elements must be integers or floats";
        errorOp = &op;
        return;
      }
      Buffer buffer;
      buffer.alloc = &op;
      buffer.size = *size;
      bufferOfAlloc[&op] = buffers.size();
      buffers.push_back(buffer);
      continue;
    }
    if (auto dealloc = dyn_cast<memref::DeallocOp>(&op)) {
      Operation *def = dealloc.getMemref().getDefiningOp();
      auto it = def ? bufferOfAlloc.find(def) : bufferOfAlloc.end();
      if (it != bufferOfAlloc.end() && !buffers[it->second].dealloc) {
        buffers[it->second].dealloc = &op;
        continue;
      }
    }
    // Effects are computed once: for some ops (linalg) they are costly.
    std::optional<SmallVector<MemoryEffects::EffectInstance>> effects =
        effectsCache ? effectsCache->get(&op) : getEffectsRecursively(&op);
    if (op.getNumRegions() == 0 && effects && effects->empty()) {
      freeOps.insert(&op);
      continue;
    }
    Node node;
    node.op = &op;
    node.index = nodes.size();
    node.unknownEffects = !effects;
    if (effects)
      nodeEffects.push_back(std::move(*effects));
    else
      nodeEffects.emplace_back();
    // A planned workspace lives in the arena, which is a buffer of its own.
    if (auto workspace = dyn_cast<WorkspaceOpInterface>(&op);
        workspace && !op.hasAttr(kWorkspaceOffsetAttrName))
      node.workspace = workspace.getWorkspaceSize();
    nodeOf[&op] = node.index;
    nodes.push_back(std::move(node));
  }

  // A planned workspace lives in the block's arena: the op writes the arena,
  // so it keeps its order with every access to the arena's views (whose space
  // the workspace may share at other times), and needs the arena allocated
  // (collectBufferUses).
  for (Node &node : nodes) {
    if (node.unknownEffects || !node.op->hasAttr(kWorkspaceOffsetAttrName))
      continue;
    for (const Buffer &b : buffers)
      if (b.alloc->hasAttr(kArenaAttrName))
        nodeEffects[node.index].emplace_back(MemoryEffects::Write::get(),
                                             b.alloc->getResult(0));
  }
}

namespace {
/// What a value (transitively, through free ops and allocation operands)
/// needs: the buffers that must exist and the nodes that must have run.
struct Needs {
  SmallVector<unsigned, 4> buffers;
  SmallVector<unsigned, 4> nodes;
};
} // namespace

static void appendUnique(SmallVectorImpl<unsigned> &into, ArrayRef<unsigned> from) {
  into.append(from.begin(), from.end());
  llvm::sort(into);
  into.erase(llvm::unique(into), into.end());
}

void BlockMemoryModel::collectBufferUses() {
  // Needs of free ops and allocations, memoized: one `memref.dim` can feed
  // thousands of allocations.
  DenseMap<Operation *, Needs> memo;

  std::function<void(Value, Operation *, Needs &)> addNeeds =
      [&](Value value, Operation *user, Needs &needs) {
        Operation *def = value.getDefiningOp();
        if (!def || def->getBlock() != block)
          return; // An argument or a value from an enclosing region.
        if (user->isAncestor(def))
          return; // Defined inside the node itself.
        if (auto it = nodeOf.find(def); it != nodeOf.end()) {
          needs.nodes.push_back(it->second);
          // A node that returns a memref may return a view of what it uses:
          // its users need those buffers alive too.
          if (llvm::any_of(def->getResultTypes(), llvm::IsaPred<BaseMemRefType>))
            needs.buffers.append(nodes[it->second].buffers.begin(),
                                 nodes[it->second].buffers.end());
          return;
        }
        auto memoIt = memo.find(def);
        if (memoIt == memo.end()) {
          Needs defNeeds;
          if (auto it = bufferOfAlloc.find(def); it != bufferOfAlloc.end())
            defNeeds.buffers.push_back(it->second);
          for (Value operand : def->getOperands())
            addNeeds(operand, def, defNeeds);
          appendUnique(defNeeds.buffers, {});
          appendUnique(defNeeds.nodes, {});
          memoIt = memo.try_emplace(def, std::move(defNeeds)).first;
        }
        needs.buffers.append(memoIt->second.buffers.begin(),
                             memoIt->second.buffers.end());
        needs.nodes.append(memoIt->second.nodes.begin(),
                           memoIt->second.nodes.end());
      };

  for (Node &node : nodes) {
    Needs needs;
    node.op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands())
        addNeeds(operand, node.op, needs);
    });
    // A planned workspace needs the arena it lives in.
    if (node.op->hasAttr(kWorkspaceOffsetAttrName))
      for (auto [index, buffer] : llvm::enumerate(buffers))
        if (buffer.alloc->hasAttr(kArenaAttrName))
          needs.buffers.push_back(index);
    appendUnique(needs.buffers, {});
    appendUnique(needs.nodes, {});
    node.buffers = needs.buffers;
    for (unsigned pred : needs.nodes)
      addEdge(pred, node.index);
  }

  // An op with unknown effects may reach any buffer through memory we cannot
  // see: it keeps every buffer that is allocated and not yet freed around it
  // (in the input order) alive.
  DenseMap<Operation *, unsigned> position;
  unsigned pos = 0;
  for (Operation &op : *block)
    position[&op] = pos++;
  for (Node &node : nodes) {
    if (!node.unknownEffects)
      continue;
    unsigned at = position[node.op];
    for (auto [index, buffer] : llvm::enumerate(buffers))
      if (position[buffer.alloc] < at &&
          (!buffer.dealloc || position[buffer.dealloc] > at))
        node.buffers.push_back(index);
    appendUnique(node.buffers, {});
  }

  for (Node &node : nodes)
    for (unsigned b : node.buffers)
      buffers[b].users.push_back(node.index);
}

namespace {
/// The alias class of an accessed value: buffers of the block are distinct
/// from everything; function arguments marked distinct (`moe.role` or
/// `llvm.noalias`) are distinct; other arguments may alias one another; any
/// other value may alias anything.
struct AliasClasses {
  static constexpr int kUniversal = -1;
  DenseMap<Value, int> classOf;
  /// Resources other than memory (e.g. the communicator of collectives):
  /// one class each.
  DenseMap<TypeID, int> classOfResource;
  int next = 0;

  int getResource(SideEffects::Resource *resource) {
    auto [it, inserted] = classOfResource.try_emplace(resource->getResourceID(), next);
    if (inserted)
      ++next;
    return it->second;
  }
  int sharedArguments = -2;

  int get(Value root, Block *block, const DenseMap<Operation *, unsigned> &bufferOfAlloc) {
    if (auto it = classOf.find(root); it != classOf.end())
      return it->second;
    int cls = kUniversal;
    if (Operation *def = root.getDefiningOp()) {
      if (bufferOfAlloc.count(def))
        cls = next++;
    } else if (auto arg = dyn_cast<BlockArgument>(root);
               arg && arg.getOwner() == block) {
      bool distinct = false;
      if (auto func = dyn_cast_or_null<FunctionOpInterface>(block->getParentOp()))
        if (&func.getFunctionBody().front() == block)
          distinct = func.getArgAttr(arg.getArgNumber(), "moe.role") ||
                     func.getArgAttr(arg.getArgNumber(), "llvm.noalias");
      if (distinct) {
        cls = next++;
      } else {
        if (sharedArguments == -2)
          sharedArguments = next++;
        cls = sharedArguments;
      }
    }
    classOf[root] = cls;
    return cls;
  }
};

struct AccessState {
  int lastWriter = -1;
  SmallVector<unsigned, 4> readers;
};
} // namespace

/// Follows view-like ops (and only those) to the value they view.
static Value getAccessRoot(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view || view.getViewDest() != value)
      break;
    value = view.getViewSource();
  }
  return value;
}

void BlockMemoryModel::addHazardEdges() {
  AliasClasses classes;
  // Aliases among the values nested in the block's ops (built on first use:
  // only effects on values inside an op ask).
  BufferAliases aliases(block->getParentOp());
  DenseMap<int, AccessState> state; // by alias class
  AccessState universal;

  auto edgeFrom = [&](int from, unsigned to) {
    if (from >= 0)
      addEdge(from, to);
  };
  auto read = [&](int cls, unsigned node) {
    edgeFrom(universal.lastWriter, node);
    if (cls == AliasClasses::kUniversal) {
      for (auto &entry : state)
        edgeFrom(entry.second.lastWriter, node);
      universal.readers.push_back(node);
      return;
    }
    AccessState &s = state[cls];
    edgeFrom(s.lastWriter, node);
    s.readers.push_back(node);
  };
  auto write = [&](int cls, unsigned node) {
    edgeFrom(universal.lastWriter, node);
    for (unsigned r : universal.readers)
      addEdge(r, node);
    if (cls == AliasClasses::kUniversal) {
      for (auto &entry : state) {
        edgeFrom(entry.second.lastWriter, node);
        for (unsigned r : entry.second.readers)
          addEdge(r, node);
      }
      state.clear();
      universal.readers.clear();
      universal.lastWriter = node;
      return;
    }
    AccessState &s = state[cls];
    edgeFrom(s.lastWriter, node);
    for (unsigned r : s.readers)
      addEdge(r, node);
    s.readers.clear();
    s.lastWriter = node;
  };

  for (Node &node : nodes) {
    if (node.unknownEffects) {
      write(AliasClasses::kUniversal, node.index);
      continue;
    }
    SmallVector<int, 4> reads, writes;
    for (const MemoryEffects::EffectInstance &effect : nodeEffects[node.index]) {
      if (isa<MemoryEffects::Allocate>(effect.getEffect()))
        continue; // Fresh memory conflicts with nothing.
      // An effect without a value may touch any memory; on another resource
      // (the communicator) it conflicts with the effects on that resource.
      SmallVector<int, 2> accessed = {AliasClasses::kUniversal};
      if (!effect.getValue() &&
          !isa<SideEffects::DefaultResource>(effect.getResource())) {
        accessed = {classes.getResource(effect.getResource())};
      } else if (Value value = effect.getValue()) {
        Value root = getAccessRoot(value);
        Operation *scope = root.getDefiningOp();
        if (!scope)
          scope = root.getParentBlock()->getParentOp();
        accessed.clear();
        if (!node.op->isAncestor(scope)) {
          accessed.push_back(classes.get(root, block, bufferOfAlloc));
        } else if (std::optional<SmallVector<Value>> origins =
                       aliases.getOriginsOutside(root, node.op)) {
          // A value inside the op (a loop's iteration argument, a region's
          // result) is the memory outside that flows into it; memory
          // allocated inside the op is local to it (no origin).
          for (Value origin : *origins)
            accessed.push_back(
                classes.get(getAccessRoot(origin), block, bufferOfAlloc));
        } else {
          accessed.push_back(AliasClasses::kUniversal);
        }
      }
      for (int cls : accessed) {
        if (isa<MemoryEffects::Read>(effect.getEffect()))
          reads.push_back(cls);
        else
          writes.push_back(cls); // Write and Free.
      }
    }
    for (int cls : reads)
      read(cls, node.index);
    for (int cls : writes)
      write(cls, node.index);
  }
}

void BlockMemoryModel::addEdge(unsigned from, unsigned to) {
  if (from == to)
    return;
  assert(from < to && "edges follow the input order");
  rawEdges.emplace_back(from, to);
}

void BlockMemoryModel::finalizeEdges() {
  llvm::sort(rawEdges);
  rawEdges.erase(llvm::unique(rawEdges), rawEdges.end());
  for (auto [from, to] : rawEdges) {
    nodes[from].succs.push_back(to);
    nodes[to].preds.push_back(from);
  }
  numEdges = rawEdges.size();
  rawEdges.clear();
  nodeEffects.clear();

}

SmallVector<unsigned> BlockMemoryModel::getInputOrder() const {
  return llvm::to_vector(llvm::seq<unsigned>(0, nodes.size()));
}

bool BlockMemoryModel::isLegalOrder(ArrayRef<unsigned> order) const {
  if (order.size() != nodes.size())
    return false;
  SmallVector<int> position(nodes.size(), -1);
  for (auto [pos, node] : llvm::enumerate(order)) {
    if (node >= nodes.size() || position[node] != -1)
      return false;
    position[node] = pos;
  }
  for (const Node &node : nodes)
    for (unsigned succ : node.succs)
      if (position[node.index] > position[succ])
        return false;
  return true;
}

BlockMemoryModel::Simulation
BlockMemoryModel::simulate(ArrayRef<unsigned> order, bool recordBuffers) const {
  Simulation sim;
  SmallVector<unsigned> remaining;
  remaining.reserve(buffers.size());
  for (const Buffer &b : buffers)
    remaining.push_back(b.users.size());
  SmallVector<bool> started(buffers.size(), false);
  SmallVector<unsigned> live; // for recordBuffers
  LinearSize liveBytes;
  bool first = true;
  for (unsigned nodeIndex : order) {
    const Node &node = nodes[nodeIndex];
    Step step;
    step.node = nodeIndex;
    step.liveBefore = liveBytes;
    for (unsigned b : node.buffers) {
      if (started[b])
        continue;
      started[b] = true;
      liveBytes += buffers[b].size;
      if (recordBuffers)
        live.push_back(b);
    }
    step.during = liveBytes + node.workspace;
    if (recordBuffers) {
      step.liveBuffers.assign(live.begin(), live.end());
      llvm::sort(step.liveBuffers);
    }
    if (first || less(sim.peak, step.during)) {
      sim.peak = step.during;
      sim.peakStep = sim.steps.size();
    }
    if (first || less(sim.largestLiveSet, liveBytes))
      sim.largestLiveSet = liveBytes;
    first = false;
    for (unsigned b : node.buffers) {
      if (--remaining[b] == 0 && buffers[b].dealloc) {
        liveBytes -= buffers[b].size;
        if (recordBuffers)
          llvm::erase(live, b);
      }
    }
    sim.steps.push_back(std::move(step));
  }
  return sim;
}

LinearSize BlockMemoryModel::peakOf(ArrayRef<unsigned> order) const {
  SmallVector<unsigned> remaining;
  remaining.reserve(buffers.size());
  for (const Buffer &b : buffers)
    remaining.push_back(b.users.size());
  SmallVector<bool> started(buffers.size(), false);
  LinearSize live, peak;
  for (unsigned nodeIndex : order) {
    const Node &node = nodes[nodeIndex];
    for (unsigned b : node.buffers)
      if (!started[b]) {
        started[b] = true;
        live += buffers[b].size;
      }
    peak = max(peak, live + node.workspace);
    for (unsigned b : node.buffers)
      if (--remaining[b] == 0 && buffers[b].dealloc)
        live -= buffers[b].size;
  }
  return peak;
}

void BlockMemoryModel::applyOrder(ArrayRef<unsigned> order) {
  assert(isLegalOrder(order) && "applying an illegal order");
  // The last op stays last when it is or may be a terminator (an
  // unregistered op may be one: the verifier accepts it as such, so nothing
  // may follow it).
  Operation *terminator =
      block->mightHaveTerminator() ? &block->back() : nullptr;

  SmallVector<Operation *> sequence;
  llvm::SmallPtrSet<Operation *, 32> placed;
  // Places the free ops and allocations `op` needs, operands first.
  std::function<void(Operation *)> placeNeeds = [&](Operation *op) {
    op->walk([&](Operation *nested) {
      for (Value operand : nested->getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (!def || def->getBlock() != block || op->isAncestor(def) ||
            placed.count(def) || nodeOf.count(def))
          continue;
        placeNeeds(def);
        placed.insert(def);
        sequence.push_back(def);
      }
    });
  };

  SmallVector<unsigned> remaining;
  for (const Buffer &b : buffers)
    remaining.push_back(b.users.size());
  for (unsigned nodeIndex : order) {
    const Node &node = nodes[nodeIndex];
    // Allocations the node needs only through its effects on them (not via
    // operands) do not exist: every buffer use is an operand use.
    placeNeeds(node.op);
    for (unsigned b : node.buffers)
      if (!placed.count(buffers[b].alloc)) {
        placeNeeds(buffers[b].alloc);
        placed.insert(buffers[b].alloc);
        sequence.push_back(buffers[b].alloc);
      }
    placed.insert(node.op);
    sequence.push_back(node.op);
    for (unsigned b : node.buffers)
      if (--remaining[b] == 0 && buffers[b].dealloc) {
        placed.insert(buffers[b].dealloc);
        sequence.push_back(buffers[b].dealloc);
      }
  }
  // What no node needed keeps its relative order, at the end.
  for (Operation &op : *block) {
    if (&op == terminator || placed.count(&op))
      continue;
    placeNeeds(&op);
    placed.insert(&op);
    sequence.push_back(&op);
  }
  for (Operation *op : sequence) {
    if (terminator)
      op->moveBefore(terminator);
    else
      op->moveBefore(block, block->end());
  }
  // Node indices follow the new order from now on.
  SmallVector<unsigned> newIndex(nodes.size());
  for (auto [pos, nodeIndex] : llvm::enumerate(order))
    newIndex[nodeIndex] = pos;
  SmallVector<Node> reordered(nodes.size());
  for (Node &node : nodes) {
    Node moved = std::move(node);
    unsigned at = newIndex[moved.index];
    moved.index = at;
    for (unsigned &p : moved.preds)
      p = newIndex[p];
    for (unsigned &s : moved.succs)
      s = newIndex[s];
    llvm::sort(moved.preds);
    llvm::sort(moved.succs);
    reordered[at] = std::move(moved);
  }
  nodes = std::move(reordered);
  for (Node &node : nodes)
    nodeOf[node.op] = node.index;
  for (Buffer &buffer : buffers) {
    for (unsigned &u : buffer.users)
      u = newIndex[u];
    llvm::sort(buffer.users);
  }
}
