//===- MoEToRuntime.cpp - moe ops to calls into the moert runtime ---------===//
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETORUNTIME
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// moert_dtype codes (moe_runtime.h).
FailureOr<int32_t> dtypeCode(Type type) {
  if (type.isBF16())
    return 0;
  if (type.isF16())
    return 1;
  if (type.isF32())
    return 2;
  if (type.isInteger(32))
    return 3;
  return failure();
}

/// Emits the calls of one function.
class RuntimeCallBuilder {
public:
  RuntimeCallBuilder(ModuleOp module, Operation *op)
      : module(module), builder(op), loc(op->getLoc()),
        ptrType(LLVM::LLVMPointerType::get(op->getContext())),
        i64(builder.getI64Type()), i32(builder.getI32Type()),
        f32(builder.getF32Type()) {}

  /// The aligned data pointer of a contiguous memref.
  FailureOr<Value> pointer(Operation *op, Value memref, StringRef name) {
    auto type = cast<MemRefType>(memref.getType());
    if (!type.getLayout().isIdentity())
      return op->emitOpError() << "operand '" << name
                               << "' must be contiguous (identity layout) to "
                                  "be passed to the runtime, got "
                               << type;
    Value index =
        memref::ExtractAlignedPointerAsIndexOp::create(builder, loc, memref);
    Value address = arith::IndexCastOp::create(builder, loc, i64, index);
    return LLVM::IntToPtrOp::create(builder, loc, ptrType, address).getResult();
  }

  /// The pointers of several named operands, in order.
  FailureOr<SmallVector<Value>>
  pointers(Operation *op, ArrayRef<std::pair<Value, StringRef>> operands) {
    SmallVector<Value> result;
    for (auto [value, name] : operands) {
      FailureOr<Value> p = pointer(op, value, name);
      if (failed(p))
        return failure();
      result.push_back(*p);
    }
    return result;
  }

  Value null() { return LLVM::ZeroOp::create(builder, loc, ptrType); }

  /// Dimension `d` of `memref` as i64 (a constant when static).
  Value dim(Value memref, unsigned d) {
    auto type = cast<MemRefType>(memref.getType());
    if (!type.isDynamicDim(d))
      return constant64(type.getDimSize(d));
    Value index = memref::DimOp::create(builder, loc, memref, d);
    return arith::IndexCastOp::create(builder, loc, i64, index);
  }

  Value constant64(int64_t v) {
    return arith::ConstantIntOp::create(builder, loc, i64, v);
  }
  Value constant32(int64_t v) {
    return arith::ConstantIntOp::create(builder, loc, i32, v);
  }
  Value constantF32(float v) {
    return arith::ConstantFloatOp::create(builder, loc, cast<FloatType>(f32),
                                          APFloat(v));
  }

  FailureOr<Value> dtype(Operation *op, Value memref) {
    FailureOr<int32_t> code =
        dtypeCode(cast<MemRefType>(memref.getType()).getElementType());
    if (failed(code))
      return op->emitOpError() << "has an element type the runtime does not "
                                  "support";
    return constant32(*code);
  }

  /// The workspace pointer: into the arena when planned, else null.
  FailureOr<Value> workspace(Operation *op, Value tokensOf) {
    auto offset = op->getAttrOfType<DenseI64ArrayAttr>(kWorkspaceOffsetAttrName);
    if (!offset)
      return null();
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
    FailureOr<Value> base = pointer(op, arena, "arena");
    if (failed(base))
      return failure();
    Value bytes = constant64(offset[1]);
    if (offset[0] != 0) {
      Value perToken = arith::MulIOp::create(builder, loc, dim(tokensOf, 0),
                                             constant64(offset[0]));
      bytes = arith::AddIOp::create(builder, loc, perToken, bytes);
    }
    return LLVM::GEPOp::create(builder, loc, ptrType, builder.getI8Type(), *base,
                               ValueRange{bytes})
        .getResult();
  }

