//===- ReferenceTest.cpp - The reference of --check -----------------------===//
//
// Hand-checked routing, agreement with the runtime's CPU backend on random
// layers (the runtime and the reference share no code), near-tie handling,
// in-place ops and copies, and errors.
//
//===----------------------------------------------------------------------===//

#include "Arguments.h"
#include "Reference.h"
#include "ReferenceInterpreter.h"
#include "TestDescriptions.h"

#include "moe-runtime/moe_runtime.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <vector>

using namespace moerun;
using moerun_test::DescriptionBuilder;

namespace {

struct Data {
  ModuleDescription d;
  std::vector<TypedOp> ops;
  int64_t T = 0;
  std::vector<std::vector<unsigned char>> args;

  Data(const DescriptionBuilder &b, int64_t T) : d(b.parse()), T(T) {
    std::string error;
    if (!analyzeOps(d, T, ops, error))
      throw std::runtime_error(error);
    args.resize(d.args.size());
    for (size_t i = 0; i < d.args.size(); ++i) {
      int64_t bytes;
      byteSize(d.args[i], T, bytes);
      args[i].assign(size_t(bytes), 0);
    }
  }

  /// Fills every argument as moe-run does (Arguments.h).
  void randomize(uint64_t seed) {
    std::vector<ArgumentData> data = argumentData(d, &ops);
    for (size_t i = 0; i < d.args.size(); ++i) {
      int64_t n;
      elementCount(d.args[i].shape, T, n);
      fill(args[i].data(), d.args[i].dtype, n, data[i].dist,
           streamKey(seed, data[i].stream));
    }
  }

  template <typename V> void set(size_t arg, const std::vector<V> &values) {
    ASSERT_EQ(values.size() * dtypeBytes(d.args[arg].dtype), args[arg].size());
    for (size_t k = 0; k < values.size(); ++k)
      storeElement(args[arg].data(), d.args[arg].dtype, int64_t(k),
                   double(values[k]));
  }

  /// Runs the ops through the runtime's CPU backend, in place on `args`.
  void runOnRuntime() {
    moert_context *ctx = nullptr;
    ASSERT_EQ(moert_context_create(MOERT_BACKEND_CPU, 0, &ctx), MOERT_SUCCESS);
    moert_set_current_context(ctx);
    std::vector<std::vector<unsigned char>> buffers(d.buffers.size());
    for (size_t i = 0; i < d.buffers.size(); ++i) {
      int64_t bytes;
      byteSize(d.buffers[i], T, bytes);
      buffers[i].assign(size_t(bytes) + 16, 0xff);
    }
    auto dt = [](DType t) {
      return t == DType::BF16     ? MOERT_BF16
             : t == DType::F16    ? MOERT_F16
             : t == DType::F8E4M3 ? MOERT_F8E4M3
                                  : MOERT_F32;
    };
    for (const TypedOp &op : ops) {
      auto p = [&](size_t k) -> void * {
        const Operand &o = op.operands[k];
        return o.isArg ? (void *)args[size_t(o.index)].data()
                       : (void *)buffers[size_t(o.index)].data();
      };
      auto t = [&](size_t k) { return dt(d.tensor(op.operands[k]).dtype); };
      auto scales = [&](int k) -> const float * {
        return k < 0 ? nullptr : (const float *)p(size_t(k));
      };
      switch (op.kind) {
      case OpKind::Gate:
        moert_gate(p(0), t(0), p(1), t(1), (float *)p(2), T, op.H, op.E);
        break;
      case OpKind::TopK: {
        size_t ids = op.hasBias ? 2 : 1;
        moert_topk((float *)p(0), op.hasBias ? (float *)p(1) : nullptr,
                   (int32_t *)p(ids), (float *)p(ids + 1), T, op.E, op.K,
                   op.scoring == Scoring::Sigmoid ? MOERT_SCORING_SIGMOID
                                                  : MOERT_SCORING_SOFTMAX,
                   op.nGroup, op.topkGroup, op.renormalize,
                   float(op.routedScalingFactor));
        break;
      }
      case OpKind::RoutedExperts:
        moert_routed_experts(
            p(0), (int32_t *)p(1), (float *)p(2), p(size_t(op.w13)),
            p(size_t(op.w2)), scales(op.w13Scale), scales(op.w2Scale),
            p(size_t(op.output)), nullptr, t(0), t(size_t(op.w13)), T, op.H,
            op.E, op.K, op.I);
        break;
      case OpKind::SharedExperts:
        moert_shared_experts(
            p(0), p(size_t(op.w13)), p(size_t(op.w2)), scales(op.w13Scale),
            scales(op.w2Scale), p(size_t(op.output)), nullptr, t(0),
            t(size_t(op.w13)), T, op.H, op.I);
        break;
      case OpKind::Add:
        moert_add(p(0), p(1), p(2), t(0), T, op.H, float(op.scale));
        break;
      case OpKind::AllReduce:
        moert_all_reduce(p(0), p(1), t(0), T, op.H, op.groupSize);
        break;
      case OpKind::Copy: {
        int64_t bytes;
        byteSize(d.tensor(op.operands[0]), T, bytes);
        if (p(0) != p(1))
          std::memcpy(p(1), p(0), size_t(bytes));
        break;
      }
      }
    }
    EXPECT_EQ(moert_context_status(ctx), MOERT_SUCCESS)
        << moert_context_error(ctx);
    moert_context_destroy(ctx);
  }

