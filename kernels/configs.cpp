//===- configs.cpp - Default launch configurations and tuning files -------===//
#include "configs.h"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

namespace moek {

//===--- The heuristic ------------------------------------------------------===//

namespace {

/// wgmma on sm_90, else mma.sync on sm_80+, when the data is 16-bit, the
/// rows 16-byte aligned (H and I multiples of 8) and every pointer too;
/// otherwise the SIMT kernels.
bool tensorCoreShape(const GemmShape &s) {
  return s.dtype != DType::F32 && s.hidden % 8 == 0 && s.inter % 8 == 0 &&
         s.aligned16;
}

GemmImpl autoImpl(const GemmShape &s, const DeviceProps &d) {
  if (tensorCoreShape(s) && d.major == 9)
    return GemmImpl::Wgmma;
  if (tensorCoreShape(s) && d.major >= 8)
    return GemmImpl::MmaSync;
  return GemmImpl::Simt;
}

} // namespace

bool gemmImplSupported(GemmImpl impl, const GemmShape &shape,
                       const DeviceProps &device) {
  switch (impl) {
  case GemmImpl::Wgmma: return tensorCoreShape(shape) && device.major == 9;
  case GemmImpl::MmaSync: return tensorCoreShape(shape) && device.major >= 8;
  default: return true;
  }
}

GemmConfig chooseGemmConfig(const GemmShape &shape, const DeviceProps &device) {
  GemmConfig c;
  c.impl = autoImpl(shape, device);
  // Measured on an H200 (bench/NOTES.md): PDL and the idle-half skip pay for
  // decode-sized ops (few rows per expert, every tile mostly padding) and
  // cost 5-15% on large ones. Half-A boxes go with the skip: a short tile is
  // then computed by the first consumer alone.
  const bool small = shape.rowsPerGroup() < 64.0;
  c.pdl = small;
  c.idleHalfSkip = small;
  c.halfA = small;
  c.earlyTrigger = false;
  c.scalarEpilogue = false;
  c.directPartialStores = false;
  // 128-column tiles when 128 x 256 ones would not give every SM four or more
  // (an uneven last round), and for decode-sized ops (the bound on M tiles is
  // loose there, and the weights stream through twice as many blocks).
  const int64_t wideN = shape.op == GemmOp::GateUp
                            ? (shape.columns + 127) / 128 // gate and up halves
                            : (shape.columns + 255) / 256;
  const int64_t wideTiles = mTilesUpperBound(shape.rows, shape.groups, 128) * wideN;
  const bool narrow = small || wideTiles < 4 * int64_t(device.smCount);
  c.tileM = 128;
  c.tileN = narrow ? 128 : 256;
  c.stages = wgmmaStages(shape.op, c.tileN);
  c.cluster = 1;
  return c;
}

std::string fp8DeviceProblem(const DeviceProps &device) {
  const int cc = device.major * 10 + device.minor;
  if (cc < 89)
    return "fp8 (e4m3) needs compute capability 8.9 or newer; this device is "
           "sm_" + std::to_string(cc);
  if (device.major != 9)
    return "the fp8 kernels are built for sm_90a only; this device is sm_" +
           std::to_string(cc);
  return "";
}

Fp8GemmConfig chooseFp8GemmConfig(const GemmShape &shape,
                                  const DeviceProps &device) {
  Fp8GemmConfig c;
  // As for the bf16 kernels: at decode sizes (every tile mostly padding) the
  // idle-half skip and PDL pay; on large ops they cost a little.
  const bool small = shape.rowsPerGroup() < 64.0;
  c.pdl = small;
  c.idleHalfSkip = small;
  // Gate-up tiles are 256 wide by construction (fused act quantization).
  // Down: 128-column tiles when 256-wide ones would not give every SM four.
  if (shape.op == GemmOp::GateUp) {
    c.tileN = 256;
  } else {
    const int64_t wideTiles = mTilesUpperBound(shape.rows, shape.groups, 128) *
                              ((shape.columns + 255) / 256);
    c.tileN = (small || wideTiles < 4 * int64_t(device.smCount)) ? 128 : 256;
  }
  c.stages = fp8Stages(shape.op, c.tileN);
  return c;
}

std::string describe(const Fp8GemmConfig &c) {
  std::ostringstream s;
  s << "fp8 128x" << c.tileN << " stages " << c.stages;
  if (c.pdl)
    s << " pdl";
  if (c.idleHalfSkip)
    s << " idle_half_skip";
  return s.str();
}

LaunchConfig chooseLaunchConfig(const LaunchShape &shape) {
  LaunchConfig c;
  // The expert ops chain several kernels; only at decode sizes does hiding
  // their launch latency pay (as for their GEMMs). The single-kernel ops
  // start without it.
  const bool expertOp = shape.op == LaunchOp::RoutedExperts ||
                        shape.op == LaunchOp::SharedExperts;
  c.pdl = expertOp && shape.rowsPerGroup() < 64.0;
  return c;
}

//===--- Tuning files ---------------------------------------------------------===//

namespace {

enum ShapeField { kRows, kGroups, kRowsPerGroup, kHidden, kInter, kColumns };
enum Cmp { kLt, kLe, kGt, kGe, kEq, kNe };
enum Key {
  kImpl,
  kTileM,
  kTileN,
  kStages,
  kCluster,
  kPdl,
  kIdleHalfSkip,
  kEarlyTrigger,
  kHalfA,
  kScalarEpilogue,
  kDirectPartialStores,
};

struct Named {
  const char *name;
  int value;
};

const Named kFields[] = {{"rows", kRows},     {"groups", kGroups},
                         {"rows_per_group", kRowsPerGroup},
                         {"hidden", kHidden}, {"inter", kInter},
                         {"columns", kColumns}};
const Named kGemmOps[] = {{"gate_up", int(GemmOp::GateUp)},
                          {"down", int(GemmOp::Down)}};
const Named kLaunchOps[] = {{"routed", int(LaunchOp::RoutedExperts)},
                            {"shared", int(LaunchOp::SharedExperts)},
                            {"topk", int(LaunchOp::TopK)},
                            {"add", int(LaunchOp::Add)},
                            {"gate", int(LaunchOp::Gate)}};
const Named kKeys[] = {{"impl", kImpl},
                       {"tile_m", kTileM},
                       {"tile_n", kTileN},
                       {"stages", kStages},
                       {"cluster", kCluster},
                       {"pdl", kPdl},
                       {"idle_half_skip", kIdleHalfSkip},
                       {"early_trigger", kEarlyTrigger},
                       {"half_a", kHalfA},
                       {"scalar_epilogue", kScalarEpilogue},
                       {"direct_partial_stores", kDirectPartialStores}};
const Named kImpls[] = {{"auto", int(GemmImpl::Auto)},
                        {"wgmma", int(GemmImpl::Wgmma)},
                        {"mma", int(GemmImpl::MmaSync)},
                        {"simt", int(GemmImpl::Simt)}};
const Named kBools[] = {{"on", 1},    {"off", 0},  {"true", 1},
                        {"false", 0}, {"yes", 1},  {"no", 0},
                        {"1", 1},     {"0", 0}};

template <size_t N>
bool lookup(const Named (&table)[N], const std::string &name, int &value) {
  for (const Named &n : table)
    if (name == n.name) {
      value = n.value;
      return true;
    }
  return false;
}

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos)
    return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

/// Splits a section header into words, numbers and comparison operators.
bool tokenize(const std::string &s, std::vector<std::string> &out,
              std::string &error) {
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
               c == '.') {
      size_t j = i;
      while (j < s.size() &&
             (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_' ||
              s[j] == '.'))
        ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    } else if (c == '<' || c == '>' || c == '=' || c == '!') {
      size_t n = (i + 1 < s.size() && s[i + 1] == '=') ? 2 : 1;
      out.push_back(s.substr(i, n));
      i += n;
    } else {
      error = std::string("unexpected character '") + c + "' in section header";
      return false;
    }
  }
  return true;
}

