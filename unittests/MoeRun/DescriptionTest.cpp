//===- DescriptionTest.cpp - Parsing and checking module descriptions -----===//

#include "Arguments.h"
#include "Description.h"
#include "TestDescriptions.h"

#include <cmath>

#include "gtest/gtest.h"

using namespace moerun;
using moerun_test::DescriptionBuilder;

namespace {

const char *kDeepSeekLike =
    R"({"version": 1, "function": "deepseek_v3_moe", "token_count": null,
 "optimized": true,
 "planned_peak_bytes": {"per_token": 30912, "constant": 2368},
 "args": [{"name": "hidden_states", "role": "input", "dtype": "bf16", "shape": [-1, 64]},
          {"name": "layers.0.gate.weight", "role": "weight", "dtype": "bf16", "shape": [8, 64]},
          {"name": "layers.0.gate.e_score_correction_bias", "role": "weight", "dtype": "f32", "shape": [8]},
          {"name": "layers.0.experts.w13", "role": "weight", "dtype": "bf16", "shape": [8, 32, 64]},
          {"name": "layers.0.experts.w2", "role": "weight", "dtype": "bf16", "shape": [8, 64, 16]},
          {"name": "layers.0.shared_experts.w13", "role": "weight", "dtype": "bf16", "shape": [32, 64]},
          {"name": "layers.0.shared_experts.w2", "role": "weight", "dtype": "bf16", "shape": [64, 16]},
          {"name": "output", "role": "output", "dtype": "bf16", "shape": [-1, 64]}],
 "buffers": [{"dtype": "f32", "shape": [-1, 8]}, {"dtype": "i32", "shape": [-1, 2]},
             {"dtype": "f32", "shape": [-1, 2]}, {"dtype": "bf16", "shape": [-1, 64]},
             {"dtype": "bf16", "shape": [-1, 64]}],
 "ops": [{"op": "moe.gate", "operands": [{"arg": 0}, {"arg": 1}, {"buffer": 0}], "attrs": {}},
         {"op": "moe.topk", "operands": [{"buffer": 0}, {"arg": 2}, {"buffer": 1}, {"buffer": 2}],
          "attrs": {"scoring": "sigmoid", "k": 2, "n_group": 4, "topk_group": 2, "renormalize": true,
                    "routed_scaling_factor": 2.5, "has_bias": true}},
         {"op": "moe.routed_experts", "operands": [{"arg": 0}, {"buffer": 1}, {"buffer": 2}, {"arg": 3}, {"arg": 4}, {"buffer": 3}],
          "attrs": {"inplace": false}},
         {"op": "moe.shared_experts", "operands": [{"arg": 0}, {"arg": 5}, {"arg": 6}, {"buffer": 4}], "attrs": {}},
         {"op": "moe.add", "operands": [{"buffer": 3}, {"buffer": 4}, {"arg": 7}], "attrs": {"scale": 1.0}}]})";

std::string parseError(const std::string &text) {
  ModuleDescription d;
  std::string error;
  EXPECT_FALSE(parseDescription(text, d, error)) << text;
  return error;
}

