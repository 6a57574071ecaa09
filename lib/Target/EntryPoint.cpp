//===- EntryPoint.cpp - The runner's view of a compiled module ------------===//
//
// A compiled module exports `moe_entry(void **args, int64_t tokens)` and the
// JSON `moe_module_description`, so that a runner with no MLIR can allocate,
// fill and check its arguments.
//
//===----------------------------------------------------------------------===//
#include "moe/Analysis/BlockMemoryModel.h"
#include "moe/Target/EntryPoint.h"
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/JSON.h"

using namespace mlir;
using namespace mlir::moe;

/// The op contract's name of an element type ("bf16", "f8e4m3", ...).
static FailureOr<std::string> dtypeName(Type type) {
  std::optional<contract::DType> dtype = getDType(type);
  if (!dtype)
    return failure();
  return std::string(contract::dtypeName(*dtype));
}

static llvm::json::Array shapeJson(MemRefType type) {
  llvm::json::Array shape;
  for (int64_t d : type.getShape())
    shape.push_back(ShapedType::isDynamic(d) ? int64_t(-1) : d);
  return shape;
}

static llvm::json::Object sizeJson(const LinearSize &size) {
  return llvm::json::Object{{"per_token", size.perToken},
                            {"constant", size.constant}};
}

FailureOr<std::string> mlir::moe::describeEntryFunction(func::FuncOp func,
                                                        bool optimized,
                                                        int64_t tokenHint) {
  if (func.isExternal() || !func.getBody().hasOneBlock())
    return func.emitError() << "the entry function must have a body of one block";
  if (func.getNumResults() != 0)
    return func.emitError() << "the entry function must return nothing: "
                               "results are written into 'output' arguments";
  llvm::json::Array args;
  std::optional<int64_t> tokenCount;
  bool dynamic = false;
  bool hasInput = false, hasOutput = false;
  for (auto [index, arg] : llvm::enumerate(func.getArguments())) {
    auto type = dyn_cast<MemRefType>(arg.getType());
    if (!type || !type.getLayout().isIdentity() || type.getRank() < 1)
      return func.emitError() << "argument #" << index
                              << " must be a contiguous memref, got "
                              << arg.getType();
    FailureOr<std::string> dtype = dtypeName(type.getElementType());
    if (failed(dtype))
      return func.emitError() << "argument #" << index
                              << " has an element type runners cannot fill: "
                              << type.getElementType();
    if (type.getNumDynamicDims() > 1 ||
        (type.getNumDynamicDims() == 1 && !type.isDynamicDim(0)))
      return func.emitError() << "argument #" << index
                              << ": only the leading dimension (the token "
                                 "count) may be dynamic, got "
                              << type;
    auto role = func.getArgAttrOfType<StringAttr>(index, "moe.role");
    if (!role)
      return func.emitError() << "argument #" << index
                              << " has no 'moe.role': mark every argument "
                                 "\"input\", \"weight\" or \"output\"";
    hasInput |= role.getValue() == "input";
    hasOutput |= role.getValue() == "output";
    auto name = func.getArgAttrOfType<StringAttr>(index, "moe.name");
    std::string argName =
        name ? name.getValue().str() : "arg" + std::to_string(index);
    if (role.getValue() != "weight") {
      if (type.isDynamicDim(0))
        dynamic = true;
      else
        tokenCount = type.getDimSize(0);
    }
    args.push_back(llvm::json::Object{{"name", argName},
                                      {"role", role.getValue()},
                                      {"dtype", *dtype},
                                      {"shape", shapeJson(type)}});
  }
  if (!hasInput || !hasOutput)
    return func.emitError() << "the entry function needs an \"input\" and an "
                               "\"output\" argument";

  // The ops, their operands as arguments or intermediate buffers.
  DenseMap<Value, int64_t> bufferIds;
  llvm::json::Array buffers, ops;
  bool checkable = true;
  auto operandJson = [&](Operation *op, Value value) -> FailureOr<llvm::json::Value> {
    if (auto arg = dyn_cast<BlockArgument>(value);
        arg && arg.getOwner() == &func.getBody().front())
      return llvm::json::Value(llvm::json::Object{{"arg", int64_t(arg.getArgNumber())}});
    auto type = cast<MemRefType>(value.getType());
    Operation *def = value.getDefiningOp();
    if (!def || !isa<memref::AllocOp, memref::ViewOp>(def))
      return failure();
    auto [it, inserted] = bufferIds.try_emplace(value, bufferIds.size());
    if (inserted) {
      FailureOr<std::string> dtype = dtypeName(type.getElementType());
      if (failed(dtype))
        return failure();
      buffers.push_back(llvm::json::Object{{"dtype", *dtype}, {"shape", shapeJson(type)}});
    }
    return llvm::json::Value(llvm::json::Object{{"buffer", it->second}});
  };
  for (Operation &op : func.getBody().front()) {
    llvm::json::Object attrs;
    if (const contract::OpSpec *spec = getContract(&op)) {
      // The contract's attributes (defaults filled in), and whether each
      // optional operand is present ("has_<name>").
      std::vector<contract::AttrValue> values = getContractAttrs(&op);
      for (auto [attr, value] : llvm::zip(spec->attrs, values)) {
        switch (attr.kind) {
        case contract::AttrKind::Int:
          attrs[attr.name] = value.i;
          break;
        case contract::AttrKind::Float:
          attrs[attr.name] = double(float(value.f));
          break;
        case contract::AttrKind::Unit:
          attrs[attr.name] = value.present;
          break;
        case contract::AttrKind::Enum:
          attrs[attr.name] = attr.cases[value.i];
          break;
        }
      }
      SmallVector<Value> operands = getContractOperands(&op);
      for (auto [operand, value] : llvm::zip(spec->operands, operands))
        if (operand.optional)
          attrs[std::string("has_") + operand.name] = static_cast<bool>(value);
    } else if (!isa<memref::CopyOp>(op)) {
      if (!isMemoryEffectFree(&op) &&
          !isa<memref::AllocOp, memref::DeallocOp, func::ReturnOp>(op))
        checkable = false; // An op the runner's reference does not model.
      continue;
    }
    llvm::json::Array operands;
    for (Value operand : op.getOperands()) {
      FailureOr<llvm::json::Value> ref = operandJson(&op, operand);
      if (failed(ref))
        return op.emitOpError()
               << "has an operand that is neither an argument nor a buffer of "
                  "the entry function";
      operands.push_back(std::move(*ref));
    }
    // Where the op is, for messages: "file:line:col" or a name location.
    std::string loc;
    llvm::raw_string_ostream(loc) << op.getLoc();
    StringRef where(loc);
    if (where.consume_front("loc(") && where.consume_back(")"))
      loc = where.str();
    ops.push_back(llvm::json::Object{{"op", op.getName().getStringRef()},
                                     {"loc", loc},
                                     {"operands", std::move(operands)},
                                     {"attrs", std::move(attrs)}});
  }

  BlockMemoryModel model(func.getBody().front(), tokenHint);
  llvm::json::Value planned = nullptr, modelled = nullptr;
  if (model.isValid()) {
    LinearSize peak = model.peakOf(model.getInputOrder());
    modelled = sizeJson(peak);
    // Planned: the arena, sized at run time as the largest of its lines.
    for (Operation &op : func.getBody().front()) {
      if (!op.hasAttr(kArenaAttrName))
        continue;
      FailureOr<SmallVector<LinearSize>> lines = getArenaSizeLines(&op);
      if (failed(lines) || lines->empty())
        break;
      llvm::json::Object arena = sizeJson(peak);
      if (lines->size() > 1) {
        llvm::json::Array maxOf;
        for (const LinearSize &line : *lines)
          maxOf.push_back(sizeJson(line));
        arena["max_of"] = std::move(maxOf);
      }
      planned = std::move(arena);
    }
  }
  llvm::json::Object root{
      {"version", 1},
      {"function", func.getName()},
      {"token_count", dynamic || !tokenCount ? llvm::json::Value(nullptr)
                                             : llvm::json::Value(*tokenCount)},
      {"optimized", optimized},
      {"checkable", checkable},
      {"planned_peak_bytes", std::move(planned)},
      {"modelled_peak_bytes", std::move(modelled)},
      {"args", std::move(args)},
      {"buffers", std::move(buffers)},
      {"ops", std::move(ops)}};
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::json::Value(std::move(root));
  return text;
}

