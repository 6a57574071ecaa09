// RUN: moe-opt %s | FileCheck %s
// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// CHECK-LABEL: func.func @layer
// CHECK:       moe.gate ins(%{{.*}}, %{{.*}} : memref<?x64xbf16>, memref<8x64xbf16>) outs(%{{.*}} : memref<?x8xf32>)
// CHECK:       moe.topk sigmoid ins(%{{.*}} : memref<?x8xf32>) bias(%{{.*}} : memref<8xf32>) outs(%{{.*}}, %{{.*}} : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 4 : i64, renormalize, routed_scaling_factor = 2.500000e+00 : f32, topk_group = 2 : i64}
// CHECK:       moe.routed_experts ins(
// CHECK:       moe.shared_experts ins(
// CHECK:       moe.add ins(%{{.*}}, %{{.*}} : memref<?x64xbf16>, memref<?x64xbf16>) outs(%{{.*}} : memref<?x64xbf16>)
// CHECK:       moe.routed_experts inplace ins(%[[X:.*]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : {{.*}}) outs(%[[X]] : memref<?x64xbf16>)
// GENERIC: "moe.gate"
// GENERIC: "moe.topk"
// GENERIC-SAME: scoring = 1 : i32
// GENERIC: "moe.routed_experts"
// GENERIC: "moe.shared_experts"
// GENERIC: "moe.add"
// GENERIC: "moe.routed_experts"
// GENERIC-SAME: inplace
func.func @layer(%x: memref<?x64xbf16>, %wg: memref<8x64xbf16>, %b: memref<8xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %out: memref<?x64xbf16>) {
  %c0 = arith.constant 0 : index
  %T = memref.dim %x, %c0 : memref<?x64xbf16>
  %logits = memref.alloc(%T) : memref<?x8xf32>
  moe.gate ins(%x, %wg : memref<?x64xbf16>, memref<8x64xbf16>) outs(%logits : memref<?x8xf32>)
  %ids = memref.alloc(%T) : memref<?x2xi32>
  %w = memref.alloc(%T) : memref<?x2xf32>
  moe.topk sigmoid ins(%logits : memref<?x8xf32>) bias(%b : memref<8xf32>) outs(%ids, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 4 : i64, topk_group = 2 : i64, renormalize, routed_scaling_factor = 2.5 : f32}
  memref.dealloc %logits : memref<?x8xf32>
  %r = memref.alloc(%T) : memref<?x64xbf16>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  %sh = memref.alloc(%T) : memref<?x64xbf16>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.add ins(%r, %sh : memref<?x64xbf16>, memref<?x64xbf16>) outs(%out : memref<?x64xbf16>)
  moe.routed_experts inplace ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%x : memref<?x64xbf16>)
  return
}

// CHECK-LABEL: func.func @static_f32_softmax
// CHECK: moe.topk softmax ins(%{{.*}} : memref<16x4xf32>) outs(%{{.*}}, %{{.*}} : memref<16x1xi32>, memref<16x1xf32>) {k = 1 : i64}
// CHECK: moe.add {{.*}} {scale = 5.000000e-01 : f32}
func.func @static_f32_softmax(%x: memref<16x8xf32>, %wg: memref<4x8xf32>, %w13: memref<4x6x8xf32>, %w2: memref<4x8x3xf32>, %out: memref<16x8xf32>) {
  %logits = memref.alloc() : memref<16x4xf32>
  moe.gate ins(%x, %wg : memref<16x8xf32>, memref<4x8xf32>) outs(%logits : memref<16x4xf32>)
  %ids = memref.alloc() : memref<16x1xi32>
  %w = memref.alloc() : memref<16x1xf32>
  moe.topk softmax ins(%logits : memref<16x4xf32>) outs(%ids, %w : memref<16x1xi32>, memref<16x1xf32>) {k = 1 : i64}
  %r = memref.alloc() : memref<16x8xf32>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<16x8xf32>, memref<16x1xi32>, memref<16x1xf32>, memref<4x6x8xf32>, memref<4x8x3xf32>) outs(%r : memref<16x8xf32>)
  moe.add ins(%r, %x : memref<16x8xf32>, memref<16x8xf32>) outs(%out : memref<16x8xf32>) {scale = 0.5 : f32}
  return
}

