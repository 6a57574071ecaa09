//===- MoEToRuntime.cpp - moe ops to calls into the moert runtime ---------===//
//
// One conversion pattern lowers every moe op: the op contract
// (moe-runtime/OpContract.h) gives its runtime function and the order and
// kind of that function's arguments (data pointers, dtype codes, the
// workspace pointer, sizes, attributes). A second pattern lowers contiguous
// memref.copy to moert_copy.
//
//===----------------------------------------------------------------------===//
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEContract.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETORUNTIME
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Emits the pieces of a runtime call before one op.
class CallBuilder {
public:
  CallBuilder(OpBuilder &builder, Location loc)
      : builder(builder), loc(loc),
        ptrType(LLVM::LLVMPointerType::get(builder.getContext())),
        i64(builder.getI64Type()), i32(builder.getI32Type()),
        f32(builder.getF32Type()) {}

  /// The aligned data pointer of a contiguous memref.
  Value pointer(Value memref) {
    Value index =
        memref::ExtractAlignedPointerAsIndexOp::create(builder, loc, memref);
    Value address = arith::IndexCastOp::create(builder, loc, i64, index);
    return LLVM::IntToPtrOp::create(builder, loc, ptrType, address);
  }
  Value null() { return LLVM::ZeroOp::create(builder, loc, ptrType); }
  Value constant64(int64_t v) {
    return arith::ConstantIntOp::create(builder, loc, i64, v);
  }
  Value constant32(int64_t v) {
    return arith::ConstantIntOp::create(builder, loc, i32, v);
  }
  Value constantF32(double v) {
    return arith::ConstantFloatOp::create(builder, loc, cast<FloatType>(f32),
                                          APFloat(float(v)));
  }
  /// Dimension `d` of `memref` as i64 (a constant when static).
  Value dim(Value memref, unsigned d) {
    auto type = cast<MemRefType>(memref.getType());
    if (!type.isDynamicDim(d))
      return constant64(type.getDimSize(d));
    Value index = memref::DimOp::create(builder, loc, memref, d);
    return arith::IndexCastOp::create(builder, loc, i64, index);
  }

  OpBuilder &builder;
  Location loc;
  Type ptrType, i64, i32, f32;
};

/// Declares `name` in `module` on first use and calls it.
void callRuntime(OpBuilder &builder, Location loc, ModuleOp module,
                 StringRef name, ValueRange args) {
  auto fn = module.lookupSymbol<func::FuncOp>(name);
  if (!fn) {
    OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToEnd(module.getBody());
    fn = func::FuncOp::create(
        builder, loc, name,
        FunctionType::get(module.getContext(), args.getTypes(),
                          {builder.getI32Type()}));
    fn.setPrivate();
  }
  func::CallOp::create(builder, loc, fn, args);
}

/// The arena of a planned workspace's block, or an error.
FailureOr<Value> getArena(Operation *op) {
  Value arena;
  unsigned arenas = 0;
  for (Operation &candidate : *op->getBlock())
    if (candidate.hasAttr(kArenaAttrName)) {
      arena = candidate.getResult(0);
      ++arenas;
    }
  if (!arena)
    return op->emitOpError() << "has a planned workspace but its block has no "
                                "arena (run moe-plan-memory on the whole "
                                "function)";
  if (arenas > 1)
    return op->emitOpError() << "has a planned workspace but its block has "
                             << arenas << " arenas (moe-plan-memory makes one)";
  if (!arena.getDefiningOp()->isBeforeInBlock(op))
    return op->emitOpError() << "has a planned workspace but the arena is "
                                "allocated after it";
  return arena;
}

/// The operand and dimension that carry symbol `sym` (factor 1).
std::pair<int, unsigned> symbolSource(const contract::OpSpec &spec,
                                      ArrayRef<Value> operands,
                                      contract::Sym sym) {
  for (auto [i, operand] : llvm::enumerate(spec.operands))
    for (int d = 0; d < operand.rank; ++d)
      if (operands[i] && operand.dims[d].sym == sym &&
          operand.dims[d].factor == 1)
        return {int(i), unsigned(d)};
  return {-1, 0};
}

