//===- TestModule.cpp - A stand-in for a moe-compile module, for tests ----===//
//
// moe-run's tests need modules before (and independently of) moe-compile.
// This shared library has the same interface as a compiled layer:
//
//   char moe_module_description[]        the JSON description
//   void moe_entry(void **args, int64_t tokens)
//
// but its description is read when the library is loaded from the file
// named by $MOE_RUN_TEST_DESCRIPTION (so one build serves every test), and
// moe_entry interprets the description's ops by calling the runtime:
// moert_gate, moert_topk, ... on the current context, with every buffer
// taken through _mlir_memref_to_llvm_aligned_alloc / _mlir_memref_to_llvm_free
// right before its first use and released right after its last, as compiled
// code does. Like a compiled module it does not link libmoe_runtime: those
// symbols resolve against the runtime loaded by moe-run.
//
// $MOE_RUN_TEST_FAULT injects the failures moe-run must report:
//   error             a runtime call fails (sticky error)
//   nan               output element 5 becomes NaN (CPU backend only)
//   perturb           output element 3 gets +1.0 (CPU backend only)
//   leak              a 100-byte allocation is never freed
//   crash             a write through a null pointer
//   nondeterministic  the second call's output differs (CPU backend only)
//
//===----------------------------------------------------------------------===//

#include "Description.h"

#include "moe-runtime/moe_runtime.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define EXPORT __attribute__((visibility("default")))

extern "C" {
EXPORT char moe_module_description[1 << 20];
EXPORT void moe_entry(void **args, int64_t tokens);
// libmoe_runtime (lib/Runtime/MemRefAllocator.cpp).
void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size);
void _mlir_memref_to_llvm_free(void *ptr);
}

using namespace moerun;

namespace {

__attribute__((constructor)) void loadDescription() {
  const char *path = std::getenv("MOE_RUN_TEST_DESCRIPTION");
  if (!path)
    return; // an empty description
  FILE *f = std::fopen(path, "rb");
  if (!f) {
    std::fprintf(stderr, "test module: cannot open %s\n", path);
    return;
  }
  size_t n = std::fread(moe_module_description, 1,
                        sizeof moe_module_description - 1, f);
  moe_module_description[n] = '\0';
  std::fclose(f);
}

moert_dtype toRuntime(DType d) {
  switch (d) {
  case DType::BF16:
    return MOERT_BF16;
  case DType::F16:
    return MOERT_F16;
  case DType::F32:
    return MOERT_F32;
  case DType::I32:
    return MOERT_I32;
  case DType::F8E4M3:
    return MOERT_F8E4M3;
  }
  return MOERT_F32;
}

/// Makes the current context's error sticky with a recognizable message.
void failRun(const std::string &why) {
  std::fprintf(stderr, "test module: %s\n", why.c_str());
  moert_add(nullptr, nullptr, nullptr, MOERT_F32, -1, 0, 1.0f);
}

int calls = 0;

} // namespace

