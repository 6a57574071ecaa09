// RUN: moe-opt %s -split-input-file -verify-diagnostics --convert-moe-to-runtime | FileCheck %s

// Found by moe-opt-fuzzer: convert-moe-to-runtime declared the runtime
// functions in the outermost module, so the calls of an op in a nested module
// referenced a symbol that is not in their symbol table (IR that does not
// verify). They are declared in the module that holds the op.

// CHECK-LABEL: module @inner
// CHECK:         func.func @f
// CHECK:           call @moert_copy
// CHECK:           call @moert_add
// CHECK:         func.func private @moert_copy
// CHECK:         func.func private @moert_add
// CHECK:       }
// CHECK-NOT:   func.func private @moert_
module {
  module @inner {
    func.func @f(%a: memref<4x8xf32>, %b: memref<4x8xf32>, %c: memref<4x8xf32>) {
      memref.copy %a, %b : memref<4x8xf32> to memref<4x8xf32>
      moe.add ins(%a, %b : memref<4x8xf32>, memref<4x8xf32>) outs(%c : memref<4x8xf32>)
      return
    }
  }
}

// -----

// Another symbol table than a module cannot hold the declarations.
gpu.module @kernels {
  func.func @f(%a: memref<4x8xf32>, %b: memref<4x8xf32>, %c: memref<4x8xf32>) {
    // expected-error @+1 {{'moe.add' op must be in a builtin.module (the symbol table that will declare the runtime functions)}}
    moe.add ins(%a, %b : memref<4x8xf32>, memref<4x8xf32>) outs(%c : memref<4x8xf32>)
    return
  }
}
