//===- PlanMemory.cpp - Pack buffers and workspaces into one arena --------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/Transforms.h"
#include "MemoryReport.h"
#include "moe/Analysis/BufferAliases.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/Debug.h"

#define DEBUG_TYPE "moe-plan-memory"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEPLANMEMORY
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

/// Offsets and sizes are kept multiples of `alignment` for every token count.
static LinearSize alignUp(LinearSize size, int64_t alignment) {
  auto up = [&](int64_t v) {
    // Saturated sizes (LinearSize) stay saturated, rounded down to a multiple.
    return LinearSize::saturatingAdd(v, alignment - 1) / alignment * alignment;
  };
  return LinearSize(up(size.perToken), up(size.constant));
}

/// a <= b for every token count T >= 0.
static bool alwaysLessEqual(const LinearSize &a, const LinearSize &b) {
  return a.perToken <= b.perToken && a.constant <= b.constant;
}

namespace {
struct Item {
  PlannedItem planned;
  LinearSize rawSize; // before alignment
  Operation *alloc = nullptr;     // buffers
  Operation *workspaceOp = nullptr; // workspaces
  unsigned order = 0;             // for determinism
  SmallVector<unsigned, 8> overlaps;
  bool placed = false;
};
} // namespace

/// Which items' lifetimes overlap (a sweep over first steps).
static void computeOverlaps(MutableArrayRef<Item> items) {
  {
    SmallVector<unsigned> byStart = llvm::to_vector(llvm::seq<unsigned>(0, items.size()));
    llvm::sort(byStart, [&](unsigned a, unsigned b) {
      return std::make_pair(items[a].planned.firstStep, a) <
             std::make_pair(items[b].planned.firstStep, b);
    });
    SmallVector<unsigned> active;
    for (unsigned i : byStart) {
      unsigned first = items[i].planned.firstStep;
      llvm::erase_if(active, [&](unsigned j) { return items[j].planned.lastStep < first; });
      for (unsigned j : active) {
        items[i].overlaps.push_back(j);
        items[j].overlaps.push_back(i);
      }
      active.push_back(i);
    }
  }

}

/// Best fit in decreasing size: each item at the lowest offset (at the hint)
/// that clears every placed item it overlaps, for all token counts.
static void placeItems(MutableArrayRef<Item> items,
                       const BlockMemoryModel &model) {
  SmallVector<unsigned> bySize = llvm::to_vector(llvm::seq<unsigned>(0, items.size()));
  llvm::sort(bySize, [&](unsigned a, unsigned b) {
    int c = model.compare(items[b].planned.size, items[a].planned.size);
    if (c != 0)
      return c < 0;
    return items[a].order < items[b].order;
  });
  for (unsigned i : bySize) {
    Item &item = items[i];
    SmallVector<LinearSize, 8> candidates = {LinearSize()};
    for (unsigned j : item.overlaps)
      if (items[j].placed)
        candidates.push_back(items[j].planned.offset + items[j].planned.size);
    llvm::sort(candidates, [&](const LinearSize &a, const LinearSize &b) {
      return model.less(a, b);
    });
    for (const LinearSize &offset : candidates) {
      bool fits = llvm::all_of(item.overlaps, [&](unsigned j) {
        if (!items[j].placed)
          return true;
        const PlannedItem &o = items[j].planned;
        return alwaysLessEqual(offset + item.planned.size, o.offset) ||
               alwaysLessEqual(o.offset + o.size, offset);
      });
      if (fits) {
        item.planned.offset = offset;
        item.placed = true;
        break;
      }
    }
    // The end of every overlapping item always clears them all when taken
    // as a sum: fall back to stacking on the largest end.
    if (!item.placed) {
      LinearSize top;
      for (unsigned j : item.overlaps)
        if (items[j].placed) {
          LinearSize end = items[j].planned.offset + items[j].planned.size;
          top = LinearSize(std::max(top.perToken, end.perToken),
                           std::max(top.constant, end.constant));
        }
      item.planned.offset = top;
      item.placed = true;
    }
  }

}

