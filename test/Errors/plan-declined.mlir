// Why moe-plan-memory (and moe-optimize) leave a function unplanned: the
// report's "plan" says "applied": false and a "reason". Not errors: the
// function runs as written, buffer by buffer. The other reasons are tested in
// test/Dialect/MoE/Transforms/plan-memory.mlir (the arena would exceed the unplanned
// peak) and test/Dialect/MoE/Transforms/plan-memory-regressions.mlir (the token count).
// RUN: moe-opt %s --moe-plan-memory --moe-memory-report=%t.json 2>&1 | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t.json
// RUN: moe-opt %s --moe-plan-memory | moe-opt --moe-plan-memory --moe-memory-report=%t.again.json -o /dev/null
// RUN: FileCheck %s --check-prefix=AGAIN --input-file=%t.again.json

// CHECK-LABEL: func.func @two_token_values
// CHECK-NOT:   moe.arena
// CHECK-LABEL: func.func @planned
// CHECK:       moe.arena
// AGAIN: "name": "two_token_values"
// AGAIN: "reason": "dynamic sizes use different token-count values"
// AGAIN: "name": "nothing_to_plan"
// AGAIN: "reason": "no buffers to plan"
// AGAIN: "name": "unmodellable"
// AGAIN: "reason": "cannot size a buffer of type memref<?x?xf32>: sizes must be linear in one dynamic dimension (the token count) and elements must be integers or floats"
// AGAIN: "name": "planned"
// AGAIN: "reason": "already planned"

// REPORT: "name": "two_token_values"
// REPORT: "reason": "dynamic sizes use different token-count values"
func.func @two_token_values(%x: memref<?x4xf32> {llvm.noalias}, %o: memref<?x4xf32> {llvm.noalias}) {
  %c0 = arith.constant 0 : index
  %n = memref.dim %x, %c0 : memref<?x4xf32>
  %m = memref.dim %o, %c0 : memref<?x4xf32>
  %a = memref.alloc(%n) : memref<?x4xf32>
  %b = memref.alloc(%m) : memref<?x4xf32>
  linalg.copy ins(%x : memref<?x4xf32>) outs(%a : memref<?x4xf32>)
  linalg.copy ins(%a : memref<?x4xf32>) outs(%b : memref<?x4xf32>)
  linalg.copy ins(%b : memref<?x4xf32>) outs(%o : memref<?x4xf32>)
  memref.dealloc %a : memref<?x4xf32>
  memref.dealloc %b : memref<?x4xf32>
  return
}

// REPORT: "name": "nothing_to_plan"
// REPORT: "reason": "no buffers to plan"
func.func @nothing_to_plan(%x: memref<4xf32> {llvm.noalias}, %o: memref<4xf32> {llvm.noalias}) {
  linalg.copy ins(%x : memref<4xf32>) outs(%o : memref<4xf32>)
  return
}

// REPORT: "name": "unmodellable"
// REPORT: "reason": "cannot size a buffer of type memref<?x?xf32>
func.func @unmodellable(%x: memref<?x?xf32>, %n: index) {
  %a = memref.alloc(%n, %n) : memref<?x?xf32>
  linalg.copy ins(%x : memref<?x?xf32>) outs(%a : memref<?x?xf32>)
  memref.dealloc %a : memref<?x?xf32>
  return
}

// REPORT: "name": "planned"
// REPORT: "applied": true
func.func @planned(%x: memref<4xf32> {llvm.noalias}, %o: memref<4xf32> {llvm.noalias}) {
  %a = memref.alloc() : memref<4xf32>
  linalg.copy ins(%x : memref<4xf32>) outs(%a : memref<4xf32>)
  linalg.copy ins(%a : memref<4xf32>) outs(%o : memref<4xf32>)
  memref.dealloc %a : memref<4xf32>
  return
}
