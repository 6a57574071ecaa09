//===- MoEOps.cpp - Operations of the moe dialect -------------------------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Runtime/Workspace.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;

#include "moe/Dialect/MoE/IR/MoEEnums.cpp.inc"
#include "moe/Dialect/MoE/IR/MoEInterfaces.cpp.inc"

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

int64_t mlir::moe::getElementBytes(Type elementType) {
  if (elementType.isIntOrFloat())
    return llvm::divideCeil(elementType.getIntOrFloatBitWidth(), 8);
  if (isa<IndexType>(elementType))
    return 8;
  return 0;
}

FailureOr<LinearSize> mlir::moe::getMemRefSize(MemRefType type) {
  int64_t elementBytes = getElementBytes(type.getElementType());
  if (elementBytes == 0 || type.getNumDynamicDims() > 1)
    return failure();
  // A size that overflows int64 cannot be modelled (like two dynamic dims).
  int64_t bytes = elementBytes;
  for (int64_t dim : type.getShape())
    if (!ShapedType::isDynamic(dim) && __builtin_mul_overflow(bytes, dim, &bytes))
      return failure();
  if (type.getNumDynamicDims() == 1)
    return LinearSize(bytes, 0);
  return LinearSize::bytes(bytes);
}

Value mlir::moe::getUnderlyingBuffer(Value memref) {
  while (auto view = memref.getDefiningOp<ViewLikeOpInterface>()) {
    // A typed view of raw bytes (a buffer placed in an arena by
    // moe-plan-memory) is a buffer of its own.
    if (isa<memref::ViewOp>(view))
      break;
    if (view.getViewDest() != memref)
      break;
    memref = view.getViewSource();
  }
  return memref;
}

/// The function whose entry block defines `value`, if it is an argument.
static FunctionOpInterface getArgumentFunction(Value value) {
  auto arg = dyn_cast<BlockArgument>(value);
  if (!arg)
    return {};
  auto func = dyn_cast_or_null<FunctionOpInterface>(arg.getOwner()->getParentOp());
  if (!func || func.isExternal() || &func.getFunctionBody().front() != arg.getOwner())
    return {};
  return func;
}

bool mlir::moe::isDistinctArgument(Value value) {
  FunctionOpInterface func = getArgumentFunction(value);
  if (!func)
    return false;
  unsigned index = cast<BlockArgument>(value).getArgNumber();
  return func.getArgAttr(index, "moe.role") ||
         func.getArgAttr(index, "llvm.noalias");
}

static bool isAllocation(Value value) {
  return isa_and_nonnull<memref::AllocOp, memref::AllocaOp>(value.getDefiningOp());
}

bool mlir::moe::mayAlias(Value a, Value b) {
  a = getUnderlyingBuffer(a);
  b = getUnderlyingBuffer(b);
  if (a == b)
    return true;
  bool argA = static_cast<bool>(getArgumentFunction(a));
  bool argB = static_cast<bool>(getArgumentFunction(b));
  if (isAllocation(a) || isAllocation(b))
    return !(isAllocation(a) || argA) || !(isAllocation(b) || argB);
  if (argA && argB)
    return !(isDistinctArgument(a) || isDistinctArgument(b));
  return true;
}

namespace {
/// A (dimension of an operand) reference used in shape-rule messages.
struct Dim {
  StringRef operand;
  MemRefType type;
  unsigned index;
  int64_t size() const { return type.getDimSize(index); }
};
} // namespace

/// Checks that two dimensions agree when both are static.
static LogicalResult verifySameDim(Operation *op, StringRef what, Dim a, Dim b) {
  if (ShapedType::isDynamic(a.size()) || ShapedType::isDynamic(b.size()) ||
      a.size() == b.size())
    return success();
  return op->emitOpError() << what << " mismatch: '" << a.operand << "' has "
                           << a.size() << " (dimension " << a.index
                           << ") but '" << b.operand << "' has " << b.size()
                           << " (dimension " << b.index << ")";
}

/// Checks that a dimension that names a size (not the token count) is static.
static LogicalResult verifyStaticDim(Operation *op, StringRef what, Dim d) {
  if (!ShapedType::isDynamic(d.size()))
    return success();
  return op->emitOpError() << what << " must be static: dimension " << d.index
                           << " of '" << d.operand << "' is dynamic";
}