/// The ends the arena must hold for every token count: those no other end
/// dominates, largest at the hint first (their maximum is taken at run time).
static SmallVector<LinearSize> getArenaEnds(ArrayRef<Item> items,
                                            const BlockMemoryModel &model) {
  SmallVector<LinearSize> ends;
  for (const Item &item : items) {
    LinearSize end = item.planned.offset + item.planned.size;
    if (llvm::any_of(ends, [&](const LinearSize &e) { return alwaysLessEqual(end, e); }))
      continue;
    llvm::erase_if(ends, [&](const LinearSize &e) { return alwaysLessEqual(e, end); });
    ends.push_back(end);
  }
  llvm::sort(ends, [&](const LinearSize &a, const LinearSize &b) {
    return model.less(b, a);
  });
  return ends;

}

/// The largest live set of the planned items: no arena can be smaller.
static LinearSize getLowerBound(ArrayRef<Item> items, unsigned numSteps,
                                const BlockMemoryModel &model) {
  LinearSize lowerBound;
  {
    SmallVector<LinearSize> delta(numSteps + 1);
    for (const Item &item : items) {
      delta[item.planned.firstStep] += item.planned.size;
      delta[item.planned.lastStep + 1] -= item.planned.size;
    }
    LinearSize live;
    for (unsigned s = 0; s < numSteps; ++s) {
      live += delta[s];
      lowerBound = model.max(lowerBound, live);
    }
  }

  return lowerBound;
}

/// The most that the buffers outside the arena (left out, or not allocations
/// the plan handles) hold at one time, each over its own lifetime.
static LinearSize getPeakOutsideArena(ArrayRef<Item> items,
                                      ArrayRef<memref::AllocOp> unused,
                                      const BlockMemoryModel &model) {
  unsigned numSteps = model.getNumNodes();
  LinearSize leftOutPeak;
  {
    llvm::SmallPtrSet<Operation *, 16> inArena;
    for (const Item &item : items)
      if (item.alloc)
        inArena.insert(item.alloc);
    for (memref::AllocOp alloc : unused)
      inArena.insert(alloc);
    SmallVector<LinearSize> delta(numSteps + 1);
    for (const BlockMemoryModel::Buffer &b : model.getBuffers()) {
      if (inArena.count(b.alloc) || b.users.empty())
        continue;
      delta[b.users.front()] += b.size;
      delta[(b.dealloc ? b.users.back() : numSteps - 1) + 1] -= b.size;
    }
    LinearSize live;
    for (unsigned s = 0; s < numSteps; ++s) {
      live += delta[s];
      leftOutPeak = model.max(leftOutPeak, live);
    }
  }
  return leftOutPeak;
}

