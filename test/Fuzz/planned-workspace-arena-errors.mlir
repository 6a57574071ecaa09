// RUN: moe-opt %s -split-input-file -verify-diagnostics --convert-moe-to-runtime

// Found by moe-opt-fuzzer: convert-moe-to-runtime took the last arena of the
// block, even one allocated after the op, and produced IR that does not
// verify. A planned workspace now needs exactly one arena, allocated before.

func.func @two_arenas(%x: memref<4x64xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %out: memref<4x64xbf16>) {
  %a = memref.alloc() {moe.arena} : memref<4096xi8>
  %b = memref.alloc() {moe.arena} : memref<4096xi8>
  // expected-error @+1 {{'moe.shared_experts' op has a planned workspace but its block has 2 arenas (moe-plan-memory makes one)}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%out : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 1024>}
  memref.dealloc %a : memref<4096xi8>
  memref.dealloc %b : memref<4096xi8>
  return
}

// -----

func.func @arena_after(%x: memref<4x64xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %out: memref<4x64xbf16>) {
  // expected-error @+1 {{'moe.shared_experts' op has a planned workspace but the arena is allocated after it}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%out : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 1024>}
  %a = memref.alloc() {moe.arena} : memref<4096xi8>
  memref.dealloc %a : memref<4096xi8>
  return
}
