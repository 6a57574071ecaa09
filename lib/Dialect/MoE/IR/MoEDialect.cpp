//===- MoEDialect.cpp - The moe dialect -----------------------------------===//
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

using namespace mlir;
using namespace mlir::moe;

#include "moe/Dialect/MoE/IR/MoEOpsDialect.cpp.inc"

void MoEDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
      >();
  // moe/Dialect/MoE/Transforms/BufferizableOpInterfaceImpl.h
  declarePromisedInterfaces<bufferization::BufferizableOpInterface,
#define GET_OP_LIST
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
                            >();
}

LogicalResult MoEDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attr) {
  if (attr.getName() == getFuseSharedExpertsInsideSboAttrName()) {
    if (!isa<UnitAttr>(attr.getValue()))
      return op->emitError() << "'" << attr.getName().getValue()
                             << "' must be a unit attribute";
    if (!isa<FunctionOpInterface>(op))
      return op->emitError() << "'" << attr.getName().getValue()
                             << "' is only valid on a function";
    return success();
  }
  if (attr.getName() == kArenaAttrName) {
    if (!isa<UnitAttr>(attr.getValue()) || !isa<memref::AllocOp>(op))
      return op->emitError()
             << "'moe.arena' must be a unit attribute on a memref.alloc";
    return success();
  }
  if (attr.getName() == kWorkspaceOffsetAttrName) {
    auto offset = dyn_cast<DenseI64ArrayAttr>(attr.getValue());
    if (!offset || offset.size() != 2 || offset[0] < 0 || offset[1] < 0)
      return op->emitError() << "'moe.workspace_offset' must be array<i64: "
                                "perToken, constant> with non-negative values";
    if (!hasWorkspace(op))
      return op->emitError()
             << "'moe.workspace_offset' is only valid on an op with a workspace";
    return success();
  }
  return op->emitError() << "unknown moe dialect attribute '" << attr.getName().getValue()
                         << "'";
}

LogicalResult MoEDialect::verifyRegionArgAttribute(Operation *op,
                                                   unsigned regionIndex,
                                                   unsigned argIndex,
                                                   NamedAttribute attr) {
  if (attr.getName() == getRoleAttrName()) {
    auto role = dyn_cast<StringAttr>(attr.getValue());
    if (!role || !llvm::is_contained(ArrayRef<StringRef>{"input", "weight",
                                                          "output"},
                                      role.getValue()))
      return op->emitError()
             << "'" << attr.getName().getValue() << "' of argument #" << argIndex
             << " must be one of \"input\", \"weight\", \"output\"";
    return success();
  }
  if (attr.getName() == getNameAttrName()) {
    if (!isa<StringAttr>(attr.getValue()))
      return op->emitError() << "'" << attr.getName().getValue() << "' of argument #"
                             << argIndex << " must be a string";
    return success();
  }
  return op->emitError() << "unknown moe dialect argument attribute '"
                         << attr.getName().getValue() << "'";
}
