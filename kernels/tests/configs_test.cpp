//===- configs_test.cpp - Launch configs against the decisions they replace ===//
//
// Before configs were types, the launchers decided through a per-thread
// launch policy (set per op from its rows per expert), process-wide tuning
// bits, a PDL master switch and a process-wide GEMM implementation.
// legacyDecision below transcribes that code (ScopedPolicy, launchKernel's
// attribute, launchWithN's kernel flags and launchTyped's tile width in
// gemm_wgmma.cu, chooseImpl in experts.cu) so that the defaults can be
// compared with chooseGemmConfig / chooseLaunchConfig on a grid of shapes
// and devices, and each tuning file of the benchmark (bench/tuning) with the
// tuning bits it replaces. The kernels read nothing else, so equal decisions
// mean identical launches, bit-identical outputs and unchanged timings.
//===----------------------------------------------------------------------===//
#include "configs.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace moek;

namespace {

//===--- The old decisions ----------------------------------------------------===//

// The old tuning bits (moek::setTuningFlags).
enum : int {
  kForceIdleSkip = 1,
  kForceEarlyTrigger = 2,
  kForceNoIdleSkip = 4,
  kForcePdl = 8,
  kForceNoPdl = 16,
  kForceWideN = 32,
  kForceNarrowN = 64,
  kForceNoHalfA = 128,
  kForceScalarEpilogue = 256,
  kForceDirectPartialStores = 512,
};

struct Legacy {
  bool supported = true; // chooseImpl did not fail
  GemmImpl impl = GemmImpl::Auto;
  bool narrow = false;
  bool idleSkip = false, earlyTrigger = false, halfA = false;
  bool scalarEpilogue = false, directPartialStores = false;
  bool gemmPdl = false;   // the GEMM launches
  bool launchPdl = false; // routing and combine of the op
};

/// One GEMM launch of an expert op with rows-per-expert `rowsPerGroup`.
Legacy legacyDecision(const GemmShape &s, const DeviceProps &d, int tuning,
                      bool pdlMaster, GemmImpl want) {
  Legacy L;
  // ScopedPolicy(rowsPerGroup): double(TK) / double(E), or double(T).
  const double rowsPerGroup = double(s.rows) / double(s.groups);
  const bool small = rowsPerGroup < 64.0;
  const int t = tuning;
  const bool pdl = (small || (t & kForcePdl)) && !(t & kForceNoPdl);
  L.idleSkip = (small || (t & kForceIdleSkip)) && !(t & kForceNoIdleSkip);
  L.earlyTrigger = (t & kForceEarlyTrigger) != 0;
  L.halfA = L.idleSkip && !(t & kForceNoHalfA);
  const bool narrowN = small;
  const int forceN = (t & kForceNarrowN) ? 128 : (t & kForceWideN) ? 256 : 0;
  // launchKernel: the attribute when the master switch and the policy agree.
  L.gemmPdl = L.launchPdl = pdlMaster && pdl;
  L.scalarEpilogue = (t & kForceScalarEpilogue) != 0;
  L.directPartialStores = (t & kForceDirectPartialStores) != 0;
  // launchTyped: nTilesFor<256> and the narrow decision.
  const int64_t n256 = s.op == GemmOp::GateUp ? (s.inter + 127) / 128
                                              : (s.columns + 255) / 256;
  const int64_t wideTiles = mTilesUpperBound(s.rows, s.groups, 128) * n256;
  L.narrow = narrowN || wideTiles < 4 * int64_t(d.smCount);
  if (forceN == 128)
    L.narrow = true;
  else if (forceN == 256)
    L.narrow = false;
  // chooseImpl.
  bool tensorCoreOk = s.dtype != DType::F32 && s.hidden % 8 == 0 &&
                      s.inter % 8 == 0 && s.aligned16;
  const bool wgmmaOk = tensorCoreOk && d.major == 9;
  const bool mmaOk = tensorCoreOk && d.major >= 8;
  switch (want) {
  case GemmImpl::Auto:
    L.impl = wgmmaOk ? GemmImpl::Wgmma
                     : (mmaOk ? GemmImpl::MmaSync : GemmImpl::Simt);
    break;
  case GemmImpl::Wgmma: L.impl = want; L.supported = wgmmaOk; break;
  case GemmImpl::MmaSync: L.impl = want; L.supported = mmaOk; break;
  case GemmImpl::Simt: L.impl = want; break;
  }
  return L;
}

//===--- The grid ---------------------------------------------------------------===//

std::vector<DeviceProps> devices() {
  std::vector<DeviceProps> out;
  const int sms[] = {132, 114, 78, 108, 1};
  const int majors[] = {9, 9, 9, 8, 7};
  for (int i = 0; i < 5; ++i) {
    DeviceProps d;
    d.smCount = sms[i];
    d.major = majors[i];
    d.minor = 0;
    out.push_back(d);
  }
  return out;
}

/// Every GEMM launch of routed and shared experts over a grid of models and
/// token counts (the down GEMM once per distinct column-block width).
std::vector<GemmShape> shapes() {
  struct Model {
    int64_t H, E, K, I;
  };
  const Model models[] = {
      {7168, 256, 8, 2048}, // DeepSeek-V3
      {7168, 64, 8, 512},   // DeepSeek-V3 TP=4 slice
      {7168, 384, 8, 2048}, // Kimi K2
      {4096, 128, 8, 1536}, // Qwen3
      {2048, 64, 6, 1408},  // small
      {1096, 8, 3, 136},    // odd widths (three column blocks)
      {1100, 8, 2, 72},     // H % 8 != 0
      {256, 8, 2, 64},      {512, 2, 2, 128}, {200, 16, 4, 96},
  };
  const int64_t tokens[] = {1,   2,   7,    8,    31,   32,    33,   63,
                            64,  65,  100,  127,  128,  255,   256,  257,
                            511, 512, 1024, 2048, 4096, 16384, 65536};
  const DType dtypes[] = {DType::BF16, DType::F16, DType::F32};
  std::vector<GemmShape> out;
  for (const Model &m : models)
    for (int64_t T : tokens)
      for (DType dt : dtypes)
        for (bool aligned : {true, false})
          for (bool routed : {true, false}) {
            GemmShape s;
            s.rows = routed ? T * m.K : T;
            s.groups = routed ? m.E : 1;
            s.hidden = m.H;
            s.inter = m.I;
            s.dtype = dt;
            s.aligned16 = aligned;
            s.op = GemmOp::GateUp;
            s.columns = m.I;
            out.push_back(s);
            s.op = GemmOp::Down;
            const int64_t C = routed ? (m.H < 512 ? m.H : 512) : m.H;
            s.columns = C;
            out.push_back(s);
            const int64_t last = m.H - (m.H - 1) / C * C;
            if (last != C) {
              s.columns = last;
              out.push_back(s);
            }
          }
  return out;
}

std::string where(const GemmShape &s, const DeviceProps &d) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "%s rows=%lld groups=%lld H=%lld I=%lld columns=%lld dtype=%d "
                "aligned=%d sm=%d major=%d",
                s.op == GemmOp::GateUp ? "gate_up" : "down",
                (long long)s.rows, (long long)s.groups, (long long)s.hidden,
                (long long)s.inter, (long long)s.columns, int(s.dtype),
                int(s.aligned16), d.smCount, d.major);
  return buf;
}

