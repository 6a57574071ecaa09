//===- MoELayerPrinter.cpp - moe-gen's text form of a built function ------===//
//
// printMoELayer: writes a function that buildMoELayer built in the text form
// moe-gen has always written (MoELayerBuilder.h says why MLIR's printer is
// not used). Names come from the values' NameLocs, layers from the ops'
// "layers.N" NameLocs, types from MLIR's type printer; attributes are written
// in moe-gen's order.
//
//===----------------------------------------------------------------------===//

#include "moe/Builder/MoELayerBuilder.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>

using namespace mlir;
using namespace mlir::moe;

std::string mlir::moe::formatFloatLiteral(double value) {
  std::string text = llvm::formatv("{0}", llvm::format("%.9g", value)).str();
  size_t exponent = text.find_first_of("eE");
  if (text.find('.') == std::string::npos)
    text.insert(exponent == std::string::npos ? text.size() : exponent, ".0");
  return text;
}

namespace {

/// The name a NameLoc gives, looking through nothing else.
std::optional<StringRef> nameOf(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().getValue();
  return std::nullopt;
}

/// The N of the "layers.N" NameLoc in `loc` or in the locations it wraps.
std::optional<int64_t> layerOf(Location loc) {
  while (auto name = dyn_cast<NameLoc>(loc)) {
    StringRef text = name.getName().getValue();
    int64_t layer;
    if (text.consume_front("layers.") && !text.getAsInteger(10, layer))
      return layer;
    loc = name.getChildLoc();
  }
  return std::nullopt;
}

class Printer {
public:
  Printer(raw_ostream &os, const ModelConfig &model) : os(os), model(model) {}

  LogicalResult print(func::FuncOp function);

private:
  /// "%name" of a value; records an error for a value without a NameLoc.
  std::string ref(Value value) {
    Location loc = value.getLoc();
    if (auto arg = dyn_cast<BlockArgument>(value))
      loc = arg.getLoc();
    if (std::optional<StringRef> name = nameOf(loc))
      return ("%" + *name).str();
    unnamed = true;
    return "%<unnamed>";
  }
  /// MLIR's spelling of a value's type.
  static std::string type(Value value) {
    std::string text;
    llvm::raw_string_ostream stream(text);
    value.getType().print(stream);
    return text;
  }
  /// "%a, %b : ta, tb".
  std::string operands(ValueRange values) {
    std::string names, types;
    for (Value value : values) {
      names += (names.empty() ? "" : ", ") + ref(value);
      types += (types.empty() ? "" : ", ") + type(value);
    }
    return names + " : " + types;
  }

  /// " scales(...)" of fp8 expert weights, or nothing.
  std::string scales(ValueRange values) {
    return values.empty() ? "" : " scales(" + operands(values) + ")";
  }

  LogicalResult printSignature(func::FuncOp function);
  LogicalResult printOp(Operation *op);
  void printTopK(TopKOp op);

  raw_ostream &os;
  const ModelConfig &model;
  bool unnamed = false;
  std::optional<int64_t> currentLayer;
};

} // namespace

LogicalResult Printer::printSignature(func::FuncOp function) {
  os << "func.func @" << function.getSymName() << "(\n";
  unsigned count = function.getNumArguments();
  for (unsigned index = 0; index < count; ++index) {
    auto role = function.getArgAttrOfType<StringAttr>(index, "moe.role");
    auto name = function.getArgAttrOfType<StringAttr>(index, "moe.name");
    if (!role || !name)
      return function.emitError("argument #")
             << index << " has no moe.role and moe.name";
    Value arg = function.getArgument(index);
    os << "    " << ref(arg) << ": " << type(arg) << " {moe.role = \""
       << role.getValue() << "\", moe.name = \"" << name.getValue() << "\"}"
       << (index + 1 == count ? ") {" : ",") << "\n";
  }
  return success();
}

void Printer::printTopK(TopKOp op) {
  os << "  moe.topk " << stringifyScoringFunc(op.getScoring()) << " ins("
     << operands(op.getLogits()) << ")";
  if (Value bias = op.getBias())
    os << " bias(" << operands(bias) << ")";
  os << " outs(" << operands({op.getTopkIds(), op.getTopkWeights()})
     << ") {k = " << op.getK() << " : i64";
  if (op.getNGroup() > 1 || op.getTopkGroup() != 1)
    os << ", n_group = " << op.getNGroup()
       << " : i64, topk_group = " << op.getTopkGroup() << " : i64";
  if (op.getRenormalize())
    os << ", renormalize";
  // The config's spelling of the scale, which the f32 attribute rounds.
  if (model.routedScalingFactor != 1.0)
    os << ", routed_scaling_factor = "
       << formatFloatLiteral(model.routedScalingFactor) << " : f32";
  os << "}\n";
}

