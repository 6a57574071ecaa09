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

} // namespace moert

#endif // MOE_RUNTIME_WORKSPACELAYOUT_H