bool parseCmp(const std::string &op, int &cmp) {
  static const Named ops[] = {{"<", kLt},  {"<=", kLe}, {">", kGt},
                              {">=", kGe}, {"==", kEq}, {"!=", kNe}};
  return lookup(ops, op, cmp);
}

bool parseNumber(const std::string &s, double &v) {
  if (s.empty())
    return false;
  char *end = nullptr;
  v = std::strtod(s.c_str(), &end);
  return end && *end == '\0';
}

bool parseHeader(const std::string &inner, TuningTable::Rule &rule,
                 std::string &error) {
  std::vector<std::string> tok;
  if (!tokenize(inner, tok, error))
    return false;
  if (tok.empty() || (tok[0] != "gemm" && tok[0] != "launch")) {
    error = "a section is [gemm ...] or [launch ...]";
    return false;
  }
  rule.gemm = tok[0] == "gemm";
  unsigned ops = 0;
  for (size_t i = 1; i < tok.size(); ++i) {
    if (i + 1 < tok.size() && !std::isalnum(static_cast<unsigned char>(
                                  tok[i + 1][0]))) {
      TuningTable::Condition c;
      if (!lookup(kFields, tok[i], c.field) ||
          (!rule.gemm && c.field != kRows && c.field != kGroups &&
           c.field != kRowsPerGroup)) {
        error = "unknown shape field '" + tok[i] + "'" +
                (rule.gemm ? " (rows, groups, rows_per_group, hidden, inter, "
                             "columns)"
                           : " (rows, groups, rows_per_group)");
        return false;
      }
      if (!parseCmp(tok[i + 1], c.cmp)) {
        error = "unknown comparison '" + tok[i + 1] + "'";
        return false;
      }
      if (i + 2 >= tok.size() || !parseNumber(tok[i + 2], c.value)) {
        error = "'" + tok[i] + " " + tok[i + 1] + "' needs a number";
        return false;
      }
      rule.conditions.push_back(c);
      i += 2;
      continue;
    }
    int op = 0;
    if (rule.gemm ? !lookup(kGemmOps, tok[i], op)
                  : !lookup(kLaunchOps, tok[i], op)) {
      error = "unknown " + std::string(rule.gemm ? "GEMM" : "kernel") +
              " '" + tok[i] + "'" +
              (rule.gemm ? " (gate_up, down)"
                         : " (routed, shared, topk, add, gate)");
      return false;
    }
    ops |= 1u << op;
  }
  rule.ops = ops ? ops : ~0u;
  return true;
}

