//===- BufferizableOpInterfaceImpl.cpp - moe ops in bufferization ---------===//
//
// One model for every moe op, driven by the op contract (see the header).
//
//===----------------------------------------------------------------------===//
#include "moe/Dialect/MoE/Transforms/BufferizableOpInterfaceImpl.h"
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/BufferizableOpInterface.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/IR/Operation.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::bufferization;

namespace {

/// The contract's index of `operand` (operands are in the contract's order,
/// an absent optional one skipped).
int getContractIndex(const contract::OpSpec &spec, OpOperand &operand) {
  Operation *op = operand.getOwner();
  bool allPresent = op->getNumOperands() == spec.operands.size();
  unsigned next = 0;
  for (auto [i, operandSpec] : llvm::enumerate(spec.operands)) {
    if (operandSpec.optional && !allPresent)
      continue;
    if (next++ == operand.getOperandNumber())
      return int(i);
  }
  return -1;
}

bool isOutput(OpOperand &operand) {
  const contract::OpSpec *spec = getContract(operand.getOwner());
  int index = spec ? getContractIndex(*spec, operand) : -1;
  return index >= 0 && spec->operands[index].role == contract::Role::Output;
}

/// The alias rule between `output` and `input` of the same op, if any.
const contract::AliasRule *getAliasRule(OpOperand &output, OpOperand &input) {
  const contract::OpSpec *spec = getContract(output.getOwner());
  if (!spec || output.getOwner() != input.getOwner())
    return nullptr;
  int out = getContractIndex(*spec, output), in = getContractIndex(*spec, input);
  for (const contract::AliasRule &rule : spec->aliases)
    if (rule.output == out && rule.input == in)
      return &rule;
  return nullptr;
}

/// The op's (output, input) operand pairs of an InPlaceIff rule.
SmallVector<std::pair<OpOperand *, OpOperand *>>
getInPlaceRequests(Operation *op) {
  SmallVector<std::pair<OpOperand *, OpOperand *>> pairs;
  for (OpOperand &output : op->getOpOperands())
    for (OpOperand &input : op->getOpOperands()) {
      const contract::AliasRule *rule = getAliasRule(output, input);
      if (rule && rule->kind == contract::Alias::InPlaceIff)
        pairs.push_back({&output, &input});
    }
  return pairs;
}

template <typename OpTy>
struct MoEOpInterface
    : public BufferizableOpInterface::ExternalModel<MoEOpInterface<OpTy>,
                                                    OpTy> {
  /// Inputs are read; outputs are written whole, never read.
  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const AnalysisState &state) const {
    return !isOutput(operand);
  }
  bool bufferizesToMemoryWrite(Operation *op, OpOperand &operand,
                               const AnalysisState &state) const {
    return isOutput(operand);
  }
  /// An output is the buffer of its result.
  AliasingValueList getAliasingValues(Operation *op, OpOperand &operand,
                                      const AnalysisState &state) const {
    auto dps = cast<DestinationStyleOpInterface>(op);
    if (!dps.isDpsInit(&operand))
      return {};
    return {{dps.getTiedOpResult(&operand), BufferRelation::Equivalent}};
  }
  /// An output may take the buffer of an input it may equal (the contract's
  /// MayEqual and InPlaceIff rules: the kernels are written for it); a
  /// Distinct output never does.
  bool isNotConflicting(Operation *op, OpOperand *read, OpOperand *write,
                        const AnalysisState &state) const {
    const contract::AliasRule *rule = getAliasRule(*write, *read);
    return rule && rule->kind != contract::Alias::Distinct;
  }

  /// An output whose init is the very input it may be written into in place
  /// (the routed op's hidden tensor) asks for in place; if the analysis
  /// decided otherwise, bufferization would hide a copy of the input from the
  /// memory plan: say so, where, instead.
  LogicalResult resolveConflicts(Operation *op, RewriterBase &rewriter,
                                 const AnalysisState &analysisState,
                                 const BufferizationState &bufferizationState)
      const {
    const contract::OpSpec *spec = getContract(op);
    for (auto [output, input] : getInPlaceRequests(op)) {
      if (output->get() != input->get() || analysisState.isInPlace(*output))
        continue;
      StringRef out = spec->operands[getContractIndex(*spec, *output)].name;
      StringRef in = spec->operands[getContractIndex(*spec, *input)].name;
      InFlightDiagnostic diag =
          op->emitOpError()
          << "cannot write its " << out << " into its " << in
          << " tensor in place without a copy of that tensor, which the "
             "memory plan would not see: ";
      Operation *laterUse = nullptr;
      for (Operation *user : input->get().getUsers())
        if (user != op && user->getBlock() == op->getBlock() &&
            op->isBeforeInBlock(user) &&
            (!laterUse || user->isBeforeInBlock(laterUse)))
          laterUse = user;
      if (laterUse) {
        diag << "the " << in << " tensor is used after it; give the " << out
             << " its own init (tensor.empty) or move that use before it";
        diag.attachNote(laterUse->getLoc()) << "used here";
      } else {
        diag << "the " << in
             << " tensor is not writable here or is used after it; give the "
             << out << " its own init (tensor.empty)";
      }
      return diag;
    }
    return cast<BufferizableOpInterface>(op).resolveTensorOpOperandConflicts(
        rewriter, analysisState, bufferizationState);
  }

  /// The same op on the operands' buffers, without results; `inplace` (or
  /// any InPlaceIff flag) set where an output gets its input's buffer, which
  /// is then the very same value (as the verifier wants it).
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    SmallVector<Value> buffers;
    for (OpOperand &operand : op->getOpOperands()) {
      FailureOr<Value> buffer =
          getBuffer(rewriter, operand.get(), options, state);
      if (failed(buffer))
        return failure();
      buffers.push_back(*buffer);
    }
    const contract::OpSpec *spec = getContract(op);
    SmallVector<StringRef> inPlaceFlags;
    for (auto [output, input] : getInPlaceRequests(op)) {
      // The same tensor: resolveConflicts made sure it stays in place.
      Value &out = buffers[output->getOperandNumber()];
      Value in = buffers[input->getOperandNumber()];
      if (output->get() != input->get() &&
          getUnderlyingBuffer(out) != getUnderlyingBuffer(in))
        continue;
      out = in;
      inPlaceFlags.push_back(
          spec->attrs[getAliasRule(*output, *input)->attr].name);
    }
    OperationState newState(op->getLoc(), op->getName());
    newState.addOperands(buffers);
    newState.propertiesAttr = op->getPropertiesAsAttribute();
    newState.addAttributes(llvm::to_vector(op->getDiscardableAttrs()));
    rewriter.setInsertionPoint(op);
    Operation *newOp = rewriter.create(newState);
    for (StringRef flag : inPlaceFlags)
      newOp->setAttr(flag, rewriter.getUnitAttr());
    auto dps = cast<DestinationStyleOpInterface>(op);
    SmallVector<Value> results;
    for (OpOperand &init : dps.getDpsInitsMutable())
      results.push_back(buffers[init.getOperandNumber()]);
    replaceOpWithBufferizedValues(rewriter, op, results);
    return success();
  }
};

template <typename... Ops>
void attachModels(MLIRContext *context) {
  (Ops::template attachInterface<MoEOpInterface<Ops>>(*context), ...);
}

} // namespace

void mlir::moe::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *context, MoEDialect *) {
    attachModels<
#define GET_OP_LIST
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
        >(context);
  });
}
