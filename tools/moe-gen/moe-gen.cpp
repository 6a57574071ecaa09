//===- moe-gen.cpp - Write the MLIR of MoE layers -------------------------===//
//
// moe-gen turns a model description (a built-in preset or a Hugging Face
// config.json) into a `func.func` of `moe.*` ops on memrefs, one MoE layer
// after another, with every intermediate buffer allocated just before its
// first writer and freed just after its last reader.
//
// The tool is a command line over the MLIRMoEBuilder library
// (moe/Builder/ModelConfig.h, moe/Builder/MoELayerBuilder.h): the library
// reads the model, validates it, builds the function with MLIR's builders and
// prints it in moe-gen's text form; the tool parses the options, writes the
// header comments and the output file. moe-opt verifies the output;
// everything the verifiers would reject is rejected here first, with one
// `moe-gen: error: ...` line that names the offending option, file or field.
//
//===----------------------------------------------------------------------===//

#include "moe/Builder/MoELayerBuilder.h"
#include "moe/Builder/ModelConfig.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <optional>
#include <string>

using namespace llvm;
using mlir::moe::DType;
using mlir::moe::LayerOptions;
using mlir::moe::ModelConfig;

//===----------------------------------------------------------------------===//
// Diagnostics
//===----------------------------------------------------------------------===//

/// Makes a message safe to print on one line (and inside an MLIR comment):
/// control characters, newlines included, become '?'.
static std::string oneLine(StringRef text) {
  std::string result;
  result.reserve(text.size());
  for (char c : text)
    result.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?'
                                                                       : c);
  return result;
}

/// Reports a user error as one line and exits. moe-gen validates everything
/// before it opens the output, so there is nothing to clean up.
[[noreturn]] static void fatal(const Twine &message) {
  errs() << "moe-gen: error: " << oneLine(message.str()) << "\n";
  errs().flush();
  std::exit(1);
}

[[noreturn]] static void fatal(Error error) {
  fatal(toString(std::move(error)));
}

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

static cl::OptionCategory moeGenCategory("moe-gen options");

static cl::opt<std::string>
    modelOption("model",
                cl::desc("A preset (deepseek-v3, kimi-k2, qwen3-235b-a22b), "
                         "a Hugging Face config.json, or a checkpoint folder "
                         "holding one (required)"),
                cl::value_desc("preset|path"), cl::cat(moeGenCategory));

static cl::opt<std::string> tokensOption(
    "tokens",
    cl::desc("Tokens per batch: a number (0 is an empty batch) or 'dynamic' "
             "for memref<?x...> (default: dynamic)"),
    cl::value_desc("N|dynamic"), cl::init("dynamic"), cl::cat(moeGenCategory));

static cl::opt<std::string>
    tpOption("tp",
             cl::desc("Tensor-parallel degree: the routed and shared "
                      "intermediate sizes are divided by N (one rank's "
                      "shard) and each layer's output is summed over the N "
                      "ranks (moe.all_reduce; run with moe-run --ranks N) "
                      "(default: 1)"),
             cl::value_desc("N"), cl::init("1"), cl::cat(moeGenCategory));

static cl::opt<bool> shardOnlyOption(
    "shard-only",
    cl::desc("With --tp N: one rank's shard without the collectives, runnable "
             "on one device alone (what one GPU of a TP group computes)"),
    cl::cat(moeGenCategory));

static cl::opt<std::string>
    layersOption("layers",
                 cl::desc("Number of MoE layers chained in the function, each "
                          "layer's output the next one's input (default: 1)"),
                 cl::value_desc("N"), cl::init("1"), cl::cat(moeGenCategory));

static cl::opt<bool> routedInplaceOption(
    "routed-inplace",
    cl::desc("Use the in-place routed kernel: it writes its result into its "
             "hidden input, so the shared experts must run before it"),
    cl::cat(moeGenCategory));

static cl::opt<std::string> formOption(
    "form",
    cl::desc("buffer: moe ops on memrefs with explicit allocations, the "
             "output an argument (default); tensor: moe ops on tensors in "
             "destination-passing style, the function returns the output "
             "(for pipelines that bufferize; see docs/pipelines.md)"),
    cl::value_desc("buffer|tensor"), cl::init("buffer"),
    cl::cat(moeGenCategory));

