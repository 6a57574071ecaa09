//===- MoELayerBuilder.cpp - Build the IR of MoE layers -------------------===//
//
// buildMoELayer: the function of chained MoE layers, built op by op. Every
// value is named by a NameLoc (see MoELayerBuilder.h), which printMoELayer
// (MoELayerPrinter.cpp) and OpPrintingFlags::printNameLocAsPrefix use.
//
//===----------------------------------------------------------------------===//

#include "moe/Builder/MoELayerBuilder.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"

#include <string>

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Builds the function. The shapes come from one place (the types computed
/// in the constructor); every value is created once, named once.
class LayerBuilder {
public:
  LayerBuilder(OpBuilder &builder, Location loc, const ModelConfig &model,
               const LayerOptions &options)
      : b(builder), loc(loc), model(model), options(options) {
    Type elt;
    switch (options.dtype.value_or(model.dtype)) {
    case DType::BF16:
      elt = b.getBF16Type();
      break;
    case DType::F16:
      elt = b.getF16Type();
      break;
    case DType::F32:
      elt = b.getF32Type();
      break;
    case DType::I32: // not an activation type: validate() rejects it
      elt = b.getI32Type();
      break;
    }
    Type f32 = b.getF32Type(), i32 = b.getI32Type();
    fp8 = options.fp8Experts.value_or(model.fp8Experts);
    // fp8 experts: e4m3 weights with one fp32 scale per 128 x 128 block.
    Type expertElt = fp8 ? Type(b.getType<Float8E4M3FNType>()) : elt;
    int64_t tokens = options.tokens ? *options.tokens : ShapedType::kDynamic;
    intermediate = model.intermediateSize / options.tp;
    sharedIntermediate = model.sharedIntermediateSize / options.tp;
    auto memref = [&](ArrayRef<int64_t> shape, Type element) -> ShapedType {
      if (options.form == Form::Tensor)
        return RankedTensorType::get(shape, element);
      return MemRefType::get(shape, element);
    };
    int64_t h = model.hiddenSize, e = model.numExperts, k = model.topK;
    hiddenType = memref({tokens, h}, elt);
    gateWeightType = memref({e, h}, elt);
    biasType = memref({e}, f32);
    logitsType = memref({tokens, e}, f32);
    idsType = memref({tokens, k}, i32);
    weightsType = memref({tokens, k}, f32);
    w13Type = memref({e, 2 * intermediate, h}, expertElt);
    w2Type = memref({e, h, intermediate}, expertElt);
    sharedW13Type = memref({2 * sharedIntermediate, h}, expertElt);
    sharedW2Type = memref({h, sharedIntermediate}, expertElt);
    const int64_t block = moert::contract::kFp8Block;
    w13ScaleType = memref({e, 2 * intermediate / block, h / block}, f32);
    w2ScaleType = memref({e, h / block, intermediate / block}, f32);
    sharedW13ScaleType = memref({2 * sharedIntermediate / block, h / block}, f32);
    sharedW2ScaleType = memref({h / block, sharedIntermediate / block}, f32);
  }

  func::FuncOp build(StringRef functionName);

private:
  /// One function argument: its SSA name, type and argument attributes.
  struct Argument {
    std::string name;
    ShapedType type;
    StringRef role;
    std::string argName;
  };

  /// The weights of one layer.
  struct LayerWeights {
    Value gate, bias, w13, w2, sharedW13, sharedW2;
    /// The block scales of fp8 experts (empty for other weights).
    SmallVector<Value, 2> scales, sharedScales;
  };

  bool hasShared() const { return sharedIntermediate > 0; }

  Location named(const Twine &name, Location child) {
    return NameLoc::get(b.getStringAttr(name), child);
  }

  Value alloc(const Twine &name, ShapedType type, Location layerLoc) {
    SmallVector<Value, 1> sizes;
    if (type.isDynamicDim(0))
      sizes.push_back(tokenCount);
    return memref::AllocOp::create(b, named(name, layerLoc),
                                   cast<MemRefType>(type), sizes);
  }
  /// The tensor form's init of a result: an empty tensor of `type`.
  Value empty(const Twine &name, ShapedType type, Location layerLoc) {
    SmallVector<Value, 1> sizes;
    if (type.isDynamicDim(0))
      sizes.push_back(tokenCount);
    return tensor::EmptyOp::create(b, named(name, layerLoc), type.getShape(),
                                   type.getElementType(), sizes);
  }
  void dealloc(Value buffer, Location layerLoc) {
    memref::DeallocOp::create(b, layerLoc, buffer);
  }

  SmallVector<Argument> arguments() const;
  Value buildLayer(int64_t layer, Value input, bool inputIsAlloc,
                   const LayerWeights &weights, Value output);
  Value buildTensorLayer(int64_t layer, Value input, const LayerWeights &w);
  Value sumOverRanks(int64_t layer, Value output, bool tensors);

  OpBuilder &b;
  Location loc;
  const ModelConfig &model;
  const LayerOptions &options;
  int64_t intermediate, sharedIntermediate;
  ShapedType hiddenType, gateWeightType, biasType, logitsType, idsType,
      weightsType, w13Type, w2Type, sharedW13Type, sharedW2Type, w13ScaleType,
      w2ScaleType, sharedW13ScaleType, sharedW2ScaleType;
  /// Expert weights in f8E4M3FN with block scales.
  bool fp8 = false;
  /// %T, the dynamic token count (null with a static one).
  Value tokenCount;
};

} // namespace

