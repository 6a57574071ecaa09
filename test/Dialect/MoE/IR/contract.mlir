// The attribute defaults MoEOps.td declares (which decide what the printer
// elides) are the op contract's: every defaulted attribute set to the
// contract's default is elided when printed (docs/adding-an-op.md).
// RUN: moe-opt %s --moe-test-check-contract-defaults -verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @one_of_each
// CHECK:       moe.topk sigmoid {{.*}} {k = 2 : i64}
// CHECK:       moe.add {{.*}} : memref<?x64xbf16>){{$}}
func.func @one_of_each(%x: memref<?x64xbf16>, %wg: memref<8x64xbf16>, %b: memref<8xf32>,
                       %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>,
                       %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>,
                       %logits: memref<?x8xf32>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>,
                       %r: memref<?x64xbf16>, %sh: memref<?x64xbf16>, %out: memref<?x64xbf16>) {
  moe.gate ins(%x, %wg : memref<?x64xbf16>, memref<8x64xbf16>) outs(%logits : memref<?x8xf32>)
  moe.topk sigmoid ins(%logits : memref<?x8xf32>) bias(%b : memref<8xf32>) outs(%ids, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 4 : i64, topk_group = 2 : i64, routed_scaling_factor = 2.5 : f32}
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.add ins(%r, %sh : memref<?x64xbf16>, memref<?x64xbf16>) outs(%out : memref<?x64xbf16>) {scale = 0.5 : f32}
  return
}