  /// Checks `results` (defaults: the args' current output contents) against
  /// the reference computed from `initial`.
  CheckResult check(const std::vector<std::vector<unsigned char>> &initial,
                    std::vector<std::vector<double>> *primary = nullptr) {
    std::vector<const void *> in(d.args.size()), out(d.args.size(), nullptr);
    for (size_t i = 0; i < d.args.size(); ++i) {
      in[i] = initial[i].data();
      if (d.args[i].role == Role::Output)
        out[i] = args[i].data();
    }
    CheckResult r;
    std::string error;
    EXPECT_TRUE(
        runReference(d, ops, T, in, out, CheckOptions(), r, error, primary))
        << error;
    return r;
  }
};

/// A topk whose ids and weights are the outputs.
DescriptionBuilder topkOnly(int E, int K, const std::string &attrs, bool bias) {
  DescriptionBuilder b;
  auto logits = b.arg("logits", "input", "f32", "-1, " + std::to_string(E));
  std::string biasOperand;
  if (bias)
    biasOperand = b.arg("bias", "weight", "f32", std::to_string(E));
  auto ids = b.arg("ids", "output", "i32", "-1, " + std::to_string(K));
  auto weights = b.arg("weights", "output", "f32", "-1, " + std::to_string(K));
  if (bias)
    b.op("moe.topk", {logits, biasOperand, ids, weights}, attrs);
  else
    b.op("moe.topk", {logits, ids, weights}, attrs);
  return b;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

TEST(ReferenceTest, GroupedSigmoidTopKByHand) {
  // Groups {0,1} {2,3} {4,5} {6,7}. Biased scores q = s + b:
  //   q = .881 .269 | .731 .731 | .053 .047 | .800 .923
  // group scores (sum of the best two): 1.150, 1.462, 0.100, 1.723, so
  // groups 3 and 1 are kept; expert 0 (best in group 0) cannot be chosen,
  // and expert 4 (best unbiased score) loses to its bias.
  std::vector<float> logits = {2, -1, 1, 1, 3, -3, 0, 0.5f};
  std::vector<float> bias = {0, 0, 0, 0, -0.9f, 0, 0.3f, 0.3f};
  Data data(topkOnly(8, 2,
                     R"({"scoring": "sigmoid", "k": 2, "n_group": 4,
                         "topk_group": 2, "renormalize": true,
                         "routed_scaling_factor": 2.5, "has_bias": true})",
                     true),
            1);
  data.set(0, logits);
  data.set(1, bias);
  std::vector<std::vector<double>> primary;
  auto initial = data.args;
  data.check(initial, &primary);
  double s7 = sigmoid(0.5f), s6 = sigmoid(0);
  EXPECT_EQ(primary[2], (std::vector<double>{7, 6}));
  ASSERT_EQ(primary[3].size(), 2u);
  EXPECT_EQ(primary[3][0], double(float(2.5 * s7 / (s7 + s6))));
  EXPECT_EQ(primary[3][1], double(float(2.5 * s6 / (s7 + s6))));

  // The same through the runtime: identical ids, weights within fp32.
  data.runOnRuntime();
  CheckResult r = data.check(initial);
  EXPECT_EQ(r.maxRelErr, r.maxRelErr); // not NaN
  EXPECT_LT(r.maxRelErr, 1e-6);
  EXPECT_EQ(r.nearTieTokens, 0);