bool parseSetting(const std::string &line, TuningTable::Rule &rule,
                  std::string &error) {
  size_t eq = line.find('=');
  if (eq == std::string::npos) {
    error = "expected 'key = value'";
    return false;
  }
  const std::string key = trim(line.substr(0, eq));
  const std::string value = trim(line.substr(eq + 1));
  TuningTable::Setting s;
  if (!lookup(kKeys, key, s.key) || (!rule.gemm && s.key != kPdl)) {
    error = "unknown key '" + key + "'" +
            (rule.gemm ? "" : " ([launch] sections set only pdl)");
    return false;
  }
  switch (s.key) {
  case kImpl:
    if (!lookup(kImpls, value, s.value)) {
      error = "impl is auto, wgmma, mma or simt, not '" + value + "'";
      return false;
    }
    break;
  case kTileM:
  case kTileN:
  case kStages:
  case kCluster: {
    double v = 0;
    if (!parseNumber(value, v) || v != double(int(v)) || v < 1) {
      error = key + " needs a positive integer, not '" + value + "'";
      return false;
    }
    s.value = int(v);
    // The Hopper kernel is compiled for these shapes only; say so here
    // rather than at the first launch.
    if ((s.key == kTileM && s.value != 128) ||
        (s.key == kTileN && s.value != 128 && s.value != 256) ||
        (s.key == kCluster && s.value != 1)) {
      error = key + " = " + value + " is not implemented (tile_m 128, "
              "tile_n 128 or 256, cluster 1)";
      return false;
    }
    break;
  }
  default:
    if (!lookup(kBools, value, s.value)) {
      error = key + " is on or off, not '" + value + "'";
      return false;
    }
  }
  rule.settings.push_back(s);
  return true;
}