/// Compares what the kernels read. The down-only switches (half A boxes,
/// scalar epilogue, direct partial stores) are compared where the kernel
/// reads them: the gate-up kernel never does.
void expectSame(const Legacy &L, const GemmConfig &c, const GemmShape &s,
                const DeviceProps &d, const std::string &what) {
  const std::string at = what + " at " + where(s, d);
  ASSERT_EQ(L.supported, gemmImplSupported(c.impl, s, d)) << at;
  if (!L.supported)
    return;
  EXPECT_EQ(int(L.impl), int(c.impl)) << at;
  EXPECT_EQ(L.narrow, c.tileN == 128) << at;
  EXPECT_EQ(c.tileM, 128) << at;
  EXPECT_EQ(c.cluster, 1) << at;
  EXPECT_EQ(c.stages, wgmmaStages(s.op, c.tileN)) << at;
  EXPECT_EQ(L.gemmPdl, c.pdl) << at;
  EXPECT_EQ(L.idleSkip, c.idleHalfSkip) << at;
  EXPECT_EQ(L.earlyTrigger, c.earlyTrigger) << at;
  if (s.op == GemmOp::Down) {
    // The launcher passes halfA only with the idle skip.
    EXPECT_EQ(L.halfA, c.halfA && c.idleHalfSkip) << at;
    EXPECT_EQ(L.scalarEpilogue, c.scalarEpilogue) << at;
    EXPECT_EQ(L.directPartialStores, c.directPartialStores) << at;
  }
}