// CHECK-LABEL: func.func @f16
// CHECK: moe.shared_experts ins({{.*}} : memref<3x8xf16>, memref<4x8xf16>, memref<8x2xf16>) outs({{.*}} : memref<3x8xf16>)
func.func @f16(%x: memref<3x8xf16>, %w13: memref<4x8xf16>, %w2: memref<8x2xf16>, %out: memref<3x8xf16>) attributes {moe.fuse_shared_experts_inside_sbo} {
  moe.shared_experts ins(%x, %w13, %w2 : memref<3x8xf16>, memref<4x8xf16>, memref<8x2xf16>) outs(%out : memref<3x8xf16>)
  return
}

// fp8 experts (DeepSeek-V3's format): f8E4M3FN weights and their fp32
// 128 x 128 block scales.
// CHECK-LABEL: func.func @fp8
// CHECK: moe.routed_experts ins({{.*}} : memref<?x256xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<4x256x256xf8E4M3FN>, memref<4x256x128xf8E4M3FN>) scales(%{{.*}}, %{{.*}} : memref<4x2x2xf32>, memref<4x2x1xf32>) outs(%{{.*}} : memref<?x256xbf16>)
// CHECK: moe.shared_experts ins({{.*}}) scales(%{{.*}}, %{{.*}} : memref<2x2xf32>, memref<2x1xf32>) outs(
// CHECK: moe.routed_experts inplace ins({{.*}}) scales({{.*}}) outs(
// GENERIC: "moe.routed_experts"
func.func @fp8(%x: memref<?x256xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<4x256x256xf8E4M3FN>, %w2: memref<4x256x128xf8E4M3FN>, %s13: memref<4x2x2xf32>, %s2: memref<4x2x1xf32>, %sw13: memref<256x256xf8E4M3FN>, %sw2: memref<256x128xf8E4M3FN>, %ss13: memref<2x2xf32>, %ss2: memref<2x1xf32>, %r: memref<?x256xbf16>, %sh: memref<?x256xbf16>) {
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x256xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<4x256x256xf8E4M3FN>, memref<4x256x128xf8E4M3FN>) scales(%s13, %s2 : memref<4x2x2xf32>, memref<4x2x1xf32>) outs(%r : memref<?x256xbf16>)
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x256xbf16>, memref<256x256xf8E4M3FN>, memref<256x128xf8E4M3FN>) scales(%ss13, %ss2 : memref<2x2xf32>, memref<2x1xf32>) outs(%sh : memref<?x256xbf16>)
  moe.routed_experts inplace ins(%x, %ids, %w, %w13, %w2 : memref<?x256xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<4x256x256xf8E4M3FN>, memref<4x256x128xf8E4M3FN>) scales(%s13, %s2 : memref<4x2x2xf32>, memref<4x2x1xf32>) outs(%x : memref<?x256xbf16>)
  return
}

// Tensor parallelism's sum over the ranks, out of place and in place.
// CHECK-LABEL: func.func @all_reduce
// CHECK: moe.all_reduce ins(%{{.*}} : memref<?x64xbf16>) outs(%{{.*}} : memref<?x64xbf16>) {group_size = 8 : i64}
// CHECK: moe.all_reduce ins(%[[Y:.*]] : memref<?x64xbf16>) outs(%[[Y]] : memref<?x64xbf16>) {group_size = 8 : i64}
// GENERIC: "moe.all_reduce"
func.func @all_reduce(%x: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  moe.all_reduce ins(%x : memref<?x64xbf16>) outs(%y : memref<?x64xbf16>) {group_size = 8 : i64}
  moe.all_reduce ins(%y : memref<?x64xbf16>) outs(%y : memref<?x64xbf16>) {group_size = 8 : i64}
  return
}
