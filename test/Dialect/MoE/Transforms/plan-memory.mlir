// RUN: moe-opt %s --moe-plan-memory=token-hint=16 --moe-memory-report=%t.json | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t.json

// Buffers and workspaces share one arena; buffers whose lifetimes do not
// overlap share bytes. The arena equals the lower bound here.
// (The report holds both functions; the first one's plan is checked.)
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
  %ids = memref.alloc(%T) : memref<?x4xi32>
  %w = memref.alloc(%T) : memref<?x4xf32>
  moe.topk softmax ins(%logits : memref<?x8xf32>) outs(%ids, %w : memref<?x4xi32>, memref<?x4xf32>) {k = 4 : i64}
  memref.dealloc %logits : memref<?x8xf32>
  %r = memref.alloc(%T) : memref<?x64xbf16>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x4xi32>, memref<?x4xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  memref.dealloc %ids : memref<?x4xi32>
  memref.dealloc %w : memref<?x4xf32>
  %sh = memref.alloc(%T) : memref<?x64xbf16>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.add ins(%r, %sh : memref<?x64xbf16>, memref<?x64xbf16>) outs(%out : memref<?x64xbf16>)
  memref.dealloc %r : memref<?x64xbf16>
  memref.dealloc %sh : memref<?x64xbf16>
  return
}

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

// Tiny per-token sizes (k = 1: 4 bytes per token for ids and weights) lose
// to 16-byte alignment: the plan would exceed the unplanned peak, so the
// function stays as it was.
// CHECK-LABEL: func.func @not_worth_it
// CHECK-NOT:   moe.arena
// CHECK:       return
// REPORT:      "applied": false,
// REPORT-NEXT: "reason": "the arena ({{.*}} bytes) would exceed the unplanned peak ({{.*}} bytes)"
func.func @not_worth_it(%l: memref<?x4xf32>) {
  %c0 = arith.constant 0 : index
  %T = memref.dim %l, %c0 : memref<?x4xf32>
  %ids = memref.alloc(%T) : memref<?x1xi32>
  %w = memref.alloc(%T) : memref<?x1xf32>
  moe.topk softmax ins(%l : memref<?x4xf32>) outs(%ids, %w : memref<?x1xi32>, memref<?x1xf32>) {k = 1 : i64}
  memref.dealloc %ids : memref<?x1xi32>
  memref.dealloc %w : memref<?x1xf32>
  return
}
