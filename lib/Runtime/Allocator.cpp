//===- Allocator.cpp - Accounting, limits and caching over a backend -----===//

#include "Allocator.h"

#include <cstdio>
#include <limits>

using namespace moert;

namespace {
std::string pointerString(const void *ptr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", ptr);
  return buf;
}

int64_t roundUp(int64_t value, int64_t step) {
  return (value + step - 1) / step * step;
}

// Beyond this a request cannot be rounded to a size class without overflow;
// no backend could satisfy it anyway.
constexpr int64_t kMaxRequest = std::numeric_limits<int64_t>::max() / 4;
} // namespace

Allocator::~Allocator() {
  for (auto &entry : live)
    backend.deallocate(entry.first, entry.second.blockBytes);
  live.clear();
  emptyCacheLocked();
}

int64_t Allocator::sizeClass(int64_t bytes) {
  if (bytes <= 512)
    return 512;
  if (bytes <= (int64_t(1) << 20))
    return roundUp(bytes, 512);
  int64_t power = int64_t(1) << 20;
  while (power * 2 <= bytes)
    power *= 2;
  return roundUp(bytes, power / 4);
}

moert_status Allocator::allocate(int64_t bytes, bool arena, const char *what,
                                 void **out, std::string &error) {
  *out = nullptr;
  if (bytes < 0) {
    error = std::string(what) + ": bytes must be non-negative, got " +
            std::to_string(bytes);
    return MOERT_ERROR_INVALID_ARGUMENT;
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (limit > 0 && bytes > limit - current) {
    error = std::string(what) + ": allocating " + std::to_string(bytes) +
            " bytes would exceed the memory limit (requested " +
            std::to_string(bytes) + " bytes, current " +
            std::to_string(current) + " bytes, limit " + std::to_string(limit) +
            " bytes)";
    return MOERT_ERROR_MEMORY_LIMIT;
  }
  if (bytes > kMaxRequest) {
    error = std::string(what) + ": out of memory: cannot allocate " +
            std::to_string(bytes) + " bytes on " + backend.describe();
    return MOERT_ERROR_OUT_OF_MEMORY;
  }

  // A zero-byte allocation still gets a block of its own (a unique pointer)
  // but counts as 0 bytes.
  int64_t blockBytes =
      mode == MOERT_ALLOC_CACHING ? sizeClass(bytes) : (bytes > 0 ? bytes : 1);
  void *ptr = nullptr;
  if (mode == MOERT_ALLOC_CACHING) {
    auto it = freeLists.find(blockBytes);
    if (it != freeLists.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
    } else if (limit > 0 && reserved + blockBytes > limit) {
      // Keep what is held from the backend near the limit: give the cache
      // back before growing past it.
      emptyCacheLocked();
    }
  }
  if (!ptr) {
    std::string backendError;
    moert_status status = backend.allocate(blockBytes, &ptr, backendError);
    if (status != MOERT_SUCCESS && mode == MOERT_ALLOC_CACHING &&
        !freeLists.empty()) {
      // The cache may be what fills the device: release it and retry once.
      emptyCacheLocked();
      backendError.clear();
      status = backend.allocate(blockBytes, &ptr, backendError);
    }
    if (status != MOERT_SUCCESS) {
      error = std::string(what) + ": " + backendError + " (current " +
              std::to_string(current) + " bytes, reserved " +
              std::to_string(reserved) + " bytes)";
      return status;
    }
    reserved += blockBytes;
  }
  try {
    live.emplace(ptr, Allocation{bytes, blockBytes, arena});
  } catch (...) { // host memory for the bookkeeping ran out
    backend.deallocate(ptr, blockBytes);
    reserved -= blockBytes;
    error = std::string(what) + ": out of host memory for bookkeeping";
    return MOERT_ERROR_OUT_OF_MEMORY;
  }
  current += bytes;
  if (current > peak)
    peak = current;
  *out = ptr;
  return MOERT_SUCCESS;
}

moert_status Allocator::deallocate(void *ptr, bool arena, const char *what,
                                   std::string &error) {
  if (!ptr)
    return MOERT_SUCCESS;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = live.find(ptr);
  if (it == live.end()) {
    error = std::string(what) + ": pointer " + pointerString(ptr) +
            " was not allocated by this context (or was already freed)";
    return MOERT_ERROR_INVALID_ARGUMENT;
  }
  if (it->second.arena != arena) {
    error = std::string(what) + ": pointer " + pointerString(ptr) +
            (arena ? " is not an arena (free it with moert_free)"
                   : " is an arena (release it with moert_arena_release)");
    return MOERT_ERROR_INVALID_ARGUMENT;
  }
  Allocation allocation = it->second;
  live.erase(it);
  current -= allocation.requested;
  // Only blocks of a size class go to the free lists; direct-mode blocks
  // (exact sizes) are returned even when the mode has changed since.
  if (mode == MOERT_ALLOC_CACHING &&
      allocation.blockBytes == sizeClass(allocation.blockBytes)) {
    freeLists[allocation.blockBytes].push_back(ptr);
  } else {
    backend.deallocate(ptr, allocation.blockBytes);
    reserved -= allocation.blockBytes;
  }
  return MOERT_SUCCESS;
}

bool Allocator::containsRange(const void *ptr, int64_t bytes) {
  if (!ptr || bytes < 0)
    return false;
  uintptr_t begin = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(mutex);
  for (auto &entry : live) {
    uintptr_t start = reinterpret_cast<uintptr_t>(entry.first);
    if (begin >= start && begin - start <= uintptr_t(entry.second.requested) &&
        uintptr_t(bytes) <= uintptr_t(entry.second.requested) - (begin - start))
      return true;
  }
  return false;
}

moert_status Allocator::setLimit(int64_t bytes) {
  if (bytes < 0)
    return MOERT_ERROR_INVALID_ARGUMENT;
  std::lock_guard<std::mutex> lock(mutex);
  limit = bytes;
  return MOERT_SUCCESS;
}

void Allocator::setMode(moert_alloc_mode newMode) {
  std::lock_guard<std::mutex> lock(mutex);
  mode = newMode;
  if (mode == MOERT_ALLOC_DIRECT)
    emptyCacheLocked();
}

moert_alloc_mode Allocator::getMode() {
  std::lock_guard<std::mutex> lock(mutex);
  return mode;
}

void Allocator::emptyCache() {
  std::lock_guard<std::mutex> lock(mutex);
  emptyCacheLocked();
  backend.trim();
}

void Allocator::emptyCacheLocked() {
  for (auto &entry : freeLists)
    for (void *ptr : entry.second) {
      backend.deallocate(ptr, entry.first);
      reserved -= entry.first;
    }
  freeLists.clear();
}

int64_t Allocator::currentBytes() {
  std::lock_guard<std::mutex> lock(mutex);
  return current;
}

int64_t Allocator::peakBytes() {
  std::lock_guard<std::mutex> lock(mutex);
  return peak;
}

int64_t Allocator::reservedBytes() {
  std::lock_guard<std::mutex> lock(mutex);
  return reserved;
}

void Allocator::resetPeak() {
  std::lock_guard<std::mutex> lock(mutex);
  peak = current;
}