/// Every moe op: one call of its contract's runtime function.
struct MoEOpToRuntimeCall : public ConversionPattern {
  MoEOpToRuntimeCall(const TypeConverter &converter, MLIRContext *context)
      : ConversionPattern(converter, MatchAnyOpTypeTag(), /*benefit=*/1,
                          context) {}

  LogicalResult
  matchAndRewrite(Operation *op, ArrayRef<Value> adaptorOperands,
                  ConversionPatternRewriter &rewriter) const override {
    const contract::OpSpec *spec = getContract(op);
    auto module = dyn_cast_or_null<ModuleOp>(SymbolTable::getNearestSymbolTable(op));
    if (!spec || !module)
      return failure();
    SmallVector<Value> operands = getContractOperands(op);
    // The adaptor's values, in the same slots.
    unsigned next = 0;
    for (Value &v : operands)
      if (v)
        v = adaptorOperands[next++];
    std::vector<contract::AttrValue> attrs = getContractAttrs(op);
    contract::Sizes sizes = getContractSizes(op);
    CallBuilder b(rewriter, op->getLoc());

    auto size = [&](contract::Sym sym) -> Value {
      auto [operand, d] = symbolSource(*spec, operands, sym);
      if (operand >= 0)
        return b.dim(operands[operand], d);
      return b.constant64(sizes[size_t(sym)]);
    };
    SmallVector<Value> args;
    for (const contract::AbiArg &arg : spec->abi) {
      switch (arg.kind) {
      case contract::AbiArg::Pointer:
        args.push_back(operands[arg.index] ? b.pointer(operands[arg.index])
                                           : b.null());
        break;
      case contract::AbiArg::DTypeOf: {
        auto type = cast<MemRefType>(operands[arg.index].getType());
        args.push_back(
            b.constant32(int32_t(*getDType(type.getElementType()))));
        break;
      }
      case contract::AbiArg::Workspace: {
        auto offset =
            op->getAttrOfType<DenseI64ArrayAttr>(kWorkspaceOffsetAttrName);
        if (!offset) {
          args.push_back(b.null());
          break;
        }
        Value base = b.pointer(*getArena(op));
        Value bytes = b.constant64(offset[1]);
        if (offset[0] != 0) {
          Value perToken = arith::MulIOp::create(
              rewriter, op->getLoc(), size(contract::Sym::T),
              b.constant64(offset[0]));
          bytes = arith::AddIOp::create(rewriter, op->getLoc(), perToken, bytes);
        }
        args.push_back(LLVM::GEPOp::create(rewriter, op->getLoc(), b.ptrType,
                                           rewriter.getI8Type(), base,
                                           ValueRange{bytes}));
        break;
      }
      case contract::AbiArg::Size:
        args.push_back(size(arg.sym));
        break;
      case contract::AbiArg::Attribute: {
        const contract::AttrSpec &attrSpec = spec->attrs[arg.index];
        const contract::AttrValue &value = attrs[arg.index];
        switch (attrSpec.kind) {
        case contract::AttrKind::Int:
          args.push_back(b.constant64(value.i));
          break;
        case contract::AttrKind::Float:
          args.push_back(b.constantF32(value.f));
          break;
        case contract::AttrKind::Unit:
          args.push_back(b.constant32(value.present ? 1 : 0));
          break;
        case contract::AttrKind::Enum:
          args.push_back(b.constant32(value.i));
          break;
        }
        break;
      }
      }
    }
    callRuntime(rewriter, op->getLoc(), module, spec->function, args);
    rewriter.eraseOp(op);
    return success();
  }
};

