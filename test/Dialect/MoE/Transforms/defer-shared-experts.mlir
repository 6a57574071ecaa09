// RUN: moe-opt %s -split-input-file --moe-defer-shared-experts | FileCheck %s

// The seed's case: a non-mutating routed op. The shared experts and their
// output buffer move to right after it.
// CHECK-LABEL: func.func @defer
// CHECK:       moe.gate
// CHECK:       moe.topk
// CHECK:       %[[R:.*]] = memref.alloc
// CHECK-NEXT:  moe.routed_experts ins(
// CHECK-NEXT:  %[[SH:.*]] = memref.alloc
// CHECK-NEXT:  moe.shared_experts ins({{.*}}) outs(%[[SH]] :
// CHECK:       moe.add ins(%[[R]], %[[SH]] :
func.func @defer(%x: memref<?x64xbf16>, %wg: memref<8x64xbf16>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %out: memref<?x64xbf16>) {
  %c0 = arith.constant 0 : index
  %T = memref.dim %x, %c0 : memref<?x64xbf16>
  %sh = memref.alloc(%T) : memref<?x64xbf16>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  %logits = memref.alloc(%T) : memref<?x8xf32>
  moe.gate ins(%x, %wg : memref<?x64xbf16>, memref<8x64xbf16>) outs(%logits : memref<?x8xf32>)
  %ids = memref.alloc(%T) : memref<?x2xi32>
  %w = memref.alloc(%T) : memref<?x2xf32>
  moe.topk softmax ins(%logits : memref<?x8xf32>) outs(%ids, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, renormalize}
  memref.dealloc %logits : memref<?x8xf32>
  %r = memref.alloc(%T) : memref<?x64xbf16>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  memref.dealloc %ids : memref<?x2xi32>
  memref.dealloc %w : memref<?x2xf32>
  moe.add ins(%r, %sh : memref<?x64xbf16>, memref<?x64xbf16>) outs(%out : memref<?x64xbf16>)
  memref.dealloc %r : memref<?x64xbf16>
  memref.dealloc %sh : memref<?x64xbf16>
  return
}

// -----

// In place, the routed op writes the shared experts' input: no move.
// CHECK-LABEL: func.func @inplace
// CHECK:       moe.shared_experts
// CHECK:       moe.routed_experts inplace
func.func @inplace(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %sh: memref<?x64xbf16>) {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.routed_experts inplace ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%x : memref<?x64xbf16>)
  return
}

// -----

// sglang's single-batch-overlap guard: no move.
// CHECK-LABEL: func.func @sbo
// CHECK:       moe.shared_experts
// CHECK:       moe.routed_experts
func.func @sbo(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %sh: memref<?x64xbf16>, %r: memref<?x64xbf16>) attributes {moe.fuse_shared_experts_inside_sbo} {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  return
}

// -----

// No tokens: no move.
// CHECK-LABEL: func.func @no_tokens
// CHECK:       moe.shared_experts
// CHECK:       moe.routed_experts
func.func @no_tokens(%x: memref<0x64xbf16>, %ids: memref<0x2xi32>, %w: memref<0x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %sh: memref<0x64xbf16>, %r: memref<0x64xbf16>) {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<0x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<0x64xbf16>)
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<0x64xbf16>, memref<0x2xi32>, memref<0x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<0x64xbf16>)
  return
}

// -----

// An op in between writes the shared experts' weights: no move.
// CHECK-LABEL: func.func @write_between
// CHECK:       moe.shared_experts
// CHECK-NEXT:  memref.copy
// CHECK-NEXT:  moe.routed_experts
func.func @write_between(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %new: memref<64x16xbf16>, %sh: memref<?x64xbf16>, %r: memref<?x64xbf16>) {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  memref.copy %new, %sw2 : memref<64x16xbf16> to memref<64x16xbf16>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  return
}

// -----

// An op in between reads the shared experts' output: no move.
// CHECK-LABEL: func.func @read_output_between
// CHECK:       moe.shared_experts
// CHECK-NEXT:  memref.copy
// CHECK-NEXT:  moe.routed_experts
func.func @read_output_between(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %sh: memref<?x64xbf16>, %r: memref<?x64xbf16>, %copy: memref<?x64xbf16>) {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  memref.copy %sh, %copy : memref<?x64xbf16> to memref<?x64xbf16>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  return
}

// -----

// An op of unknown effects in between: no move.
// CHECK-LABEL: func.func @unknown_between
// CHECK:       moe.shared_experts
// CHECK-NEXT:  call @opaque
// CHECK-NEXT:  moe.routed_experts
func.func private @opaque()
func.func @unknown_between(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %sh: memref<?x64xbf16>, %r: memref<?x64xbf16>) {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  call @opaque() : () -> ()
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  return
}

// -----

// The routed op writes into the shared experts' output: no move.
// CHECK-LABEL: func.func @routed_writes_shared_output
// CHECK:       moe.shared_experts
// CHECK-NEXT:  moe.routed_experts
func.func @routed_writes_shared_output(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %sh: memref<?x64xbf16>) {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  return
}
