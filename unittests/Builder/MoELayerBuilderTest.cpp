//===- MoELayerBuilderTest.cpp - The MoE layer builder library ------------===//
//
// Builds layers from ModelConfigs in C++ (presets, a config.json, a config
// filled in by hand) and verifies them; checks that moe-gen's text form of a
// built function parses back to the same IR; checks the errors of
// parseModelConfig, validate and buildMoELayer.
//
//===----------------------------------------------------------------------===//
#include "moe/Builder/MoELayerBuilder.h"
#include "moe/Builder/ModelConfig.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <string>

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A module to build into, and the diagnostics the context reports.
class BuilderTest : public ::testing::Test {
protected:
  BuilderTest()
      : builder(&context), module(ModuleOp::create(builder.getUnknownLoc())),
        handler(&context, [this](Diagnostic &diag) {
          diagnostics += diag.str() + "\n";
          return success();
        }) {
    builder.setInsertionPointToEnd(module->getBody());
  }

  func::FuncOp build(const ModelConfig &model, const LayerOptions &options) {
    FailureOr<func::FuncOp> function =
        buildMoELayer(builder, builder.getUnknownLoc(), model, options);
    EXPECT_TRUE(succeeded(function)) << diagnostics;
    if (failed(function))
      return nullptr;
    EXPECT_TRUE(succeeded(verify(*module))) << diagnostics;
    return *function;
  }

  template <typename OpTy> static int count(func::FuncOp function) {
    int n = 0;
    function.walk([&](OpTy) { ++n; });
    return n;
  }

  static std::string print(Operation *op, OpPrintingFlags flags = {}) {
    std::string text;
    llvm::raw_string_ostream os(text);
    op->print(os, flags);
    return text;
  }

  /// moe-gen's text form of `function` parses back to the same IR.
  void expectRoundTrip(func::FuncOp function, const ModelConfig &model) {
    std::string text;
    llvm::raw_string_ostream os(text);
    ASSERT_TRUE(succeeded(printMoELayer(function, model, os))) << diagnostics;
    OwningOpRef<ModuleOp> parsed =
        parseSourceString<ModuleOp>(text, ParserConfig(&context));
    ASSERT_TRUE(parsed) << diagnostics << text;
    auto reparsed = cast<func::FuncOp>(parsed->getBody()->front());
    EXPECT_EQ(print(reparsed), print(function));
  }

  MLIRContext context;
  OpBuilder builder;
  OwningOpRef<ModuleOp> module;
  std::string diagnostics;
  ScopedDiagnosticHandler handler;
};

TEST_F(BuilderTest, DeepSeekV3ShardWithDynamicTokens) {
  std::optional<ModelConfig> model = getPresetConfig("deepseek-v3");
  ASSERT_TRUE(model);
  LayerOptions options;
  options.tp = 4;
  options.layers = 2;
  func::FuncOp function = build(*model, options);
  ASSERT_TRUE(function);
  EXPECT_EQ(function.getSymName(), "deepseek_v3_moe");

  // %x, 6 weights per layer, %out.
  ASSERT_EQ(function.getNumArguments(), 1u + 2 * 6 + 1);
  auto w13 = cast<MemRefType>(function.getArgument(3).getType());
  EXPECT_EQ(w13.getShape(), ArrayRef<int64_t>({256, 1024, 7168}));
  EXPECT_TRUE(w13.getElementType().isBF16());
  EXPECT_EQ(function.getArgAttrOfType<StringAttr>(3, "moe.name").getValue(),
            "layers.0.experts.w13");
  EXPECT_EQ(function.getArgAttrOfType<StringAttr>(13, "moe.role").getValue(),
            "output");
  EXPECT_TRUE(
      cast<MemRefType>(function.getArgument(0).getType()).isDynamicDim(0));

  EXPECT_EQ(count<SharedExpertsOp>(function), 2);
  EXPECT_EQ(count<GateOp>(function), 2);
  EXPECT_EQ(count<AddOp>(function), 2);
  EXPECT_EQ(count<memref::DimOp>(function), 1);
  EXPECT_EQ(count<memref::AllocOp>(function),
            count<memref::DeallocOp>(function));
  TopKOp topk;
  function.walk([&](TopKOp op) { topk = op; });
  ASSERT_TRUE(topk);
  EXPECT_EQ(topk.getScoring(), ScoringFunc::sigmoid);
  EXPECT_TRUE(topk.getBias());
  EXPECT_EQ(topk.getNGroup(), 8u);
  EXPECT_EQ(topk.getTopkGroup(), 4u);
  EXPECT_TRUE(topk.getRenormalize());
  EXPECT_EQ(topk.getRoutedScalingFactor().convertToFloat(), 2.5f);

  // The NameLocs name the values.
  std::string named = print(function, OpPrintingFlags().printNameLocAsPrefix());
  EXPECT_NE(named.find("%shared_w13_1: memref<1024x7168xbf16>"),
            std::string::npos)
      << named;
  EXPECT_NE(named.find("%routed0 = memref.alloc(%T)"), std::string::npos)
      << named;

  expectRoundTrip(function, *model);
}

