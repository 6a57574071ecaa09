// RUN: moe-opt %s -split-input-file --moe-plan-memory=token-hint=16 --moe-memory-report=%t.json | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t.json

// Buffers and workspaces share one arena; buffers whose lifetimes do not
// overlap share bytes. The arena equals the lower bound here.
// CHECK-LABEL: func.func @layer
// CHECK:       %[[T:.*]] = memref.dim %arg0
// CHECK:       %[[ARENA:.*]] = memref.alloc(%{{.*}}) {moe.arena} : memref<?xi8>
// CHECK:       memref.view %[[ARENA]][%{{.*}}][%[[T]]] : memref<?xi8> to memref<?x8xf32>
// CHECK:       moe.gate
// CHECK:       moe.routed_experts {{.*}} {moe.workspace_offset = array<i64: {{[0-9]+}}, {{[0-9]+}}>}
// CHECK:       moe.shared_experts {{.*}} {moe.workspace_offset = array<i64: {{[0-9]+}}, {{[0-9]+}}>}
// CHECK-NOT:   memref.dealloc %{{.*}} : memref<?x
// CHECK:       memref.dealloc %[[ARENA]] : memref<?xi8>
// CHECK-NEXT:  return
// REPORT:      "plan": {
// REPORT-NEXT:   "applied": true,
// REPORT-NEXT:   "arena": {
// REPORT-NEXT:     "bytes_at_hint": [[ARENA:[0-9]+]],
// REPORT:        "lower_bound": {
// REPORT-NEXT:     "bytes_at_hint": [[ARENA]],
func.func @layer(%x: memref<?x64xbf16>, %wg: memref<8x64xbf16>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %out: memref<?x64xbf16>) {
  %c0 = arith.constant 0 : index
  %T = memref.dim %x, %c0 : memref<?x64xbf16>
  %logits = memref.alloc(%T) : memref<?x8xf32>
  moe.gate ins(%x, %wg : memref<?x64xbf16>, memref<8x64xbf16>) outs(%logits : memref<?x8xf32>)
  %ids = memref.alloc(%T) : memref<?x2xi32>
  %w = memref.alloc(%T) : memref<?x2xf32>
  moe.topk softmax ins(%logits : memref<?x8xf32>) outs(%ids, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64}
  memref.dealloc %logits : memref<?x8xf32>
  %r = memref.alloc(%T) : memref<?x64xbf16>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  memref.dealloc %ids : memref<?x2xi32>
  memref.dealloc %w : memref<?x2xf32>
  %sh = memref.alloc(%T) : memref<?x64xbf16>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.add ins(%r, %sh : memref<?x64xbf16>, memref<?x64xbf16>) outs(%out : memref<?x64xbf16>)
  memref.dealloc %r : memref<?x64xbf16>
  memref.dealloc %sh : memref<?x64xbf16>
  return
}

// -----

// Static sizes give a static arena; a returned buffer stays an allocation.
// CHECK-LABEL: func.func @static_and_escaping
// CHECK:       memref.alloc() {moe.arena} : memref<{{[0-9]+}}xi8>
// CHECK:       %[[KEEP:.*]] = memref.alloc() : memref<256xf32>
// CHECK:       return %[[KEEP]]
func.func @static_and_escaping(%x: memref<256xf32> {llvm.noalias}) -> memref<256xf32> {
  %a = memref.alloc() : memref<256xf32>
  linalg.copy ins(%x : memref<256xf32>) outs(%a : memref<256xf32>)
  %keep = memref.alloc() : memref<256xf32>
  linalg.add ins(%a, %a : memref<256xf32>, memref<256xf32>) outs(%keep : memref<256xf32>)
  memref.dealloc %a : memref<256xf32>
  return %keep : memref<256xf32>
}