/// Rewrites the block: the token count's definition first, the arena right
/// after it, a view of it for every planned buffer, workspace offsets on the
/// ops, the arena freed at the end.
static void rewriteIntoArena(FunctionOpInterface func, Block &block,
                             MutableArrayRef<Item> items, Value tokens,
                             SmallVectorImpl<Operation *> &tokenSlice,
                             ArrayRef<memref::AllocOp> unused,
                             ArrayRef<LinearSize> ends, Operation *terminator) {
  // The token count first (in block order), the arena right after it.
  llvm::sort(tokenSlice,
             [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  for (auto [i, op] : llvm::enumerate(tokenSlice)) {
    if (i == 0)
      op->moveBefore(&block, block.begin());
    else
      op->moveAfter(tokenSlice[i - 1]);
  }
  for (memref::AllocOp alloc : unused) {
    for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
      user->erase();
    alloc.erase();
  }

  // Rewrite: one arena, views into it, workspace offsets on the ops.
  // Positions in the block before rewriting (asking the block for the order
  // after each insertion would be quadratic).
  DenseMap<Operation *, unsigned> position;
  for (auto [pos, op] : llvm::enumerate(block))
    position[&op] = pos;
  OpBuilder builder(func.getContext());
  Location loc = func.getLoc();
  unsigned arenaPosition = 0;
  if (tokens && tokens.getDefiningOp())
    arenaPosition = position[tokens.getDefiningOp()] + 1;
  if (tokens && tokens.getDefiningOp())
    builder.setInsertionPointAfter(tokens.getDefiningOp());
  else
    builder.setInsertionPointToStart(&block);
  // Constants are made once, where the arena is allocated (dominating every
  // use); offsets are computed where each view is made.
  DenseMap<int64_t, Value> constants;
  OpBuilder constantBuilder = builder;
  auto constant = [&](int64_t value) {
    Value &c = constants[value];
    if (!c)
      c = arith::ConstantIndexOp::create(constantBuilder, loc, value);
    return c;
  };
  auto linear = [&](const LinearSize &size) -> Value {
    if (size.perToken == 0 || !tokens)
      return constant(size.constant);
    Value scaled = arith::MulIOp::create(builder, loc, tokens, constant(size.perToken));
    if (size.constant == 0)
      return scaled;
    return arith::AddIOp::create(builder, loc, scaled, constant(size.constant));
  };
  bool dynamicArena = tokens && llvm::any_of(ends, [](const LinearSize &e) {
                        return e.perToken != 0;
                      });
  memref::AllocOp arena;
  if (dynamicArena) {
    Value bytes = linear(ends.front());
    for (const LinearSize &end : ArrayRef(ends).drop_front())
      bytes = arith::MaxUIOp::create(builder, loc, bytes, linear(end));
    arena = memref::AllocOp::create(
        builder, loc, MemRefType::get({ShapedType::kDynamic}, builder.getI8Type()),
        ValueRange{bytes});
  } else {
    int64_t bytes = 0;
    for (const LinearSize &end : ends)
      bytes = std::max(bytes, end.constant);
    arena = memref::AllocOp::create(
        builder, loc, MemRefType::get({bytes}, builder.getI8Type()));
  }
  arena->setAttr(kArenaAttrName, builder.getUnitAttr());
  // Later constants go before the arena: the op after it may be erased.
  constantBuilder.setInsertionPoint(arena);
  Operation *afterArena = arena;

  for (Item &item : items) {
    if (item.workspaceOp) {
      item.workspaceOp->setAttr(
          kWorkspaceOffsetAttrName,
          builder.getDenseI64ArrayAttr(
              {item.planned.offset.perToken, item.planned.offset.constant}));
      continue;
    }
    auto alloc = cast<memref::AllocOp>(item.alloc);
    // An allocation above the arena (static, before the token count) gets
    // its view right after the arena.
    bool aboveArena = position[alloc] < arenaPosition;
    if (aboveArena)
      builder.setInsertionPointAfter(afterArena);
    else
      builder.setInsertionPoint(alloc);
    Value offset = linear(item.planned.offset);
    auto view = memref::ViewOp::create(builder, alloc.getLoc(), alloc.getType(),
                                       arena.getResult(), offset,
                                       alloc.getDynamicSizes());
    if (aboveArena)
      afterArena = view;
    for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
      if (isa<memref::DeallocOp>(user))
        user->erase();
    alloc.replaceAllUsesWith(view.getResult());
    alloc.erase();
  }
  if (terminator)
    builder.setInsertionPoint(terminator);
  else
    builder.setInsertionPointToEnd(&block);
  memref::DeallocOp::create(builder, loc, arena.getResult());
}

/// The one token-count value that dynamic sizes use (null when all are
/// static) and the ops that compute it (`slice`, to be moved first with the
/// arena), or why the block cannot be planned.
static std::optional<std::string>
findTokenCount(Block &block, const BlockMemoryModel &model, Value &tokens,
               SmallVectorImpl<Operation *> &slice) {
  for (const BlockMemoryModel::Buffer &b : model.getBuffers())
    for (Value size : b.alloc->getOperands()) {
      if (tokens && tokens != size)
        return std::string("dynamic sizes use different token-count values");
      tokens = size;
    }
  // The arena goes first in the block, so that it and every view dominate
  // all uses: the token count's definition moves up with it, which needs it
  // computed without memory effects from the function's arguments (not from
  // a buffer the plan would move into the arena).
  if (!tokens)
    return std::nullopt;
  SmallVector<Value> worklist = {tokens};
  llvm::SmallPtrSet<Operation *, 8> seen;
  while (!worklist.empty()) {
    Operation *def = worklist.pop_back_val().getDefiningOp();
    if (!def || def->getBlock() != &block || !seen.insert(def).second)
      continue;
    if (def->getNumRegions() != 0 || !isMemoryEffectFree(def))
      return std::string("the token count is not computed from the "
                         "function's arguments alone");
    slice.push_back(def);
    worklist.append(def->operand_begin(), def->operand_end());
  }
  return std::nullopt;
}

MemoryPlan mlir::moe::planMemory(FunctionOpInterface func, int64_t tokenHint,
                                 std::optional<LinearSize> limit,
                                 EffectsCache *effects, bool nameItems,
                                 int64_t alignment) {
  MemoryPlan plan;
  if (alignment < 1 || (alignment & (alignment - 1)) != 0) {
    plan.reason = "the alignment must be a power of two";
    return plan;
  }
  if (func.isExternal()) {
    plan.reason = "external function";
    return plan;
  }
  Block &block = func.getFunctionBody().front();
  BlockMemoryModel model(block, tokenHint, effects);
  if (!model.isValid()) {
    plan.reason = model.getError();
    return plan;
  }
  plan.peakBefore = model.peakOf(model.getInputOrder());
  for (Operation &op : block)
    if (op.hasAttr(kArenaAttrName)) {
      plan.reason = "already planned";
      return plan;
    }

  Value tokens;
  SmallVector<Operation *> tokenSlice;
  if (std::optional<std::string> why =
          findTokenCount(block, model, tokens, tokenSlice)) {
    plan.reason = *why;
    return plan;
  }

  Operation *terminator = block.mightHaveTerminator() ? block.getTerminator() : nullptr;
  BufferAliases aliases(func);
  unsigned numSteps = model.getNumNodes();
  std::optional<AsmState> asmState;
  if (nameItems)
    asmState.emplace(func);
  SmallVector<Item> items;
  // Buffers no op uses (only deallocated): they need no memory at all.
  SmallVector<memref::AllocOp> unused;
  for (const BlockMemoryModel::Buffer &b : model.getBuffers()) {
    auto alloc = dyn_cast<memref::AllocOp>(b.alloc);
    if (alloc && b.users.empty() &&
        llvm::all_of(alloc->getUsers(),
                     [](Operation *user) { return isa<memref::DeallocOp>(user); })) {
      unused.push_back(alloc);
      continue;
    }
    if (!alloc || b.users.empty() || !alloc.getType().getLayout().isIdentity())
      continue;
    // Only a buffer whose every alias is known, stays in the block and is
    // freed by nothing but its own dealloc can live in the arena (which the
    // block frees at its end).
    if (std::optional<std::string> why =
            aliases.whyNotPlannable(alloc, b.dealloc, block)) {
      alloc->emitRemark() << "left out of the memory plan's arena: " << *why;
      LLVM_DEBUG(llvm::dbgs() << "left out " << alloc << ": " << *why << "\n");
      MemoryPlan::LeftOut left{alloc, *why, ""};
      if (asmState) {
        llvm::raw_string_ostream os(left.name);
        alloc.getResult().printAsOperand(os, *asmState);
      }
      plan.leftOut.push_back(std::move(left));
      continue;
    }
    Item item;
    item.alloc = alloc;
    item.rawSize = b.size;
    item.planned.firstStep = b.users.front();
    item.planned.lastStep = b.dealloc ? b.users.back() : numSteps - 1;
    if (asmState) {
      llvm::raw_string_ostream os(item.planned.name);
      alloc.getResult().printAsOperand(os, *asmState);
    }
    items.push_back(std::move(item));
  }
  for (const BlockMemoryModel::Node &node : model.getNodes()) {
    if (node.workspace == LinearSize())
      continue;
    Item item;
    item.workspaceOp = node.op;
    item.planned.isWorkspace = true;
    item.rawSize = node.workspace;
    item.planned.firstStep = item.planned.lastStep = node.index;
    if (nameItems)
      item.planned.name = "workspace of " +
                          node.op->getName().getStringRef().str() + " #" +
                          std::to_string(node.index);
    items.push_back(std::move(item));
  }
  if (items.empty()) {
    plan.reason = "no buffers to plan";
    return plan;
  }
  for (auto [i, item] : llvm::enumerate(items))
    item.order = i;

  // Packed at `alignment` (the runtime's 256 bytes by default: a buffer at
  // an offset of only 16 bytes made the GEMMs that read it up to 28% slower),
  // or, when that would exceed the limit (small layers, where rounding each
  // buffer to 256 bytes costs more than planning saves), at 16 bytes.
  computeOverlaps(items);
  SmallVector<int64_t, 2> alignments = {alignment};
  if (alignment > 16)
    alignments.push_back(16);
  SmallVector<LinearSize> ends;
  for (int64_t a : alignments) {
    for (Item &item : items) {
      item.planned.size = alignUp(item.rawSize, a);
      item.planned.offset = LinearSize();
      item.placed = false;
    }
    placeItems(items, model);
    ends = getArenaEnds(items, model);
    plan.arenaSize = ends.front();
    plan.lowerBound = getLowerBound(items, numSteps, model);
    LinearSize leftOutPeak = getPeakOutsideArena(items, unused, model);
    plan.peakAfter = plan.arenaSize + leftOutPeak;
    LLVM_DEBUG(llvm::dbgs() << items.size() << " items aligned to " << a
                            << ": arena " << plan.arenaSize << ", lower bound "
                            << plan.lowerBound << ", outside the arena up to "
                            << leftOutPeak << ", unplanned peak "
                            << plan.peakBefore << "\n");

    // Never above `limit` (moe-optimize: the peak of the function as
    // written). Without one, never worse than the current order beyond a
    // 16-byte rounding of each item's constant part: with tiny per-token
    // sizes, alignment can cost more than allocating each buffer on its own.
    LinearSize roundingSlack(0, 16 * int64_t(items.size()));
    LinearSize unplanned = limit ? *limit : plan.peakBefore;
    if (!model.less(limit ? unplanned : unplanned + roundingSlack,
                    plan.peakAfter)) {
      plan.reason.clear();
      break;
    }
    plan.reason.clear();
    llvm::raw_string_ostream os(plan.reason);
    os << "the arena (" << plan.arenaSize << " bytes)";
    if (leftOutPeak != LinearSize())
      os << " with the buffers outside it (up to " << leftOutPeak
         << " bytes)";
    os << " would exceed the unplanned peak (" << unplanned << " bytes)";
  }
  if (!plan.reason.empty())
    return plan;

  rewriteIntoArena(func, block, items, tokens, tokenSlice, unused, ends,
                   terminator);
  plan.applied = true;
  for (Item &item : items)
    plan.items.push_back(item.planned);
  return plan;
}

namespace {
struct PlanMemoryPass : public moe::impl::MoEPlanMemoryBase<PlanMemoryPass> {
  using MoEPlanMemoryBase::MoEPlanMemoryBase;
  void runOnOperation() override {
    MemoryReporter reporter(getOperation(), tokenHint, reportFile, timelineFile,
                            getArgument());
    for (FunctionOpInterface func : getFunctionsWithBody(getOperation())) {
      reporter.before(func);
      MemoryPlan plan = planMemory(func, tokenHint, std::nullopt, nullptr,
                                   reporter.enabled(), alignment);
      peakBefore += plan.peakBefore.evaluate(tokenHint);
      peakAfter += (plan.applied ? plan.peakAfter : plan.peakBefore)
                       .evaluate(tokenHint);
      if (plan.applied) {
        arenaBytes += plan.arenaSize.evaluate(tokenHint);
        numPlanned += llvm::count_if(plan.items, [](const PlannedItem &i) {
          return !i.isWorkspace;
        });
      }
      reporter.after(func, &plan);
    }
    if (failed(reporter.write()))
      signalPassFailure();
  }
};
} // namespace