  // Ungrouped, expert 0 is back: ids 7, 0.
  Data flat(topkOnly(8, 2,
                     R"({"scoring": "sigmoid", "k": 2, "has_bias": true})",
                     true),
            1);
  flat.set(0, logits);
  flat.set(1, bias);
  flat.check(flat.args, &primary);
  EXPECT_EQ(primary[2], (std::vector<double>{7, 0}));
  EXPECT_EQ(primary[3][1], double(float(sigmoid(2))));
}

TEST(ReferenceTest, SoftmaxTiesGoToTheLowerIndex) {
  Data data(topkOnly(4, 1, R"({"scoring": "softmax", "k": 1})", false), 1);
  data.set(0, std::vector<float>{1, 3, 3, 0});
  std::vector<std::vector<double>> primary;
  CheckResult r = data.check(data.args, &primary);
  EXPECT_EQ(primary[1], (std::vector<double>{1}));
  double e = std::exp(1.0 - 3), z = std::exp(0.0 - 3);
  EXPECT_EQ(primary[2][0], double(float(1 / (e + 2 + z))));
  // An exact tie is a near-tie: expert 2 would be admissible too.
  EXPECT_EQ(r.nearTieTokens, 1);
}

/// A layer in moe-gen's layout: shared experts (if I_shared > 0), gate,
/// topk, routed experts, add.
/// With `fp8`, the expert weights are f8e4m3 with their block scales (as
/// moe-gen --dtype fp8 emits them; `dtype` bf16).
DescriptionBuilder layer(const std::string &dtype, int H, int I, int E, int K,
                         int Ishared, const std::string &topkAttrs, bool bias,
                         int layers = 1, bool fp8 = false) {
  DescriptionBuilder b;
  std::string T = "-1";
  auto x = b.arg("hidden_states", "input", dtype, T + ", " + std::to_string(H));
  struct L {
    std::string gate, bias, w13, w2, sw13, sw2;
    std::string s13, s2, ss13, ss2; // fp8 block scales
  };
  const std::string wt = fp8 ? "f8e4m3" : dtype;
  auto blocks = [](int n) { return std::to_string(n / 128); };
  std::vector<L> ls(layers);
  for (int l = 0; l < layers; ++l) {
    std::string p = "layers." + std::to_string(l) + ".";
    ls[l].gate = b.arg(p + "gate.weight", "weight", dtype,
                       std::to_string(E) + ", " + std::to_string(H));
    if (bias)
      ls[l].bias = b.arg(p + "gate.e_score_correction_bias", "weight", "f32",
                         std::to_string(E));
    ls[l].w13 = b.arg(p + "experts.w13", "weight", wt,
                      std::to_string(E) + ", " + std::to_string(2 * I) + ", " +
                          std::to_string(H));
    ls[l].w2 = b.arg(p + "experts.w2", "weight", wt,
                     std::to_string(E) + ", " + std::to_string(H) + ", " +
                         std::to_string(I));
    if (fp8) {
      ls[l].s13 = b.arg(p + "experts.w13_scale", "weight", "f32",
                        std::to_string(E) + ", " + blocks(2 * I) + ", " +
                            blocks(H));
      ls[l].s2 = b.arg(p + "experts.w2_scale", "weight", "f32",
                       std::to_string(E) + ", " + blocks(H) + ", " +
                           blocks(I));
    }
    if (Ishared) {
      ls[l].sw13 =
          b.arg(p + "shared_experts.w13", "weight", wt,
                std::to_string(2 * Ishared) + ", " + std::to_string(H));
      ls[l].sw2 = b.arg(p + "shared_experts.w2", "weight", wt,
                        std::to_string(H) + ", " + std::to_string(Ishared));
      if (fp8) {
        ls[l].ss13 = b.arg(p + "shared_experts.w13_scale", "weight", "f32",
                           blocks(2 * Ishared) + ", " + blocks(H));
        ls[l].ss2 = b.arg(p + "shared_experts.w2_scale", "weight", "f32",
                          blocks(H) + ", " + blocks(Ishared));
      }
    }
  }
  auto out = b.arg("output", "output", dtype, T + ", " + std::to_string(H));
  std::string hs = T + ", " + std::to_string(H);
  std::string cur = x;
  for (int l = 0; l < layers; ++l) {
    std::string y = l == layers - 1 ? out : b.buffer(dtype, hs);
    std::string sh;
    if (Ishared) {
      sh = b.buffer(dtype, hs);
      if (fp8)
        b.op("moe.shared_experts",
             {cur, ls[l].sw13, ls[l].sw2, ls[l].ss13, ls[l].ss2, sh});
      else
        b.op("moe.shared_experts", {cur, ls[l].sw13, ls[l].sw2, sh});
    }
    auto logits = b.buffer("f32", T + ", " + std::to_string(E));
    b.op("moe.gate", {cur, ls[l].gate, logits});
    auto ids = b.buffer("i32", T + ", " + std::to_string(K));
    auto w = b.buffer("f32", T + ", " + std::to_string(K));
    if (bias)
      b.op("moe.topk", {logits, ls[l].bias, ids, w}, topkAttrs);
    else
      b.op("moe.topk", {logits, ids, w}, topkAttrs);
    std::string routed = Ishared ? b.buffer(dtype, hs) : y;
    if (fp8)
      b.op("moe.routed_experts",
           {cur, ids, w, ls[l].w13, ls[l].w2, ls[l].s13, ls[l].s2, routed});
    else
      b.op("moe.routed_experts", {cur, ids, w, ls[l].w13, ls[l].w2, routed});
    if (Ishared)
      b.op("moe.add", {routed, sh, y});
    cur = y;
  }
  return b;
}

