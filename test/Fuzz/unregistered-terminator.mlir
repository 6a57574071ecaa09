// RUN: moe-opt --allow-unregistered-dialect %s --moe-optimize | FileCheck %s
// RUN: moe-opt --allow-unregistered-dialect %s --moe-schedule-peak-memory | FileCheck %s --check-prefix=SCHED

// The last op of a block may be an unregistered op, which the verifier
// accepts as the block's terminator. The memory model took only ops with the
// IsTerminator trait as terminators: it scheduled the unknown op as a node
// (a barrier) and moved the ops it places on demand but no node needs (here
// a constant never used) after it: the block ended in an arith.constant, or,
// after the plan, in the arena's memref.dealloc ("block with no terminator";
// found by moe-opt-fuzzer, structure-aware mode). The last op now stays last.

// CHECK-LABEL: func.func @unknown_last
// CHECK: memref.alloc(%{{.*}}) {moe.arena}
// CHECK: memref.dealloc
// CHECK-NEXT: "test.unknown_end"() : () -> ()
// CHECK-NEXT: }
// SCHED-LABEL: func.func @unknown_last
// SCHED: memref.alloc
// SCHED: "test.unknown_end"() : () -> ()
// SCHED-NEXT: }
func.func @unknown_last(%x: memref<?x8xf32>, %y: memref<?x8xf32>) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?x8xf32>
  %a = memref.alloc(%n) : memref<?x8xf32>
  %b = memref.alloc(%n) : memref<?x8xf32>
  %unused = memref.alloc(%n) : memref<?x8xf32>
  %c7 = arith.constant 7 : index
  moe.add ins(%x, %x : memref<?x8xf32>, memref<?x8xf32>) outs(%a : memref<?x8xf32>) {scale = 1.0 : f32}
  moe.add ins(%a, %x : memref<?x8xf32>, memref<?x8xf32>) outs(%b : memref<?x8xf32>) {scale = 1.0 : f32}
  moe.add ins(%b, %a : memref<?x8xf32>, memref<?x8xf32>) outs(%y : memref<?x8xf32>) {scale = 1.0 : f32}
  memref.dealloc %a : memref<?x8xf32>
  memref.dealloc %b : memref<?x8xf32>
  "test.unknown_end"() : () -> ()
}
