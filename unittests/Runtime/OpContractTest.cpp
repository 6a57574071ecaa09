//===- OpContractTest.cpp - The op contract's table and checks ------------===//
//
// The table is consistent (every entry point argument names an operand, an
// attribute or a symbol of its op; aliasing rules name an output and an
// input; defaults lie in their ranges), and the checks every consumer shares
// accept the reference shapes and reject each kind of violation with the
// message users see.
//
//===----------------------------------------------------------------------===//
#include "moe-runtime/OpContract.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

using namespace moert::contract;

namespace {

OperandInfo operand(DType dtype, std::vector<int64_t> shape) {
  OperandInfo info;
  info.dtype = dtype;
  info.typeName = dtypeName(dtype);
  info.shape = std::move(shape);
  return info;
}

OperandInfo absent() {
  OperandInfo info;
  info.present = false;
  return info;
}

std::string check(const char *name, const std::vector<OperandInfo> &operands,
                  std::vector<AttrValue> attrs, Sizes *out = nullptr) {
  const OpSpec &op = *findOp(name);
  attrs.resize(op.attrs.size());
  Sizes sizes;
  std::string error = checkOperands(op, operands, attrs, sizes);
  if (out)
    *out = sizes;
  return error;
}

AttrValue intAttr(int64_t i) {
  AttrValue v;
  v.present = true;
  v.i = i;
  return v;
}

TEST(OpContractTest, TheTableIsConsistent) {
  std::set<std::string> names, functions;
  for (const OpSpec &op : allOps()) {
    EXPECT_TRUE(names.insert(op.name).second) << op.name;
    EXPECT_TRUE(functions.insert(op.function).second) << op.function;
    EXPECT_EQ(findOp(op.name), &op);
    int optional = 0;
    for (size_t i = 0; i < op.operands.size(); ++i) {
      const OperandSpec &o = op.operands[i];
      EXPECT_GE(o.rank, 1) << op.name << " " << o.name;
      EXPECT_LE(o.rank, kMaxRank);
      EXPECT_LT(o.sameDTypeAs, int(i)) << "a dtype follows an earlier operand";
      optional += o.optional;
      for (int d = 0; d < o.rank; ++d)
        EXPECT_TRUE(o.dims[d].factor == 1 || o.dims[d].why)
            << op.name << " " << o.name << ": a multiple needs its reason";
    }
    // Optional operands come as one group (verifiers and lowerings find
    // them by operand count): one operand, or the scales of the weights.
    int scales = 0;
    for (const OperandSpec &o : op.operands)
      if (o.scales >= 0) {
        ++scales;
        EXPECT_EQ(o.element, Element::Weight) << op.name << " " << o.name;
        EXPECT_TRUE(op.operands[size_t(o.scales)].optional) << op.name;
        EXPECT_EQ(op.operands[size_t(o.scales)].element, Element::F32);
      }
    EXPECT_TRUE(optional <= 1 || optional == scales)
        << op.name << ": optional operands are one operand or the scales";
    for (const AttrSpec &a : op.attrs) {
      if (a.kind == AttrKind::Int && a.hasDefault) {
        EXPECT_GE(a.defaultValue, a.min) << op.name << " " << a.name;
      }
      if (a.kind == AttrKind::Float && a.positive) {
        EXPECT_GT(a.defaultValue, 0) << op.name << " " << a.name;
      }
    }
    for (const AliasRule &r : op.aliases) {
      EXPECT_EQ(op.operands[r.output].role, Role::Output);
      EXPECT_EQ(op.operands[r.input].role, Role::Input);
      if (r.kind == Alias::InPlaceIff) {
        EXPECT_EQ(op.attrs[r.attr].kind, AttrKind::Unit);
      }
    }
    // A workspace argument exactly when there is a workspace formula; every
    // operand reaches the runtime as a pointer, every symbol its shapes use
    // as a size.
    bool workspaceArg = false;
    for (const AbiArg &arg : op.abi)
      workspaceArg |= arg.kind == AbiArg::Workspace;
    EXPECT_EQ(workspaceArg, op.workspace != nullptr) << op.name;
    std::vector<bool> passed(op.operands.size(), false);
    std::set<Sym> symbols;
    for (const AbiArg &arg : op.abi) {
      if (arg.kind == AbiArg::Pointer || arg.kind == AbiArg::DTypeOf) {
        ASSERT_LT(size_t(arg.index), op.operands.size());
      }
      if (arg.kind == AbiArg::Pointer)
        passed[arg.index] = true;
      if (arg.kind == AbiArg::DTypeOf) {
        EXPECT_TRUE(op.operands[arg.index].element == Element::Float ||
                    op.operands[arg.index].element == Element::Weight);
      }
      if (arg.kind == AbiArg::Attribute) {
        ASSERT_LT(size_t(arg.index), op.attrs.size());
      }
      if (arg.kind == AbiArg::Size)
        symbols.insert(arg.sym);
    }
    for (size_t i = 0; i < op.operands.size(); ++i) {
      EXPECT_TRUE(passed[i]) << op.name << " " << op.operands[i].name;
      for (int d = 0; d < op.operands[i].rank; ++d)
        EXPECT_TRUE(symbols.count(op.operands[i].dims[d].sym))
            << op.name << ": " << symName(op.operands[i].dims[d].sym)
            << " is not an argument";
    }
  }
}

TEST(OpContractTest, OneDTypeEnum) {
  for (int i = 0; i < kNumDTypes; ++i)
    EXPECT_EQ(parseDType(dtypeName(DType(i))), DType(i));
  EXPECT_FALSE(parseDType("f64").has_value());
  EXPECT_EQ(dtypeBytes(DType::BF16), 2);
  EXPECT_EQ(dtypeBytes(DType::I32), 4);
  EXPECT_TRUE(accepts(Element::Float, DType::F16));
  EXPECT_FALSE(accepts(Element::Float, DType::I32));
}

TEST(OpContractTest, ShapesBindEverySymbolOnce) {
  using D = DType;
  Sizes sizes;
  // DeepSeek-V3-like routed experts at TP=8, dynamic T.
  EXPECT_EQ(check("moe.routed_experts",
                  {operand(D::BF16, {-1, 7168}), operand(D::I32, {-1, 8}),
                   operand(D::F32, {-1, 8}), operand(D::BF16, {256, 512, 7168}),
                   operand(D::BF16, {256, 7168, 256}), absent(), absent(),
                   operand(D::BF16, {-1, 7168})},
                  {}, &sizes),
            "");
  EXPECT_EQ(sizes, (Sizes{-1, 7168, 256, 8, 256}));
  // Its fp8 form: e4m3 weights with one f32 scale per 128 x 128 block.
  std::vector<OperandInfo> fp8 = {
      operand(D::BF16, {-1, 7168}),          operand(D::I32, {-1, 8}),
      operand(D::F32, {-1, 8}),              operand(D::F8E4M3, {256, 512, 7168}),
      operand(D::F8E4M3, {256, 7168, 256}), operand(D::F32, {256, 4, 56}),
      operand(D::F32, {256, 56, 2}),         operand(D::BF16, {-1, 7168})};
  EXPECT_EQ(check("moe.routed_experts", fp8, {}), "");
  fp8[5] = operand(D::F32, {256, 4, 55});
  EXPECT_EQ(check("moe.routed_experts", fp8, {}),
            "'w13_scale' must have one scale per block: dimension 2 is 55, "
            "expected 56 (7168 / 128)");
  fp8[5] = operand(D::F32, {256, 3, 56});
  EXPECT_EQ(check("moe.routed_experts", fp8, {}),
            "'w13_scale' must have one scale per block: dimension 1 is 3, "
            "expected 4 (2 x 256 / 128)");
  fp8[5] = absent();
  EXPECT_EQ(check("moe.routed_experts", fp8, {}),
            "'w13' is f8E4M3FN and needs its block scales 'w13_scale'");
  fp8[5] = operand(D::F32, {256, 4, 56});
  fp8[4] = operand(D::BF16, {256, 7168, 256});
  EXPECT_EQ(check("moe.routed_experts", fp8, {}),
            "'w2_scale' is given but 'w2' is bf16; block scales belong to "
            "f8E4M3FN weights");
  EXPECT_EQ(check("moe.gate",
                  {operand(D::BF16, {4, 64}), operand(D::BF16, {8, 32}),
                   operand(D::F32, {4, 8})},
                  {}),
            "hidden size mismatch: 'hidden' has 64 (dimension 1) but "
            "'gate_weight' has 32 (dimension 1)");
  EXPECT_EQ(check("moe.gate",
                  {operand(D::BF16, {4, -1}), operand(D::BF16, {8, 32}),
                   operand(D::F32, {4, 8})},
                  {}),
            "hidden size must be static: dimension 1 of 'hidden' is dynamic");
  EXPECT_EQ(check("moe.shared_experts",
                  {operand(D::BF16, {4, 64}), operand(D::BF16, {30, 64}),
                   operand(D::BF16, {64, 16}), absent(), absent(),
                   operand(D::BF16, {4, 64})},
                  {}),
            "'w13' must stack gate and up rows: dimension 0 is 30, expected "
            "2 x 16 (the intermediate size of 'w2')");
  EXPECT_EQ(check("moe.add",
                  {operand(D::BF16, {4, 64}), operand(D::F32, {4, 64}),
                   operand(D::BF16, {4, 64})},
                  {}),
            "element types of 'lhs' ('bf16') and 'rhs' ('f32') must match");
  EXPECT_EQ(check("moe.gate",
                  {operand(D::I32, {4, 64}), operand(D::BF16, {8, 64}),
                   operand(D::F32, {4, 8})},
                  {}),
            "'hidden' must have element type bf16, f16 or f32, got 'i32'");
}

TEST(OpContractTest, AttributesAndRules) {
  using D = DType;
  std::vector<OperandInfo> topk = {operand(D::F32, {4, 8}), OperandInfo(),
                                   operand(D::I32, {4, 2}),
                                   operand(D::F32, {4, 2})};
  topk[1].present = false;
  AttrValue softmax = intAttr(0), sigmoid = intAttr(1);
  EXPECT_EQ(check("moe.topk", topk, {softmax, intAttr(2)}), "");
  EXPECT_EQ(check("moe.topk", topk, {softmax, intAttr(3)}),
            "'topk_ids' must have k = 3 columns, but has 2");
  EXPECT_EQ(check("moe.topk", topk, {softmax, intAttr(2), intAttr(3)}),
            "n_group = 3 must divide the number of experts (8)");
  EXPECT_EQ(check("moe.topk", topk, {softmax, intAttr(2), intAttr(0)}),
            "n_group must be at least 1, got 0");
  EXPECT_EQ(check("moe.topk", topk,
                  {sigmoid, intAttr(2), intAttr(8), intAttr(8)}),
            "sigmoid group scores sum the two best experts of a group, so "
            "each of the n_group = 8 groups needs at least 2 experts");
  AttrValue scale;
  scale.present = true;
  scale.f = -1;
  EXPECT_EQ(check("moe.topk", topk,
                  {softmax, intAttr(2), AttrValue(), AttrValue(), AttrValue(),
                   scale}),
            "routed_scaling_factor must be positive and finite, got -1");
  topk[1] = operand(D::F32, {8});
  EXPECT_EQ(check("moe.topk", topk, {softmax, intAttr(2)}),
            "a correction 'bias' requires sigmoid scoring");
  EXPECT_EQ(check("moe.topk", topk, {sigmoid, intAttr(2)}), "");
}

TEST(OpContractTest, RuntimeCallsAndWorkspaces) {
  const OpSpec &routed = *findOp("moe.routed_experts");
  std::vector<int32_t> bf16(routed.operands.size(), int32_t(DType::BF16));
  std::vector<bool> present(routed.operands.size(), true);
  present[size_t(routed.operandIndex("w13_scale"))] = false;
  present[size_t(routed.operandIndex("w2_scale"))] = false;
  std::vector<AttrValue> attrs;
  EXPECT_EQ(checkCall(routed, {3, 64, 8, 2, 16}, bf16, present, attrs), "");
  EXPECT_EQ(checkCall(routed, {-1, 64, 8, 2, 16}, bf16, present, attrs),
            "T must be non-negative, got -1");
  EXPECT_EQ(checkCall(routed, {3, 64, 8, 9, 16}, bf16, present, attrs),
            "k = 9 exceeds the number of experts (8)");
  std::vector<int32_t> bad = bf16;
  bad[0] = 7;
  EXPECT_EQ(checkCall(routed, {3, 64, 8, 2, 16}, bad, present, attrs),
            "dtype must be MOERT_BF16, MOERT_F16 or MOERT_F32, got 7");
  // The formula: T*K*(8 + I*B + C*B) + (E+1)*4 + 5*256.
  OperandTypes types = callTypes(routed, bf16, present);
  EXPECT_EQ(workspaceBytes(routed, {3, 64, 8, 2, 16}, types),
            3 * 2 * (8 + 16 * 2 + 64 * 2) + 9 * 4 + 5 * 256);
  // Saturation instead of overflow.
  EXPECT_EQ(workspaceBytes(routed, {INT64_MAX / 2, 64, 8, 2, 16}, types), -1);
  EXPECT_EQ(workspaceBytes(*findOp("moe.gate"), {3, 64, 8, 0, 0}, types), 0);
}

TEST(OpContractTest, Fp8WeightsComeWithTheirBlockScales) {
  const OpSpec &routed = *findOp("moe.routed_experts");
  const int w13 = routed.operandIndex("w13"), w13Scale =
                                                  routed.operandIndex("w13_scale");
  std::vector<int32_t> codes(routed.operands.size(), int32_t(DType::BF16));
  codes[size_t(w13)] = int32_t(DType::F8E4M3);
  std::vector<bool> present(routed.operands.size(), true);
  std::vector<AttrValue> attrs;
  // Both weights take the one weight_dtype; the scales are f32.
  OperandTypes types = callTypes(routed, codes, present);
  EXPECT_EQ(types[size_t(routed.operandIndex("w2"))], DType::F8E4M3);
  EXPECT_EQ(types[size_t(w13Scale)], DType::F32);
  EXPECT_EQ(checkCall(routed, {3, 256, 8, 2, 128}, codes, present, attrs), "");
  // The fp8 formula: T*(H + 4*G(H)) + T*K*(8 + I + 4*G(I) + 2*C) + (E+1)*4
  // + 8*256.
  EXPECT_EQ(workspaceBytes(routed, {3, 256, 8, 2, 128}, types),
            3 * (256 + 4 * 2) + 3 * 2 * (8 + 128 + 4 * 1 + 2 * 256) + 9 * 4 +
                8 * 256);
  EXPECT_EQ(checkCall(routed, {3, 200, 8, 2, 128}, codes, present, attrs),
            "'w13_scale' holds one scale per 128 x 128 block of 'w13', so its "
            "hidden size (200) must be a multiple of 128");
  EXPECT_EQ(checkCall(routed, {3, 256, 8, 2, 192}, codes, present, attrs),
            "'w2_scale' holds one scale per 128 x 128 block of 'w2', so its "
            "intermediate size (192) must be a multiple of 128");
  std::vector<bool> noScales = present;
  noScales[size_t(w13Scale)] = false;
  EXPECT_EQ(checkCall(routed, {3, 256, 8, 2, 128}, codes, noScales, attrs),
            "'w13' is f8E4M3FN and needs its block scales 'w13_scale'");
  std::vector<int32_t> f16 = codes;
  f16[0] = int32_t(DType::F16);
  EXPECT_EQ(checkCall(routed, {3, 256, 8, 2, 128}, f16, present, attrs),
            "f8E4M3FN weights need a bf16 'hidden' (activations are quantized "
            "from bf16), got f16");
  std::vector<int32_t> bf16(routed.operands.size(), int32_t(DType::BF16));
  EXPECT_EQ(checkCall(routed, {3, 256, 8, 2, 128}, bf16, present, attrs),
            "'w13_scale' is given but 'w13' is bf16; block scales belong to "
            "f8E4M3FN weights");
  // fp8 is a weight format, not an activation type.
  std::vector<int32_t> fp8Hidden = codes;
  fp8Hidden[0] = int32_t(DType::F8E4M3);
  EXPECT_EQ(checkCall(routed, {3, 256, 8, 2, 128}, fp8Hidden, present, attrs),
            "dtype must be MOERT_BF16, MOERT_F16 or MOERT_F32, got 4");
}

TEST(OpContractTest, JsonNamesEveryOp) {
  std::string json = toJson();
  for (const OpSpec &op : allOps())
    EXPECT_NE(json.find(std::string("\"name\": \"") + op.name + "\""),
              std::string::npos)
        << op.name;
}

} // namespace