const char *kDeepSeekTopK =
    R"({"scoring": "sigmoid", "k": 3, "n_group": 4, "topk_group": 2,
        "renormalize": true, "routed_scaling_factor": 2.5, "has_bias": true})";
const char *kQwenTopK =
    R"({"scoring": "softmax", "k": 3, "renormalize": true})";

TEST(ReferenceTest, AgreesWithTheRuntimeOnRandomLayers) {
  struct Case {
    const char *dtype;
    int Ishared;
    const char *topk;
    bool bias;
    int layers;
  } cases[] = {{"bf16", 24, kDeepSeekTopK, true, 1},
               {"f16", 24, kDeepSeekTopK, true, 1},
               {"f32", 24, kDeepSeekTopK, true, 1},
               {"bf16", 0, kQwenTopK, false, 1},
               {"f32", 0, kQwenTopK, false, 1},
               {"f32", 16, kDeepSeekTopK, true, 3}};
  for (const Case &c : cases) {
    for (uint64_t seed : {1, 2}) {
      SCOPED_TRACE(std::string(c.dtype) + " shared " +
                   std::to_string(c.Ishared) + " layers " +
                   std::to_string(c.layers) + " seed " + std::to_string(seed));
      Data data(
          layer(c.dtype, 40, 24, 16, 3, c.Ishared, c.topk, c.bias, c.layers),
          23);
      data.randomize(seed);
      auto initial = data.args;
      data.runOnRuntime();
      CheckResult r = data.check(initial);
      DType dtype;
      parseDType(c.dtype, dtype);
      double tolerance = defaultTolerance(dtype, countLayers(data.ops));
      EXPECT_LE(r.maxRelErr, tolerance);
      EXPECT_GT(r.elements, 0);
      EXPECT_EQ(r.truncatedTokens, 0);
      // A wrong element is caught.
      size_t out = data.d.args.size() - 1;
      storeElement(data.args[out].data(), dtype, 40 * 5 + 7,
                   loadElement(data.args[out].data(), dtype, 40 * 5 + 7) + 1);
      CheckResult bad = data.check(initial);
      EXPECT_GT(bad.maxRelErr, tolerance);
      EXPECT_EQ(bad.worstCoords, (std::vector<int64_t>{5, 7}));
    }
  }
}

