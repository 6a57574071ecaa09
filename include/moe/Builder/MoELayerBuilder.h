//===- MoELayerBuilder.h - Build the IR of MoE layers -----------*- C++ -*-===//
//
// Builds, with MLIR's builders, the `func.func` of `moe.*` ops on memrefs that
// moe-gen writes: for a ModelConfig (moe/Builder/ModelConfig.h) and
// LayerOptions, one MoE layer after another, each layer's output the next
// one's input, every intermediate buffer allocated just before its first
// writer and freed just after its last reader. The order inside a layer is
// sglang's before the seed's change (shared experts first, then gate, top-k,
// routed experts, add), the input the scheduling passes are meant to improve.
//
//   MLIRContext context;
//   OpBuilder builder(&context);
//   OwningOpRef<ModuleOp> module = ModuleOp::create(builder.getUnknownLoc());
//   builder.setInsertionPointToEnd(module->getBody());
//   LayerOptions options;
//   options.tokens = 16384;
//   options.tp = 4;
//   FailureOr<func::FuncOp> layer = moe::buildMoELayer(
//       builder, builder.getUnknownLoc(), *moe::getPresetConfig("deepseek-v3"),
//       options);
//
// Names. Every function argument and every value the function defines
// carries its name as a NameLoc around the given location (%x, %gate0,
// %w13_0, %shared0, %logits0, %T, ...); the ops of layer N are located at
// NameLoc("layers.N"). Printed with
// OpPrintingFlags().printNameLocAsPrefix(), the IR uses those names.
//
// Text. moe-gen's output is a fixed text form of this IR: header comments,
// one argument per line, a `// layer N` comment before each layer, the ops'
// attributes in the order moe-gen has always written them, and the routed
// scaling factor spelt as the config states it. MLIR's printer can do none of
// these (it sorts attribute dictionaries, prints no comments, and prints an
// f32 attribute as its binary value), so printMoELayer renders the function
// that buildMoELayer built in that form: the IR is built once, with
// builders, and the text is a printing of it, byte for byte what moe-gen
// wrote when it produced text directly. Parsing that text gives back IR
// equivalent to the built function.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_BUILDER_MOELAYERBUILDER_H
#define MOE_BUILDER_MOELAYERBUILDER_H

#include "moe/Builder/ModelConfig.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Location.h"
#include "mlir/Support/LLVM.h"

namespace llvm {
class raw_ostream;
} // namespace llvm

namespace mlir {
namespace moe {

/// Builds the function of `options.layers` MoE layers of `model` at the
/// builder's insertion point (typically the body of a module) and returns it.
/// Loads the func, memref, arith and moe dialects. The function's arguments
/// carry `moe.role` ("input", "weight", "output") and `moe.name` (e.g.
/// "layers.0.experts.w13") argument attributes, as docs/moe-gen.md lists.
/// When validate(model, options) fails, emits its message as an error at
/// `loc`, builds nothing and returns failure. The builder's insertion point
/// is left after the function.
FailureOr<func::FuncOp> buildMoELayer(OpBuilder &builder, Location loc,
                                      const ModelConfig &model,
                                      const LayerOptions &options);

/// Writes `function`, which buildMoELayer built for `model`, in moe-gen's text
/// form (without moe-gen's header comments). Fails, writing nothing, on a
/// function buildMoELayer would not build (an unknown op, a value without a
/// name, a scale that does not match the model).
LogicalResult printMoELayer(func::FuncOp function, const ModelConfig &model,
                            llvm::raw_ostream &os);

/// moe-gen's spelling of a float: printf's %.9g (at most 9 significant
/// digits, no trailing zeros) with a '.' added where it has none, so that
/// MLIR parses it as a float ("2.5", "1.0", "1.0e+20").
std::string formatFloatLiteral(double value);

} // namespace moe
} // namespace mlir

#endif // MOE_BUILDER_MOELAYERBUILDER_H
