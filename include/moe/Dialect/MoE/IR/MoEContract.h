//===- MoEContract.h - The op contract seen from the IR ---------*- C++ -*-===//
//
// The moe ops' verifiers, memory effects and workspaces, and the lowering to
// runtime calls, read each op through the op contract
// (moe-runtime/OpContract.h). These functions translate between an op in the
// IR and the contract's terms.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_DIALECT_MOE_IR_MOECONTRACT_H
#define MOE_DIALECT_MOE_IR_MOECONTRACT_H

#include "moe-runtime/OpContract.h"
#include "moe/Support/LinearSize.h"

#include "mlir/IR/Operation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir {
namespace moe {

namespace contract = ::moert::contract;

/// The contract of a moe op (null for other ops).
const contract::OpSpec *getContract(Operation *op);

/// True if the op is in tensor form (destination-passing style on tensors).
bool isTensorForm(Operation *op);

/// The contract's DType of an element type, if it is one.
std::optional<contract::DType> getDType(Type elementType);

/// The op's operands in the contract's order; an absent optional operand is
/// a null Value.
SmallVector<Value> getContractOperands(Operation *op);

/// The op's attributes in the contract's order, defaults filled in.
std::vector<contract::AttrValue> getContractAttrs(Operation *op);

/// The sizes of the op's symbols from its operand types (T is -1 when
/// dynamic). Valid on a verified op.
contract::Sizes getContractSizes(Operation *op);

/// The verifier of every moe op: the contract's checks on the operand types
/// and attributes, then its aliasing rules on the operand values.
LogicalResult verifyContract(Operation *op);

/// Reads of the inputs, writes of inputs written in place, writes of the
/// outputs, in that order; on memref operands only (the tensor form has no
/// memory effects).
void getContractEffects(
    Operation *op,
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects);

/// The contract's workspace formula at the op's sizes (0 when none).
LinearSize getContractWorkspace(Operation *op);

/// True if the op's contract has a workspace.
bool hasWorkspace(Operation *op);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_IR_MOECONTRACT_H