TEST(ReferenceTest, NearTiedRoutingMayGoEitherWay) {
  // f32, H = 2, x = (1, 1): logits of experts 0 and 1 differ by 2^-22,
  // far below the fp32 accumulation uncertainty the reference allows.
  DescriptionBuilder b;
  auto x = b.arg("x", "input", "f32", "-1, 2");
  auto gate = b.arg("gate", "weight", "f32", "4, 2");
  auto w13 = b.arg("w13", "weight", "f32", "4, 4, 2");
  auto w2 = b.arg("w2", "weight", "f32", "4, 2, 2");
  auto ids = b.arg("ids", "input", "i32", "-1, 1");
  auto weights = b.arg("weights", "input", "f32", "-1, 1");
  auto out = b.arg("out", "output", "f32", "-1, 2");
  auto logits = b.buffer("f32", "-1, 4");
  auto ids2 = b.buffer("i32", "-1, 1");
  auto weights2 = b.buffer("f32", "-1, 1");
  b.op("moe.gate", {x, gate, logits});
  b.op("moe.topk", {logits, ids2, weights2},
       R"({"scoring": "softmax", "k": 1, "renormalize": true})");
  b.op("moe.routed_experts", {x, ids2, weights2, w13, w2, out});

  // The "module": the same layer with the routing given (ids, weights).
  DescriptionBuilder m;
  auto mx = m.arg("x", "input", "f32", "-1, 2");
  m.arg("gate", "weight", "f32", "4, 2");
  auto mw13 = m.arg("w13", "weight", "f32", "4, 4, 2");
  auto mw2 = m.arg("w2", "weight", "f32", "4, 2, 2");
  auto mids = m.arg("ids", "input", "i32", "-1, 1");
  auto mweights = m.arg("weights", "input", "f32", "-1, 1");
  auto mout = m.arg("out", "output", "f32", "-1, 2");
  m.op("moe.routed_experts", {mx, mids, mweights, mw13, mw2, mout});

  for (int chosen : {0, 1, 2}) {
    SCOPED_TRACE("module chose expert " + std::to_string(chosen));
    Data data(b, 1), module(m, 1);
    for (Data *dd : {&data, &module}) {
      dd->randomize(3);
      dd->set(0, std::vector<float>{1, 1});
      dd->set(1, std::vector<float>{0.5f, 0.25f, 0.5f, 0.25f + 0x1p-22f, 0.1f,
                                    0.1f, -1, -1});
      dd->set(4, std::vector<int32_t>{chosen});
      dd->set(5, std::vector<float>{1.0f});
    }
    auto initial = data.args;
    module.runOnRuntime();
    data.args[6] = module.args[6];
    CheckResult r = data.check(initial);
    EXPECT_EQ(r.nearTieTokens, 1);
    if (chosen == 2) { // not admissible
      EXPECT_GT(r.maxRelErr, 1e-2);
    } else {
      EXPECT_LT(r.maxRelErr, 1e-5);
      EXPECT_EQ(r.alternativeTokens, chosen == 0 ? 1 : 0);
    }
  }
}

TEST(ReferenceTest, InPlaceOpsAndCopies) {
  // The gate weight is copied into a buffer first (a whole-buffer copy),
  // the routed op writes the input in place, then a per-token copy.
  DescriptionBuilder b;
  auto x = b.arg("hidden_states", "input", "bf16", "-1, 24");
  auto gate = b.arg("gate", "weight", "bf16", "6, 24");
  auto w13 = b.arg("w13", "weight", "bf16", "6, 16, 24");
  auto w2 = b.arg("w2", "weight", "bf16", "6, 24, 8");
  auto out = b.arg("output", "output", "bf16", "-1, 24");
  auto gateCopy = b.buffer("bf16", "6, 24");
  auto logits = b.buffer("f32", "-1, 6");
  auto ids = b.buffer("i32", "-1, 2");
  auto w = b.buffer("f32", "-1, 2");
  b.op("memref.copy", {gate, gateCopy});
  b.op("moe.gate", {x, gateCopy, logits});
  b.op("moe.topk", {logits, ids, w}, R"({"scoring": "softmax", "k": 2})");
  b.op("moe.routed_experts", {x, ids, w, w13, w2, x}, R"({"inplace": true})");
  b.op("memref.copy", {x, out});
  Data data(b, 9);
  data.randomize(5);
  auto initial = data.args;
  data.runOnRuntime();
  CheckResult r = data.check(initial);
  EXPECT_LE(r.maxRelErr, defaultTolerance(DType::BF16));
  EXPECT_EQ(r.elements, 9 * 24);
}

