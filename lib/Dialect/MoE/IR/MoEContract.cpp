//===- MoEContract.cpp - The op contract seen from the IR -----------------===//
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/TypeUtilities.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::moe;

const contract::OpSpec *mlir::moe::getContract(Operation *op) {
  if (!isa_and_nonnull<MoEDialect>(op->getDialect()))
    return nullptr;
  return contract::findOp(op->getName().getStringRef());
}

std::optional<contract::DType> mlir::moe::getDType(Type type) {
  if (type.isBF16())
    return contract::DType::BF16;
  if (type.isF16())
    return contract::DType::F16;
  if (type.isF32())
    return contract::DType::F32;
  if (type.isSignlessInteger(32))
    return contract::DType::I32;
  if (isa<Float8E4M3FNType>(type))
    return contract::DType::F8E4M3;
  return std::nullopt;
}

SmallVector<Value> mlir::moe::getContractOperands(Operation *op) {
  const contract::OpSpec *spec = getContract(op);
  SmallVector<Value> values;
  if (!spec)
    return values;
  // verifyContract rejects a count the contract does not allow.
  std::vector<int> slots = contract::presentOperands(*spec, op->getNumOperands());
  for (int slot : slots)
    values.push_back(slot < 0 ? Value() : op->getOperand(unsigned(slot)));
  return values;
}

std::vector<contract::AttrValue> mlir::moe::getContractAttrs(Operation *op) {
  const contract::OpSpec *spec = getContract(op);
  std::vector<contract::AttrValue> values;
  if (!spec)
    return values;
  for (const contract::AttrSpec &attrSpec : spec->attrs) {
    contract::AttrValue value;
    Attribute attr = op->getAttr(attrSpec.name);
    if (attr) {
      value.present = true;
      if (auto integer = dyn_cast<IntegerAttr>(attr))
        value.i = integer.getValue().getSExtValue();
      else if (auto fp = dyn_cast<FloatAttr>(attr))
        value.f = fp.getValueAsDouble();
      else if (auto scoring = dyn_cast<ScoringFuncAttr>(attr))
        value.i = static_cast<int64_t>(scoring.getValue());
    } else if (attrSpec.kind != contract::AttrKind::Unit &&
               attrSpec.hasDefault) {
      value.i = int64_t(attrSpec.defaultValue);
      value.f = attrSpec.defaultValue;
    }
    values.push_back(value);
  }
  return values;
}

/// The operands as the contract's checks see them.
static std::vector<contract::OperandInfo>
getOperandInfos(ArrayRef<Value> operands) {
  std::vector<contract::OperandInfo> infos;
  for (Value value : operands) {
    contract::OperandInfo info;
    if (!value) {
      info.present = false;
      infos.push_back(info);
      continue;
    }
    auto type = cast<ShapedType>(value.getType());
    info.dtype = getDType(type.getElementType());
    llvm::raw_string_ostream(info.typeName) << type.getElementType();
    for (int64_t d : type.getShape())
      info.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    infos.push_back(std::move(info));
  }
  return infos;
}

MutableOperandRange mlir::moe::getContractOutputsMutable(Operation *op) {
  const contract::OpSpec *spec = getContract(op);
  unsigned numOutputs = 0;
  if (spec)
    for (const contract::OperandSpec &operand : spec->operands)
      numOutputs += operand.role == contract::Role::Output;
  // An unverified op may have fewer operands than the contract's.
  numOutputs = std::min(numOutputs, op->getNumOperands());
  return MutableOperandRange(op, op->getNumOperands() - numOutputs,
                             numOutputs);
}

bool mlir::moe::isTensorForm(Operation *op) {
  return llvm::any_of(op->getOperandTypes(), llvm::IsaPred<TensorType>);
}

contract::Sizes mlir::moe::getContractSizes(Operation *op) {
  const contract::OpSpec *spec = getContract(op);
  contract::Sizes sizes = contract::unknownSizes();
  if (!spec)
    return sizes;
  std::vector<contract::AttrValue> attrs = getContractAttrs(op);
  (void)contract::checkOperands(*spec, getOperandInfos(getContractOperands(op)),
                                attrs, sizes);
  return sizes;
}

