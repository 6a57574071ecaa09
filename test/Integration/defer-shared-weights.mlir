// The routed experts overwrite a buffer that the shared experts read as
// weights (T = 2I makes an activation-shaped w13). Deferring the shared
// experts past the routed ones used to change the output; optimized and
// unoptimized modules must give the same bits. Found by scripts/difftest.py.
// REQUIRES: moe-run
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-compile %s -o %t/opt.so
// RUN: moe-compile %s --no-optimize -o %t/noopt.so
// RUN: moe-run %t/opt.so --json > %t/opt.json
// RUN: moe-run %t/noopt.so --json > %t/noopt.json
// RUN: %python %S/Inputs/compare-runs.py %t/opt.json %t/noopt.json | FileCheck %s
// CHECK: checksums same
func.func @routed_writes_shared_weight(%x: memref<4x8xf32> {moe.role = "input", moe.name = "x"}, %ids: memref<4x1xi32> {moe.role = "input", moe.name = "ids"}, %w: memref<4x1xf32> {moe.role = "input", moe.name = "w"}, %w13: memref<2x4x8xf32> {moe.role = "weight", moe.name = "w13"}, %w2: memref<2x8x2xf32> {moe.role = "weight", moe.name = "w2"}, %sw13: memref<4x8xf32> {moe.role = "input", moe.name = "sw13"}, %sw2: memref<8x2xf32> {moe.role = "weight", moe.name = "sw2"}, %out: memref<4x8xf32> {moe.role = "output", moe.name = "out"}) {
  %sh = memref.alloc() : memref<4x8xf32>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%sh : memref<4x8xf32>)
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<4x8xf32>, memref<4x1xi32>, memref<4x1xf32>, memref<2x4x8xf32>, memref<2x8x2xf32>) outs(%sw13 : memref<4x8xf32>)
  moe.add ins(%sh, %sw13 : memref<4x8xf32>, memref<4x8xf32>) outs(%out : memref<4x8xf32>)
  memref.dealloc %sh : memref<4x8xf32>
  return
}