SmallVector<LayerBuilder::Argument> LayerBuilder::arguments() const {
  SmallVector<Argument> args;
  args.push_back({"x", hiddenType, "input", "hidden_states"});
  for (int64_t layer = 0; layer < options.layers; ++layer) {
    std::string l = std::to_string(layer);
    std::string prefix = "layers." + l + ".";
    args.push_back(
        {"gate" + l, gateWeightType, "weight", prefix + "gate.weight"});
    if (model.correctionBias)
      args.push_back({"bias" + l, biasType, "weight",
                      prefix + "gate.e_score_correction_bias"});
    args.push_back({"w13_" + l, w13Type, "weight", prefix + "experts.w13"});
    args.push_back({"w2_" + l, w2Type, "weight", prefix + "experts.w2"});
    if (fp8) {
      args.push_back({"w13_scale_" + l, w13ScaleType, "weight",
                      prefix + "experts.w13_scale"});
      args.push_back({"w2_scale_" + l, w2ScaleType, "weight",
                      prefix + "experts.w2_scale"});
    }
    if (hasShared()) {
      args.push_back({"shared_w13_" + l, sharedW13Type, "weight",
                      prefix + "shared_experts.w13"});
      args.push_back({"shared_w2_" + l, sharedW2Type, "weight",
                      prefix + "shared_experts.w2"});
      if (fp8) {
        args.push_back({"shared_w13_scale_" + l, sharedW13ScaleType, "weight",
                        prefix + "shared_experts.w13_scale"});
        args.push_back({"shared_w2_scale_" + l, sharedW2ScaleType, "weight",
                        prefix + "shared_experts.w2_scale"});
      }
    }
  }
  if (options.form == Form::Buffer)
    args.push_back({"out", hiddenType, "output", "output"});
  return args;
}

func::FuncOp LayerBuilder::build(StringRef functionName) {
  SmallVector<Argument> args = arguments();
  SmallVector<Type> types;
  SmallVector<DictionaryAttr> argAttrs;
  for (const Argument &arg : args) {
    types.push_back(arg.type);
    argAttrs.push_back(b.getDictionaryAttr(
        {b.getNamedAttr("moe.role", b.getStringAttr(arg.role)),
         b.getNamedAttr("moe.name", b.getStringAttr(arg.argName))}));
  }
  // The tensor form returns the output, with the output argument's
  // attributes (they become the output argument's when it is bufferized).
  bool tensors = options.form == Form::Tensor;
  SmallVector<Type> results;
  if (tensors)
    results.push_back(hiddenType);
  auto function = func::FuncOp::create(b, loc, functionName,
                                       b.getFunctionType(types, results));
  // All at once: setting them one by one would make a new array attribute of
  // every argument's dictionary per argument.
  function.setAllArgAttrs(argAttrs);
  if (tensors)
    function.setResultAttrs(
        0, b.getDictionaryAttr(
               {b.getNamedAttr("moe.role", b.getStringAttr("output")),
                b.getNamedAttr("moe.name", b.getStringAttr("output"))}));
  Block *entry = function.addEntryBlock();
  for (auto [index, arg] : llvm::enumerate(args))
    entry->getArgument(index).setLoc(named(arg.name, loc));

  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(entry);
  Value input = entry->getArgument(0);
  if (!options.tokens) {
    Value zero = arith::ConstantIndexOp::create(b, named("c0", loc), 0);
    tokenCount =
        tensors ? Value(tensor::DimOp::create(b, named("T", loc), input, zero))
                : Value(memref::DimOp::create(b, named("T", loc), input, zero));
  }

  // The weights of layer l follow %x in the order of arguments().
  unsigned next = 1;
  for (int64_t layer = 0; layer < options.layers; ++layer) {
    LayerWeights weights;
    weights.gate = entry->getArgument(next++);
    if (model.correctionBias)
      weights.bias = entry->getArgument(next++);
    weights.w13 = entry->getArgument(next++);
    weights.w2 = entry->getArgument(next++);
    if (fp8) {
      weights.scales.push_back(entry->getArgument(next++));
      weights.scales.push_back(entry->getArgument(next++));
    }
    if (hasShared()) {
      weights.sharedW13 = entry->getArgument(next++);
      weights.sharedW2 = entry->getArgument(next++);
      if (fp8) {
        weights.sharedScales.push_back(entry->getArgument(next++));
        weights.sharedScales.push_back(entry->getArgument(next++));
      }
    }
    bool last = layer + 1 == options.layers;
    input = tensors ? buildTensorLayer(layer, input, weights)
                    : buildLayer(layer, input, /*inputIsAlloc=*/layer > 0,
                                 weights,
                                 last ? entry->getArguments().back() : Value());
    input = sumOverRanks(layer, input, tensors);
  }
  func::ReturnOp::create(b, loc, tensors ? ValueRange(input) : ValueRange());
  return function;
}

