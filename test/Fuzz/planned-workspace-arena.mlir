// RUN: moe-opt %s -split-input-file --moe-schedule-peak-memory | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-schedule-peak-memory --convert-moe-to-runtime | FileCheck %s --check-prefix=RT
// RUN: moe-opt %s -split-input-file --moe-optimize --moe-optimize --convert-moe-to-runtime | FileCheck %s --check-prefix=RT

// Found by moe-opt-fuzzer: an op whose workspace was planned into the arena
// (moe.workspace_offset) uses the arena without an SSA use of it. The
// scheduler did not know, and moved the arena's allocation after the op
// (and its deallocation could come before it); convert-moe-to-runtime then
// produced a use of the arena before its definition. The op now writes the
// arena, for the memory model: the arena is allocated before it and freed
// after it.

// CHECK-LABEL: func.func @workspace_only
// CHECK:         %[[A:.*]] = memref.alloc() {moe.arena} : memref<4096xi8>
// CHECK-NEXT:    moe.shared_experts {{.*}} {moe.workspace_offset = array<i64: 0, 1024>}
// CHECK-NEXT:    memref.dealloc %[[A]]
// CHECK-NEXT:    return
// RT-LABEL: func.func @workspace_only
// RT:         %[[A:.*]] = memref.alloc() {moe.arena} : memref<4096xi8>
// RT:         memref.extract_aligned_pointer_as_index %[[A]]
// RT:         call @moert_shared_experts
// RT:         memref.dealloc %[[A]]
func.func @workspace_only(%x: memref<4x64xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %out: memref<4x64xbf16>) {
  %arena = memref.alloc() {moe.arena} : memref<4096xi8>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%out : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 1024>}
  memref.dealloc %arena : memref<4096xi8>
  return
}

// -----

// The arena's last view is used by the first op; the second op's workspace
// is in the arena too, so the arena lives until after it, and the two ops
// keep their order (the workspace may share space with the view).

// CHECK-LABEL: func.func @workspace_after_last_view
// CHECK:         %[[A:.*]] = memref.alloc() {moe.arena} : memref<8192xi8>
// CHECK:         %[[V:.*]] = memref.view %[[A]]
// CHECK:         moe.shared_experts {{.*}} outs(%[[V]] : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 1024>}
// CHECK:         moe.shared_experts {{.*}} outs(%arg4 : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 0>}
// CHECK-NEXT:    memref.dealloc %[[A]]
// RT-LABEL: func.func @workspace_after_last_view
// RT-COUNT-2: call @moert_shared_experts
// RT:         memref.dealloc
func.func @workspace_after_last_view(%x: memref<4x64xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %y: memref<4x64xbf16>, %out: memref<4x64xbf16>) {
  %arena = memref.alloc() {moe.arena} : memref<8192xi8>
  %c4096 = arith.constant 4096 : index
  %sh = memref.view %arena[%c4096][] : memref<8192xi8> to memref<4x64xbf16>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 1024>}
  moe.shared_experts ins(%y, %sw13, %sw2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%out : memref<4x64xbf16>) {moe.workspace_offset = array<i64: 0, 0>}
  memref.dealloc %arena : memref<8192xi8>
  return
}