TEST_F(BuilderTest, EveryPresetAndLayout) {
  for (StringRef name : getPresetNames()) {
    std::optional<ModelConfig> model = getPresetConfig(name);
    ASSERT_TRUE(model) << name.str();
    for (bool inplace : {false, true}) {
      LayerOptions options;
      options.tokens = 16384;
      options.tp = 8;
      options.layers = 3;
      options.routedInplace = inplace;
      options.dtype = DType::F16;
      options.functionName = (name + (inplace ? "_inplace" : "")).str();
      for (char &c : options.functionName)
        if (c == '-')
          c = '_';
      func::FuncOp function = build(*model, options);
      ASSERT_TRUE(function) << name.str();
      EXPECT_EQ(count<RoutedExpertsOp>(function), 3);
      expectRoundTrip(function, *model);
    }
  }
}

TEST_F(BuilderTest, ConfigByHandWithoutSharedExperts) {
  ModelConfig model;
  model.source = "test model";
  model.functionStem = "Tiny-MoE";
  model.hiddenSize = 64;
  model.intermediateSize = 32;
  model.numExperts = 8;
  model.topK = 2;
  model.dtype = DType::F32;
  LayerOptions options;
  options.tokens = 5;
  options.routedInplace = true;
  func::FuncOp function = build(model, options);
  ASSERT_TRUE(function);
  EXPECT_EQ(function.getSymName(), "tiny_moe");
  EXPECT_EQ(count<SharedExpertsOp>(function), 0);
  EXPECT_EQ(count<AddOp>(function), 0);
  EXPECT_EQ(count<memref::CopyOp>(function), 1);
  EXPECT_EQ(count<memref::DimOp>(function), 0);
  RoutedExpertsOp routed;
  function.walk([&](RoutedExpertsOp op) { routed = op; });
  ASSERT_TRUE(routed);
  EXPECT_TRUE(routed.getInplace());
  EXPECT_EQ(routed.getHidden(), function.getArgument(0));
  expectRoundTrip(function, model);
}

TEST_F(BuilderTest, ConfigJson) {
  llvm::Expected<ModelConfig> model = parseModelConfig(R"({
    "model_type": "qwen2_moe", "hidden_size": 48,
    "moe_intermediate_size": 20, "num_experts": 6, "num_experts_per_tok": 2,
    "shared_expert_intermediate_size": 40, "torch_dtype": "float16",
    "routed_scaling_factor": 0.1
  })");
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());
  EXPECT_EQ(model->defaults, "Qwen-MoE");
  EXPECT_EQ(model->scoring, Scoring::Softmax);
  EXPECT_FALSE(model->renormalize);
  EXPECT_EQ(model->numExpertsField, "num_experts");
  EXPECT_EQ(model->sharedIntermediateSize, 40);
  EXPECT_EQ(model->dtype, DType::F16);
  EXPECT_EQ(defaultFunctionName(*model), "qwen2_moe");

  LayerOptions options;
  options.tp = 2;
  func::FuncOp function = build(*model, options);
  ASSERT_TRUE(function);
  EXPECT_EQ(count<SharedExpertsOp>(function), 1);
  expectRoundTrip(function, *model);
}

/// The message of parseModelConfig's error for `json`.
std::string parseError(StringRef json) {
  llvm::Expected<ModelConfig> model = parseModelConfig(json, "'c.json'");
  if (model)
    return "(parsed)";
  return llvm::toString(model.takeError());
}

