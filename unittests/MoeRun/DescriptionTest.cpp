//===- DescriptionTest.cpp - Parsing and checking module descriptions -----===//

#include "Description.h"
#include "TestDescriptions.h"

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
            "args[0].dtype: unknown dtype \"fp8\" (expected bf16, f16, f32 "
            "or i32)");
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
            "moe.add and memref.copy)");
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