TEST(ReferenceTest, ErrorsAndEmptyBatches) {
  DescriptionBuilder b;
  auto x = b.arg("x", "input", "f32", "-1, 2");
  auto ids = b.arg("ids", "input", "i32", "-1, 1");
  auto w = b.arg("w", "input", "f32", "-1, 1");
  auto w13 = b.arg("w13", "weight", "f32", "3, 2, 2");
  auto w2 = b.arg("w2", "weight", "f32", "3, 2, 1");
  auto out = b.arg("out", "output", "f32", "-1, 2");
  b.op("moe.routed_experts", {x, ids, w, w13, w2, out});
  Data data(b, 2);
  data.set(1, std::vector<int32_t>{1, 3});
  std::vector<const void *> in, res;
  for (auto &a : data.args) {
    in.push_back(a.data());
    res.push_back(a.data());
  }
  CheckResult r;
  std::string error;
  EXPECT_FALSE(
      runReference(data.d, data.ops, 2, in, res, CheckOptions(), r, error));
  EXPECT_EQ(error, "op moe.routed_experts: topk_ids[1, 0] = 3 is not an "
                   "expert in [0, 3)");

  Data empty(b, 0);
  std::vector<const void *> none(empty.args.size(), nullptr);
  EXPECT_TRUE(runReference(empty.d, empty.ops, 0, none, none, CheckOptions(), r,
                           error));
  EXPECT_EQ(r.maxRelErr, 0);
  EXPECT_EQ(r.elements, 0);
}

TEST(ReferenceTest, QuantizesActivationsPerGroupBitForBit) {
  using detail::quantizeFp8Groups;
  // Group 0: amax 448, so s = 1 and the codes are the nearest e4m3 values:
  // 3.3 -> 3.25 (spacing 0.25 in [2, 4)), 0.001 -> 2^-9 (0.512 units of the
  // subnormals' 2^-9), 100.5 -> 104 (spacing 8 in [64, 128); 100.5 is
  // nearer 104 than 96).
  // Group 1: amax 3 (at 3.0), s = fp32(3 / 448); 1.3 / s = 194.13 -> 192
  // (spacing 16 in [128, 256)); -0.01 / s = -1.493 -> -1.5.
  // Group 2: all zeros: s = 1e-10f / 448, codes 0.
  std::vector<double> v(3 * 128, 0.0);
  v[0] = 448;
  v[1] = 1;
  v[2] = -3.3;
  v[3] = 0.001;
  v[4] = 100.5;
  v[128] = 3;
  v[129] = 1.3;
  v[130] = -0.01;
  std::vector<double> out(v.size());
  std::vector<float> scales(3);
  quantizeFp8Groups(v.data(), int64_t(v.size()), out.data(), scales.data());
  EXPECT_EQ(scales[0], 1.0f);
  EXPECT_EQ(scales[1], 3.0f / 448.0f);
  EXPECT_EQ(scales[2], 1e-10f / 448.0f);
  EXPECT_EQ(out[0], 448.0);
  EXPECT_EQ(out[1], 1.0);
  EXPECT_EQ(out[2], -3.25);
  EXPECT_EQ(out[3], 0x1p-9);
  EXPECT_EQ(out[4], 104.0);
  EXPECT_EQ(out[5], 0.0);
  const double s1 = double(3.0f / 448.0f);
  EXPECT_EQ(out[128], 448 * s1);
  EXPECT_EQ(out[129], 192 * s1);
  EXPECT_EQ(out[130], -1.5 * s1);
  for (size_t i = 256; i < out.size(); ++i)
    EXPECT_EQ(out[i], 0.0);
  // fp32 arithmetic, not double: with amax 448 * 1.1 (s = fp32(1.1)), x =
  // 1.58125 has the exact quotient 1.4375, a tie between 1.375 and 1.5
  // (to even: 1.5), but its fp32 quotient is 1.43749988, hence 1.375.
  std::vector<double> t(128, 0.0);
  t[0] = 448 * 1.1;
  t[1] = 1.58125;
  std::vector<double> q(128);
  quantizeFp8Groups(t.data(), 128, q.data(), scales.data());
  float sf = float(448 * 1.1) / 448.0f;
  EXPECT_EQ(scales[0], sf);
  EXPECT_EQ(q[1], 1.375 * double(sf));
}