static cl::opt<std::string>
    dtypeOption("dtype",
                cl::desc("Element type of activations and weights, overriding "
                         "the model's torch_dtype and quantization_config "
                         "(presets: bf16); fp8: bf16 activations and router, "
                         "f8E4M3FN expert weights with 128x128 block scales "
                         "(DeepSeek-V3's format)"),
                cl::value_desc("bf16|f16|f32|fp8"), cl::cat(moeGenCategory));

static cl::opt<std::string> functionNameOption(
    "function-name",
    cl::desc("Name of the generated function (default: the model's name, "
             "sanitised, with '_moe' appended, e.g. deepseek_v3_moe)"),
    cl::value_desc("name"), cl::cat(moeGenCategory));

static cl::opt<std::string> outputOption(
    "o", cl::desc("Write the output to this file (default: stdout)"),
    cl::value_desc("file"), cl::init("-"), cl::cat(moeGenCategory));

static const char *const kOverview = R"(moe-gen: write the MLIR of MoE layers

Writes one func.func of moe.* ops on memrefs (moe.shared_experts, moe.gate,
moe.topk, moe.routed_experts, moe.add, with memref.alloc/dealloc around every
intermediate) for a preset model or a Hugging Face config.json, in sglang's
order: shared experts, gate, top-k, routed experts, add. With --form tensor
the same ops are on tensors (destination-passing style, tensor.empty inits)
and the function returns the output. The output is text for moe-opt and
moe-compile; see docs/moe-gen.md.
)";

static const char *const kExtraHelp = R"(
Presets (bf16; shared experts use the routed experts' intermediate size):
  name              hidden  moe_inter  experts  top-k  shared  groups  scale  scoring
  deepseek-v3       7168    2048       256      8      1       8/4     2.5    sigmoid + bias, renormalize
  kimi-k2           7168    2048       384      8      1       1/1     2.827  sigmoid + bias, renormalize
  qwen3-235b-a22b   4096    1536       128      8      0       -       1.0    softmax, renormalize

config.json: hidden_size, moe_intermediate_size, n_routed_experts (or
num_experts) and num_experts_per_tok are required; the other fields default
by model_type (deepseek_v3/kimi_k2: sigmoid + noaux_tc, 1 shared expert,
renormalize; qwen2_moe/qwen3_moe and others: softmax, no shared experts).

Examples:
  moe-gen --model deepseek-v3 --tokens 16384 --tp 4
  moe-gen --model kimi-k2 --layers 61 --routed-inplace -o kimi.mlir
  moe-gen --model path/to/Qwen3-30B-A3B/config.json | moe-opt
  moe-gen --model deepseek-v3 --tp 4 --form tensor | moe-opt --moe-bufferize
)";
static cl::extrahelp extraHelp(kExtraHelp);

//===----------------------------------------------------------------------===//
// Option parsing
//===----------------------------------------------------------------------===//

static int64_t parseCount(StringRef option, StringRef text, int64_t minimum,
                          int64_t maximum, StringRef expected) {
  uint64_t value;
  if (text.getAsInteger(10, value) || value > uint64_t(maximum) ||
      int64_t(value) < minimum)
    fatal("invalid --" + option + " '" + text + "': expected " + expected);
  return int64_t(value);
}