LogicalResult mlir::moe::verifyContract(Operation *op) {
  const contract::OpSpec *spec = getContract(op);
  if (!spec)
    return op->emitOpError() << "has no op contract";
  if (contract::presentOperands(*spec, op->getNumOperands()).empty()) {
    std::string names;
    size_t optional = 0;
    for (const contract::OperandSpec &o : spec->operands)
      if (o.optional) {
        names += (names.empty() ? "'" : ", '") + std::string(o.name) + "'";
        ++optional;
      }
    InFlightDiagnostic diag = op->emitOpError()
                              << "expects " << spec->operands.size()
                              << " operands";
    if (optional)
      diag << " (" << spec->operands.size() - optional << " without "
           << names << ", which come together)";
    return diag << ", got " << op->getNumOperands();
  }
  SmallVector<Value> operands = getContractOperands(op);
  std::vector<contract::AttrValue> attrs = getContractAttrs(op);
  // One form per op: tensors throughout, or memrefs throughout.
  bool tensors = isTensorForm(op);
  for (auto [i, value] : llvm::enumerate(operands))
    if (value && isa<TensorType>(value.getType()) != tensors)
      return op->emitOpError()
             << "mixes tensors and memrefs: its " << spec->operands[i].name
             << " is a " << (tensors ? "memref" : "tensor")
             << " but other operands are "
             << (tensors ? "tensors" : "memrefs")
             << "; a moe op is on tensors or on memrefs, not both";
  contract::Sizes sizes;
  std::string error =
      contract::checkOperands(*spec, getOperandInfos(operands), attrs, sizes);
  if (!error.empty())
    return op->emitOpError() << error;

  // The aliasing the contract allows (what a flag claims must be true). On
  // tensors an output aliases an input when its init is that very tensor,
  // and where it may (in place), bufferization decides whether it does.
  for (const contract::AliasRule &rule : spec->aliases) {
    Value output = operands[rule.output], input = operands[rule.input];
    StringRef out = spec->operands[rule.output].name;
    StringRef in = spec->operands[rule.input].name;
    bool sameBuffer =
        output && input &&
        (tensors ? output == input
                 : getUnderlyingBuffer(output) == getUnderlyingBuffer(input));
    switch (rule.kind) {
    case contract::Alias::MayEqual:
      break;
    case contract::Alias::InPlaceIff: {
      StringRef flag = spec->attrs[rule.attr].name;
      if (tensors) {
        if (attrs[rule.attr].present)
          return op->emitOpError()
                 << "is '" << flag << "' on tensors, where bufferization "
                 << "decides what is in place: drop '" << flag
                 << "' and pass the " << in << " tensor as the " << out
                 << "'s init to write in place";
        break;
      }
      if (attrs[rule.attr].present && output != input)
        return op->emitOpError()
               << "is '" << flag << "' but its " << out << " is not its " << in
               << " input; drop '" << flag << "' or pass the " << in
               << " buffer as the " << out;
      if (!attrs[rule.attr].present && sameBuffer)
        return op->emitOpError()
               << "writes its " << out << " into its " << in
               << " input but is not marked '" << flag << "'; add '" << flag
               << "' or give it a separate " << out << " buffer";
      break;
    }
    case contract::Alias::Distinct:
      if (sameBuffer)
        return op->emitOpError()
               << "cannot write its " << out << " into its " << in
               << " input; give it a separate " << out
               << (tensors ? " init (tensor.empty)" : " buffer");
      break;
    }
  }
  return success();
}

void mlir::moe::getContractEffects(
    Operation *op,
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  const contract::OpSpec *spec = getContract(op);
  if (!spec)
    return;
  std::vector<contract::AttrValue> attrs = getContractAttrs(op);
  SmallVector<Value> operands = getContractOperands(op);
  // The OpOperand of contract operand i.
  // Tensors are values: only memref operands have effects.
  SmallVector<OpOperand *> opOperands;
  unsigned next = 0;
  for (Value v : operands) {
    OpOperand *opOperand = v ? &op->getOpOperand(next++) : nullptr;
    if (opOperand && !isa<BaseMemRefType>(v.getType()))
      opOperand = nullptr;
    opOperands.push_back(opOperand);
  }
  auto *resource = SideEffects::DefaultResource::get();
  for (size_t i = 0; i < operands.size(); ++i)
    if (opOperands[i] && spec->operands[i].role == contract::Role::Input)
      effects.emplace_back(MemoryEffects::Read::get(), opOperands[i], resource);
  // In place, the result lands in an input too: say it on that operand, so
  // no analysis has to infer the write from aliasing.
  for (size_t i = 0; i < operands.size(); ++i)
    if (opOperands[i] && spec->operands[i].role == contract::Role::Input &&
        spec->writes(int(i), attrs))
      effects.emplace_back(MemoryEffects::Write::get(), opOperands[i], resource);
  for (size_t i = 0; i < operands.size(); ++i)
    if (opOperands[i] && spec->operands[i].role == contract::Role::Output)
      effects.emplace_back(MemoryEffects::Write::get(), opOperands[i], resource);
  // Every rank must run the collectives in one order: each writes the
  // communicator, so no analysis reorders two of them.
  if (spec->collective)
    effects.emplace_back(MemoryEffects::Write::get(),
                         CommunicatorResource::get());
}

bool mlir::moe::hasWorkspace(Operation *op) {
  const contract::OpSpec *spec = getContract(op);
  return spec && spec->workspace;
}

/// The compiler takes sizes from the IR, where a dimension may be anything:
/// beyond this bound on every size the workspace saturates (a size no buffer
/// plan can meet) rather than reach the formula's own saturation.
static constexpr int64_t kWorkspaceDimBound = int64_t(1) << 28;

LinearSize mlir::moe::getContractWorkspace(Operation *op) {
  const contract::OpSpec *spec = getContract(op);
  if (!spec || !spec->workspace)
    return LinearSize();
  contract::Sizes sizes = getContractSizes(op);
  contract::OperandTypes types;
  for (Value value : getContractOperands(op))
    types.push_back(value ? getDType(getElementTypeOrSelf(value.getType()))
                          : std::nullopt);
  std::optional<contract::DType> dtype = types.front();
  int64_t tokens = sizes[size_t(contract::Sym::T)];
  auto result = [&](int64_t perToken, int64_t constant) {
    if (tokens < 0)
      return LinearSize(perToken, constant);
    return LinearSize::bytes(LinearSize(perToken, constant).evaluate(tokens));
  };
  bool fits = dtype.has_value();
  for (int s = 1; s < contract::kNumSyms; ++s)
    fits &= sizes[size_t(s)] <= kWorkspaceDimBound;
  if (!fits)
    return result(INT64_MAX, INT64_MAX);
  for (int s = 1; s < contract::kNumSyms; ++s)
    if (sizes[size_t(s)] < 0)
      sizes[size_t(s)] = 0; // a symbol the op does not use
  contract::Linear w = spec->workspace(sizes, types);
  return result(w.perToken, w.constant);
}
