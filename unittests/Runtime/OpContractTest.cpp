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
    EXPECT_LE(optional, 1) << op.name << ": at most one optional operand";
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
        EXPECT_EQ(op.operands[arg.index].element, Element::Float);
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
                   operand(D::BF16, {256, 7168, 256}),
                   operand(D::BF16, {-1, 7168})},
                  {}, &sizes),
            "");
  EXPECT_EQ(sizes, (Sizes{-1, 7168, 256, 8, 256}));
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
                   operand(D::BF16, {64, 16}), operand(D::BF16, {4, 64})},
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
  EXPECT_EQ(workspaceBytes(routed, {3, 64, 8, 2, 16}, DType::BF16),
            3 * 2 * (8 + 16 * 2 + 64 * 2) + 9 * 4 + 5 * 256);
  // Saturation instead of overflow.
  EXPECT_EQ(workspaceBytes(routed, {INT64_MAX / 2, 64, 8, 2, 16}, DType::BF16),
            -1);
  EXPECT_EQ(workspaceBytes(*findOp("moe.gate"), {3, 64, 8, 0, 0}, DType::BF16),
            0);
}

TEST(OpContractTest, JsonNamesEveryOp) {
  std::string json = toJson();
  for (const OpSpec &op : allOps())
    EXPECT_NE(json.find(std::string("\"name\": \"") + op.name + "\""),
              std::string::npos)
        << op.name;
}

} // namespace
