// RUN: moe-opt %s --moe-schedule-peak-memory 2>&1 | FileCheck %s

// A buffer whose size is not linear in one token count: the block is left
// exactly as it was, with a warning that says why.
// CHECK: warning: moe-schedule-peak-memory left a block unchanged: cannot size a buffer of type memref<?x?xf32>
// CHECK-LABEL: func.func @two_dynamic_dims
// CHECK:       memref.alloc
// CHECK-NEXT:  memref.alloc
// CHECK-NEXT:  linalg.copy
// CHECK-NEXT:  linalg.copy
func.func @two_dynamic_dims(%x: memref<?x?xf32>, %n: index) {
  %a = memref.alloc(%n, %n) : memref<?x?xf32>
  %b = memref.alloc(%n, %n) : memref<?x?xf32>
  linalg.copy ins(%x : memref<?x?xf32>) outs(%a : memref<?x?xf32>)
  linalg.copy ins(%x : memref<?x?xf32>) outs(%b : memref<?x?xf32>)
  return
}