static LogicalResult verifySameElementType(Operation *op, StringRef a,
                                           MemRefType ta, StringRef b,
                                           MemRefType tb) {
  if (ta.getElementType() == tb.getElementType())
    return success();
  return op->emitOpError() << "element types of '" << a << "' ("
                           << ta.getElementType() << ") and '" << b << "' ("
                           << tb.getElementType() << ") must match";
}

static MemRefType memrefType(Value v) { return cast<MemRefType>(v.getType()); }

/// The symbolic size helpers below use the shape of `hidden` for T.
static LinearSize perTokenOrConstant(MemRefType hidden, int64_t perToken,
                                     int64_t constant) {
  int64_t tokens = hidden.getDimSize(0);
  if (ShapedType::isDynamic(tokens))
    return LinearSize(perToken, constant);
  return LinearSize::bytes(LinearSize(perToken, constant).evaluate(tokens));
}

/// The runtime's workspace formulas (moe/Runtime/Workspace.h) compute in
/// int64 without overflow checks: the runtime checks its arguments first. The
/// compiler takes the sizes from the IR, where a dimension may be anything:
/// beyond this bound on every size, the formulas could overflow, and the
/// workspace saturates instead (a size no buffer plan can meet).
static constexpr int64_t kWorkspaceDimBound = int64_t(1) << 28;
static bool workspaceFormulaFits(std::initializer_list<int64_t> dims) {
  return llvm::all_of(
      dims, [](int64_t d) { return d >= 0 && d <= kWorkspaceDimBound; });
}

//===----------------------------------------------------------------------===//
// GateOp
//===----------------------------------------------------------------------===//