/// Tensor parallelism: each rank's layer output is its shard's partial sum;
/// the sum over the ranks, in place, makes it the layer's output on every
/// rank. Returns the output.
Value LayerBuilder::sumOverRanks(int64_t layer, Value output, bool tensors) {
  if (options.tp == 1 || options.shardOnly)
    return output;
  std::string l = std::to_string(layer);
  Location layerLoc = named("layers." + l, loc);
  IntegerAttr groupSize = b.getI64IntegerAttr(options.tp);
  if (!tensors) {
    AllReduceOp::create(b, layerLoc, TypeRange(), output, output, groupSize);
    return output;
  }
  return AllReduceOp::create(b, named("summed" + l, layerLoc),
                             TypeRange(hiddenType), output, output, groupSize)
      .getResult(0);
}

/// One layer in tensor form: the same ops in the same order as buildLayer,
/// each result's init a tensor.empty (the routed op's, with routedInplace,
/// the layer's input: a request to write in place). Returns the output.
Value LayerBuilder::buildTensorLayer(int64_t layer, Value input,
                                     const LayerWeights &w) {
  std::string l = std::to_string(layer);
  Location layerLoc = named("layers." + l, loc);
  Value shared;
  if (hasShared())
    shared = SharedExpertsOp::create(
                 b, named("shared" + l, layerLoc), TypeRange(hiddenType), input,
                 w.sharedW13, w.sharedW2, w.sharedScales,
                 empty("shared_init" + l, hiddenType, layerLoc))
                 .getResult(0);
  Value logits =
      GateOp::create(b, named("logits" + l, layerLoc), TypeRange(logitsType),
                     input, w.gate, empty("logits_init" + l, logitsType, layerLoc))
          .getResult(0);
  ScoringFunc scoring = model.scoring == Scoring::Sigmoid
                            ? ScoringFunc::sigmoid
                            : ScoringFunc::softmax;
  Value idsInit = empty("ids_init" + l, idsType, layerLoc);
  Value weightsInit = empty("weights_init" + l, weightsType, layerLoc);
  auto topk = TopKOp::create(
      b, named("topk" + l, layerLoc), TypeRange{idsType, weightsType}, logits,
      w.bias, idsInit, weightsInit,
      ScoringFuncAttr::get(b.getContext(), scoring),
      b.getI64IntegerAttr(model.topK), b.getI64IntegerAttr(model.nGroup),
      b.getI64IntegerAttr(model.topkGroup),
      model.renormalize ? b.getUnitAttr() : UnitAttr(),
      b.getF32FloatAttr(static_cast<float>(model.routedScalingFactor)));
  Value routedInit = options.routedInplace
                         ? input
                         : empty("routed_init" + l, hiddenType, layerLoc);
  Value routed =
      RoutedExpertsOp::create(b, named("routed" + l, layerLoc),
                              TypeRange(hiddenType), input, topk.getResult(0),
                              topk.getResult(1), w.w13, w.w2, w.scales,
                              routedInit,
                              /*inplace=*/false)
          .getResult(0);
  if (!hasShared())
    return routed;
  return AddOp::create(b, named("hidden" + l, layerLoc), TypeRange(hiddenType),
                       routed, shared,
                       empty("hidden_init" + l, hiddenType, layerLoc),
                       b.getF32FloatAttr(1.0f))
      .getResult(0);
}

