// The scheduler orders accesses through every alias of a buffer, not only
// through SSA edges: moving an op across an aliased access is a miscompile.
// Each function here has an order of lower peak that would break such an
// access; the scheduler must keep the access order (and may still move what
// is independent). Run by mlir-runner in
// test/Integration/schedule-aliases-runner.mlir.
// RUN: moe-opt %s -split-input-file --moe-schedule-peak-memory | FileCheck %s
// RUN: moe-opt %s -split-input-file --moe-optimize --moe-test-check-arena | FileCheck %s --check-prefix=OPT

// A loop writes %a through its iteration argument. Copying %y into %a first
// would free %y before the loop's temporary exists (a lower peak), but the
// loop's write would then overwrite the copy.
// CHECK-LABEL: func.func @iter_arg_write
// CHECK:       scf.for
// CHECK:         linalg.fill {{.*}} outs(%arg4
// CHECK:       linalg.copy ins(%subview
// OPT-LABEL:   func.func @iter_arg_write
// OPT:         scf.for
// OPT:         linalg.copy ins(%subview
func.func @iter_arg_write(%x: memref<4xf32> {llvm.noalias}, %o: memref<4xf32> {llvm.noalias}, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %a = memref.alloc() : memref<4xf32>
  %y = memref.alloc() : memref<4096xf32>
  linalg.fill ins(%two : f32) outs(%y : memref<4096xf32>)
  %t = memref.alloc() : memref<4096xf32>
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%it = %a) -> memref<4xf32> {
    linalg.fill ins(%one : f32) outs(%t : memref<4096xf32>)
    linalg.fill ins(%one : f32) outs(%it : memref<4xf32>)
    scf.yield %it : memref<4xf32>
  }
  memref.dealloc %t : memref<4096xf32>
  %ys = memref.subview %y[0] [4] [1] : memref<4096xf32> to memref<4xf32, strided<[1]>>
  linalg.copy ins(%ys : memref<4xf32, strided<[1]>>) outs(%a : memref<4xf32>)
  memref.dealloc %y : memref<4096xf32>
  linalg.copy ins(%a : memref<4xf32>) outs(%o : memref<4xf32>)
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

// The same through a nested region's result: the scf.if inside the loop
// yields the iteration argument, and the fill writes that result.
// CHECK-LABEL: func.func @nested_region_result_write
// CHECK:       scf.for
// CHECK:         scf.if
// CHECK:       linalg.copy ins(%subview
func.func @nested_region_result_write(%x: memref<4xf32> {llvm.noalias}, %o: memref<4xf32> {llvm.noalias}, %n: index, %c: i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %a = memref.alloc() : memref<4xf32>
  %y = memref.alloc() : memref<4096xf32>
  linalg.fill ins(%two : f32) outs(%y : memref<4096xf32>)
  %t = memref.alloc() : memref<4096xf32>
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%it = %a) -> memref<4xf32> {
    linalg.fill ins(%one : f32) outs(%t : memref<4096xf32>)
    %s = scf.if %c -> memref<4xf32> {
      scf.yield %it : memref<4xf32>
    } else {
      scf.yield %x : memref<4xf32>
    }
    linalg.fill ins(%one : f32) outs(%s : memref<4xf32>)
    scf.yield %it : memref<4xf32>
  }
  memref.dealloc %t : memref<4096xf32>
  %ys = memref.subview %y[0] [4] [1] : memref<4096xf32> to memref<4xf32, strided<[1]>>
  linalg.copy ins(%ys : memref<4xf32, strided<[1]>>) outs(%a : memref<4xf32>)
  memref.dealloc %y : memref<4096xf32>
  linalg.copy ins(%a : memref<4xf32>) outs(%o : memref<4xf32>)
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

// A write through an scf.if's result (which may be %a) keeps its order with
// a later write of %a.
// CHECK-LABEL: func.func @region_result_write
// CHECK:       %[[R:.*]] = scf.if
// CHECK:       linalg.copy {{.*}} outs(%[[R]]
// CHECK:       linalg.copy ins(%subview
func.func @region_result_write(%x: memref<4xf32> {llvm.noalias}, %o: memref<4xf32> {llvm.noalias}, %c: i1) {
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %a = memref.alloc() : memref<4xf32>
  %y = memref.alloc() : memref<4096xf32>
  linalg.fill ins(%two : f32) outs(%y : memref<4096xf32>)
  %t = memref.alloc() : memref<4096xf32>
  linalg.fill ins(%one : f32) outs(%t : memref<4096xf32>)
  %r = scf.if %c -> memref<4xf32> {
    scf.yield %a : memref<4xf32>
  } else {
    scf.yield %x : memref<4xf32>
  }
  %ts = memref.subview %t[0] [4] [1] : memref<4096xf32> to memref<4xf32, strided<[1]>>
  linalg.copy ins(%ts : memref<4xf32, strided<[1]>>) outs(%r : memref<4xf32>)
  memref.dealloc %t : memref<4096xf32>
  %ys = memref.subview %y[0] [4] [1] : memref<4096xf32> to memref<4xf32, strided<[1]>>
  linalg.copy ins(%ys : memref<4xf32, strided<[1]>>) outs(%a : memref<4xf32>)
  memref.dealloc %y : memref<4096xf32>
  linalg.copy ins(%a : memref<4xf32>) outs(%o : memref<4xf32>)
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

// Memory allocated inside a loop is private to it: its writes there do not
// order the loop against other ops. Here the loop runs before %y is filled,
// so %z (last read by the loop) and %y are never live together.
// CHECK-LABEL: func.func @loop_local_buffer
// CHECK:       scf.for
// CHECK:       memref.dealloc
// CHECK:       memref.alloc() : memref<4096xf32>
// CHECK:       linalg.fill
func.func @loop_local_buffer(%o: memref<4xf32> {llvm.noalias}, %o2: memref<4xf32> {llvm.noalias}, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  %two = arith.constant 2.0 : f32
  %z = memref.alloc() : memref<4096xf32>
  linalg.fill ins(%one : f32) outs(%z : memref<4096xf32>)
  %y = memref.alloc() : memref<4096xf32>
  linalg.fill ins(%two : f32) outs(%y : memref<4096xf32>)
  scf.for %i = %c0 to %n step %c1 {
    %t = memref.alloc() : memref<4xf32>
    %zs = memref.subview %z[0] [4] [1] : memref<4096xf32> to memref<4xf32, strided<[1]>>
    linalg.copy ins(%zs : memref<4xf32, strided<[1]>>) outs(%t : memref<4xf32>)
    linalg.copy ins(%t : memref<4xf32>) outs(%o2 : memref<4xf32>)
    memref.dealloc %t : memref<4xf32>
  }
  memref.dealloc %z : memref<4096xf32>
  %ys = memref.subview %y[0] [4] [1] : memref<4096xf32> to memref<4xf32, strided<[1]>>
  linalg.copy ins(%ys : memref<4xf32, strided<[1]>>) outs(%o : memref<4xf32>)
  memref.dealloc %y : memref<4096xf32>
  return
}
