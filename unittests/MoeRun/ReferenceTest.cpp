//===- ReferenceTest.cpp - The reference of --check -----------------------===//
//
// Hand-checked routing, agreement with the runtime's CPU backend on random
// layers (the runtime and the reference share no code), near-tie handling,
// in-place ops and copies, and errors.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
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

  /// Fills every input and weight as moe-run does (no routing tables).
  void randomize(uint64_t seed) {
    for (size_t i = 0; i < d.args.size(); ++i) {
      Distribution dist;
      const TensorDesc &t = d.args[i];
      if (t.role == Role::Output)
        dist.kind = Distribution::Kind::Poison;
      else if (t.role == Role::Weight)
        dist.stddev =
            t.shape.size() >= 2 ? 1 / std::sqrt(double(t.shape.back())) : 0.05;
      int64_t n;
      elementCount(t.shape, T, n);
      fill(args[i].data(), t.dtype, n, dist, streamKey(seed, t.name));
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
      return t == DType::BF16  ? MOERT_BF16
             : t == DType::F16 ? MOERT_F16
                               : MOERT_F32;
    };
    for (const TypedOp &op : ops) {
      auto p = [&](size_t k) -> void * {
        const Operand &o = op.operands[k];
        return o.isArg ? (void *)args[size_t(o.index)].data()
                       : (void *)buffers[size_t(o.index)].data();
      };
      auto t = [&](size_t k) { return dt(d.tensor(op.operands[k]).dtype); };
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
        moert_routed_experts(p(0), (int32_t *)p(1), (float *)p(2), p(3), p(4), nullptr, nullptr,
                             p(5), nullptr, t(0), t(0), T, op.H, op.E, op.K, op.I);
        break;
      case OpKind::SharedExperts:
        moert_shared_experts(p(0), p(1), p(2), nullptr, nullptr, p(3), nullptr, t(0), t(0), T, op.H,
                             op.I);
        break;
      case OpKind::Add:
        moert_add(p(0), p(1), p(2), t(0), T, op.H, float(op.scale));
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
DescriptionBuilder layer(const std::string &dtype, int H, int I, int E, int K,
                         int Ishared, const std::string &topkAttrs, bool bias,
                         int layers = 1) {
  DescriptionBuilder b;
  std::string T = "-1";
  auto x = b.arg("hidden_states", "input", dtype, T + ", " + std::to_string(H));
  struct L {
    std::string gate, bias, w13, w2, sw13, sw2;
  };
  std::vector<L> ls(layers);
  for (int l = 0; l < layers; ++l) {
    std::string p = "layers." + std::to_string(l) + ".";
    ls[l].gate = b.arg(p + "gate.weight", "weight", dtype,
                       std::to_string(E) + ", " + std::to_string(H));
    if (bias)
      ls[l].bias = b.arg(p + "gate.e_score_correction_bias", "weight", "f32",
                         std::to_string(E));
    ls[l].w13 = b.arg(p + "experts.w13", "weight", dtype,
                      std::to_string(E) + ", " + std::to_string(2 * I) + ", " +
                          std::to_string(H));
    ls[l].w2 = b.arg(p + "experts.w2", "weight", dtype,
                     std::to_string(E) + ", " + std::to_string(H) + ", " +
                         std::to_string(I));
    if (Ishared) {
      ls[l].sw13 =
          b.arg(p + "shared_experts.w13", "weight", dtype,
                std::to_string(2 * Ishared) + ", " + std::to_string(H));
      ls[l].sw2 = b.arg(p + "shared_experts.w2", "weight", dtype,
                        std::to_string(H) + ", " + std::to_string(Ishared));
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

TEST(ReferenceTest, Tolerances) {
  EXPECT_EQ(defaultTolerance(DType::BF16), 5e-2);
  EXPECT_EQ(defaultTolerance(DType::F16), 6e-3);
  EXPECT_EQ(defaultTolerance(DType::F32), 1e-4);
  EXPECT_DOUBLE_EQ(defaultTolerance(DType::BF16, 3), 5e-2 * 9);
}

} // namespace