LogicalResult GateOp::verify() {
  MemRefType hidden = getHidden().getType(), weight = getGateWeight().getType(),
             logits = getLogits().getType();
  Operation *op = getOperation();
  if (failed(verifyStaticDim(op, "hidden size", {"hidden", hidden, 1})) ||
      failed(verifyStaticDim(op, "expert count",
                             {"gate_weight", weight, 0})) ||
      failed(verifySameDim(op, "hidden size", {"hidden", hidden, 1},
                           {"gate_weight", weight, 1})) ||
      failed(verifySameDim(op, "expert count", {"gate_weight", weight, 0},
                           {"logits", logits, 1})) ||
      failed(verifySameDim(op, "token count", {"hidden", hidden, 0},
                           {"logits", logits, 0})))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// TopKOp
//===----------------------------------------------------------------------===//

LogicalResult TopKOp::verify() {
  Operation *op = getOperation();
  MemRefType logits = getLogits().getType(), ids = getTopkIds().getType(),
             weights = getTopkWeights().getType();
  if (failed(verifyStaticDim(op, "expert count", {"logits", logits, 1})) ||
      failed(verifySameDim(op, "token count", {"logits", logits, 0},
                           {"topk_ids", ids, 0})) ||
      failed(verifySameDim(op, "token count", {"logits", logits, 0},
                           {"topk_weights", weights, 0})) ||
      failed(verifySameDim(op, "k", {"topk_ids", ids, 1},
                           {"topk_weights", weights, 1})))
    return failure();
  int64_t numExperts = logits.getDimSize(1);
  int64_t k = getK();
  if (ids.getDimSize(1) != k)
    return emitOpError() << "'topk_ids' must have k = " << k
                         << " columns, but has " << ids.getDimSize(1);
  if (weights.getDimSize(1) != k)
    return emitOpError() << "'topk_weights' must have k = " << k
                         << " columns, but has " << weights.getDimSize(1);
  if (k > numExperts)
    return emitOpError() << "k = " << k << " exceeds the number of experts ("
                         << numExperts << ")";
  int64_t nGroup = getNGroup(), topkGroup = getTopkGroup();
  if (numExperts % nGroup != 0)
    return emitOpError() << "n_group = " << nGroup
                         << " must divide the number of experts ("
                         << numExperts << ")";
  if (topkGroup > nGroup)
    return emitOpError() << "topk_group = " << topkGroup
                         << " exceeds n_group = " << nGroup;
  int64_t selectable = topkGroup * (numExperts / nGroup);
  if (k > selectable)
    return emitOpError() << "k = " << k << " exceeds the " << selectable
                         << " experts of the best topk_group = " << topkGroup
                         << " groups";
  if (getScoring() == ScoringFunc::sigmoid && nGroup > 1 &&
      numExperts / nGroup < 2)
    return emitOpError() << "sigmoid group scores sum the two best experts of "
                            "a group, so each of the n_group = "
                         << nGroup << " groups needs at least 2 experts";
  float scale = getRoutedScalingFactor().convertToFloat();
  if (!(scale > 0.0f) || std::isinf(scale))
    return emitOpError() << "routed_scaling_factor must be positive and finite, "
                            "got "
                         << scale;
  if (Value bias = getBias()) {
    if (getScoring() != ScoringFunc::sigmoid)
      return emitOpError() << "a correction 'bias' requires sigmoid scoring";
    if (failed(verifySameDim(op, "expert count", {"logits", logits, 1},
                             {"bias", memrefType(bias), 0})))
      return failure();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// RoutedExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult RoutedExpertsOp::verify() {
  Operation *op = getOperation();
  MemRefType hidden = getHidden().getType(), ids = getTopkIds().getType(),
             weights = getTopkWeights().getType(), w13 = getW13().getType(),
             w2 = getW2().getType(), output = getOutput().getType();
  if (failed(verifyStaticDim(op, "hidden size", {"hidden", hidden, 1})) ||
      failed(verifyStaticDim(op, "k", {"topk_ids", ids, 1})) ||
      failed(verifyStaticDim(op, "expert count", {"w13", w13, 0})) ||
      failed(verifyStaticDim(op, "intermediate size", {"w2", w2, 2})) ||
      failed(verifyStaticDim(op, "intermediate size", {"w13", w13, 1})) ||
      failed(verifySameDim(op, "hidden size", {"hidden", hidden, 1},
                           {"w13", w13, 2})) ||
      failed(verifySameDim(op, "hidden size", {"hidden", hidden, 1},
                           {"w2", w2, 1})) ||
      failed(verifySameDim(op, "hidden size", {"hidden", hidden, 1},
                           {"output", output, 1})) ||
      failed(verifySameDim(op, "expert count", {"w13", w13, 0},
                           {"w2", w2, 0})) ||
      failed(verifySameDim(op, "token count", {"hidden", hidden, 0},
                           {"topk_ids", ids, 0})) ||
      failed(verifySameDim(op, "token count", {"hidden", hidden, 0},
                           {"topk_weights", weights, 0})) ||
      failed(verifySameDim(op, "token count", {"hidden", hidden, 0},
                           {"output", output, 0})) ||
      failed(verifySameDim(op, "k", {"topk_ids", ids, 1},
                           {"topk_weights", weights, 1})) ||
      failed(verifySameElementType(op, "hidden", hidden, "output", output)) ||
      failed(verifySameElementType(op, "hidden", hidden, "w13", w13)) ||
      failed(verifySameElementType(op, "hidden", hidden, "w2", w2)))
    return failure();
  if (w13.getDimSize(1) != 2 * w2.getDimSize(2))
    return emitOpError() << "'w13' must stack gate and up rows: dimension 1 is "
                         << w13.getDimSize(1) << ", expected 2 x "
                         << w2.getDimSize(2)
                         << " (the intermediate size of 'w2')";
  if (ids.getDimSize(1) > w13.getDimSize(0))
    return emitOpError() << "k = " << ids.getDimSize(1)
                         << " exceeds the number of experts ("
                         << w13.getDimSize(0) << ")";

  // The inplace flag and the aliasing it claims must agree: this is what makes
  // a lying flag (and a silently corrupted shared-expert input) impossible.
  bool sameValue = getOutput() == getHidden();
  bool sameBuffer =
      getUnderlyingBuffer(getOutput()) == getUnderlyingBuffer(getHidden());
  if (getInplace() && !sameValue)
    return emitOpError()
           << "is 'inplace' but its output is not its hidden input; drop "
              "'inplace' or pass the hidden buffer as the output";
  if (!getInplace() && sameBuffer)
    return emitOpError()
           << "writes its output into its hidden input but is not marked "
              "'inplace'; add 'inplace' or give it a separate output buffer";
  return success();
}

void RoutedExpertsOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  auto *defaultResource = SideEffects::DefaultResource::get();
  effects.emplace_back(MemoryEffects::Read::get(), &getHiddenMutable(),
                       defaultResource);
  for (OpOperand *operand : {&getTopkIdsMutable(), &getTopkWeightsMutable(),
                             &getW13Mutable(), &getW2Mutable()})
    effects.emplace_back(MemoryEffects::Read::get(), operand, defaultResource);
  // In place, the result lands in `hidden`: the output operand is the same
  // value, but say it on the hidden operand too, so no analysis has to infer
  // the write from aliasing.
  if (getInplace())
    effects.emplace_back(MemoryEffects::Write::get(), &getHiddenMutable(),
                         defaultResource);
  effects.emplace_back(MemoryEffects::Write::get(), &getOutputMutable(),
                       defaultResource);
}

LinearSize RoutedExpertsOp::getWorkspaceSize() {
  MemRefType hidden = getHidden().getType();
  if (!workspaceFormulaFits({getHiddenSize(), getNumExperts(), getTopK(),
                             getIntermediateSize()}))
    return perTokenOrConstant(hidden, INT64_MAX, INT64_MAX);
  moert_linear_size size = moert_routed_experts_workspace(
      getHiddenSize(), getNumExperts(), getTopK(), getIntermediateSize(),
      getElementBytes(hidden.getElementType()));
  return perTokenOrConstant(hidden, size.per_token, size.constant);
}

//===----------------------------------------------------------------------===//
// SharedExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult SharedExpertsOp::verify() {
  Operation *op = getOperation();
  MemRefType hidden = getHidden().getType(), w13 = getW13().getType(),
             w2 = getW2().getType(), output = getOutput().getType();
  if (failed(verifyStaticDim(op, "hidden size", {"hidden", hidden, 1})) ||
      failed(verifyStaticDim(op, "intermediate size", {"w2", w2, 1})) ||
      failed(verifyStaticDim(op, "intermediate size", {"w13", w13, 0})) ||
      failed(verifySameDim(op, "hidden size", {"hidden", hidden, 1},
                           {"w13", w13, 1})) ||
      failed(verifySameDim(op, "hidden size", {"hidden", hidden, 1},
                           {"w2", w2, 0})) ||
      failed(verifySameDim(op, "hidden size", {"hidden", hidden, 1},
                           {"output", output, 1})) ||
      failed(verifySameDim(op, "token count", {"hidden", hidden, 0},
                           {"output", output, 0})) ||
      failed(verifySameElementType(op, "hidden", hidden, "output", output)) ||
      failed(verifySameElementType(op, "hidden", hidden, "w13", w13)) ||
      failed(verifySameElementType(op, "hidden", hidden, "w2", w2)))
    return failure();
  if (w13.getDimSize(0) != 2 * w2.getDimSize(1))
    return emitOpError() << "'w13' must stack gate and up rows: dimension 0 is "
                         << w13.getDimSize(0) << ", expected 2 x "
                         << w2.getDimSize(1)
                         << " (the intermediate size of 'w2')";
  if (getUnderlyingBuffer(getOutput()) == getUnderlyingBuffer(getHidden()))
    return emitOpError() << "cannot write its output into its hidden input; "
                            "give it a separate output buffer";
  return success();
}