bool matches(const TuningTable::Condition &c, double v) {
  switch (c.cmp) {
  case kLt: return v < c.value;
  case kLe: return v <= c.value;
  case kGt: return v > c.value;
  case kGe: return v >= c.value;
  case kEq: return v == c.value;
  default: return v != c.value;
  }
}

double gemmField(const GemmShape &s, int field) {
  switch (field) {
  case kRows: return double(s.rows);
  case kGroups: return double(s.groups);
  case kRowsPerGroup: return s.rowsPerGroup();
  case kHidden: return double(s.hidden);
  case kInter: return double(s.inter);
  default: return double(s.columns);
  }
}

double launchField(const LaunchShape &s, int field) {
  switch (field) {
  case kRows: return double(s.rows);
  case kGroups: return double(s.groups);
  default: return s.rowsPerGroup();
  }
}

} // namespace

bool TuningTable::parse(const std::string &text, std::string &error,
                        const std::string &source) {
  std::vector<Rule> rules;
  std::istringstream in(text);
  std::string raw;
  int lineNo = 0;
  auto fail = [&](const std::string &what) {
    error = source + ":" + std::to_string(lineNo) + ": " + what;
    return false;
  };
  while (std::getline(in, raw)) {
    ++lineNo;
    std::string line = trim(raw.substr(0, raw.find('#')));
    if (line.empty())
      continue;
    std::string what;
    if (line.front() == '[') {
      if (line.back() != ']')
        return fail("a section header ends with ']'");
      Rule rule;
      if (!parseHeader(line.substr(1, line.size() - 2), rule, what))
        return fail(what);
      rules.push_back(rule);
      continue;
    }
    if (rules.empty())
      return fail("a setting before the first [gemm] or [launch] section");
    if (!parseSetting(line, rules.back(), what))
      return fail(what);
  }
  rules_ = std::move(rules);
  return true;
}

bool TuningTable::load(const std::string &path, std::string &error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    error = "cannot open tuning file '" + path + "'";
    return false;
  }
  std::ostringstream text;
  text << f.rdbuf();
  return parse(text.str(), error, path);
}

void TuningTable::apply(const GemmShape &shape, GemmConfig &config) const {
  bool stagesSet = false;
  for (const Rule &r : rules_) {
    if (!r.gemm || !(r.ops & (1u << int(shape.op))))
      continue;
    bool all = true;
    for (const Condition &c : r.conditions)
      all = all && matches(c, gemmField(shape, c.field));
    if (!all)
      continue;
    for (const Setting &s : r.settings) {
      switch (s.key) {
      case kImpl: config.impl = static_cast<GemmImpl>(s.value); break;
      case kTileM: config.tileM = s.value; break;
      case kTileN: config.tileN = s.value; break;
      case kStages:
        config.stages = s.value;
        stagesSet = true;
        break;
      case kCluster: config.cluster = s.value; break;
      case kPdl: config.pdl = s.value != 0; break;
      case kIdleHalfSkip: config.idleHalfSkip = s.value != 0; break;
      case kEarlyTrigger: config.earlyTrigger = s.value != 0; break;
      case kHalfA: config.halfA = s.value != 0; break;
      case kScalarEpilogue: config.scalarEpilogue = s.value != 0; break;
      default: config.directPartialStores = s.value != 0; break;
      }
    }
  }
  // A rule that changes the tile width without naming a depth gets the depth
  // the kernel is compiled with for that width.
  if (!stagesSet)
    config.stages = wgmmaStages(shape.op, config.tileN);
}