  /// Calls `name`, declaring it on first use.
  void call(StringRef name, ValueRange args) {
    auto fn = module.lookupSymbol<func::FuncOp>(name);
    if (!fn) {
      OpBuilder moduleBuilder = OpBuilder::atBlockEnd(module.getBody());
      fn = func::FuncOp::create(
          moduleBuilder, loc, name,
          FunctionType::get(module.getContext(), args.getTypes(), {i32}));
      fn.setPrivate();
    }
    func::CallOp::create(builder, loc, fn, args);
  }

  ModuleOp module;
  OpBuilder builder;
  Location loc;
  Type ptrType, i64, i32, f32;
};

LogicalResult lower(ModuleOp module, GateOp op) {
  RuntimeCallBuilder b(module, op);
  auto ptrs = b.pointers(op, {{op.getHidden(), "hidden"},
                              {op.getGateWeight(), "gate_weight"},
                              {op.getLogits(), "logits"}});
  FailureOr<Value> hiddenType = b.dtype(op, op.getHidden());
  FailureOr<Value> weightType = b.dtype(op, op.getGateWeight());
  if (failed(ptrs) || failed(hiddenType) || failed(weightType))
    return failure();
  Value hidden = (*ptrs)[0], weight = (*ptrs)[1], logits = (*ptrs)[2];
  b.call("moert_gate", {hidden, *hiddenType, weight, *weightType, logits,
                        b.dim(op.getHidden(), 0), b.dim(op.getHidden(), 1),
                        b.dim(op.getGateWeight(), 0)});
  return success();
}

LogicalResult lower(ModuleOp module, TopKOp op) {
  RuntimeCallBuilder b(module, op);
  auto ptrs = b.pointers(op, {{op.getLogits(), "logits"},
                              {op.getTopkIds(), "topk_ids"},
                              {op.getTopkWeights(), "topk_weights"}});
  FailureOr<Value> bias = op.getBias() ? b.pointer(op, op.getBias(), "bias")
                                       : FailureOr<Value>(b.null());
  if (failed(ptrs) || failed(bias))
    return failure();
  b.call("moert_topk",
         {(*ptrs)[0], *bias, (*ptrs)[1], (*ptrs)[2], b.dim(op.getLogits(), 0),
          b.dim(op.getLogits(), 1), b.constant64(op.getK()),
          b.constant32(static_cast<int32_t>(op.getScoring())),
          b.constant64(op.getNGroup()), b.constant64(op.getTopkGroup()),
          b.constant32(op.getRenormalize() ? 1 : 0),
          b.constantF32(op.getRoutedScalingFactor().convertToFloat())});
  return success();
}

LogicalResult lower(ModuleOp module, RoutedExpertsOp op) {
  RuntimeCallBuilder b(module, op);
  auto ptrs = b.pointers(
      op, {{op.getHidden(), "hidden"}, {op.getTopkIds(), "topk_ids"},
           {op.getTopkWeights(), "topk_weights"}, {op.getW13(), "w13"},
           {op.getW2(), "w2"}, {op.getOutput(), "output"}});
  FailureOr<Value> workspace = b.workspace(op, op.getHidden());
  FailureOr<Value> dtype = b.dtype(op, op.getHidden());
  if (failed(ptrs) || failed(workspace) || failed(dtype))
    return failure();
  SmallVector<Value> args(*ptrs);
  args.append({*workspace, *dtype, b.dim(op.getHidden(), 0),
               b.constant64(op.getHiddenSize()), b.constant64(op.getNumExperts()),
               b.constant64(op.getTopK()),
               b.constant64(op.getIntermediateSize())});
  b.call("moert_routed_experts", args);
  return success();
}

