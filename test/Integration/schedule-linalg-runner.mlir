// Executing a program before and after scheduling gives identical results.
// The program is upstream linalg on memrefs, run by mlir-runner.
//
// DEFINE: %{lower} = --convert-linalg-to-loops --convert-scf-to-cf --expand-strided-metadata --lower-affine --finalize-memref-to-llvm --convert-arith-to-llvm --convert-cf-to-llvm --convert-func-to-llvm --reconcile-unrealized-casts
// RUN: mlir-opt %s %{lower} | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext | grep -v 'Unranked Memref' > %t.before
// RUN: moe-opt %s --moe-schedule-peak-memory=token-hint=1 > %t.scheduled.mlir
// RUN: mlir-opt %t.scheduled.mlir %{lower} | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext | grep -v 'Unranked Memref' > %t.after
// RUN: diff %t.before %t.after
// RUN: FileCheck %s --input-file=%t.after
// RUN: FileCheck %s --check-prefix=ORDER --input-file=%t.scheduled.mlir
// RUN: moe-opt %s --moe-optimize=token-hint=1 > %t.optimized.mlir
// RUN: mlir-opt %t.optimized.mlir %{lower} | mlir-runner -e main -entry-point-result=void -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext | grep -v 'Unranked Memref' > %t.optimized
// RUN: diff %t.before %t.optimized

// The scheduler did reorder: the first temporary is consumed (and freed)
// before the second is produced.
// ORDER-LABEL: func.func @compute
// ORDER:       linalg.generic {{.*}} ins(%arg0
// ORDER:       linalg.add
// ORDER:       memref.dealloc
// ORDER:       linalg.generic {{.*}} ins(%arg1

// CHECK: [2,  7,  12,  17]
// CHECK: [3,  4,  5,  6]

#id = affine_map<(d0) -> (d0)>
func.func @compute(%x: memref<4xf32> {llvm.noalias}, %y: memref<4xf32> {llvm.noalias},
                   %o1: memref<4xf32> {llvm.noalias}, %o2: memref<4xf32> {llvm.noalias}) {
  %one = arith.constant 1.0 : f32
  %a = memref.alloc() : memref<4xf32>
  %b = memref.alloc() : memref<4xf32>
  // a = 2x + 1, b = y + 1
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%x : memref<4xf32>) outs(%a : memref<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %t = arith.addf %in, %in : f32
    %u = arith.addf %t, %one : f32
    linalg.yield %u : f32
  }
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel"]}
      ins(%y : memref<4xf32>) outs(%b : memref<4xf32>) {
  ^bb0(%in: f32, %out: f32):
    %u = arith.addf %in, %one : f32
    linalg.yield %u : f32
  }
  // In place: a = a + a, then o1 = a + x (reads a after its write)
  linalg.add ins(%a, %a : memref<4xf32>, memref<4xf32>) outs(%a : memref<4xf32>)
  linalg.add ins(%a, %x : memref<4xf32>, memref<4xf32>) outs(%o1 : memref<4xf32>)
  linalg.copy ins(%b : memref<4xf32>) outs(%o2 : memref<4xf32>)
  memref.dealloc %a : memref<4xf32>
  memref.dealloc %b : memref<4xf32>
  return
}

func.func private @printMemrefF32(memref<*xf32>)

func.func @main() {
  %x = memref.alloc() : memref<4xf32>
  %y = memref.alloc() : memref<4xf32>
  %o1 = memref.alloc() : memref<4xf32>
  %o2 = memref.alloc() : memref<4xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  scf.for %i = %c0 to %c4 step %c1 {
    %ii = arith.index_cast %i : index to i32
    %f = arith.sitofp %ii : i32 to f32
    %two = arith.constant 2.0 : f32
    %fy = arith.addf %f, %two : f32
    memref.store %f, %x[%i] : memref<4xf32>
    memref.store %fy, %y[%i] : memref<4xf32>
  }
  call @compute(%x, %y, %o1, %o2) : (memref<4xf32>, memref<4xf32>, memref<4xf32>, memref<4xf32>) -> ()
  %p1 = memref.cast %o1 : memref<4xf32> to memref<*xf32>
  %p2 = memref.cast %o2 : memref<4xf32> to memref<*xf32>
  call @printMemrefF32(%p1) : (memref<*xf32>) -> ()
  call @printMemrefF32(%p2) : (memref<*xf32>) -> ()
  memref.dealloc %x : memref<4xf32>
  memref.dealloc %y : memref<4xf32>
  memref.dealloc %o1 : memref<4xf32>
  memref.dealloc %o2 : memref<4xf32>
  return
}
