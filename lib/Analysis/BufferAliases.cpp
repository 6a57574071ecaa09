//===- BufferAliases.cpp - Where a buffer's aliases go --------------------===//
#include "moe/Analysis/BufferAliases.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Interfaces/CallInterfaces.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moe;

BufferViewFlowAnalysis &BufferAliases::analysis() {
  if (!flow)
    flow = std::make_unique<BufferViewFlowAnalysis>(scope);
  return *flow;
}

BufferViewFlowAnalysis::ValueSetT BufferAliases::getAliases(Value value) {
  return analysis().resolve(value);
}

/// The op that defines `value`, or the op whose region holds it (an argument).
static Operation *getDefiningScope(Value value) {
  if (Operation *def = value.getDefiningOp())
    return def;
  return cast<BlockArgument>(value).getOwner()->getParentOp();
}

/// True if `op` allocates `value` (memory that did not exist before).
static bool allocates(Operation *op, Value value) {
  auto iface = dyn_cast<MemoryEffectOpInterface>(op);
  return iface && iface.getEffectOnValue<MemoryEffects::Allocate>(value);
}

/// True if `user` frees `value` (declared, or by what the op is).
static bool frees(Operation *user, OpOperand &use) {
  if (auto dealloc = dyn_cast<bufferization::DeallocOp>(user))
    return use.getOperandNumber() < dealloc.getMemrefs().size();
  auto iface = dyn_cast<MemoryEffectOpInterface>(user);
  if (!iface)
    return false;
  SmallVector<MemoryEffects::EffectInstance> effects;
  iface.getEffects(effects);
  return llvm::any_of(effects, [&](const MemoryEffects::EffectInstance &e) {
    return isa<MemoryEffects::Free>(e.getEffect()) &&
           (!e.getValue() || e.getValue() == use.get());
  });
}

/// False when the callee promises not to keep the argument past the call
/// (`llvm.nocapture` on its argument, as LLVM means it).
static bool mayCapture(CallOpInterface call, OpOperand &use) {
  auto func = dyn_cast_or_null<FunctionOpInterface>(call.resolveCallable());
  if (!func)
    return true;
  OperandRange args = call.getArgOperands();
  if (args.empty())
    return true;
  unsigned begin = args.getBeginOperandIndex();
  unsigned index = use.getOperandNumber();
  if (index < begin || index - begin >= func.getNumArguments())
    return true;
  return !func.getArgAttr(index - begin, "llvm.nocapture");
}

static std::string describe(Operation *op) {
  return "'" + op->getName().getStringRef().str() + "'";
}

std::optional<std::string>
BufferAliases::whyNotPlannable(Operation *alloc, Operation *ownDealloc,
                               Block &block) {
  Value buffer = alloc->getResult(0);
  auto type = cast<MemRefType>(buffer.getType());
  if (Attribute space = type.getMemorySpace()) {
    std::string reason;
    llvm::raw_string_ostream os(reason);
    os << "it is in memory space ";
    if (auto number = dyn_cast<IntegerAttr>(space))
      os << number.getInt();
    else
      os << space;
    os << " (arenas are made in the default memory space only)";
    return reason;
  }

  Operation *terminator =
      block.mightHaveTerminator() ? &block.back() : nullptr;
  for (Value alias : getAliases(buffer)) {
    if (!block.findAncestorOpInBlock(*getDefiningScope(alias)) &&
        !(isa<BlockArgument>(alias) &&
          cast<BlockArgument>(alias).getOwner() == &block))
      return std::string("an alias of it flows out of the block (a result or "
                         "block argument outside it)");
    for (OpOperand &use : alias.getUses()) {
      Operation *user = use.getOwner();
      if (user == ownDealloc)
        continue;
      if (!block.findAncestorOpInBlock(*user))
        return "an alias of it is used outside the block, by " +
               describe(user);
      if (user == terminator)
        return "it leaves the block through " + describe(user);
      // Flows that the analysis follows: their targets are aliases too.
      if (auto view = dyn_cast<ViewLikeOpInterface>(user);
          view && view.getViewSource() == alias)
        continue;
      if (isa<RegionBranchOpInterface>(user))
        continue;
      if (user->hasTrait<OpTrait::IsTerminator>()) {
        if (isa<BranchOpInterface>(user) ||
            (isa<RegionBranchTerminatorOpInterface>(user) &&
             isa<RegionBranchOpInterface>(user->getParentOp())))
          continue;
        return "it is passed to " + describe(user) +
               ", a terminator whose successors are unknown";
      }
      if (auto call = dyn_cast<CallOpInterface>(user)) {
        if (!mayCapture(call, use))
          continue;
        return "it is passed to a call, " + describe(user) +
               ", whose callee may keep it (no llvm.nocapture on the "
               "callee's argument)";
      }
      if (isa<memref::ReallocOp>(user))
        return "it is reallocated by " + describe(user);
      if (frees(user, use))
        return "it is freed by " + describe(user) +
               (isa<memref::DeallocOp>(user) ? " (not its own dealloc)" : "");
      // Retained by a bufferization.dealloc: only compared with the memrefs
      // that op frees.
      if (isa<bufferization::DeallocOp>(user))
        continue;
      if (isa<memref::ExtractAlignedPointerAsIndexOp>(user))
        return "its address is taken by " + describe(user);
      if (llvm::any_of(user->getResultTypes(), llvm::IsaPred<TensorType>))
        return "it becomes a tensor through " + describe(user);
      if (!isa<MemoryEffectOpInterface>(user))
        return "it is used by " + describe(user) +
               ", whose memory effects are unknown";
    }
  }
  return std::nullopt;
}

std::optional<SmallVector<Value>>
BufferAliases::getOriginsOutside(Value value, Operation *op) {
  BufferViewFlowAnalysis &flow = analysis();
  SmallVector<Value> origins;
  for (Value v : flow.resolveReverse(value)) {
    Operation *def = getDefiningScope(v);
    if (!op->isAncestor(def)) {
      origins.push_back(v);
      continue;
    }
    // Inside `op`: a value that something flows into is followed through
    // that (it is in the set); a source is local only when allocated here.
    if (flow.resolveReverse(v).size() > 1)
      continue;
    if (v.getDefiningOp() && allocates(def, v))
      continue;
    return std::nullopt;
  }
  return origins;
}