/// kDeepSeekLike with `from` replaced by `to` (once).
std::string edited(const std::string &from, const std::string &to) {
  std::string s = kDeepSeekLike;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

TEST(DescriptionTest, ParsesTheDocumentedFormat) {
  ModuleDescription d;
  std::string error;
  ASSERT_TRUE(parseDescription(kDeepSeekLike, d, error)) << error;
  EXPECT_EQ(d.function, "deepseek_v3_moe");
  EXPECT_FALSE(d.tokenCount);
  ASSERT_TRUE(d.optimized);
  EXPECT_TRUE(*d.optimized);
  ASSERT_TRUE(d.plannedPeak);
  EXPECT_EQ(d.plannedPeak->perToken, 30912);
  EXPECT_EQ(d.plannedPeak->constant, 2368);
  ASSERT_EQ(d.args.size(), 8u);
  EXPECT_EQ(d.args[2].name, "layers.0.gate.e_score_correction_bias");
  EXPECT_EQ(d.args[2].role, Role::Weight);
  EXPECT_EQ(d.args[2].dtype, DType::F32);
  EXPECT_EQ(d.args[7].role, Role::Output);
  EXPECT_EQ(typeString(d.args[0]), "?x64xbf16");
  EXPECT_EQ(d.buffers.size(), 5u);
  ASSERT_EQ(d.ops.size(), 5u);
  EXPECT_EQ(d.ops[1].name, "moe.topk");
  EXPECT_EQ(d.ops[1].operands.size(), 4u);
  EXPECT_FALSE(d.ops[1].operands[0].isArg);
  int64_t bytes;
  ASSERT_TRUE(byteSize(d.args[0], 10, bytes));
  EXPECT_EQ(bytes, 10 * 64 * 2);
  EXPECT_EQ(operandString(d, d.ops[0].operands[1]),
            "arg 1 'layers.0.gate.weight'");

  std::vector<TypedOp> ops;
  ASSERT_TRUE(analyzeOps(d, 10, ops, error)) << error;
  EXPECT_EQ(ops[0].kind, OpKind::Gate);
  EXPECT_EQ(ops[0].H, 64);
  EXPECT_EQ(ops[0].E, 8);
  EXPECT_EQ(ops[1].scoring, Scoring::Sigmoid);
  EXPECT_EQ(ops[1].K, 2);
  EXPECT_EQ(ops[1].nGroup, 4);
  EXPECT_EQ(ops[1].topkGroup, 2);
  EXPECT_TRUE(ops[1].hasBias);
  EXPECT_TRUE(ops[1].renormalize);
  EXPECT_EQ(ops[1].routedScalingFactor, 2.5);
  EXPECT_EQ(ops[2].I, 16);
  EXPECT_EQ(ops[3].I, 16);
  EXPECT_EQ(ops[4].scale, 1.0);
}

TEST(DescriptionTest, RejectsMalformedDescriptions) {
  EXPECT_EQ(parseError(""), "the description is empty");
  EXPECT_EQ(parseError("{\"version\": 1,"),
            "malformed JSON: line 1, column 15: unexpected end of input in "
            "an object");
  EXPECT_EQ(parseError("[]"), "the description: expected an object, got an "
                              "array");
  EXPECT_EQ(parseError("{}"), "the description: missing \"version\"");
  EXPECT_EQ(parseError(edited("\"version\": 1", "\"version\": 2")),
            "version: unsupported module description version 2 (this "
            "moe-run reads version 1; rebuild moe-run or the module)");
  EXPECT_EQ(parseError(edited("\"version\": 1", "\"version\": \"1\"")),
            "version: expected an integer, got a string");
  EXPECT_EQ(parseError(edited("\"function\": \"deepseek_v3_moe\", ", "")),
            "the description: missing \"function\"");
  EXPECT_EQ(parseError(edited("\"token_count\": null", "\"token_count\": -4")),
            "token_count: must be >= 0 or null, got -4");
  EXPECT_EQ(parseError(edited("\"token_count\": null", "\"token_count\": 1.5")),
            "token_count: expected an integer, got 1.5");
  EXPECT_EQ(parseError(edited("\"role\": \"input\"", "\"role\": \"inout\"")),
            "args[0].role: unknown role \"inout\" (expected input, weight "
            "or output)");
  EXPECT_EQ(parseError(edited("\"dtype\": \"bf16\"", "\"dtype\": \"fp8\"")),
            "args[0].dtype: unknown dtype \"fp8\" (expected bf16, f16, f32, "
            "i32 or f8e4m3)");
  EXPECT_EQ(parseError(edited("[-1, 64]", "[-2, 64]")),
            "args[0].shape[0]: a size must be >= 0 or -1 (the token count), "
            "got -2");
  EXPECT_EQ(parseError(edited("{\"buffer\": 0}", "{\"buffer\": 9}")),
            "ops[0].operands[2]: buffer index 9 is out of range (the "
            "description has 5)");
  EXPECT_EQ(parseError(edited("{\"buffer\": 0}", "{\"buf\": 0}")),
            "ops[0].operands[2]: expected {\"arg\": N} or {\"buffer\": N}");
  EXPECT_EQ(parseError(edited("\"per_token\": 30912, ", "")),
            "planned_peak_bytes: expected \"per_token\" and \"constant\"");
  EXPECT_EQ(parseError(edited("\"args\": [", "\"args\": 3, \"x\": [")),
            "args: expected an array, got a number");
}

std::string analyzeError(const std::string &text, int64_t T = 4) {
  ModuleDescription d;
  std::string error;
  EXPECT_TRUE(parseDescription(text, d, error)) << error;
  std::vector<TypedOp> ops;
  EXPECT_FALSE(analyzeOps(d, T, ops, error));
  return error;
}

TEST(DescriptionTest, ChecksOpsAgainstTheirSemantics) {
  EXPECT_EQ(analyzeError(edited("\"k\": 2", "\"k\": 3")),
            "op 1 (moe.topk): 'topk_ids' must have k = 3 columns, but has 2");
  EXPECT_EQ(analyzeError(edited("\"topk_group\": 2", "\"topk_group\": 5")),
            "op 1 (moe.topk): topk_group = 5 exceeds n_group = 4");
  EXPECT_EQ(analyzeError(edited("\"n_group\": 4", "\"n_group\": 3")),
            "op 1 (moe.topk): n_group = 3 must divide the number of experts (8)");
  EXPECT_EQ(analyzeError(edited("\"has_bias\": true", "\"has_bias\": false")),
            "op 1 (moe.topk): attribute \"has_bias\" is false but the op has "
            "4 operands");
  EXPECT_EQ(
      analyzeError(edited("\"scoring\": \"sigmoid\"", "\"scoring\": \"relu\"")),
      "op 1 (moe.topk): attribute \"scoring\" must be \"softmax\" or "
      "\"sigmoid\", got \"relu\"");
  EXPECT_EQ(analyzeError(edited("\"inplace\": false", "\"inplace\": true")),
            "op 2 (moe.routed_experts): inplace, but the output is not the "
            "hidden operand");
  EXPECT_EQ(analyzeError(edited("[8, 64, 16]", "[8, 64, 15]")),
            "op 2 (moe.routed_experts): 'w13' must stack gate and up rows: "
            "dimension 1 is 32, expected 2 x 15 (the intermediate size of "
            "'w2')");
  EXPECT_EQ(analyzeError(edited("[8, 64]", "[8, 65]")),
            "op 0 (moe.gate): hidden size mismatch: 'hidden' has 64 "
            "(dimension 1) but 'gate_weight' has 65 (dimension 1)");
  EXPECT_EQ(analyzeError(edited("\"dtype\": \"i32\"", "\"dtype\": \"f32\"")),
            "op 1 (moe.topk): 'topk_ids' must have element type i32, got "
            "'f32'");
  EXPECT_EQ(analyzeError(edited("\"op\": \"moe.add\"", "\"op\": \"moe.mul\"")),
            "op 4 (moe.mul): unknown op (the reference checker knows "
            "moe.gate, moe.topk, moe.routed_experts, moe.shared_experts, "
            "moe.add, moe.all_reduce and memref.copy)");
  EXPECT_EQ(
      analyzeError(edited("{\"buffer\": 3}, {\"buffer\": 4}, {\"arg\": 7}",
                          "{\"buffer\": 3}, {\"buffer\": 4}")),
      "op 4 (moe.add): expected 3 operands, got 2");
  // A static first dimension must be the token count.
  EXPECT_EQ(
      analyzeError(edited("\"shape\": [-1, 64]}", "\"shape\": [5, 64]}"), 4),
      "op 0 (moe.gate): token count mismatch: 'hidden' has 5 (dimension 0) "
      "but 'logits' has 4 (dimension 0)");
}

TEST(DescriptionTest, WrittenOperands) {
  ModuleDescription d;
  std::string error;
  ASSERT_TRUE(parseDescription(kDeepSeekLike, d, error));
  EXPECT_EQ(writtenOperands(d.ops[0]), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(writtenOperands(d.ops[1]),
            (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(writtenOperands(d.ops[2]),
            (std::vector<bool>{false, false, false, false, false, true}));
  OpDesc inplace = d.ops[2];
  inplace.operands[5] = inplace.operands[0];
  inplace.attrs.object[0].second.boolean = true;
  EXPECT_EQ(writtenOperands(inplace),
            (std::vector<bool>{true, false, false, false, false, true}));
  OpDesc unknown = d.ops[0];
  unknown.name = "linalg.generic";
  EXPECT_EQ(writtenOperands(unknown), (std::vector<bool>{true, true, true}));
}

/// Routed and shared experts with fp8 weights, named so that nothing can be
/// inferred from the names; `scales` false leaves the scales out.
DescriptionBuilder fp8Experts(bool scales = true,
                              const std::string &weightType = "f8e4m3") {
  DescriptionBuilder b;
  auto x = b.arg("x", "input", "bf16", "-1, 256");
  auto ids = b.arg("p", "input", "i32", "-1, 2");
  auto w = b.arg("q", "input", "f32", "-1, 2");
  auto w13 = b.arg("A", "weight", weightType, "4, 256, 256");
  auto w2 = b.arg("B", "weight", weightType, "4, 256, 128");
  auto s13 = b.arg("C", "weight", "f32", "4, 2, 2");
  auto s2 = b.arg("D", "weight", "f32", "4, 2, 1");
  auto sw13 = b.arg("E", "weight", weightType, "256, 256");
  auto sw2 = b.arg("F", "weight", weightType, "256, 128");
  auto ss13 = b.arg("G", "weight", "f32", "2, 2");
  auto ss2 = b.arg("H", "weight", "f32", "2, 1");
  auto out = b.arg("out", "output", "bf16", "-1, 256");
  auto routed = b.buffer("bf16", "-1, 256");
  if (scales) {
    b.op("moe.routed_experts", {x, ids, w, w13, w2, s13, s2, routed},
         R"({"has_w13_scale": true, "has_w2_scale": true})");
    b.op("moe.shared_experts", {routed, sw13, sw2, ss13, ss2, out});
  } else {
    b.op("moe.routed_experts", {x, ids, w, w13, w2, routed});
    b.op("moe.shared_experts", {routed, sw13, sw2, out});
  }
  return b;
}

TEST(DescriptionTest, Fp8ExpertOps) {
  ModuleDescription d = fp8Experts().parse();
  std::vector<TypedOp> ops;
  std::string error;
  ASSERT_TRUE(analyzeOps(d, 5, ops, error)) << error;
  // Where the weights, their scales and the output are among the operands.
  EXPECT_TRUE(ops[0].fp8);
  EXPECT_EQ(ops[0].H, 256);
  EXPECT_EQ(ops[0].I, 128);
  EXPECT_EQ(ops[0].K, 2);
  EXPECT_EQ(std::vector<int>({ops[0].hidden, ops[0].w13, ops[0].w2,
                              ops[0].w13Scale, ops[0].w2Scale, ops[0].output}),
            std::vector<int>({0, 3, 4, 5, 6, 7}));
  EXPECT_TRUE(ops[1].fp8);
  EXPECT_EQ(std::vector<int>({ops[1].hidden, ops[1].w13, ops[1].w2,
                              ops[1].w13Scale, ops[1].w2Scale, ops[1].output}),
            std::vector<int>({0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(writtenOperands(d.ops[0]),
            (std::vector<bool>{false, false, false, false, false, false,
                               false, true}));

  // The scales' owners, from the contract (OperandSpec::scales).
  EXPECT_EQ(fp8ScalesOf(d), (std::vector<int64_t>{-1, -1, -1, -1, -1, 3, 4,
                                                  -1, -1, 7, 8, -1}));
  // What each argument gets: the weights block-quantized, their scales on
  // the weights' streams, the routing tables as routing tables.
  std::vector<ArgumentData> data = argumentData(d, &ops);
  using Kind = Distribution::Kind;
  EXPECT_EQ(data[3].dist.kind, Kind::Fp8Weight);
  EXPECT_EQ(data[3].stream, "A");
  EXPECT_EQ(data[3].dist.rows, 256);
  EXPECT_EQ(data[3].dist.cols, 256);
  EXPECT_EQ(data[3].dist.block, 128);
  EXPECT_EQ(data[3].dist.stddev, 1 / 16.0);
  for (size_t scale : {5, 6, 9, 10}) {
    size_t weight = scale - 2;
    SCOPED_TRACE(d.args[scale].name);
    EXPECT_EQ(data[scale].dist.kind, Kind::Fp8Scale);
    EXPECT_EQ(data[scale].stream, d.args[weight].name);
    EXPECT_EQ(data[scale].dist.rows, data[weight].dist.rows);
    EXPECT_EQ(data[scale].dist.cols, data[weight].dist.cols);
    EXPECT_EQ(data[scale].dist.stddev, data[weight].dist.stddev);
  }
  EXPECT_EQ(data[4].dist.stddev, 1 / std::sqrt(128.0));
  EXPECT_EQ(data[1].dist.kind, Kind::DistinctIds);
  EXPECT_EQ(data[2].dist.kind, Kind::Uniform);
  EXPECT_EQ(data[0].dist.kind, Kind::Normal);
  EXPECT_EQ(data[11].dist.kind, Kind::Poison);
  // Without the ops understood, the fp8 pairs still hold (they come from
  // the description's ops through the contract).
  std::vector<ArgumentData> blind = argumentData(d, nullptr);
  EXPECT_EQ(blind[5].dist.kind, Kind::Fp8Scale);
  EXPECT_EQ(blind[5].stream, "A");

  // bf16 weights: no scales.
  ModuleDescription plain = fp8Experts(false, "bf16").parse();
  ASSERT_TRUE(analyzeOps(plain, 5, ops, error)) << error;
  EXPECT_FALSE(ops[0].fp8);
  EXPECT_EQ(ops[0].w13Scale, -1);
  EXPECT_EQ(ops[0].output, 5);
  EXPECT_EQ(ops[1].output, 3);
  EXPECT_EQ(fp8ScalesOf(plain), std::vector<int64_t>(12, -1));

  // The contract's rules: fp8 weights need their scales, and only they
  // have scales.
  ModuleDescription noScales = fp8Experts(false).parse();
  EXPECT_FALSE(analyzeOps(noScales, 5, ops, error));
  EXPECT_EQ(error, "op 0 (moe.routed_experts): 'w13' is f8E4M3FN and needs "
                   "its block scales 'w13_scale'");
  ModuleDescription extra = fp8Experts(true, "bf16").parse();
  EXPECT_FALSE(analyzeOps(extra, 5, ops, error));
  EXPECT_EQ(error, "op 0 (moe.routed_experts): 'w13_scale' is given but 'w13' "
                   "is bf16; block scales belong to f8E4M3FN weights");
}

TEST(DescriptionTest, Builder) {
  DescriptionBuilder b("f", "3");
  auto x = b.arg("x", "input", "f32", "3, 4");
  auto y = b.arg("y", "output", "f32", "3, 4");
  b.op("memref.copy", {x, y});
  ModuleDescription d = b.parse();
  EXPECT_EQ(*d.tokenCount, 3);
  std::vector<TypedOp> ops;
  std::string error;
  EXPECT_TRUE(analyzeOps(d, 3, ops, error)) << error;
}

} // namespace
