// RUN: moe-opt %s --moe-schedule-peak-memory | FileCheck %s
// RUN: moe-opt %s --moe-optimize | FileCheck %s --check-prefix=OPT

// Every rank must run the collectives in one order, or the ranks wait for
// each other forever. A collective writes the communicator, so the scheduler
// keeps the order of two collectives even where swapping them would lower
// the peak: in @plain, the same data flow without collectives, the second
// chain (%b) runs first and %a is not live during it.

// CHECK-LABEL: func.func @collectives
// CHECK:       moe.all_reduce ins(%[[A:.*]] : memref<64x64xf32>) outs(%arg1
// CHECK:       moe.all_reduce ins(%[[B:.*]] : memref<64x64xf32>) outs(%arg2
// CHECK:       moe.add ins(%[[A]], %arg2
// OPT-LABEL:   func.func @collectives
// OPT:         moe.all_reduce {{.*}} outs(%arg1
// OPT:         moe.all_reduce {{.*}} outs(%arg2
func.func @collectives(%x: memref<64x64xf32> {moe.role = "input"}, %o1: memref<64x64xf32> {moe.role = "output"}, %o2: memref<64x64xf32> {moe.role = "output"}, %o3: memref<64x64xf32> {moe.role = "output"}) {
  %a = memref.alloc() : memref<64x64xf32>
  moe.add ins(%x, %x : memref<64x64xf32>, memref<64x64xf32>) outs(%a : memref<64x64xf32>)
  moe.all_reduce ins(%a : memref<64x64xf32>) outs(%o1 : memref<64x64xf32>) {group_size = 2 : i64}
  %b = memref.alloc() : memref<64x64xf32>
  moe.add ins(%x, %x : memref<64x64xf32>, memref<64x64xf32>) outs(%b : memref<64x64xf32>)
  moe.all_reduce ins(%b : memref<64x64xf32>) outs(%o2 : memref<64x64xf32>) {group_size = 2 : i64}
  memref.dealloc %b : memref<64x64xf32>
  moe.add ins(%a, %o2 : memref<64x64xf32>, memref<64x64xf32>) outs(%o3 : memref<64x64xf32>)
  memref.dealloc %a : memref<64x64xf32>
  return
}

// CHECK-LABEL: func.func @plain
// CHECK:       moe.add {{.*}} outs(%arg2
// CHECK:       moe.add {{.*}} outs(%arg1
func.func @plain(%x: memref<64x64xf32> {moe.role = "input"}, %o1: memref<64x64xf32> {moe.role = "output"}, %o2: memref<64x64xf32> {moe.role = "output"}, %o3: memref<64x64xf32> {moe.role = "output"}) {
  %a = memref.alloc() : memref<64x64xf32>
  moe.add ins(%x, %x : memref<64x64xf32>, memref<64x64xf32>) outs(%a : memref<64x64xf32>)
  moe.add ins(%a, %a : memref<64x64xf32>, memref<64x64xf32>) outs(%o1 : memref<64x64xf32>)
  %b = memref.alloc() : memref<64x64xf32>
  moe.add ins(%x, %x : memref<64x64xf32>, memref<64x64xf32>) outs(%b : memref<64x64xf32>)
  moe.add ins(%b, %b : memref<64x64xf32>, memref<64x64xf32>) outs(%o2 : memref<64x64xf32>)
  memref.dealloc %b : memref<64x64xf32>
  moe.add ins(%a, %o2 : memref<64x64xf32>, memref<64x64xf32>) outs(%o3 : memref<64x64xf32>)
  memref.dealloc %a : memref<64x64xf32>
  return
}