LogicalResult Printer::printOp(Operation *op) {
  if (std::optional<int64_t> layer = layerOf(op->getLoc());
      layer && layer != currentLayer) {
    os << "  // layer " << *layer << "\n";
    currentLayer = layer;
  }
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](arith::ConstantIndexOp constant) {
        os << "  " << ref(constant) << " = arith.constant " << constant.value()
           << " : index\n";
        return success();
      })
      .Case([&](memref::DimOp dim) {
        os << "  " << ref(dim) << " = memref.dim " << ref(dim.getSource())
           << ", " << ref(dim.getIndex()) << " : " << type(dim.getSource())
           << "\n";
        return success();
      })
      .Case([&](memref::AllocOp alloc) {
        std::string sizes;
        for (Value size : alloc.getDynamicSizes())
          sizes += (sizes.empty() ? "" : ", ") + ref(size);
        os << "  " << ref(alloc) << " = memref.alloc(" << sizes
           << ") : " << type(alloc) << "\n";
        return success();
      })
      .Case([&](memref::DeallocOp dealloc) {
        os << "  memref.dealloc " << operands(dealloc.getMemref()) << "\n";
        return success();
      })
      .Case([&](memref::CopyOp copy) {
        os << "  memref.copy " << ref(copy.getSource()) << ", "
           << ref(copy.getTarget()) << " : " << type(copy.getSource()) << " to "
           << type(copy.getTarget()) << "\n";
        return success();
      })
      .Case([&](SharedExpertsOp shared) {
        os << "  moe.shared_experts ins("
           << operands({shared.getHidden(), shared.getW13(), shared.getW2()})
           << ")" << scales(shared.getScales()) << " outs("
           << operands(shared.getOutput()) << ")\n";
        return success();
      })
      .Case([&](GateOp gate) {
        os << "  moe.gate ins("
           << operands({gate.getHidden(), gate.getGateWeight()}) << ") outs("
           << operands(gate.getLogits()) << ")\n";
        return success();
      })
      .Case([&](TopKOp topk) -> LogicalResult {
        if (topk.getRoutedScalingFactor().convertToFloat() !=
            static_cast<float>(model.routedScalingFactor))
          return topk.emitError("routed_scaling_factor does not match the "
                                "model's ")
                 << model.routedScalingFactor;
        printTopK(topk);
        return success();
      })
      .Case([&](RoutedExpertsOp routed) {
        os << "  moe.routed_experts " << (routed.getInplace() ? "inplace " : "")
           << "ins("
           << operands({routed.getHidden(), routed.getTopkIds(),
                        routed.getTopkWeights(), routed.getW13(),
                        routed.getW2()})
           << ")" << scales(routed.getScales()) << " outs("
           << operands(routed.getOutput()) << ")\n";
        return success();
      })
      .Case([&](AddOp add) -> LogicalResult {
        if (!add.getScale().isExactlyValue(1.0))
          return add.emitError("moe-gen's text form has no moe.add scale");
        os << "  moe.add ins(" << operands({add.getLhs(), add.getRhs()})
           << ") outs(" << operands(add.getOutput()) << ")\n";
        return success();
      })
      .Case([&](AllReduceOp reduce) {
        os << "  moe.all_reduce ins(" << operands(reduce.getInput())
           << ") outs(" << operands(reduce.getOutput())
           << ") {group_size = " << reduce.getGroupSize() << " : i64}\n";
        return success();
      })
      .Case([&](func::ReturnOp ret) -> LogicalResult {
        if (ret.getNumOperands() != 0)
          return ret.emitError("moe-gen's functions return nothing");
        os << "  return\n";
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitError("not in moe-gen's text form");
      });
}

LogicalResult Printer::print(func::FuncOp function) {
  if (!function.getBody().hasOneBlock())
    return function.emitError("moe-gen's functions have one block");
  if (mlir::failed(printSignature(function)))
    return failure();
  for (Operation &op : function.getBody().front())
    if (mlir::failed(printOp(&op)))
      return failure();
  os << "}\n";
  if (unnamed)
    return function.emitError("a value has no name (NameLoc)");
  return success();
}

LogicalResult mlir::moe::printMoELayer(func::FuncOp function,
                                       const ModelConfig &model,
                                       raw_ostream &os) {
  // Into memory first: nothing is written for a function that cannot be.
  std::string text;
  llvm::raw_string_ostream stream(text);
  if (mlir::failed(Printer(stream, model).print(function)))
    return failure();
  os << text;
  return success();
}