LogicalResult mlir::moe::addEntryPoint(ModuleOp module, func::FuncOp func,
                                       StringRef description) {
  MLIRContext *ctx = module.getContext();
  if (module.lookupSymbol("moe_entry") ||
      module.lookupSymbol("moe_module_description"))
    return module.emitError()
           << "the module already defines 'moe_entry' or "
              "'moe_module_description'";
  OpBuilder builder = OpBuilder::atBlockEnd(module.getBody());
  Location loc = func.getLoc();
  Type ptrType = LLVM::LLVMPointerType::get(ctx);
  Type i64 = builder.getI64Type();

  // The description, NUL-terminated.
  std::string text = description.str();
  text.push_back('\0');
  auto arrayType = LLVM::LLVMArrayType::get(builder.getI8Type(), text.size());
  LLVM::GlobalOp::create(builder, loc, arrayType, /*isConstant=*/true,
                         LLVM::Linkage::External, "moe_module_description",
                         builder.getStringAttr(text));

  auto entry = func::FuncOp::create(builder, loc, "moe_entry",
                                    FunctionType::get(ctx, {ptrType, i64}, {}));
  Block *body = entry.addEntryBlock();
  builder.setInsertionPointToStart(body);
  Value args = body->getArgument(0), tokens = body->getArgument(1);
  SmallVector<Value> memrefs;
  for (auto [index, type] : llvm::enumerate(func.getArgumentTypes())) {
    auto memrefType = cast<MemRefType>(type);
    unsigned rank = memrefType.getRank();
    Value slot = LLVM::GEPOp::create(builder, loc, ptrType, ptrType, args,
                                     ArrayRef<LLVM::GEPArg>{int32_t(index)});
    Value data = LLVM::LoadOp::create(builder, loc, ptrType, slot);
    auto dims = LLVM::LLVMArrayType::get(i64, rank);
    auto descriptorType = LLVM::LLVMStructType::getLiteral(
        ctx, {ptrType, ptrType, i64, dims, dims});
    Value descriptor = LLVM::UndefOp::create(builder, loc, descriptorType);
    auto constant = [&](int64_t v) {
      return LLVM::ConstantOp::create(builder, loc, i64, v).getResult();
    };
    descriptor = LLVM::InsertValueOp::create(builder, loc, descriptor, data, ArrayRef<int64_t>{0});
    descriptor = LLVM::InsertValueOp::create(builder, loc, descriptor, data, ArrayRef<int64_t>{1});
    descriptor =
        LLVM::InsertValueOp::create(builder, loc, descriptor, constant(0), ArrayRef<int64_t>{2});
    // Row-major: strides are products of the later sizes.
    SmallVector<Value> sizes;
    for (unsigned d = 0; d < rank; ++d)
      sizes.push_back(memrefType.isDynamicDim(d) ? tokens
                                                 : constant(memrefType.getDimSize(d)));
    Value stride = constant(1);
    for (unsigned d = rank; d-- > 0;) {
      descriptor = LLVM::InsertValueOp::create(builder, loc, descriptor,
                                               sizes[d], ArrayRef<int64_t>{3, d});
      descriptor = LLVM::InsertValueOp::create(builder, loc, descriptor, stride,
                                               ArrayRef<int64_t>{4, d});
      if (d > 0)
        stride = LLVM::MulOp::create(builder, loc, stride, sizes[d]);
    }
    memrefs.push_back(
        UnrealizedConversionCastOp::create(builder, loc, memrefType, descriptor)
            .getResult(0));
  }
  func::CallOp::create(builder, loc, func, memrefs);
  func::ReturnOp::create(builder, loc);
  return success();
}
