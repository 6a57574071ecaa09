// RUN: moe-opt %s -split-input-file -verify-diagnostics --moe-optimize -o /dev/null
// RUN: moe-opt %s -split-input-file -verify-diagnostics --moe-optimize --moe-memory-report=%t.json --moe-memory-timeline=%t.svg -o /dev/null
// RUN: moe-opt %s -split-input-file -verify-diagnostics --moe-schedule-peak-memory --moe-plan-memory -o /dev/null

// An arena whose byte count is negative (here INT64_MIN * 2, which saturates)
// was modelled as a negative size: the memory report then subtracted
// saturated sizes (signed overflow, reported by UBSan in the sanitizer build;
// found by moe-opt-fuzzer, structure-aware mode, after about a million
// executions). A negative constant is no byte count: the block is left
// unchanged, with a warning that says what an arena's size may be built from.

// expected-warning @+1 {{left a block unchanged: cannot size an arena (moe.arena): its byte count must be built from non-negative constants}}
func.func @negative_arena(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  %min = arith.constant -9223372036854775808 : index
  %c2 = arith.constant 2 : index
  %bytes = arith.muli %min, %c2 : index
  %a = memref.alloc(%bytes) {moe.arena} : memref<?xi8>
  %b = memref.alloc(%c2) {moe.arena} : memref<?xi8>
  memref.dealloc %a : memref<?xi8>
  moe.add ins(%x, %x : memref<?x8xf32>, memref<?x8xf32>) outs(%y : memref<?x8xf32>) {scale = -1.0 : f32}
  memref.dealloc %b : memref<?xi8>
  return
}

// -----

// A negative constant inside maxui is rejected the same way.
// expected-warning @+1 {{left a block unchanged: cannot size an arena (moe.arena)}}
func.func @negative_in_max(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?x8xf32>
  %neg = arith.constant -16 : index
  %bytes = arith.maxui %n, %neg : index
  %a = memref.alloc(%bytes) {moe.arena} : memref<?xi8>
  moe.add ins(%x, %x : memref<?x8xf32>, memref<?x8xf32>) outs(%y : memref<?x8xf32>) {scale = 1.0 : f32}
  memref.dealloc %a : memref<?xi8>
  return
}