static LayerOptions parseOptions() {
  using namespace mlir::moe;
  LayerOptions options;
  StringRef tokens = tokensOption;
  if (tokens != "dynamic" && tokens != "?")
    options.tokens = parseCount("tokens", tokens, /*minimum=*/0, kMaxModelSize,
                                "a non-negative integer or 'dynamic'");
  options.tp = parseCount("tp", tpOption, /*minimum=*/1, kMaxModelSize,
                          "a positive integer");
  options.shardOnly = shardOnlyOption;
  options.layers =
      parseCount("layers", layersOption, /*minimum=*/1, kMaxLayers,
                 "a positive integer up to " + std::to_string(kMaxLayers));
  options.routedInplace = routedInplaceOption;
  if (formOption == "tensor")
    options.form = mlir::moe::Form::Tensor;
  else if (formOption != "buffer")
    fatal("unknown --form '" + formOption + "' (expected buffer or tensor)");
  if (dtypeOption.getNumOccurrences()) {
    bool fp8 = dtypeOption == "fp8";
    options.dtype = fp8 ? std::optional(mlir::moe::DType::BF16)
                        : parseDType(dtypeOption);
    options.fp8Experts = fp8;
    if (!options.dtype)
      fatal("unknown --dtype '" + dtypeOption +
            "' (expected bf16, f16, f32 or fp8)");
  }
  if (functionNameOption.getNumOccurrences()) {
    if (!isBareIdentifier(functionNameOption))
      fatal("invalid --function-name '" + functionNameOption +
            "': expected [A-Za-z_][A-Za-z0-9_$.]*");
    options.functionName = functionNameOption;
  }
  return options;
}

static ModelConfig loadModel(StringRef argument) {
  if (argument.empty())
    fatal("--model is required: a preset (deepseek-v3, kimi-k2, "
          "qwen3-235b-a22b) or a path to a config.json; see moe-gen --help");
  if (std::optional<ModelConfig> preset = mlir::moe::getPresetConfig(argument))
    return *preset;
  // Anything that looks like a path (or names an existing file) is one.
  bool looksLikePath = argument.contains('/') || argument.contains('\\') ||
                       argument.ends_with_insensitive(".json") ||
                       sys::fs::exists(argument);
  if (!looksLikePath)
    fatal("unknown preset '" + argument +
          "' (expected deepseek-v3, kimi-k2, qwen3-235b-a22b, or a path to a "
          "config.json)");
  Expected<ModelConfig> config = mlir::moe::readModelConfigFile(argument);
  if (!config)
    fatal(config.takeError());
  return std::move(*config);
}

//===----------------------------------------------------------------------===//
// Output
//===----------------------------------------------------------------------===//

/// The header comments: the command and the model's numbers.
static void writeHeader(raw_ostream &os, const ModelConfig &model,
                        const LayerOptions &options, StringRef functionName) {
  using mlir::moe::formatFloatLiteral;
  using mlir::moe::stringifyDType;
  int64_t intermediate = model.intermediateSize / options.tp;
  int64_t sharedIntermediate = model.sharedIntermediateSize / options.tp;
  os << "// moe-gen --model " << oneLine(modelOption) << " --tokens "
     << (options.tokens ? std::to_string(*options.tokens) : "dynamic")
     << " --tp " << options.tp << " --layers " << options.layers;
  if (options.shardOnly)
    os << " --shard-only";
  if (options.routedInplace)
    os << " --routed-inplace";
  if (options.form == mlir::moe::Form::Tensor)
    os << " --form tensor";
  bool fp8 = options.fp8Experts.value_or(model.fp8Experts);
  if (options.dtype)
    os << " --dtype "
       << (*options.fp8Experts ? StringRef("fp8")
                               : stringifyDType(*options.dtype));
  os << " : " << options.layers << (options.layers == 1 ? " layer" : " layers")
     << ", @" << functionName << "\n";
  os << "// " << oneLine(model.displayName) << ": hidden " << model.hiddenSize
     << ", " << model.numExperts << " experts, top-" << model.topK << " ("
     << (model.scoring == mlir::moe::Scoring::Sigmoid ? "sigmoid" : "softmax");
  if (model.correctionBias)
    os << " + correction bias";
  if (model.nGroup > 1)
    os << ", n_group " << model.nGroup << ", topk_group " << model.topkGroup;
  if (model.renormalize)
    os << ", renormalize";
  os << ", routed_scaling_factor "
     << formatFloatLiteral(model.routedScalingFactor) << "), moe_intermediate "
     << model.intermediateSize;
  if (options.tp > 1)
    os << " / tp " << options.tp << " = " << intermediate;
  os << ", shared intermediate " << model.sharedIntermediateSize;
  if (options.tp > 1 && sharedIntermediate > 0)
    os << " / tp " << options.tp << " = " << sharedIntermediate;
  os << ", " << stringifyDType(options.dtype.value_or(model.dtype));
  if (fp8)
    os << ", experts f8E4M3FN in 128x128 blocks";
  if (model.defaults != "preset")
    os << ", defaults: " << model.defaults;
  os << "\n";
}