TEST(ParseModelConfig, Errors) {
  EXPECT_EQ(parseError("[1]"), "'c.json': invalid config: the top level must "
                               "be a JSON object");
  EXPECT_EQ(parseError("{\"hidden_size\": 1,"),
            "'c.json': invalid JSON: [1:18, byte=18]: Expected object key");
  EXPECT_EQ(parseError(std::string(300, '[')),
            "'c.json': invalid JSON: nested deeper than 256 levels");
  EXPECT_EQ(parseError("{}"), "'c.json': missing required field 'hidden_size'");
  EXPECT_EQ(parseError(R"({"hidden_size": "7168"})"),
            "'c.json': field 'hidden_size' must be an integer, got \"7168\"");
  EXPECT_EQ(parseError(R"({"hidden_size": 0})"),
            "'c.json': field 'hidden_size' must be a positive integer, got 0");
  EXPECT_EQ(parseError(R"({"hidden_size": 99999999999})"),
            "'c.json': field 'hidden_size' = 99999999999 is too large (at "
            "most 2147483647)");
  std::string sizes = R"("hidden_size": 8, "moe_intermediate_size": 4, )";
  EXPECT_EQ(parseError("{" + sizes + "\"num_experts_per_tok\": 2}"),
            "'c.json': missing required field 'n_routed_experts' (or "
            "'num_experts')");
  sizes += R"("n_routed_experts": 4, "num_experts_per_tok": 2)";
  EXPECT_EQ(parseError("{" + sizes + R"(, "scoring_func": "relu"})"),
            "'c.json': field 'scoring_func' = \"relu\" is not supported "
            "(expected \"softmax\" or \"sigmoid\")");
  EXPECT_EQ(parseError("{" + sizes + R"(, "topk_method": "noaux_tc"})"),
            "'c.json': field 'topk_method' = \"noaux_tc\" (a sigmoid "
            "correction bias) needs 'scoring_func' = \"sigmoid\"");
  EXPECT_EQ(parseError("{" + sizes + R"(, "norm_topk_prob": "yes"})"),
            "'c.json': field 'norm_topk_prob' must be true or false, got "
            "\"yes\"");
  EXPECT_EQ(parseError("{" + sizes + R"(, "routed_scaling_factor": -1})"),
            "'c.json': field 'routed_scaling_factor' must be a positive "
            "finite f32 number, got -1");
  EXPECT_EQ(parseError("{" + sizes + R"(, "torch_dtype": "float8_e4m3fn"})"),
            "'c.json': field 'torch_dtype' = \"float8_e4m3fn\" is not "
            "supported (expected \"bfloat16\", \"float16\" or \"float32\")");
  EXPECT_EQ(parseError("{" + sizes + "}"), "(parsed)");
}

TEST(ParseModelConfig, Presets) {
  EXPECT_EQ(getPresetNames().size(), 3u);
  EXPECT_FALSE(getPresetConfig("deepseek-v4"));
  std::optional<ModelConfig> kimi = getPresetConfig("kimi-k2");
  ASSERT_TRUE(kimi);
  EXPECT_EQ(kimi->numExperts, 384);
  EXPECT_EQ(kimi->routedScalingFactor, 2.827);
  EXPECT_EQ(kimi->sharedIntermediateSize, 2048);
}

TEST_F(BuilderTest, ValidationErrors) {
  ModelConfig model = *getPresetConfig("deepseek-v3");
  LayerOptions options;
  options.tp = 3;
  EXPECT_EQ(llvm::toString(validate(model, options)),
            "preset 'deepseek-v3': moe_intermediate_size = 2048 is not "
            "divisible by --tp 3");
  // buildMoELayer reports the same message and builds nothing.
  EXPECT_TRUE(
      failed(buildMoELayer(builder, builder.getUnknownLoc(), model, options)));
  EXPECT_NE(diagnostics.find("is not divisible by --tp 3"), std::string::npos);
  EXPECT_TRUE(module->getBody()->empty());

  options.tp = 1;
  model.topK = 300;
  EXPECT_EQ(llvm::toString(validate(model, options)),
            "preset 'deepseek-v3': moe.topk: k = 300 exceeds the number of "
            "experts (256) (k is num_experts_per_tok, the number of experts "
            "'n_routed_experts')");
  model.topK = 8;
  model.topkGroup = 9;
  EXPECT_EQ(llvm::toString(validate(model, options)),
            "preset 'deepseek-v3': moe.topk: topk_group = 9 exceeds n_group = "
            "8 (k is num_experts_per_tok, the number of experts "
            "'n_routed_experts')");
  model.topkGroup = 4;
  options.functionName = "1st";
  EXPECT_EQ(llvm::toString(validate(model, options)),
            "preset 'deepseek-v3': invalid function name '1st': expected "
            "[A-Za-z_][A-Za-z0-9_$.]*");
  options.functionName.clear();
  EXPECT_EQ(llvm::toString(validate(model, options)), "");
}

} // namespace