/// The fp8 expert MLP of one (token, slot) pair by brute force, written
/// separately from the reference: e4m3 codes by scanning all 256 of them,
/// then double dot products in the plain order.
struct BruteFp8 {
  static double nearest(double x) { // ties to the even code, saturating
    if (std::fabs(x) >= 448)
      return x < 0 ? -448 : 448;
    double best = 0;
    int bestCode = 0;
    for (int c = 0; c < 256; ++c) {
      double v = e4m3ToDouble(uint8_t(c));
      if (std::isnan(v))
        continue;
      double d = std::fabs(v - x), bd = std::fabs(best - x);
      if (d < bd || (d == bd && (c & 1) == 0 && (bestCode & 1) == 1)) {
        best = v;
        bestCode = c;
      }
    }
    return best;
  }
  static std::vector<double> quantize(const std::vector<double> &v) {
    std::vector<double> out(v.size());
    for (size_t g = 0; g < v.size(); g += 128) {
      float amax = 0;
      for (size_t i = g; i < g + 128; ++i)
        amax = std::max(amax, std::fabs(float(v[i])));
      float s = std::max(amax, 1e-10f) / 448.0f;
      for (size_t i = g; i < g + 128; ++i)
        out[i] = nearest(double(float(v[i]) / s)) * double(s);
    }
    return out;
  }
  /// The dequantized weight (row n, column k) of matrix e, [E, R, C].
  static double weight(const std::vector<unsigned char> &codes,
                       const std::vector<unsigned char> &scales, int64_t R,
                       int64_t C, int64_t e, int64_t n, int64_t k) {
    double code = e4m3ToDouble(codes[size_t((e * R + n) * C + k)]);
    const float *s = reinterpret_cast<const float *>(scales.data());
    return code * double(s[size_t((e * (R / 128) + n / 128) * (C / 128) +
                                  k / 128)]);
  }
  /// The pair's partial (the down projection), unrounded.
  static std::vector<double>
  partial(const std::vector<double> &xq, const std::vector<unsigned char> &w13,
          const std::vector<unsigned char> &s13,
          const std::vector<unsigned char> &w2,
          const std::vector<unsigned char> &s2, int64_t H, int64_t I,
          int64_t e) {
    std::vector<double> act(size_t(I), 0.0);
    for (int64_t k = 0; k < I; ++k) {
      double g = 0, u = 0;
      for (int64_t h = 0; h < H; ++h) {
        g += xq[size_t(h)] * weight(w13, s13, 2 * I, H, e, k, h);
        u += xq[size_t(h)] * weight(w13, s13, 2 * I, H, e, I + k, h);
      }
      act[size_t(k)] = g / (1 + std::exp(-g)) * u;
    }
    std::vector<double> aq = quantize(act), p(size_t(H), 0.0);
    for (int64_t n = 0; n < H; ++n)
      for (int64_t k = 0; k < I; ++k)
        p[size_t(n)] += aq[size_t(k)] * weight(w2, s2, H, I, e, n, k);
    return p;
  }
};

TEST(ReferenceTest, Fp8ExpertsAgainstBruteForce) {
  // A routed op (E 3, k 2) and a shared op, H 256, I 128, 5 tokens, seeded
  // fp8 weights and scales.
  const int64_t H = 256, I = 128, K = 2, T = 5; // E = 3
  DescriptionBuilder b;
  auto x = b.arg("x", "input", "bf16", "-1, 256");
  auto ids = b.arg("ids", "input", "i32", "-1, 2");
  auto w = b.arg("w", "input", "f32", "-1, 2");
  auto w13 = b.arg("w13", "weight", "f8e4m3", "3, 256, 256");
  auto w2 = b.arg("w2", "weight", "f8e4m3", "3, 256, 128");
  auto s13 = b.arg("w13_scale", "weight", "f32", "3, 2, 2");
  auto s2 = b.arg("w2_scale", "weight", "f32", "3, 2, 1");
  auto out = b.arg("out", "output", "bf16", "-1, 256");
  auto sout = b.arg("shared_out", "output", "bf16", "-1, 256");
  b.op("moe.routed_experts", {x, ids, w, w13, w2, s13, s2, out});
  // The shared op on expert 1's weights: w13/w2 [2I, H] / [H, I] views are
  // separate arguments here.
  auto sw13 = b.arg("sw13", "weight", "f8e4m3", "256, 256");
  auto sw2 = b.arg("sw2", "weight", "f8e4m3", "256, 128");
  auto ss13 = b.arg("sw13_scale", "weight", "f32", "2, 2");
  auto ss2 = b.arg("sw2_scale", "weight", "f32", "2, 1");
  b.op("moe.shared_experts", {x, sw13, sw2, ss13, ss2, sout});
  Data data(b, T);
  data.randomize(11);
  // The routing: token 2 uses expert 2 twice over (the same expert in two
  // slots is legal for the op), weights that do not sum to 1.
  data.set(1, std::vector<int32_t>{0, 1, 2, 0, 2, 2, 1, 0, 0, 2});
  data.set(2, std::vector<float>{0.75f, 0.25f, 0.5f, 0.125f, 1.0f, 0.3f,
                                 0.6f, 0.6f, 0.1f, 0.9f});
  std::vector<std::vector<double>> primary;
  data.check(data.args, &primary);
  ASSERT_EQ(primary[7].size(), size_t(T * H));
  ASSERT_EQ(primary[8].size(), size_t(T * H));

  const auto &a = data.args;
  const int32_t *idv = reinterpret_cast<const int32_t *>(a[1].data());
  const float *wv = reinterpret_cast<const float *>(a[2].data());
  int64_t nonzero = 0;
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> xr(static_cast<size_t>(H));
    for (int64_t h = 0; h < H; ++h)
      xr[size_t(h)] = loadElement(a[0].data(), DType::BF16, t * H + h);
    std::vector<double> xq = BruteFp8::quantize(xr);
    // Routed: partials rounded to bf16, then fp32 products and sums in slot
    // order, one rounding to bf16.
    std::vector<float> acc(size_t(H), 0.0f);
    for (int64_t j = 0; j < K; ++j) {
      std::vector<double> p = BruteFp8::partial(xq, a[3], a[5], a[4], a[6], H,
                                                I, idv[t * K + j]);
      for (int64_t n = 0; n < H; ++n) {
        float partial = float(roundToDType(p[size_t(n)], DType::BF16));
        volatile float product = wv[t * K + j] * partial;
        acc[size_t(n)] = acc[size_t(n)] + product;
      }
    }
    std::vector<double> shared =
        BruteFp8::partial(xq, a[9], a[11], a[10], a[12], H, I, 0);
    for (int64_t n = 0; n < H; ++n) {
      double routed = roundToDType(acc[size_t(n)], DType::BF16);
      EXPECT_EQ(primary[7][size_t(t * H + n)], routed) << t << ", " << n;
      EXPECT_EQ(primary[8][size_t(t * H + n)],
                roundToDType(shared[size_t(n)], DType::BF16))
          << t << ", " << n;
      nonzero += routed != 0;
    }
  }
  EXPECT_GT(nonzero, T * H / 2);
}

