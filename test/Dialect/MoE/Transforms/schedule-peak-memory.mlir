// RUN: moe-opt %s -split-input-file --moe-schedule-peak-memory=token-hint=1 | FileCheck %s

// Two big temporaries produced first and consumed later: running each
// consumer right after its producer halves the peak.
// CHECK-LABEL: func.func @interleave
// CHECK:       %[[A:.*]] = memref.alloc() : memref<1024xf32>
// CHECK-NEXT:  linalg.copy ins(%arg0 {{.*}} outs(%[[A]]
// CHECK-NEXT:  linalg.add ins(%[[A]], %[[A]] {{.*}} outs(%arg2
// CHECK-NEXT:  memref.dealloc %[[A]]
// CHECK-NEXT:  %[[B:.*]] = memref.alloc() : memref<1024xf32>
// CHECK-NEXT:  linalg.copy ins(%arg1 {{.*}} outs(%[[B]]
// CHECK-NEXT:  linalg.add ins(%[[B]], %[[B]] {{.*}} outs(%arg3
// CHECK-NEXT:  memref.dealloc %[[B]]
func.func @interleave(%x: memref<1024xf32> {llvm.noalias}, %y: memref<1024xf32> {llvm.noalias},
                      %o1: memref<1024xf32> {llvm.noalias}, %o2: memref<1024xf32> {llvm.noalias}) {
  %a = memref.alloc() : memref<1024xf32>
  %b = memref.alloc() : memref<1024xf32>
  linalg.copy ins(%x : memref<1024xf32>) outs(%a : memref<1024xf32>)
  linalg.copy ins(%y : memref<1024xf32>) outs(%b : memref<1024xf32>)
  linalg.add ins(%a, %a : memref<1024xf32>, memref<1024xf32>) outs(%o1 : memref<1024xf32>)
  linalg.add ins(%b, %b : memref<1024xf32>, memref<1024xf32>) outs(%o2 : memref<1024xf32>)
  memref.dealloc %a : memref<1024xf32>
  memref.dealloc %b : memref<1024xf32>
  return
}

// -----

// The same program with arguments that may alias: the second copy reads an
// argument the first add may write (RAW), and each add may write what the
// other op reads: nothing can move. The allocations still tighten.
// CHECK-LABEL: func.func @aliasing_arguments
// CHECK:       %[[A:.*]] = memref.alloc()
// CHECK-NEXT:  linalg.copy ins(%arg0 {{.*}} outs(%[[A]]
// CHECK-NEXT:  %[[B:.*]] = memref.alloc()
// CHECK-NEXT:  linalg.copy ins(%arg1 {{.*}} outs(%[[B]]
// CHECK-NEXT:  linalg.add ins(%[[A]], %[[A]]
// CHECK-NEXT:  memref.dealloc %[[A]]
// CHECK-NEXT:  linalg.add ins(%[[B]], %[[B]]
// CHECK-NEXT:  memref.dealloc %[[B]]
func.func @aliasing_arguments(%x: memref<1024xf32>, %y: memref<1024xf32>,
                              %o1: memref<1024xf32>, %o2: memref<1024xf32>) {
  %a = memref.alloc() : memref<1024xf32>
  %b = memref.alloc() : memref<1024xf32>
  linalg.copy ins(%x : memref<1024xf32>) outs(%a : memref<1024xf32>)
  linalg.copy ins(%y : memref<1024xf32>) outs(%b : memref<1024xf32>)
  linalg.add ins(%a, %a : memref<1024xf32>, memref<1024xf32>) outs(%o1 : memref<1024xf32>)
  linalg.add ins(%b, %b : memref<1024xf32>, memref<1024xf32>) outs(%o2 : memref<1024xf32>)
  memref.dealloc %a : memref<1024xf32>
  memref.dealloc %b : memref<1024xf32>
  return
}

// -----

// An op with unknown effects is a barrier: nothing crosses it.
// CHECK-LABEL: func.func @barrier
// CHECK:       linalg.copy ins(%arg0
// CHECK-NEXT:  %[[B:.*]] = memref.alloc()
// CHECK-NEXT:  linalg.copy ins(%arg1
// CHECK-NEXT:  call @opaque
// CHECK:       linalg.add
// CHECK:       linalg.add
func.func private @opaque()
func.func @barrier(%x: memref<1024xf32> {llvm.noalias}, %y: memref<1024xf32> {llvm.noalias},
                   %o1: memref<1024xf32> {llvm.noalias}, %o2: memref<1024xf32> {llvm.noalias}) {
  %a = memref.alloc() : memref<1024xf32>
  %b = memref.alloc() : memref<1024xf32>
  linalg.copy ins(%x : memref<1024xf32>) outs(%a : memref<1024xf32>)
  linalg.copy ins(%y : memref<1024xf32>) outs(%b : memref<1024xf32>)
  call @opaque() : () -> ()
  linalg.add ins(%a, %a : memref<1024xf32>, memref<1024xf32>) outs(%o1 : memref<1024xf32>)
  linalg.add ins(%b, %b : memref<1024xf32>, memref<1024xf32>) outs(%o2 : memref<1024xf32>)
  memref.dealloc %a : memref<1024xf32>
  memref.dealloc %b : memref<1024xf32>
  return
}

