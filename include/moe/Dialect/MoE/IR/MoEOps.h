//===- MoEOps.h - Operations of the moe dialect -----------------*- C++ -*-===//
#ifndef MOE_DIALECT_MOE_IR_MOEOPS_H
#define MOE_DIALECT_MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Support/LinearSize.h"

namespace mlir {
namespace moe {
/// The op's outputs (its trailing operands, as the op contract declares
/// them): the destination operands of every moe op.
MutableOperandRange getContractOutputsMutable(Operation *op);
} // namespace moe
} // namespace mlir

#include "moe/Dialect/MoE/IR/MoEEnums.h.inc"
#include "moe/Dialect/MoE/IR/MoEInterfaces.h.inc"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.h.inc"

namespace mlir {
namespace moe {

/// Attribute of an op whose workspace lives in the function's arena (see
/// moe-plan-memory): `array<i64: perToken, constant>`, its byte offset.
inline constexpr llvm::StringLiteral kWorkspaceOffsetAttrName =
    "moe.workspace_offset";
/// Unit attribute of the `memref.alloc` of a function's arena.
inline constexpr llvm::StringLiteral kArenaAttrName = "moe.arena";

/// The communicator of a run: collectives (the op contract's `collective`
/// ops, e.g. moe.all_reduce) write it, so analyses keep their order.
struct CommunicatorResource
    : public SideEffects::Resource::Base<CommunicatorResource> {
  StringRef getName() final { return "moe.communicator"; }
};

/// Bytes of one element of a moe buffer (bf16/f16: 2, f32/i32: 4).
int64_t getElementBytes(Type elementType);

/// The size of a memref in bytes, linear in its dynamic dimension: a memref
/// with one dynamic dimension (the token count) is `perToken * T`. Fails for
/// memrefs with more than one dynamic dimension or non-integer/float elements.
FailureOr<LinearSize> getMemRefSize(MemRefType type);

/// The buffer a memref value is a view of: follows view-like ops
/// (memref.subview, memref.cast, ...) to their source, but not
/// memref.view: a typed view of raw bytes is a buffer of its own (this is how
/// moe-plan-memory places buffers in an arena).
Value getUnderlyingBuffer(Value memref);

/// True for an argument of a function's entry block that is its own buffer:
/// marked with `moe.role` or `llvm.noalias`.
bool isDistinctArgument(Value value);

/// Conservative aliasing by underlying buffer: a buffer aliases itself; two
/// distinct allocations never alias; an allocation never aliases a function
/// argument; a distinct argument aliases no other argument;
/// anything else may alias.
bool mayAlias(Value a, Value b);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_IR_MOEOPS_H