LaunchShape launchShapeOf(const GemmShape &s) {
  LaunchShape l;
  l.op = s.groups > 1 ? LaunchOp::RoutedExperts : LaunchOp::SharedExperts;
  l.rows = s.rows;
  l.groups = s.groups;
  return l;
}

//===--- Defaults ---------------------------------------------------------------===//

TEST(DefaultConfigs, MatchTheOldDecisionsOnEveryShape) {
  size_t compared = 0, narrow = 0, small = 0;
  for (const DeviceProps &d : devices())
    for (const GemmShape &s : shapes()) {
      const Legacy L = legacyDecision(s, d, 0, true, GemmImpl::Auto);
      const GemmConfig c = chooseGemmConfig(s, d);
      expectSame(L, c, s, d, "default");
      // No table loaded: resolution is the heuristic itself.
      const GemmConfig r = resolveGemmConfig(s, d, nullptr);
      expectSame(L, r, s, d, "resolved default");
      // The routing and combine kernels of the op.
      EXPECT_EQ(L.launchPdl, chooseLaunchConfig(launchShapeOf(s)).pdl)
          << where(s, d);
      ++compared;
      narrow += c.tileN == 128;
      small += c.idleHalfSkip;
    }
  // The grid covers both sides of every decision.
  EXPECT_GT(narrow, 0u);
  EXPECT_LT(narrow, compared);
  EXPECT_GT(small, 0u);
  EXPECT_LT(small, compared);
}

TEST(DefaultConfigs, SingleKernelOpsNeverUsedPdl) {
  for (LaunchOp op : {LaunchOp::TopK, LaunchOp::Add, LaunchOp::Gate})
    for (int64_t rows : {1, 8, 63, 64, 4096}) {
      LaunchShape s;
      s.op = op;
      s.rows = rows;
      EXPECT_FALSE(chooseLaunchConfig(s).pdl);
      EXPECT_FALSE(resolveLaunchConfig(s, nullptr).pdl);
    }
}

TEST(DefaultConfigs, SharedExpertsUseTheirTokenCount) {
  // Shared experts: one group, so rows per group is T (64 is large).
  GemmShape s;
  s.rows = 63;
  s.hidden = 7168;
  s.inter = 2048;
  s.columns = 2048;
  DeviceProps d;
  d.smCount = 132;
  d.major = 9;
  EXPECT_TRUE(chooseGemmConfig(s, d).idleHalfSkip);
  s.rows = 64;
  EXPECT_FALSE(chooseGemmConfig(s, d).idleHalfSkip);
}

//===--- Tuning files -------------------------------------------------------------===//

