// Accesses through aliases keep their order: a loop that writes a buffer
// through its iteration argument, then a copy into the same buffer. Run as
// written, scheduled and optimized (planned), the output is the copy's
// ([2, 2, 2, 2]); a scheduler that saw only SSA edges moved the copy before
// the loop (a lower peak) and printed the loop's ones.
//
// DEFINE: %{lower} = --convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata --lower-affine --finalize-memref-to-llvm --convert-arith-to-llvm --convert-cf-to-llvm --convert-func-to-llvm --reconcile-unrealized-casts
// DEFINE: %{run} = mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext
// RUN: mlir-opt %s %{lower} | %{run} | grep -v 'Unranked Memref' > %t.before
// RUN: moe-opt %s --moe-schedule-peak-memory > %t.scheduled.mlir
// RUN: mlir-opt %t.scheduled.mlir %{lower} | %{run} | grep -v 'Unranked Memref' > %t.after
// RUN: moe-opt %s --moe-optimize --moe-test-check-arena > %t.optimized.mlir
// RUN: mlir-opt %t.optimized.mlir %{lower} | %{run} | grep -v 'Unranked Memref' > %t.optimized
// RUN: diff %t.before %t.after
// RUN: diff %t.before %t.optimized
// RUN: FileCheck %s --input-file=%t.after
// RUN: FileCheck %s --check-prefix=PLAN --input-file=%t.optimized.mlir

// CHECK: [2,  2,  2,  2]
// PLAN:  moe.arena

func.func @compute(%o: memref<4xf32> {llvm.noalias}, %n: index) {
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

func.func private @printMemrefF32(memref<*xf32> {llvm.nocapture})

func.func @main() {
  %c2 = arith.constant 2 : index
  %o = memref.alloc() : memref<4xf32>
  call @compute(%o, %c2) : (memref<4xf32>, index) -> ()
  %u = memref.cast %o : memref<4xf32> to memref<*xf32>
  call @printMemrefF32(%u) : (memref<*xf32>) -> ()
  memref.dealloc %o : memref<4xf32>
  return
}
