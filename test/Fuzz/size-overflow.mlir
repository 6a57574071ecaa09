// RUN: moe-opt --allow-unregistered-dialect %s -split-input-file -verify-diagnostics --moe-optimize -o /dev/null
// RUN: moe-opt --allow-unregistered-dialect %s -split-input-file -verify-diagnostics --moe-optimize=token-hint=1099511627776 --moe-memory-report=%t.json --moe-memory-timeline=%t.svg -o /dev/null
// RUN: moe-opt --allow-unregistered-dialect %s -split-input-file -verify-diagnostics --moe-schedule-peak-memory=token-hint=0 --moe-plan-memory=token-hint=0 -o /dev/null

// Byte counts that overflow int64 were undefined behaviour (signed overflow,
// reported by UBSan in the sanitizer build; found by moe-opt-fuzzer after
// test/Fuzz/linear-size-overflow.mlir): the size of a huge static shape, the
// workspace of an op with a huge intermediate size, the plan's alignment of
// a size near 2^63, an arena size computed with muli. A static size that
// overflows cannot be modelled (the block is left unchanged, as for two
// dynamic dimensions); a workspace beyond what the runtime's formula can
// compute saturates; the rest saturates.

// expected-warning @+1 {{left a block unchanged: cannot size a buffer of type memref<4611686018427387904x4xf32>}}
func.func @huge_static(%x: memref<4x8xf32>) {
  %a = memref.alloc() : memref<4611686018427387904x4xf32>
  %b = memref.alloc() : memref<4x8xf32>
  memref.dealloc %a : memref<4611686018427387904x4xf32>
  memref.dealloc %b : memref<4x8xf32>
  return
}

// -----

func.func @huge_workspace(%x: memref<?x8xf32>, %w13: memref<4611686018427387904x8xf32>, %w2: memref<8x2305843009213693952xf32>, %out: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %t = memref.dim %x, %c0 : memref<?x8xf32>
  %tmp = memref.alloc(%t) : memref<?x8xf32>
  moe.shared_experts ins(%x, %w13, %w2 : memref<?x8xf32>, memref<4611686018427387904x8xf32>, memref<8x2305843009213693952xf32>) outs(%tmp : memref<?x8xf32>)
  moe.add ins(%tmp, %x : memref<?x8xf32>, memref<?x8xf32>) outs(%out : memref<?x8xf32>)
  memref.dealloc %tmp : memref<?x8xf32>
  return
}

// -----

func.func @size_near_max(%x: memref<4x8xf32>, %out: memref<4x8xf32>) {
  // expected-remark @below {{left out of the memory plan's arena: it is used by 'test.use', whose memory effects are unknown}}
  %a = memref.alloc() : memref<9223372036854775807xi8>
  // expected-remark @below {{left out of the memory plan's arena: it is used by 'test.use', whose memory effects are unknown}}
  %b = memref.alloc() : memref<4x8xf32>
  memref.copy %x, %b : memref<4x8xf32> to memref<4x8xf32>
  "test.use"(%a, %b) : (memref<9223372036854775807xi8>, memref<4x8xf32>) -> ()
  moe.add ins(%b, %x : memref<4x8xf32>, memref<4x8xf32>) outs(%out : memref<4x8xf32>)
  memref.dealloc %a : memref<9223372036854775807xi8>
  memref.dealloc %b : memref<4x8xf32>
  return
}

// -----

func.func @arena_muli(%x: memref<?x8xf32>, %out: memref<?x8xf32>) {
  %big = arith.constant 4611686018427387904 : index
  %c4 = arith.constant 4 : index
  %n = arith.muli %big, %c4 : index
  %arena = memref.alloc(%n) {moe.arena} : memref<?xi8>
  moe.add ins(%x, %x : memref<?x8xf32>, memref<?x8xf32>) outs(%out : memref<?x8xf32>)
  memref.dealloc %arena : memref<?xi8>
  return
}
