// RUN: moe-opt %s -split-input-file --convert-moe-to-runtime -verify-diagnostics | FileCheck %s

// Each op becomes one call into the runtime with its buffers' aligned
// pointers, sizes and dtype codes (bf16 = 0, f16 = 1, f32 = 2).
// CHECK-LABEL: func.func @layer
// CHECK:       %[[T:.*]] = memref.dim %arg0, %c0
// CHECK:       call @moert_gate({{.*}}) : (!llvm.ptr, i32, !llvm.ptr, i32, !llvm.ptr, i64, i64, i64) -> i32
// CHECK:       call @moert_topk({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i64, i64, i32, i64, i64, i32, f32) -> i32
// CHECK:       %[[NULL:.*]] = llvm.mlir.zero : !llvm.ptr
// bf16 weights: no block scales (NULL pointers), weight_dtype = dtype.
// CHECK:       llvm.mlir.zero
// CHECK:       llvm.mlir.zero
// CHECK:       call @moert_routed_experts({{.*}}, %c0_i32{{.*}}, %c0_i32{{.*}}, {{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i32, i64, i64, i64, i64, i64) -> i32
// CHECK:       call @moert_shared_experts({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i32, i64, i64, i64) -> i32
// CHECK:       call @moert_add({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, i32, i64, i64, f32) -> i32
// CHECK-NOT:   moe.
// CHECK:       func.func private @moert_gate(!llvm.ptr, i32, !llvm.ptr, i32, !llvm.ptr, i64, i64, i64) -> i32
func.func @layer(%x: memref<?x64xbf16>, %wg: memref<8x64xbf16>, %b: memref<8xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %out: memref<?x64xbf16>) {
  %c0 = arith.constant 0 : index
  %T = memref.dim %x, %c0 : memref<?x64xbf16>
  %logits = memref.alloc(%T) : memref<?x8xf32>
  moe.gate ins(%x, %wg : memref<?x64xbf16>, memref<8x64xbf16>) outs(%logits : memref<?x8xf32>)
  %ids = memref.alloc(%T) : memref<?x2xi32>
  %w = memref.alloc(%T) : memref<?x2xf32>
  moe.topk sigmoid ins(%logits : memref<?x8xf32>) bias(%b : memref<8xf32>) outs(%ids, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 4 : i64, topk_group = 2 : i64, renormalize, routed_scaling_factor = 2.5 : f32}
  %r = memref.alloc(%T) : memref<?x64xbf16>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  %sh = memref.alloc(%T) : memref<?x64xbf16>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  moe.add ins(%r, %sh : memref<?x64xbf16>, memref<?x64xbf16>) outs(%out : memref<?x64xbf16>)
  return
}

// -----

// A planned workspace is a pointer into the arena at its offset.
// CHECK-LABEL: func.func @planned
// CHECK:       %[[ARENA:.*]] = memref.alloc() {moe.arena} : memref<4096xi8>
// CHECK:       memref.extract_aligned_pointer_as_index %[[ARENA]]
// CHECK:       %[[OFF:.*]] = arith.constant 1024 : i64
// CHECK:       %[[WS:.*]] = llvm.getelementptr %{{.*}}[%[[OFF]]] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK:       call @moert_shared_experts(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[WS]],
func.func @planned(%x: memref<4x64xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>) {
  %arena = memref.alloc() {moe.arena} : memref<4096xi8>
  %c0 = arith.constant 0 : index
  %sh = memref.view %arena[%c0][] : memref<4096xi8> to memref<4x64xbf16>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 1024>}
  memref.dealloc %arena : memref<4096xi8>
  return
}

// -----

