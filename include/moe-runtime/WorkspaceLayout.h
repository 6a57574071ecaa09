//===- WorkspaceLayout.h - The sub-buffers of each op's workspace -*- C++ -*-//
//
// How a workspace of Workspace.h's size is cut into sub-buffers. The CPU and
// CUDA backends and the CUDA kernels all carve with these functions, so a
// workspace means the same thing everywhere (and tests can inspect it).
// B is the bytes of one activation element.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_RUNTIME_WORKSPACELAYOUT_H
#define MOE_RUNTIME_WORKSPACELAYOUT_H

#include "moe-runtime/Workspace.h"

#include <cstdint>

namespace moert {

// The sub-buffers of each op's workspace, carved in the
// order Workspace.h lists them, each at a MOERT_WORKSPACE_ALIGNMENT-aligned
// address.

/// Routed experts. A "pair" p = t*K + j is slot j of token t.
struct RoutedWorkspaceLayout {
  /// E+1 prefix sums: the pairs routed to expert e are sorted positions
  /// [expertOffsets[e], expertOffsets[e+1]).
  int32_t *expertOffsets;
  /// T*K: the pair at each sorted position, sorted by expert, stable (by
  /// token, then slot).
  int32_t *sortedPairs;
  /// T*K: the sorted position of each pair (the inverse permutation).
  int32_t *pairPositions;
  /// T*K rows of I elements (the op's dtype), in sorted order:
  /// round(SiLU(gate) * up).
  void *activations;
  /// T*K rows of C = min(H, MOERT_COMBINE_COLUMNS) elements, in sorted order:
  /// one column block of the down projection.
  void *partials;
  int64_t combineColumns; // C
  int64_t bytes;          // the end of the last sub-buffer
};


namespace detail {
/// The next sub-buffer at a MOERT_WORKSPACE_ALIGNMENT-aligned *address*, so
/// that a workspace placed anywhere (e.g. at a planned arena offset) works;
/// the formula's slack covers one alignment gap per sub-buffer.
inline char *carve(char *base, int64_t &offset, int64_t bytes) {
  uintptr_t address = reinterpret_cast<uintptr_t>(base) + uintptr_t(offset);
  uintptr_t aligned = (address + MOERT_WORKSPACE_ALIGNMENT - 1) /
                      MOERT_WORKSPACE_ALIGNMENT * MOERT_WORKSPACE_ALIGNMENT;
  offset += int64_t(aligned - address);
  char *p = base + offset;
  offset += bytes;
  return p;
}
} // namespace detail

inline RoutedWorkspaceLayout carveRoutedWorkspace(void *workspace, int64_t T,
                                                  int64_t H, int64_t E,
                                                  int64_t K, int64_t I,
                                                  int64_t B) {
  char *base = static_cast<char *>(workspace);
  int64_t C = H < MOERT_COMBINE_COLUMNS ? H : MOERT_COMBINE_COLUMNS;
  int64_t offset = 0;
  RoutedWorkspaceLayout layout;
  layout.expertOffsets =
      reinterpret_cast<int32_t *>(detail::carve(base, offset, (E + 1) * 4));
  layout.sortedPairs =
      reinterpret_cast<int32_t *>(detail::carve(base, offset, T * K * 4));
  layout.pairPositions =
      reinterpret_cast<int32_t *>(detail::carve(base, offset, T * K * 4));
  layout.activations = detail::carve(base, offset, T * K * I * B);
  layout.partials = detail::carve(base, offset, T * K * C * B);
  layout.combineColumns = C;
  layout.bytes = offset;
  return layout;
}

/// Shared experts: one sub-buffer, T rows of I elements: round(SiLU(g) * u).
inline void *carveSharedWorkspace(void *workspace) {
  int64_t offset = 0;
  return detail::carve(static_cast<char *>(workspace), offset, 0);
}

/// Routed experts with fp8 block-scaled weights (moert_routed_experts_fp8_
/// workspace). Scales are fp32 [rows, moert_fp8_groups(columns)], row-major.
struct RoutedFp8WorkspaceLayout {
  int32_t *expertOffsets; // E+1, as in RoutedWorkspaceLayout
  int32_t *sortedPairs;   // T*K
  int32_t *pairPositions; // T*K
  /// T rows of H e4m3 bytes in token order, and their scales [T, H/128].
  uint8_t *hiddenQ;
  float *hiddenScales;
  /// T*K rows of I e4m3 bytes in sorted order: SiLU(gate) * up quantized per
  /// 128 columns, and their scales [T*K, I/128].
  uint8_t *actQ;
  float *actScales;
  /// T*K rows of C = min(H, MOERT_COMBINE_COLUMNS) bf16 in sorted order.
  void *partials;
  int64_t combineColumns; // C
  int64_t bytes;          // the end of the last sub-buffer
};

inline RoutedFp8WorkspaceLayout
carveRoutedFp8Workspace(void *workspace, int64_t T, int64_t H, int64_t E,
                        int64_t K, int64_t I) {
  char *base = static_cast<char *>(workspace);
  int64_t C = H < MOERT_COMBINE_COLUMNS ? H : MOERT_COMBINE_COLUMNS;
  int64_t offset = 0;
  RoutedFp8WorkspaceLayout layout;
  layout.expertOffsets =
      reinterpret_cast<int32_t *>(detail::carve(base, offset, (E + 1) * 4));
  layout.sortedPairs =
      reinterpret_cast<int32_t *>(detail::carve(base, offset, T * K * 4));
  layout.pairPositions =
      reinterpret_cast<int32_t *>(detail::carve(base, offset, T * K * 4));
  layout.hiddenQ =
      reinterpret_cast<uint8_t *>(detail::carve(base, offset, T * H));
  layout.hiddenScales = reinterpret_cast<float *>(
      detail::carve(base, offset, T * moert_fp8_groups(H) * 4));
  layout.actQ =
      reinterpret_cast<uint8_t *>(detail::carve(base, offset, T * K * I));
  layout.actScales = reinterpret_cast<float *>(
      detail::carve(base, offset, T * K * moert_fp8_groups(I) * 4));
  layout.partials = detail::carve(base, offset, T * K * C * 2);
  layout.combineColumns = C;
  layout.bytes = offset;
  return layout;
}

/// Shared experts with fp8 block-scaled weights
/// (moert_shared_experts_fp8_workspace).
struct SharedFp8WorkspaceLayout {
  uint8_t *hiddenQ;    // T x H e4m3
  float *hiddenScales; // T x H/128
  uint8_t *actQ;       // T x I e4m3: SiLU(gate) * up, quantized
  float *actScales;    // T x I/128
  int64_t bytes;       // the end of the last sub-buffer
};

inline SharedFp8WorkspaceLayout carveSharedFp8Workspace(void *workspace,
                                                        int64_t T, int64_t H,
                                                        int64_t I) {
  char *base = static_cast<char *>(workspace);
  int64_t offset = 0;
  SharedFp8WorkspaceLayout layout;
  layout.hiddenQ =
      reinterpret_cast<uint8_t *>(detail::carve(base, offset, T * H));
  layout.hiddenScales = reinterpret_cast<float *>(
      detail::carve(base, offset, T * moert_fp8_groups(H) * 4));
  layout.actQ = reinterpret_cast<uint8_t *>(detail::carve(base, offset, T * I));
  layout.actScales = reinterpret_cast<float *>(
      detail::carve(base, offset, T * moert_fp8_groups(I) * 4));
  layout.bytes = offset;
  return layout;
}

} // namespace moert

#endif // MOE_RUNTIME_WORKSPACELAYOUT_H