/// A copy between contiguous buffers goes through the runtime, so that it
/// works on device memory too. Other copies keep the upstream lowering.
struct CopyToRuntimeCall : public OpConversionPattern<memref::CopyOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(memref::CopyOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto module = dyn_cast_or_null<ModuleOp>(SymbolTable::getNearestSymbolTable(op));
    if (!module)
      return failure();
    auto source = cast<MemRefType>(op.getSource().getType());
    CallBuilder b(rewriter, op.getLoc());
    Value target = b.pointer(adaptor.getTarget());
    Value sourcePtr = b.pointer(adaptor.getSource());
    Value bytes = b.constant64(getElementBytes(source.getElementType()));
    for (unsigned d = 0; d < source.getRank(); ++d)
      bytes = arith::MulIOp::create(rewriter, op.getLoc(), bytes,
                                    b.dim(adaptor.getSource(), d));
    callRuntime(rewriter, op.getLoc(), module, "moert_copy",
                {target, sourcePtr, bytes});
    rewriter.eraseOp(op);
    return success();
  }
};

bool isContiguousCopy(memref::CopyOp op) {
  return cast<MemRefType>(op.getSource().getType()).getLayout().isIdentity() &&
         cast<MemRefType>(op.getTarget().getType()).getLayout().isIdentity();
}

/// What the patterns assume, checked first with precise errors: the op is in
/// a builtin.module, its buffers are contiguous, a planned workspace has its
/// arena.
LogicalResult checkLowerable(Operation *op) {
  if (!isa_and_nonnull<ModuleOp>(SymbolTable::getNearestSymbolTable(op)))
    return op->emitOpError() << "must be in a builtin.module (the symbol table "
                                "that will declare the runtime functions)";
  const contract::OpSpec *spec = getContract(op);
  if (!spec && isa<MoEDialect>(op->getDialect()))
    return op->emitOpError() << "has no runtime lowering (no op contract)";
  if (!spec)
    return success(); // memref.copy
  if (isTensorForm(op))
    return op->emitOpError()
           << "is on tensors: bufferize it first (moe-bufferize, or "
              "one-shot-bufferize with the moe dialect's models registered)";
  SmallVector<Value> operands = getContractOperands(op);
  for (auto [i, value] : llvm::enumerate(operands)) {
    if (!value)
      continue;
    auto type = cast<MemRefType>(value.getType());
    if (!type.getLayout().isIdentity())
      return op->emitOpError()
             << "operand '" << spec->operands[i].name
             << "' must be contiguous (identity layout) to be passed to the "
                "runtime, got "
             << type;
  }
  if (op->hasAttr(kWorkspaceOffsetAttrName) && failed(getArena(op)))
    return failure();
  return success();
}

struct ConvertMoEToRuntimePass
    : public mlir::moe::impl::ConvertMoEToRuntimeBase<ConvertMoEToRuntimePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    bool failedAny = false;
    module.walk([&](Operation *op) {
      bool relevant = isa<MoEDialect>(op->getDialect()) ||
                      (isa<memref::CopyOp>(op) &&
                       isContiguousCopy(cast<memref::CopyOp>(op)));
      if (relevant)
        failedAny |= failed(checkLowerable(op));
    });
    if (failedAny)
      return signalPassFailure();

    MLIRContext *context = &getContext();
    TypeConverter converter;
    converter.addConversion([](Type type) { return type; });
    RewritePatternSet patterns(context);
    populateMoEToRuntimeConversionPatterns(converter, patterns);
    ConversionTarget target(*context);
    configureMoEToRuntimeConversionTarget(target);
    if (failed(applyPartialConversion(module, target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateMoEToRuntimeConversionPatterns(
    const TypeConverter &converter, RewritePatternSet &patterns) {
  patterns.add<MoEOpToRuntimeCall, CopyToRuntimeCall>(converter,
                                                     patterns.getContext());
}

void mlir::moe::configureMoEToRuntimeConversionTarget(ConversionTarget &target) {
  target.addIllegalDialect<MoEDialect>();
  target.addLegalDialect<arith::ArithDialect, func::FuncDialect,
                         LLVM::LLVMDialect, memref::MemRefDialect>();
  target.addDynamicallyLegalOp<memref::CopyOp>(
      [](memref::CopyOp op) { return !isContiguousCopy(op); });
  target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
}
