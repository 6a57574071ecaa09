//===- Allocator.h - Accounting, limits and caching over a backend -*- C++
//-*-===//
//
// The context's allocator. It takes raw blocks from the Backend and counts:
//   current  - bytes requested by live allocations (what a static plan counts)
//   peak     - the maximum of current since creation or resetPeak
//   reserved - bytes of the blocks held from the backend (live + cached)
// A memory limit bounds `current`. In caching mode freed blocks go to free
// lists keyed by size class (512-byte steps up to 1 MiB, then four classes per
// power of two) and are reused by allocations of the same class.
// Thread-safe (one mutex); never throws.
//
//===----------------------------------------------------------------------===//
#ifndef MOE_LIB_RUNTIME_ALLOCATOR_H
#define MOE_LIB_RUNTIME_ALLOCATOR_H

#include "Backend.h"

#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace moert {

class Allocator {
public:
  explicit Allocator(Backend &backend) : backend(backend) {}
  ~Allocator();
  Allocator(const Allocator &) = delete;
  Allocator &operator=(const Allocator &) = delete;

  /// `what` names the caller in messages ("moert_alloc", "moert_routed_experts
  /// workspace", ...). On failure *out is null and `error` says why.
  moert_status allocate(int64_t bytes, bool arena, const char *what, void **out,
                        std::string &error);
  /// `arena` must match how `ptr` was allocated.
  moert_status deallocate(void *ptr, bool arena, const char *what,
                          std::string &error);

  /// Whether [ptr, ptr + bytes) lies inside one live allocation (its
  /// requested bytes). Linear in the number of live allocations.
  bool containsRange(const void *ptr, int64_t bytes);

  moert_status setLimit(int64_t bytes);
  void setMode(moert_alloc_mode mode);
  moert_alloc_mode getMode();
  void emptyCache();

  int64_t currentBytes();
  int64_t peakBytes();
  int64_t reservedBytes();
  void resetPeak();

  /// The block size of a request in caching mode.
  static int64_t sizeClass(int64_t bytes);

private:
  struct Allocation {
    int64_t requested;  // counted in current/peak
    int64_t blockBytes; // taken from the backend
    bool arena;
  };

  void emptyCacheLocked();

  Backend &backend;
  std::mutex mutex;
  moert_alloc_mode mode = MOERT_ALLOC_DIRECT;
  int64_t limit = 0;
  int64_t current = 0, peak = 0, reserved = 0;
  std::unordered_map<void *, Allocation> live;
  std::map<int64_t, std::vector<void *>> freeLists; // by block size
};

} // namespace moert

#endif // MOE_LIB_RUNTIME_ALLOCATOR_H
