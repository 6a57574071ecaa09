//===- configs.h - Launch configurations of the moe kernels ----------------===//
//
// How a kernel is launched is a value: a GemmConfig for each grouped GEMM
// launch, a LaunchConfig for the other kernels. chooseGemmConfig and
// chooseLaunchConfig pick them from the problem shape and the device (the
// measured defaults, bench/NOTES.md); a TuningTable (a small text file, format
// in docs/kernels.md) rewrites fields of those choices for matching shapes;
// an explicit config passed to a launcher (KernelConfigs) wins over both.
//
// Host-only and free of CUDA headers, so that the heuristic and the tuning
// file parser are unit-tested without a device (kernels/tests).
//===----------------------------------------------------------------------===//
#ifndef MOE_KERNELS_CONFIGS_H
#define MOE_KERNELS_CONFIGS_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe-runtime/OpContract.h"

namespace moek {

/// The element types are the op contract's (moe-runtime/OpContract.h); the
/// kernels take the float ones (BF16, F16, F32).
using DType = moert::contract::DType;
using moert::contract::dtypeBytes;

/// Which matrix-multiply implementation a grouped GEMM uses.
enum class GemmImpl : int {
  Auto = 0,   // wgmma on sm_90 when shapes allow, else mma.sync, else SIMT
  Wgmma = 1,  // Hopper warp-specialised TMA + wgmma kernels
  MmaSync = 2,// portable tensor-core kernels (mma.sync m16n8k16, cp.async)
  Simt = 3,   // plain fp32 FMA kernels (any dtype, any alignment; slow)
};

/// The two GEMMs of an expert op.
enum class GemmOp : int {
  GateUp = 0, // act = silu(x w_gate^T) * (x w_up^T)
  Down = 1,   // partials (or output) = act w2^T, one launch per column block
};

/// One grouped GEMM launch as the heuristic sees it.
struct GemmShape {
  GemmOp op = GemmOp::GateUp;
  int64_t rows = 0;    // GEMM rows: T*K (routed experts) or T (shared)
  int64_t groups = 1;  // experts: E (routed) or 1 (shared)
  int64_t hidden = 0;  // H of the op
  int64_t inter = 0;   // I of the op
  int64_t columns = 0; // output columns of this launch: I (gate-up) or the
                       // column block (down)
  DType dtype = DType::BF16;
  bool aligned16 = true; // every pointer of the op is 16-byte aligned

  /// Average rows per expert (T*K/E, or T): the op's size class.
  double rowsPerGroup() const { return double(rows) / double(groups); }
};

/// What the heuristic needs to know about the device.
struct DeviceProps {
  int smCount = 0;
  int major = 0, minor = 0;
};

/// How one grouped GEMM is launched. The tile fields describe the Hopper
/// (wgmma) kernel, which is compiled for tileM 128, tileN 128 or 256, the
/// stage depth wgmmaStages(op, tileN) and no clusters; the mma.sync (128 x 128
/// x 64, 3 stages) and SIMT kernels have fixed tiles and ignore them, as they
/// ignore the switches below `pdl`.
struct GemmConfig {
  GemmImpl impl = GemmImpl::Auto; // Auto: picked by dtype, alignment, device
  int tileM = 128;
  int tileN = 256;
  int stages = 4;
  int cluster = 1;
  /// Programmatic dependent launch (the kernel may start while the previous
  /// one in the stream finishes; it waits before touching global memory).
  bool pdl = false;
  /// A consumer warpgroup whose 64 rows are all padding skips its wgmma.
  bool idleHalfSkip = false;
  /// Persistent GEMMs release dependent launches at their start, not end.
  bool earlyTrigger = false;
  /// Down: a tile of at most 64 rows loads only those 64 rows of A. Takes
  /// effect only with idleHalfSkip (otherwise the second consumer would read
  /// rows that were not loaded).
  bool halfA = false;
  /// Down: stage full tiles with 32-bit shared-memory stores, not stmatrix.
  bool scalarEpilogue = false;
  /// Down: store partial tiles straight from registers instead of staging.
  bool directPartialStores = false;
};

/// The kernels other than the GEMMs.
enum class LaunchOp : int {
  RoutedExperts = 0, // routing and combine kernels of moe.routed_experts
  SharedExperts = 1, // (none today; the GEMMs have their own GemmConfig)
  TopK = 2,
  Add = 3,
  Gate = 4, // the mixed-dtype gate kernel (equal dtypes go to cuBLAS)
};

struct LaunchShape {
  LaunchOp op = LaunchOp::Add;
  int64_t rows = 0;   // T*K for the expert ops, T (or elements) otherwise
  int64_t groups = 1; // E for routed experts, else 1
  double rowsPerGroup() const { return double(rows) / double(groups); }
};

struct LaunchConfig {
  bool pdl = false; // programmatic dependent launch, as in GemmConfig
};

/// The stage depth the wgmma kernel is compiled with: gate-up streams K = H
/// through 4 stages; down (K = I) keeps 2 x 64 x tileN of staging for its
/// epilogue and fits 3 stages at tileN 256, 4 at 128.
constexpr int wgmmaStages(GemmOp op, int tileN) {
  return (op == GemmOp::GateUp || tileN == 128) ? 4 : 3;
}

/// Upper bound on the number of bm-row tiles over all groups.
inline int64_t mTilesUpperBound(int64_t rows, int64_t groups, int64_t bm) {
  if (groups <= 1)
    return (rows + bm - 1) / bm;
  int64_t nonEmpty = groups < rows ? groups : rows;
  int64_t bound = (rows + nonEmpty * (bm - 1)) / bm;
  return bound < rows ? bound : rows;
}

/// Whether `impl` can run `shape` on `device` (Auto always can).
bool gemmImplSupported(GemmImpl impl, const GemmShape &shape,
                       const DeviceProps &device);

/// The default configuration of one GEMM launch (every field concrete).
GemmConfig chooseGemmConfig(const GemmShape &shape, const DeviceProps &device);
/// The default configuration of the other kernels.
LaunchConfig chooseLaunchConfig(const LaunchShape &shape);

/// Rules from a tuning file: each rule selects GEMM launches (or other
/// kernels) by op and shape and sets some config fields; rules apply in file
/// order over the heuristic's choice, so a later rule wins.
class TuningTable {
public:
  /// Parses `text` (the file format of docs/kernels.md); on failure returns
  /// false and sets `error` to "<source>:<line>: <what>".
  bool parse(const std::string &text, std::string &error,
             const std::string &source = "<tuning>");
  /// Reads and parses a file.
  bool load(const std::string &path, std::string &error);