// fp8 experts: the scales' pointers, and weight_dtype = 4 (f8e4m3) beside the
// bf16 dtype (0).
// CHECK-LABEL: func.func @fp8
// CHECK:       call @moert_routed_experts(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i32{{.*}}, %c4_i32{{.*}}, %c4_i64
// CHECK:       call @moert_shared_experts(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %c0_i32{{.*}}, %c4_i32{{.*}}, %c4_i64
func.func @fp8(%x: memref<4x256xbf16>, %ids: memref<4x2xi32>, %w: memref<4x2xf32>, %w13: memref<8x256x256xf8E4M3FN>, %w2: memref<8x256x128xf8E4M3FN>, %s13: memref<8x2x2xf32>, %s2: memref<8x2x1xf32>, %sw13: memref<256x256xf8E4M3FN>, %sw2: memref<256x128xf8E4M3FN>, %ss13: memref<2x2xf32>, %ss2: memref<2x1xf32>, %r: memref<4x256xbf16>, %sh: memref<4x256xbf16>) {
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<4x256xbf16>, memref<4x2xi32>, memref<4x2xf32>, memref<8x256x256xf8E4M3FN>, memref<8x256x128xf8E4M3FN>) scales(%s13, %s2 : memref<8x2x2xf32>, memref<8x2x1xf32>) outs(%r : memref<4x256xbf16>)
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x256xbf16>, memref<256x256xf8E4M3FN>, memref<256x128xf8E4M3FN>) scales(%ss13, %ss2 : memref<2x2xf32>, memref<2x1xf32>) outs(%sh : memref<4x256xbf16>)
  return
}

// -----

// Buffers the runtime cannot take: a strided view.
func.func @strided(%x: memref<8x64xbf16>, %wg: memref<8x64xbf16>, %logits: memref<4x8xf32>) {
  %v = memref.subview %x[0, 0] [4, 64] [2, 1] : memref<8x64xbf16> to memref<4x64xbf16, strided<[128, 1]>>
  // expected-error @+1 {{operand 'hidden' must be contiguous (identity layout) to be passed to the runtime}}
  moe.gate ins(%v, %wg : memref<4x64xbf16, strided<[128, 1]>>, memref<8x64xbf16>) outs(%logits : memref<4x8xf32>)
  return
}

// -----

// Contiguous copies go through the runtime (device memory too); a strided
// one keeps the upstream lowering.
// CHECK-LABEL: func.func @copies
// CHECK:       %[[T:.*]] = memref.dim %arg0, %{{.*}} : memref<?x64xbf16>
// CHECK:       %[[T64:.*]] = arith.index_cast %[[T]] : index to i64
// CHECK:       %[[BYTES:.*]] = arith.muli %{{.*}}, %[[T64]] : i64
// CHECK:       call @moert_copy(%{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, !llvm.ptr, i64) -> i32
// CHECK:       memref.copy %{{.*}}, %{{.*}} : memref<4x64xbf16, strided<[128, 1]>> to memref<4x64xbf16>
func.func @copies(%a: memref<?x64xbf16>, %b: memref<?x64xbf16>, %c: memref<8x64xbf16>, %d: memref<4x64xbf16>) {
  memref.copy %a, %b : memref<?x64xbf16> to memref<?x64xbf16>
  %v = memref.subview %c[0, 0] [4, 64] [2, 1] : memref<8x64xbf16> to memref<4x64xbf16, strided<[128, 1]>>
  memref.copy %v, %d : memref<4x64xbf16, strided<[128, 1]>> to memref<4x64xbf16>
  return
}

// -----

// A collective lowers like any op: its entry point's arguments in the
// contract's order (input, output, dtype, T, H, group_size).
// CHECK-LABEL: func.func @all_reduce
// CHECK:       call @moert_all_reduce({{.*}}) : (!llvm.ptr, !llvm.ptr, i32, i64, i64, i64) -> i32
// CHECK-NOT:   moe.
func.func @all_reduce(%x: memref<?x64xbf16>) {
  moe.all_reduce ins(%x : memref<?x64xbf16>) outs(%x : memref<?x64xbf16>) {group_size = 4 : i64}
  return
}