LogicalResult lower(ModuleOp module, SharedExpertsOp op) {
  RuntimeCallBuilder b(module, op);
  auto ptrs = b.pointers(op, {{op.getHidden(), "hidden"}, {op.getW13(), "w13"},
                              {op.getW2(), "w2"}, {op.getOutput(), "output"}});
  FailureOr<Value> workspace = b.workspace(op, op.getHidden());
  FailureOr<Value> dtype = b.dtype(op, op.getHidden());
  if (failed(ptrs) || failed(workspace) || failed(dtype))
    return failure();
  SmallVector<Value> args(*ptrs);
  args.append({*workspace, *dtype, b.dim(op.getHidden(), 0),
               b.constant64(op.getHiddenSize()),
               b.constant64(op.getIntermediateSize())});
  b.call("moert_shared_experts", args);
  return success();
}

LogicalResult lower(ModuleOp module, AddOp op) {
  RuntimeCallBuilder b(module, op);
  auto ptrs = b.pointers(op, {{op.getLhs(), "lhs"},
                              {op.getRhs(), "rhs"},
                              {op.getOutput(), "output"}});
  FailureOr<Value> dtype = b.dtype(op, op.getLhs());
  if (failed(ptrs) || failed(dtype))
    return failure();
  SmallVector<Value> args(*ptrs);
  args.append({*dtype, b.dim(op.getLhs(), 0), b.dim(op.getLhs(), 1),
               b.constantF32(op.getScale().convertToFloat())});
  b.call("moert_add", args);
  return success();
}

/// A copy between contiguous buffers goes through the runtime, so that it
/// works on device memory too. Other copies keep the upstream lowering.
LogicalResult lower(ModuleOp module, memref::CopyOp op) {
  auto source = cast<MemRefType>(op.getSource().getType());
  auto target = cast<MemRefType>(op.getTarget().getType());
  if (!source.getLayout().isIdentity() || !target.getLayout().isIdentity())
    return success();
  RuntimeCallBuilder b(module, op);
  auto ptrs = b.pointers(op, {{op.getTarget(), "target"},
                              {op.getSource(), "source"}});
  if (failed(ptrs))
    return failure();
  Value bytes = b.constant64(getElementBytes(source.getElementType()));
  for (unsigned d = 0; d < source.getRank(); ++d)
    bytes = arith::MulIOp::create(b.builder, b.loc, bytes, b.dim(op.getSource(), d));
  b.call("moert_copy", {(*ptrs)[0], (*ptrs)[1], bytes});
  op.erase();
  return success();
}

struct ConvertMoEToRuntimePass
    : public moe::impl::ConvertMoEToRuntimeBase<ConvertMoEToRuntimePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<Operation *> ops, copies;
    module.walk([&](Operation *op) {
      if (isa<MoEDialect>(op->getDialect()))
        ops.push_back(op);
      else if (isa<memref::CopyOp>(op))
        copies.push_back(op);
    });
    // The runtime functions are declared in the module that holds the op
    // (a nested module is a symbol table of its own).
    auto moduleOf = [](Operation *op) {
      return dyn_cast_or_null<ModuleOp>(SymbolTable::getNearestSymbolTable(op));
    };
    auto notInModule = [](Operation *op) {
      return op->emitOpError() << "must be in a builtin.module (the symbol table "
                                  "that will declare the runtime functions)";
    };
    bool failedAny = false;
    for (Operation *copy : copies) {
      ModuleOp target = moduleOf(copy);
      failedAny |= failed(target ? lower(target, cast<memref::CopyOp>(copy))
                                 : notInModule(copy));
    }
    for (Operation *op : ops) {
      ModuleOp target = moduleOf(op);
      if (!target) {
        (void)notInModule(op);
        failedAny = true;
        continue;
      }
      LogicalResult result =
          TypeSwitch<Operation *, LogicalResult>(op)
              .Case<GateOp, TopKOp, RoutedExpertsOp, SharedExpertsOp, AddOp>(
                  [&](auto typed) { return lower(target, typed); })
              .Default([](Operation *op) {
                return op->emitOpError() << "has no runtime lowering";
              });
      if (failed(result)) {
        failedAny = true;
        continue;
      }
      op->erase();
    }
    if (failedAny)
      signalPassFailure();
  }
};

} // namespace
