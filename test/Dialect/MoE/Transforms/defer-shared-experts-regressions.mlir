// Found by scripts/difftest.py (differential testing, docs/difftest.md).
// RUN: moe-opt %s --moe-defer-shared-experts | FileCheck %s
// RUN: moe-opt %s --moe-optimize=plan=false | FileCheck %s --check-prefix=OPT

// The routed experts write a buffer the shared experts read as weights (an
// activation-shaped w13, T = 2I): the shared experts must read it first.
// CHECK-LABEL: func.func @routed_writes_shared_weight
// CHECK:       moe.shared_experts
// CHECK-NEXT:  moe.routed_experts
// OPT-LABEL:   func.func @routed_writes_shared_weight
// OPT:         moe.shared_experts
// OPT:         moe.routed_experts
func.func @routed_writes_shared_weight(%x: memref<4x8xf32> {moe.role = "input"}, %ids: memref<4x1xi32> {moe.role = "input"}, %w: memref<4x1xf32> {moe.role = "input"}, %w13: memref<2x4x8xf32> {moe.role = "weight"}, %w2: memref<2x8x2xf32> {moe.role = "weight"}, %sw13: memref<4x8xf32> {moe.role = "input"}, %sw2: memref<8x2xf32> {moe.role = "weight"}, %out: memref<4x8xf32> {moe.role = "output"}) {
  %sh = memref.alloc() : memref<4x8xf32>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%sh : memref<4x8xf32>)
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<4x8xf32>, memref<4x1xi32>, memref<4x1xf32>, memref<2x4x8xf32>, memref<2x8x2xf32>) outs(%sw13 : memref<4x8xf32>)
  moe.add ins(%sh, %sw13 : memref<4x8xf32>, memref<4x8xf32>) outs(%out : memref<4x8xf32>)
  memref.dealloc %sh : memref<4x8xf32>
  return
}

// A copy of the shared weights, freed between the shared and the routed
// experts: deferring the shared experts used it after its deallocation.
// CHECK-LABEL: func.func @shared_input_freed_in_between
// CHECK:       moe.shared_experts
// CHECK-NEXT:  memref.dealloc
// CHECK:       moe.routed_experts
func.func @shared_input_freed_in_between(%x: memref<4x8xf32> {moe.role = "input"}, %ids: memref<4x1xi32> {moe.role = "input"}, %w: memref<4x1xf32> {moe.role = "input"}, %w13: memref<2x4x8xf32> {moe.role = "weight"}, %w2: memref<2x8x2xf32> {moe.role = "weight"}, %sw13: memref<4x8xf32> {moe.role = "weight"}, %sw2: memref<8x2xf32> {moe.role = "weight"}, %out: memref<4x8xf32> {moe.role = "output"}) {
  %c = memref.alloc() : memref<4x8xf32>
  memref.copy %sw13, %c : memref<4x8xf32> to memref<4x8xf32>
  %sh = memref.alloc() : memref<4x8xf32>
  moe.shared_experts ins(%x, %c, %sw2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%sh : memref<4x8xf32>)
  memref.dealloc %c : memref<4x8xf32>
  %r = memref.alloc() : memref<4x8xf32>
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<4x8xf32>, memref<4x1xi32>, memref<4x1xf32>, memref<2x4x8xf32>, memref<2x8x2xf32>) outs(%r : memref<4x8xf32>)
  moe.add ins(%sh, %r : memref<4x8xf32>, memref<4x8xf32>) outs(%out : memref<4x8xf32>)
  memref.dealloc %sh : memref<4x8xf32>
  memref.dealloc %r : memref<4x8xf32>
  return
}

// The shared experts' output buffer was used before (the allocation is not
// the shared op's own): it stays where it is (moving it below its first use
// made invalid IR, "operand #3 does not dominate this use").
// CHECK-LABEL: func.func @output_buffer_used_before
// CHECK:       %[[SH:.*]] = memref.alloc()
// CHECK:       moe.shared_experts {{.*}} outs(%[[SH]]
// CHECK:       moe.gate
// CHECK:       moe.routed_experts
// CHECK-NEXT:  moe.shared_experts {{.*}} outs(%[[SH]]
func.func @output_buffer_used_before(%x: memref<4x8xf32> {moe.role = "input"}, %y: memref<4x8xf32> {moe.role = "input"}, %ids: memref<4x1xi32> {moe.role = "input"}, %w: memref<4x1xf32> {moe.role = "input"}, %wg: memref<2x8xf32> {moe.role = "weight"}, %w13: memref<2x4x8xf32> {moe.role = "weight"}, %w2: memref<2x8x2xf32> {moe.role = "weight"}, %sw13: memref<4x8xf32> {moe.role = "weight"}, %sw2: memref<8x2xf32> {moe.role = "weight"}, %out: memref<4x8xf32> {moe.role = "output"}, %logits: memref<4x2xf32> {moe.role = "output"}) {
  %sh = memref.alloc() : memref<4x8xf32>
  moe.shared_experts ins(%y, %sw13, %sw2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%sh : memref<4x8xf32>)
  moe.gate ins(%sh, %wg : memref<4x8xf32>, memref<2x8xf32>) outs(%logits : memref<4x2xf32>)
  %r = memref.alloc() : memref<4x8xf32>
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%sh : memref<4x8xf32>)
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<4x8xf32>, memref<4x1xi32>, memref<4x1xf32>, memref<2x4x8xf32>, memref<2x8x2xf32>) outs(%r : memref<4x8xf32>)
  moe.add ins(%sh, %r : memref<4x8xf32>, memref<4x8xf32>) outs(%out : memref<4x8xf32>)
  memref.dealloc %sh : memref<4x8xf32>
  memref.dealloc %r : memref<4x8xf32>
  return
}

// Outputs in arguments that may alias (no moe.role, no llvm.noalias): the
// routed experts' write may land in the shared experts' output, so the two
// writes keep their order.
// CHECK-LABEL: func.func @outputs_may_alias
// CHECK:       moe.shared_experts
// CHECK-NEXT:  moe.routed_experts
func.func @outputs_may_alias(%x: memref<4x8xf32> {llvm.noalias}, %ids: memref<4x1xi32> {llvm.noalias}, %w: memref<4x1xf32> {llvm.noalias}, %w13: memref<2x4x8xf32> {llvm.noalias}, %w2: memref<2x8x2xf32> {llvm.noalias}, %sw13: memref<4x8xf32> {llvm.noalias}, %sw2: memref<8x2xf32> {llvm.noalias}, %o1: memref<4x8xf32>, %o2: memref<4x8xf32>) {
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%o1 : memref<4x8xf32>)
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<4x8xf32>, memref<4x1xi32>, memref<4x1xf32>, memref<2x4x8xf32>, memref<2x8x2xf32>) outs(%o2 : memref<4x8xf32>)
  return
}