void moe_entry(void **args, int64_t T) {
  ++calls;
  const char *faultEnv = std::getenv("MOE_RUN_TEST_FAULT");
  std::string fault = faultEnv ? faultEnv : "";
  ModuleDescription d;
  std::string error;
  if (!parseDescription(moe_module_description, d, error))
    return failRun("bad description: " + error);
  std::vector<TypedOp> ops;
  if (!analyzeOps(d, T, ops, error))
    return failRun(error);

  // Buffer lifetimes: first and last op using each.
  size_t nb = d.buffers.size();
  std::vector<int64_t> first(nb, -1), last(nb, -1);
  for (size_t i = 0; i < ops.size(); ++i)
    for (const Operand &o : ops[i].operands)
      if (!o.isArg) {
        if (first[size_t(o.index)] < 0)
          first[size_t(o.index)] = int64_t(i);
        last[size_t(o.index)] = int64_t(i);
      }
  std::vector<void *> buffers(nb, nullptr);

  if (fault == "error")
    failRun("injected error");
  if (fault == "crash") {
    volatile int *p = nullptr;
    *p = 1;
  }
  if (fault == "leak")
    _mlir_memref_to_llvm_aligned_alloc(64, 100);
  if (fault == "device") {
    // A kernel that reads and writes unmapped addresses: on the CUDA backend
    // the device faults (an illegal memory access, reported asynchronously at
    // the next synchronization). Only for --backend cuda: on the CPU backend
    // this is a segmentation fault of the host.
    moert_add(reinterpret_cast<void *>(uintptr_t(0x1000)),
              reinterpret_cast<void *>(uintptr_t(0x2000)),
              reinterpret_cast<void *>(uintptr_t(0x3000)), MOERT_BF16, 1, 8,
              1.0f);
  }

  for (size_t i = 0; i < ops.size(); ++i) {
    const TypedOp &op = ops[i];
    for (const Operand &o : op.operands)
      if (!o.isArg && first[size_t(o.index)] == int64_t(i) &&
          !buffers[size_t(o.index)]) {
        int64_t bytes = 0;
        byteSize(d.buffers[size_t(o.index)], T, bytes);
        buffers[size_t(o.index)] =
            _mlir_memref_to_llvm_aligned_alloc(64, size_t(bytes));
      }
    auto ptr = [&](size_t k) -> void * {
      const Operand &o = op.operands[k];
      return o.isArg ? args[o.index] : buffers[size_t(o.index)];
    };
    auto dt = [&](size_t k) {
      return toRuntime(d.tensor(op.operands[k]).dtype);
    };
    // An fp8 weight's block scales (null when absent).
    auto scales = [&](int k) -> const float * {
      return k < 0 ? nullptr : static_cast<const float *>(ptr(size_t(k)));
    };
    switch (op.kind) {
    case OpKind::Gate:
      moert_gate(ptr(0), dt(0), ptr(1), dt(1), static_cast<float *>(ptr(2)), T,
                 op.H, op.E);
      break;
    case OpKind::TopK: {
      size_t ids = op.hasBias ? 2 : 1;
      moert_topk(static_cast<const float *>(ptr(0)),
                 op.hasBias ? static_cast<const float *>(ptr(1)) : nullptr,
                 static_cast<int32_t *>(ptr(ids)),
                 static_cast<float *>(ptr(ids + 1)), T, op.E, op.K,
                 op.scoring == Scoring::Sigmoid ? MOERT_SCORING_SIGMOID
                                                : MOERT_SCORING_SOFTMAX,
                 op.nGroup, op.topkGroup, op.renormalize ? 1 : 0,
                 float(op.routedScalingFactor));
      break;
    }
    case OpKind::RoutedExperts:
      moert_routed_experts(
          ptr(0), static_cast<const int32_t *>(ptr(1)),
          static_cast<const float *>(ptr(2)), ptr(size_t(op.w13)),
          ptr(size_t(op.w2)), scales(op.w13Scale), scales(op.w2Scale),
          ptr(size_t(op.output)), nullptr, dt(0), dt(size_t(op.w13)), T,
          op.H, op.E, op.K, op.I);
      break;
    case OpKind::SharedExperts:
      moert_shared_experts(ptr(0), ptr(size_t(op.w13)), ptr(size_t(op.w2)),
                           scales(op.w13Scale), scales(op.w2Scale),
                           ptr(size_t(op.output)), nullptr, dt(0),
                           dt(size_t(op.w13)), T, op.H, op.I);
      break;
    case OpKind::Add:
      moert_add(ptr(0), ptr(1), ptr(2), dt(0), T, op.H, float(op.scale));
      break;
    case OpKind::AllReduce:
      moert_all_reduce(ptr(0), ptr(1), dt(0), T, op.H, op.groupSize);
      break;
    case OpKind::Copy: {
      int64_t bytes = 0;
      byteSize(d.tensor(op.operands[0]), T, bytes);
      moert_copy(ptr(1), ptr(0), bytes);
      break;
    }
    }
    for (const Operand &o : op.operands)
      if (!o.isArg && last[size_t(o.index)] == int64_t(i) &&
          buffers[size_t(o.index)]) {
        _mlir_memref_to_llvm_free(buffers[size_t(o.index)]);
        buffers[size_t(o.index)] = nullptr;
      }
  }

  // Output faults (host memory: CPU backend).
  for (size_t a = 0; a < d.args.size(); ++a) {
    if (d.args[a].role != Role::Output || !isFloat(d.args[a].dtype))
      continue;
    int64_t n = 0;
    elementCount(d.args[a].shape, T, n);
    if (fault == "nan" && n > 5)
      storeElement(args[a], d.args[a].dtype, 5, std::nan(""));
    if (fault == "perturb" && n > 3)
      storeElement(args[a], d.args[a].dtype, 3,
                   loadElement(args[a], d.args[a].dtype, 3) + 1.0);
    if (fault == "nondeterministic" && calls == 2 && n > 0)
      storeElement(args[a], d.args[a].dtype, 0,
                   loadElement(args[a], d.args[a].dtype, 0) + 1.0);
    break;
  }
}