std::string readFile(const std::string &path) {
  std::ifstream f(path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

/// Each benchmark tuning file against the old tuning bits and PDL master
/// switch it replaces (bench/moe_bench.py's former AB_VARIANTS and
/// --compare-impls settings).
TEST(TuningFiles, BenchmarkVariantsMatchTheOldBits) {
  struct Case {
    const char *file;
    int bits;
    bool pdlMaster;
    GemmImpl impl;
  };
  const Case cases[] = {
      {"n256-plain", kForceWideN | kForceNoIdleSkip | kForceNoPdl, true,
       GemmImpl::Auto},
      {"n256-skip-pdl", kForceWideN | kForceIdleSkip | kForcePdl, true,
       GemmImpl::Auto},
      {"n128-plain", kForceNarrowN | kForceNoIdleSkip | kForceNoPdl, true,
       GemmImpl::Auto},
      {"n128-skip-pdl", kForceNarrowN | kForceIdleSkip | kForcePdl, true,
       GemmImpl::Auto},
      {"full-a-boxes", kForceNoHalfA, true, GemmImpl::Auto},
      {"scalar-epilogue", kForceScalarEpilogue, true, GemmImpl::Auto},
      {"direct-partial-stores", kForceDirectPartialStores, true,
       GemmImpl::Auto},
      {"mma", 0, true, GemmImpl::MmaSync},
      {"no-pdl", 0, false, GemmImpl::Auto},
  };
  for (const Case &c : cases) {
    const std::string path =
        std::string(MOEK_BENCH_TUNING_DIR) + "/" + c.file + ".tuning";
    TuningTable table;
    std::string error;
    ASSERT_TRUE(table.load(path, error)) << error;
    KernelConfigs configs;
    configs.tuning = &table;
    for (const DeviceProps &d : devices())
      for (const GemmShape &s : shapes()) {
        const Legacy L = legacyDecision(s, d, c.bits, c.pdlMaster, c.impl);
        expectSame(L, resolveGemmConfig(s, d, &configs), s, d, c.file);
        EXPECT_EQ(L.launchPdl,
                  resolveLaunchConfig(launchShapeOf(s), &configs).pdl)
            << c.file << " at " << where(s, d);
        for (LaunchOp op : {LaunchOp::TopK, LaunchOp::Add, LaunchOp::Gate}) {
          LaunchShape l;
          l.op = op;
          l.rows = s.rows;
          EXPECT_FALSE(resolveLaunchConfig(l, &configs).pdl) << c.file;
        }
      }
  }
}

TEST(TuningFiles, RulesSelectByOpAndShapeAndApplyInOrder) {
  TuningTable t;
  std::string error;
  ASSERT_TRUE(t.parse("# comment\n"
                      "[gemm down rows_per_group >= 64 columns<=256]\n"
                      "tile_n = 256   # trailing comment\n"
                      "early_trigger = on\n"
                      "[gemm gate_up down rows < 100]\n"
                      "impl = simt\n"
                      "[gemm]\n"
                      "early_trigger = off\n"
                      "[launch topk add]\n"
                      "pdl = on\n",
                      error))
      << error;
  DeviceProps d;
  d.smCount = 132;
  d.major = 9;
  GemmShape s;
  s.op = GemmOp::Down;
  s.rows = 64 * 8;
  s.groups = 8;
  s.hidden = 256;
  s.inter = 128;
  s.columns = 256;
  GemmConfig c = chooseGemmConfig(s, d);
  ASSERT_EQ(c.tileN, 128); // few tiles: narrow by default
  t.apply(s, c);
  EXPECT_EQ(c.tileN, 256);
  EXPECT_EQ(c.stages, 3); // follows the width
  EXPECT_FALSE(c.earlyTrigger); // the later rule wins
  EXPECT_EQ(int(c.impl), int(GemmImpl::Wgmma));
  s.rows = 16;
  s.groups = 1;
  c = chooseGemmConfig(s, d);
  t.apply(s, c);
  EXPECT_EQ(c.tileN, 128); // rows per group 16: the first rule is out
  EXPECT_EQ(c.stages, 4);
  EXPECT_EQ(int(c.impl), int(GemmImpl::Simt));
  LaunchShape l;
  l.op = LaunchOp::TopK;
  LaunchConfig lc;
  t.apply(l, lc);
  EXPECT_TRUE(lc.pdl);
  l.op = LaunchOp::RoutedExperts;
  lc = LaunchConfig();
  t.apply(l, lc);
  EXPECT_FALSE(lc.pdl);
}

TEST(TuningFiles, ExplicitConfigsWinOverRulesAndHeuristic) {
  TuningTable t;
  std::string error;
  ASSERT_TRUE(t.parse("[gemm]\ntile_n = 256\n[launch]\npdl = on\n", error));
  GemmConfig exact;
  exact.impl = GemmImpl::Auto;
  exact.tileN = 128;
  exact.stages = 4;
  exact.scalarEpilogue = true;
  LaunchConfig launch;
  KernelConfigs configs;
  configs.tuning = &t;
  configs.down = &exact;
  configs.launch = &launch;
  DeviceProps d;
  d.smCount = 132;
  d.major = 9;
  GemmShape s;
  s.rows = 4096;
  s.hidden = 7168;
  s.inter = 2048;
  s.op = GemmOp::Down;
  s.columns = 512;
  GemmConfig c = resolveGemmConfig(s, d, &configs);
  EXPECT_EQ(c.tileN, 128);
  EXPECT_TRUE(c.scalarEpilogue);
  EXPECT_EQ(int(c.impl), int(GemmImpl::Wgmma)); // Auto resolved
  s.op = GemmOp::GateUp;
  s.columns = 2048;
  EXPECT_EQ(resolveGemmConfig(s, d, &configs).tileN, 256); // the rule
  LaunchShape l;
  l.op = LaunchOp::Add;
  EXPECT_FALSE(resolveLaunchConfig(l, &configs).pdl);
}

TEST(TuningFiles, TheProcessWideTableAppliesWhenNoneIsPassed) {
  const std::string path = ::testing::TempDir() + "moek-tuning-test.tuning";
  {
    std::ofstream f(path);
    f << "[gemm gate_up]\nearly_trigger = on\n";
  }
  std::string error;
  ASSERT_TRUE(loadTuningFile(path, error)) << error;
  DeviceProps d;
  d.smCount = 132;
  d.major = 9;
  GemmShape s;
  s.rows = 4096;
  s.hidden = 4096;
  s.inter = 1536;
  s.columns = 1536;
  EXPECT_TRUE(resolveGemmConfig(s, d, nullptr).earlyTrigger);
  // A table passed per call replaces the process-wide one.
  TuningTable empty;
  KernelConfigs configs;
  configs.tuning = &empty;
  EXPECT_FALSE(resolveGemmConfig(s, d, &configs).earlyTrigger);
  EXPECT_FALSE(loadTuningFile(path + ".missing", error));
  EXPECT_NE(error.find("cannot open"), std::string::npos) << error;
  EXPECT_TRUE(resolveGemmConfig(s, d, nullptr).earlyTrigger); // kept
  setTuning(nullptr);
  EXPECT_FALSE(resolveGemmConfig(s, d, nullptr).earlyTrigger);
  std::remove(path.c_str());
}

TEST(TuningFiles, ErrorsNameTheLine) {
  const char *bad[][2] = {
      {"tile_n = 256\n", "<tuning>:1: a setting before"},
      {"[gemm]\ntile_n = 192\n", "<tuning>:2: tile_n = 192 is not implemented"},
      {"[gemm]\ncluster = 2\n", "<tuning>:2: cluster = 2 is not implemented"},
      {"[gemm]\npdl = maybe\n", "<tuning>:2: pdl is on or off"},
      {"[gemm]\nimpl = cutlass\n", "<tuning>:2: impl is auto"},
      {"[gemm]\nwarp_size = 32\n", "<tuning>:2: unknown key"},
      {"[launch]\ntile_n = 128\n", "<tuning>:2: unknown key"},
      {"\n[gemm sideways]\n", "<tuning>:2: unknown GEMM 'sideways'"},
      {"[launch down]\n", "<tuning>:1: unknown kernel 'down'"},
      {"[gemm rows <]\n", "<tuning>:1: 'rows <' needs a number"},
      {"[gemm rows ~ 3]\n", "<tuning>:1: unexpected character"},
      {"[launch columns > 3]\n", "<tuning>:1: unknown shape field"},
      {"[kernel]\n", "<tuning>:1: a section is"},
      {"[gemm\n", "<tuning>:1: a section header ends"},
      {"[gemm]\nstages\n", "<tuning>:2: expected 'key = value'"},
  };
  for (const auto &b : bad) {
    TuningTable t;
    std::string error;
    EXPECT_FALSE(t.parse(b[0], error)) << b[0];
    EXPECT_EQ(error.rfind(b[1], 0), 0u) << b[0] << " gave: " << error;
  }
}

} // namespace