TEST(ReferenceTest, Fp8LayersAgreeWithTheRuntime) {
  for (bool deepseek : {true, false})
    for (uint64_t seed : {1, 2}) {
      SCOPED_TRACE(std::string(deepseek ? "deepseek" : "qwen") + " seed " +
                   std::to_string(seed));
      Data data(layer("bf16", 256, 128, 8, 3, deepseek ? 128 : 0,
                      deepseek ? kDeepSeekTopK : kQwenTopK, deepseek, 2,
                      /*fp8=*/true),
                37);
      ASSERT_TRUE(hasFp8Experts(data.ops));
      data.randomize(seed);
      auto initial = data.args;
      data.runOnRuntime();
      CheckResult r = data.check(initial);
      double tolerance = defaultTolerance(DType::BF16, 2, true);
      EXPECT_LE(r.maxRelErr, tolerance);
      EXPECT_EQ(r.elements, 37 * 256);
      // A wrong element is caught: one off by its row's rms.
      size_t out = data.d.args.size() - 1;
      double sq = 0;
      for (int64_t h = 0; h < 256; ++h)
        sq += std::pow(loadElement(data.args[out].data(), DType::BF16,
                                   256 * 5 + h),
                       2);
      storeElement(data.args[out].data(), DType::BF16, 256 * 5 + 7,
                   loadElement(data.args[out].data(), DType::BF16,
                               256 * 5 + 7) +
                       std::sqrt(sq / 256));
      CheckResult bad = data.check(initial);
      EXPECT_GT(bad.maxRelErr, tolerance);
      EXPECT_EQ(bad.worstCoords, (std::vector<int64_t>{5, 7}));
    }
}

TEST(ReferenceTest, Tolerances) {
  EXPECT_EQ(defaultTolerance(DType::BF16), 5e-2);
  EXPECT_EQ(defaultTolerance(DType::F16), 6e-3);
  EXPECT_EQ(defaultTolerance(DType::F32), 1e-4);
  EXPECT_DOUBLE_EQ(defaultTolerance(DType::BF16, 3), 5e-2 * 9);
  // fp8 experts: the act-code term on top of the output dtype's.
  EXPECT_DOUBLE_EQ(defaultTolerance(DType::BF16, 1, true),
                   5e-2 + kFp8ActCodeTolerance);
  EXPECT_DOUBLE_EQ(defaultTolerance(DType::BF16, 2, true),
                   (5e-2 + kFp8ActCodeTolerance) * 3);
}

} // namespace