void TuningTable::apply(const LaunchShape &shape, LaunchConfig &config) const {
  for (const Rule &r : rules_) {
    if (r.gemm || !(r.ops & (1u << int(shape.op))))
      continue;
    bool all = true;
    for (const Condition &c : r.conditions)
      all = all && matches(c, launchField(shape, c.field));
    if (!all)
      continue;
    for (const Setting &s : r.settings)
      config.pdl = s.value != 0; // the only key of [launch] sections
  }
}

//===--- The process-wide table ----------------------------------------------===//

namespace {
std::mutex gTuningMutex;
std::shared_ptr<const TuningTable> gTuning;
// Read without the lock on every launch: most processes never load a table.
std::atomic<bool> gHasTuning{false};
} // namespace

void setTuning(std::shared_ptr<const TuningTable> table) {
  std::lock_guard<std::mutex> lock(gTuningMutex);
  gTuning = std::move(table);
  gHasTuning.store(gTuning != nullptr, std::memory_order_release);
}

std::shared_ptr<const TuningTable> currentTuning() {
  if (!gHasTuning.load(std::memory_order_acquire))
    return nullptr;
  std::lock_guard<std::mutex> lock(gTuningMutex);
  return gTuning;
}

bool loadTuningFile(const std::string &path, std::string &error) {
  auto table = std::make_shared<TuningTable>();
  if (!table->load(path, error))
    return false;
  setTuning(std::move(table));
  return true;
}

//===--- Resolution -----------------------------------------------------------===//

/// Applies the call's tuning table, else the process-wide one, if any.
template <typename Shape, typename Config>
static void applyTuning(const KernelConfigs *configs, const Shape &shape,
                        Config &c) {
  std::shared_ptr<const TuningTable> global;
  const TuningTable *table = configs ? configs->tuning : nullptr;
  if (!table) {
    global = currentTuning();
    table = global.get();
  }
  if (table)
    table->apply(shape, c);
}

GemmConfig resolveGemmConfig(const GemmShape &shape, const DeviceProps &device,
                             const KernelConfigs *configs) {
  const GemmConfig *exact =
      configs ? (shape.op == GemmOp::GateUp ? configs->gateUp : configs->down)
              : nullptr;
  GemmConfig c;
  if (exact) {
    c = *exact;
  } else {
    c = chooseGemmConfig(shape, device);
    applyTuning(configs, shape, c);
  }
  if (c.impl == GemmImpl::Auto)
    c.impl = autoImpl(shape, device);
  return c;
}

LaunchConfig resolveLaunchConfig(const LaunchShape &shape,
                                 const KernelConfigs *configs) {
  if (configs && configs->launch)
    return *configs->launch;
  LaunchConfig c = chooseLaunchConfig(shape);
  applyTuning(configs, shape, c);
  return c;
}

std::string describe(const GemmConfig &c) {
  static const char *impls[] = {"auto", "wgmma", "mma", "simt"};
  std::ostringstream s;
  s << impls[int(c.impl) & 3] << " " << c.tileM << "x" << c.tileN << " stages "
    << c.stages << " cluster " << c.cluster;
  if (c.pdl)
    s << " pdl";
  if (c.idleHalfSkip)
    s << " idle_half_skip";
  if (c.earlyTrigger)
    s << " early_trigger";
  if (c.halfA)
    s << " half_a";
  if (c.scalarEpilogue)
    s << " scalar_epilogue";
  if (c.directPartialStores)
    s << " direct_partial_stores";
  return s.str();
}

} // namespace moek