// -----

// Already the best order: nothing moves.
// CHECK-LABEL: func.func @optimal
// CHECK:       memref.alloc
// CHECK-NEXT:  linalg.copy ins(%arg0
// CHECK-NEXT:  linalg.add
// CHECK-NEXT:  memref.dealloc
// CHECK-NEXT:  memref.alloc
// CHECK-NEXT:  linalg.copy ins(%arg1
// CHECK-NEXT:  linalg.add
// CHECK-NEXT:  memref.dealloc
// CHECK-NEXT:  return
func.func @optimal(%x: memref<1024xf32> {llvm.noalias}, %y: memref<1024xf32> {llvm.noalias},
                   %o1: memref<1024xf32> {llvm.noalias}, %o2: memref<1024xf32> {llvm.noalias}) {
  %a = memref.alloc() : memref<1024xf32>
  linalg.copy ins(%x : memref<1024xf32>) outs(%a : memref<1024xf32>)
  linalg.add ins(%a, %a : memref<1024xf32>, memref<1024xf32>) outs(%o1 : memref<1024xf32>)
  memref.dealloc %a : memref<1024xf32>
  %b = memref.alloc() : memref<1024xf32>
  linalg.copy ins(%y : memref<1024xf32>) outs(%b : memref<1024xf32>)
  linalg.add ins(%b, %b : memref<1024xf32>, memref<1024xf32>) outs(%o2 : memref<1024xf32>)
  memref.dealloc %b : memref<1024xf32>
  return
}

// -----

// An in-place write orders the ops around it (WAR, then RAW): the order is
// forced.
// CHECK-LABEL: func.func @in_place
// CHECK:       %[[A:.*]] = memref.alloc()
// CHECK-NEXT:  linalg.copy ins(%arg0 {{.*}} outs(%[[A]]
// CHECK-NEXT:  linalg.copy ins(%[[A]] : {{.*}} outs(%arg1
// CHECK-NEXT:  linalg.add ins(%[[A]], %[[A]] {{.*}} outs(%[[A]]
// CHECK-NEXT:  linalg.copy ins(%[[A]] {{.*}} outs(%arg2
// CHECK-NEXT:  memref.dealloc %[[A]]
func.func @in_place(%x: memref<1024xf32> {llvm.noalias}, %o1: memref<1024xf32> {llvm.noalias}, %o2: memref<1024xf32> {llvm.noalias}) {
  %a = memref.alloc() : memref<1024xf32>
  linalg.copy ins(%x : memref<1024xf32>) outs(%a : memref<1024xf32>)
  linalg.copy ins(%a : memref<1024xf32>) outs(%o1 : memref<1024xf32>)
  linalg.add ins(%a, %a : memref<1024xf32>, memref<1024xf32>) outs(%a : memref<1024xf32>)
  linalg.copy ins(%a : memref<1024xf32>) outs(%o2 : memref<1024xf32>)
  memref.dealloc %a : memref<1024xf32>
  return
}

// -----

// An op with a region moves as a whole, with its recursive effects.
// CHECK-LABEL: func.func @region
// CHECK:       %[[A:.*]] = memref.alloc() : memref<1024xf32>
// CHECK:       scf.for
// CHECK-NEXT:    linalg.copy ins(%arg0 {{.*}} outs(%[[A]]
// CHECK:       linalg.add ins(%[[A]], %[[A]]
// CHECK-NEXT:  memref.dealloc %[[A]]
// CHECK-NEXT:  %[[B:.*]] = memref.alloc() : memref<1024xf32>
func.func @region(%x: memref<1024xf32> {llvm.noalias}, %y: memref<1024xf32> {llvm.noalias},
                  %o1: memref<1024xf32> {llvm.noalias}, %o2: memref<1024xf32> {llvm.noalias}) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %a = memref.alloc() : memref<1024xf32>
  %b = memref.alloc() : memref<1024xf32>
  scf.for %i = %c0 to %c2 step %c1 {
    linalg.copy ins(%x : memref<1024xf32>) outs(%a : memref<1024xf32>)
  }
  linalg.copy ins(%y : memref<1024xf32>) outs(%b : memref<1024xf32>)
  linalg.add ins(%a, %a : memref<1024xf32>, memref<1024xf32>) outs(%o1 : memref<1024xf32>)
  linalg.add ins(%b, %b : memref<1024xf32>, memref<1024xf32>) outs(%o2 : memref<1024xf32>)
  memref.dealloc %a : memref<1024xf32>
  memref.dealloc %b : memref<1024xf32>
  return
}
