// Found by scripts/difftest.py (differential testing, docs/difftest.md).
// RUN: moe-opt %s --moe-plan-memory --moe-memory-report=%t.plan.json | FileCheck %s --check-prefix=PLAN
// RUN: FileCheck %s --check-prefix=PLAN-REPORT --input-file=%t.plan.json
// RUN: moe-opt %s --moe-optimize --moe-memory-report=%t.opt.json | FileCheck %s --check-prefix=OPT
// RUN: FileCheck %s --check-prefix=OPT-REPORT --input-file=%t.opt.json

// A static buffer used before the token count is computed: the arena used to
// be placed after the token count, below the first use of the buffer's view
// ("operand #1 does not dominate this use"). The token count now moves to the
// start of the block, the arena right after it.
// PLAN-LABEL: func.func @static_buffer_first
// PLAN:       %[[T:.*]] = memref.dim %arg1
// PLAN:       %[[ARENA:.*]] = memref.alloc(%{{.*}}) {moe.arena} : memref<?xi8>
// PLAN:       %[[S:.*]] = memref.view %[[ARENA]][%{{.*}}][] : memref<?xi8> to memref<6x4xf32>
// PLAN-NEXT:  linalg.copy ins(%arg0 : memref<6x4xf32>) outs(%[[S]] : memref<6x4xf32>)
// PLAN:       memref.view %[[ARENA]][%{{.*}}][%[[T]]] : memref<?xi8> to memref<?x4xf32>
// PLAN:       memref.dealloc %[[ARENA]]
func.func @static_buffer_first(%x: memref<6x4xf32> {llvm.noalias}, %y: memref<?x4xf32> {llvm.noalias}, %o: memref<?x4xf32> {llvm.noalias}) {
  %c0 = arith.constant 0 : index
  %s = memref.alloc() : memref<6x4xf32>
  linalg.copy ins(%x : memref<6x4xf32>) outs(%s : memref<6x4xf32>)
  linalg.add ins(%s, %s : memref<6x4xf32>, memref<6x4xf32>) outs(%x : memref<6x4xf32>)
  memref.dealloc %s : memref<6x4xf32>
  %n = memref.dim %y, %c0 : memref<?x4xf32>
  %d = memref.alloc(%n) : memref<?x4xf32>
  linalg.copy ins(%y : memref<?x4xf32>) outs(%d : memref<?x4xf32>)
  linalg.add ins(%d, %d : memref<?x4xf32>, memref<?x4xf32>) outs(%o : memref<?x4xf32>)
  memref.dealloc %d : memref<?x4xf32>
  return
}

// A token count read from a buffer the plan would move into the arena cannot
// move before it: no plan.
// PLAN-LABEL: func.func @token_count_of_a_buffer
// PLAN-NOT:   moe.arena
// PLAN:       return
// PLAN-REPORT: "name": "token_count_of_a_buffer"
// PLAN-REPORT: "reason": "the token count is not computed from the function's arguments alone"
func.func @token_count_of_a_buffer(%x: memref<6x4xf32> {llvm.noalias}) {
  %c0 = arith.constant 0 : index
  %one = arith.constant 1.0 : f32
  %s = memref.alloc() : memref<6x4xf32>
  %n = memref.dim %s, %c0 : memref<6x4xf32>
  %d = memref.alloc(%n) : memref<?x4xf32>
  linalg.copy ins(%x : memref<6x4xf32>) outs(%s : memref<6x4xf32>)
  linalg.fill ins(%one : f32) outs(%d : memref<?x4xf32>)
  %dc = memref.cast %d : memref<?x4xf32> to memref<6x4xf32>
  linalg.add ins(%s, %dc : memref<6x4xf32>, memref<6x4xf32>) outs(%x : memref<6x4xf32>)
  memref.dealloc %s : memref<6x4xf32>
  memref.dealloc %d : memref<?x4xf32>
  return
}

// A buffer no op uses was left allocated (and moved to the end, while the
// arena is live): the planned peak was the arena plus that buffer, above the
// unplanned peak. It needs no memory: the plan drops it.
// PLAN-LABEL: func.func @unused_buffer
// PLAN:       memref.alloc() {moe.arena} : memref<32xi8>
// PLAN-NOT:   memref<64xf32>
// PLAN:       return
func.func @unused_buffer(%x: memref<8xf32> {llvm.noalias}, %o: memref<8xf32> {llvm.noalias}) {
  %u = memref.alloc() : memref<64xf32>
  memref.dealloc %u : memref<64xf32>
  %a = memref.alloc() : memref<8xf32>
  linalg.copy ins(%x : memref<8xf32>) outs(%a : memref<8xf32>)
  linalg.add ins(%a, %a : memref<8xf32>, memref<8xf32>) outs(%o : memref<8xf32>)
  memref.dealloc %a : memref<8xf32>
  return
}

// An order that is already optimal, with a 12-byte buffer: the 16-byte arena
// exceeds the peak of the function as written. moe-plan-memory alone still
// allows the rounding of each buffer's constant part; moe-optimize never
// returns a function with a higher peak than its input.
// PLAN-LABEL: func.func @rounding
// PLAN:       memref.alloc() {moe.arena} : memref<16xi8>
// OPT-LABEL:  func.func @rounding
// OPT-NOT:    moe.arena
// OPT:        memref.alloc() : memref<3xf32>
// OPT-REPORT: "name": "rounding"
// OPT-REPORT: "reason": "the arena (16 bytes) would exceed the unplanned peak (12 bytes)"
func.func @rounding(%x: memref<3xf32> {llvm.noalias}, %o: memref<3xf32> {llvm.noalias}) {
  %a = memref.alloc() : memref<3xf32>
  linalg.copy ins(%x : memref<3xf32>) outs(%a : memref<3xf32>)
  linalg.add ins(%a, %a : memref<3xf32>, memref<3xf32>) outs(%o : memref<3xf32>)
  memref.dealloc %a : memref<3xf32>
  return
}