/// One layer: reads `input`, writes `output` (the function's output for the
/// last layer; null for the others, whose output is an alloc made right
/// before its first writer). An input that is an alloc (the previous layer's
/// output) is freed right after its last reader. Returns the output.
Value LayerBuilder::buildLayer(int64_t layer, Value input, bool inputIsAlloc,
                               const LayerWeights &w, Value output) {
  std::string l = std::to_string(layer);
  Location layerLoc = named("layers." + l, loc);
  auto allocOutput = [&] {
    if (!output)
      output = alloc("hidden" + l, hiddenType, layerLoc);
  };
  auto freeInput = [&] {
    if (inputIsAlloc)
      dealloc(input, layerLoc);
  };

  Value shared;
  if (hasShared()) {
    shared = alloc("shared" + l, hiddenType, layerLoc);
    SharedExpertsOp::create(b, layerLoc, TypeRange(), input, w.sharedW13,
                            w.sharedW2, w.sharedScales, shared);
  }

  Value logits = alloc("logits" + l, logitsType, layerLoc);
  GateOp::create(b, layerLoc, TypeRange(), input, w.gate, logits);

  Value ids = alloc("ids" + l, idsType, layerLoc);
  Value weights = alloc("weights" + l, weightsType, layerLoc);
  ScoringFunc scoring = model.scoring == Scoring::Sigmoid
                            ? ScoringFunc::sigmoid
                            : ScoringFunc::softmax;
  TopKOp::create(
      b, layerLoc, TypeRange(), logits, w.bias, ids, weights,
      ScoringFuncAttr::get(b.getContext(), scoring),
      b.getI64IntegerAttr(model.topK), b.getI64IntegerAttr(model.nGroup),
      b.getI64IntegerAttr(model.topkGroup),
      model.renormalize ? b.getUnitAttr() : UnitAttr(),
      b.getF32FloatAttr(static_cast<float>(model.routedScalingFactor)));
  dealloc(logits, layerLoc);

  auto routed = [&](Value result) {
    RoutedExpertsOp::create(b, layerLoc, TypeRange(), input, ids, weights,
                            w.w13, w.w2, w.scales, result,
                            /*inplace=*/options.routedInplace);
  };
  auto add = [&](Value lhs) {
    AddOp::create(b, layerLoc, TypeRange(), lhs, shared, output, b.getF32FloatAttr(1.0f));
  };

  if (options.routedInplace) {
    // The routed result replaces the layer's input.
    routed(input);
    dealloc(ids, layerLoc);
    dealloc(weights, layerLoc);
    allocOutput();
    if (hasShared()) {
      add(input);
      freeInput();
      dealloc(shared, layerLoc);
    } else {
      memref::CopyOp::create(b, layerLoc, input, output);
      freeInput();
    }
    return output;
  }

  if (hasShared()) {
    Value result = alloc("routed" + l, hiddenType, layerLoc);
    routed(result);
    dealloc(ids, layerLoc);
    dealloc(weights, layerLoc);
    freeInput();
    allocOutput();
    add(result);
    dealloc(result, layerLoc);
    dealloc(shared, layerLoc);
  } else {
    allocOutput();
    routed(output);
    dealloc(ids, layerLoc);
    dealloc(weights, layerLoc);
    freeInput();
  }
  return output;
}

FailureOr<func::FuncOp> mlir::moe::buildMoELayer(OpBuilder &builder,
                                                 Location loc,
                                                 const ModelConfig &model,
                                                 const LayerOptions &options) {
  if (llvm::Error error = validate(model, options)) {
    emitError(loc) << llvm::toString(std::move(error));
    return failure();
  }
  MLIRContext *context = builder.getContext();
  context->loadDialect<arith::ArithDialect, func::FuncDialect,
                       memref::MemRefDialect, tensor::TensorDialect,
                       MoEDialect>();
  func::FuncOp function = LayerBuilder(builder, loc, model, options)
                              .build(getFunctionName(model, options));
  builder.setInsertionPointAfter(function);
  return function;
}
