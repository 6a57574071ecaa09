//===- MoEOps.cpp - Operations of the moe dialect -------------------------===//
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/IR/MoEContract.h"

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

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