LinearSize SharedExpertsOp::getWorkspaceSize() {
  MemRefType hidden = getHidden().getType();
  if (!workspaceFormulaFits({getIntermediateSize()}))
    return perTokenOrConstant(hidden, INT64_MAX, INT64_MAX);
  moert_linear_size size = moert_shared_experts_workspace(
      getIntermediateSize(), getElementBytes(hidden.getElementType()));
  return perTokenOrConstant(hidden, size.per_token, size.constant);
}

//===----------------------------------------------------------------------===//
// AddOp
//===----------------------------------------------------------------------===//

LogicalResult AddOp::verify() {
  MemRefType lhs = getLhs().getType(), rhs = getRhs().getType(),
             output = getOutput().getType();
  Operation *op = getOperation();
  if (failed(verifySameElementType(op, "lhs", lhs, "rhs", rhs)) ||
      failed(verifySameElementType(op, "lhs", lhs, "output", output)))
    return failure();
  for (unsigned i = 0; i < 2; ++i) {
    StringRef what = i == 0 ? "token count" : "hidden size";
    if (failed(verifySameDim(op, what, {"lhs", lhs, i}, {"rhs", rhs, i})) ||
        failed(verifySameDim(op, what, {"lhs", lhs, i}, {"output", output, i})))
      return failure();
  }
  float scale = getScale().convertToFloat();
  if (!std::isfinite(scale))
    return emitOpError() << "scale must be finite, got " << scale;
  return success();
}

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