/// Builds the layers with the library and prints them after the header.
/// Everything was validated before, so a failure here is a bug, reported
/// like any other error.
static std::string generate(const ModelConfig &model,
                            const LayerOptions &options) {
  mlir::MLIRContext context(mlir::MLIRContext::Threading::DISABLED);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &diag) {
    diagnostics += (diagnostics.empty() ? "" : "; ") + diag.str();
    return mlir::success();
  });
  mlir::OpBuilder builder(&context);
  mlir::Location loc = builder.getUnknownLoc();
  mlir::OwningOpRef<mlir::ModuleOp> module = mlir::ModuleOp::create(loc);
  builder.setInsertionPointToEnd(module->getBody());
  mlir::FailureOr<mlir::func::FuncOp> function =
      mlir::moe::buildMoELayer(builder, loc, model, options);
  if (mlir::failed(function))
    fatal(diagnostics);

  std::string text;
  raw_string_ostream os(text);
  writeHeader(os, model, options, function->getSymName());
  if (options.form == mlir::moe::Form::Tensor) {
    // MLIR's printer, with the builder's names.
    function->print(os, mlir::OpPrintingFlags().printNameLocAsPrefix());
    os << "\n";
  } else if (mlir::failed(mlir::moe::printMoELayer(*function, model, os))) {
    fatal(diagnostics);
  }
  return text;
}

/// Rewrites what llvm::cl reported into one `moe-gen: error:` line and exits.
/// Option-value errors ("requires a value!") llvm::cl prints to stderr itself,
/// already as one line; then `captured` is empty and nothing is added.
[[noreturn]] static void reportCommandLineErrors(StringRef captured) {
  SmallVector<StringRef> lines;
  captured.split(lines, '\n', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  std::string message;
  for (StringRef line : lines) {
    // Drop the "<argv[0]>: " prefix and the "Try: '<argv[0]> --help'" hint.
    size_t colon = line.find(": ");
    if (colon != StringRef::npos && line.take_front(colon).ends_with("moe-gen"))
      line = line.drop_front(colon + 2);
    line = line.take_front(line.find("  Try:")).trim().rtrim('.');
    if (line.empty())
      continue;
    std::string text = line.str();
    text[0] = toLower(text[0]);
    if (StringRef(text).starts_with("did you mean"))
      message += " (" + text + ")";
    else
      message += (message.empty() ? "" : "; ") + text;
  }
  if (message.empty()) {
    errs().flush();
    std::exit(1);
  }
  fatal(message + "; see moe-gen --help");
}

//===----------------------------------------------------------------------===//
// main
//===----------------------------------------------------------------------===//

int main(int argc, char **argv) {
  InitLLVM initLLVM(argc, argv);
  cl::HideUnrelatedOptions(moeGenCategory);

  // llvm::cl's own messages ("Unknown command line argument ...", several
  // lines) become one `moe-gen: error:` line like every other error.
  std::string parseErrors;
  raw_string_ostream parseErrorStream(parseErrors);
  if (!cl::ParseCommandLineOptions(argc, argv, kOverview, &parseErrorStream))
    reportCommandLineErrors(parseErrors);

  LayerOptions options = parseOptions();
  ModelConfig model = loadModel(modelOption);
  if (Error error = mlir::moe::validate(model, options))
    fatal(std::move(error));

  // Generate into memory, then write once: the output is small (a 61-layer
  // model is ~100 KB) and a failed open leaves no partial file behind.
  std::string text = generate(model, options);

  std::error_code error;
  ToolOutputFile output(outputOption, error, sys::fs::OF_Text);
  if (error)
    fatal("cannot open '" + outputOption + "' for writing: " + error.message());
  output.os() << text;
  output.os().flush();
  if (output.os().has_error())
    fatal("cannot write '" + outputOption +
          "': " + output.os().error().message());
  output.keep();
  return 0;
}