  void apply(const GemmShape &shape, GemmConfig &config) const;
  void apply(const LaunchShape &shape, LaunchConfig &config) const;
  bool empty() const { return rules_.empty(); }

  struct Condition {
    int field;  // ShapeField in configs.cpp
    int cmp;    // Cmp in configs.cpp
    double value;
  };
  struct Setting {
    int key;    // Key in configs.cpp
    int value;
  };
  struct Rule {
    bool gemm = true;   // [gemm ...] or [launch ...]
    unsigned ops = ~0u; // bit per GemmOp / LaunchOp named in the header
    std::vector<Condition> conditions;
    std::vector<Setting> settings;
  };

private:
  std::vector<Rule> rules_;
};

/// Loads a tuning file and makes it the process-wide table every launcher
/// applies when its caller passes none (replacing any earlier one). Returns
/// false (and leaves the current table) when the file cannot be read or
/// parsed.
bool loadTuningFile(const std::string &path, std::string &error);
/// Installs a parsed table process-wide (null: none).
void setTuning(std::shared_ptr<const TuningTable> table);
/// The process-wide table (null when none is loaded).
std::shared_ptr<const TuningTable> currentTuning();

//===--- fp8 block-scaled expert GEMMs ---------------------------------------===//

/// How one fp8 (e4m3 with 128 x 128 block scales) grouped GEMM launch runs:
/// the sm_90a kernel of kernels/gemm_fp8_wgmma.cu, 128-row tiles (two
/// consumer warpgroups of 64 rows), K steps of one 128-wide scale block.
/// Tuning files do not apply to it (their tile rules are the bf16 kernels');
/// pass one per call (KernelConfigs::fp8GateUp / fp8Down) to override the
/// heuristic.
struct Fp8GemmConfig {
  /// Gate-up: 256 only (128 gate + 128 up columns of the same act columns,
  /// so a tile covers whole 128-column quantization groups of act). Down: 128
  /// or 256 output columns.
  int tileN = 256;
  int stages = 4; // must equal fp8Stages(op, tileN)
  bool pdl = false;
  /// A consumer warpgroup whose 64 rows are all padding skips its wgmma.
  bool idleHalfSkip = false;
};

/// The stage depth the fp8 kernel is compiled with: gate-up stages are
/// 48.5 KB (A 128x128, B 256x128, scales) next to 16 KB of act staging; down
/// keeps 2 x 64 x tileN bf16 of output staging, leaving room for 3 stages at
/// tileN 256 and 4 at 128 (K = I is a few 128-blocks anyway).
constexpr int fp8Stages(GemmOp op, int tileN) {
  return (op == GemmOp::GateUp || tileN == 128) ? 4 : 3;
}

/// Why the fp8 kernels cannot run on `device` ("" when they can): e4m3 needs
/// sm_89 or newer, and the kernels are built for sm_90a only. fp8 never
/// falls back to a bf16 path.
std::string fp8DeviceProblem(const DeviceProps &device);

/// The default configuration of one fp8 GEMM launch (shape.dtype is
/// ignored: the operands are e4m3, the output bf16 or e4m3 act).
Fp8GemmConfig chooseFp8GemmConfig(const GemmShape &shape,
                                  const DeviceProps &device);

/// Text of an fp8 config ("fp8 128x256 stages 4 pdl ...").
std::string describe(const Fp8GemmConfig &config);

/// Per-call configuration of an op's kernels. Every pointer may be null.
struct KernelConfigs {
  /// Rules applied over the heuristic instead of the process-wide table.
  const TuningTable *tuning = nullptr;
  /// Exact configurations (no heuristic, no rules): the gate-up GEMM, every
  /// down GEMM launch, and the other kernels of the op.
  const GemmConfig *gateUp = nullptr;
  const GemmConfig *down = nullptr;
  const LaunchConfig *launch = nullptr;
  /// The fp8 expert ops' GEMMs (routedExpertsFp8, sharedExpertsFp8): exact
  /// configurations instead of chooseFp8GemmConfig's. `tuning` does not
  /// apply to them; `launch` does (routing, quantization and combine).
  const Fp8GemmConfig *fp8GateUp = nullptr;
  const Fp8GemmConfig *fp8Down = nullptr;
};

/// The configuration a launcher uses for `shape`: configs->gateUp/down when
/// given, else the heuristic's choice with the rules of configs->tuning (or
/// the process-wide table) applied; an Auto implementation is resolved as the
/// heuristic would.
GemmConfig resolveGemmConfig(const GemmShape &shape, const DeviceProps &device,
                             const KernelConfigs *configs);
LaunchConfig resolveLaunchConfig(const LaunchShape &shape,
                                 const KernelConfigs *configs);

/// Text of a config, for messages and tests ("wgmma 128x256x3 pdl ...").
std::string describe(const GemmConfig &config);

} // namespace moek

#endif // MOE_KERNELS_CONFIGS_H
