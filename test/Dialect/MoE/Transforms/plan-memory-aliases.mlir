// moe-plan-memory puts a buffer in the arena only when every alias of it is
// known, stays inside the block and is freed by nothing but its own dealloc
// (the arena is freed at the end of the block). Otherwise the buffer keeps
// its own allocation and a remark says why. Each function is one class; the
// output must verify and, where something is planned, not free planned
// memory twice or let it escape (moe-test-check-arena).
// RUN: moe-opt %s -split-input-file -verify-diagnostics --allow-unregistered-dialect --moe-plan-memory --moe-test-check-arena | FileCheck %s
// RUN: moe-opt %s -split-input-file -verify-diagnostics --allow-unregistered-dialect --moe-optimize --moe-test-check-arena -o /dev/null

// A buffer in another memory space is never a view of the (default-space)
// arena; default-space buffers beside it are still planned.
// CHECK-LABEL: func.func @memory_space
// CHECK:       %[[ARENA:.*]] = memref.alloc() {moe.arena} : memref<{{[0-9]+}}xi8>
// CHECK:       memref.view %[[ARENA]]
// CHECK:       %[[S2:.*]] = memref.alloc() : memref<256xf32, 2>
// CHECK:       linalg.copy {{.*}} outs(%[[S2]]
// CHECK:       memref.dealloc %[[S2]] : memref<256xf32, 2>
// CHECK:       memref.dealloc %[[ARENA]]
func.func @memory_space(%x: memref<256xf32> {llvm.noalias}, %o: memref<256xf32> {llvm.noalias}) {
  %t = memref.alloc() : memref<256xf32>
  linalg.copy ins(%x : memref<256xf32>) outs(%t : memref<256xf32>)
  // expected-remark @below {{left out of the memory plan's arena: it is in memory space 2 (arenas are made in the default memory space only)}}
  %a = memref.alloc() : memref<256xf32, 2>
  linalg.copy ins(%t : memref<256xf32>) outs(%a : memref<256xf32, 2>)
  memref.dealloc %t : memref<256xf32>
  %u = memref.alloc() : memref<256xf32>
  linalg.copy ins(%a : memref<256xf32, 2>) outs(%u : memref<256xf32>)
  memref.dealloc %a : memref<256xf32, 2>
  linalg.copy ins(%u : memref<256xf32>) outs(%o : memref<256xf32>)
  memref.dealloc %u : memref<256xf32>
  return
}

// -----

// CHECK-LABEL: func.func @memory_space_attribute
// CHECK-NOT:   moe.arena
func.func @memory_space_attribute(%x: memref<64xf32> {llvm.noalias}, %o: memref<64xf32> {llvm.noalias}) {
  // expected-remark @below {{it is in memory space #gpu.address_space<workgroup>}}
  %a = memref.alloc() : memref<64xf32, #gpu.address_space<workgroup>>
  linalg.copy ins(%x : memref<64xf32>) outs(%a : memref<64xf32, #gpu.address_space<workgroup>>)
  linalg.copy ins(%a : memref<64xf32, #gpu.address_space<workgroup>>) outs(%o : memref<64xf32>)
  memref.dealloc %a : memref<64xf32, #gpu.address_space<workgroup>>
  return
}

// -----

// Upstream's buffer-hoisting.mlir @loop_nested_if_alloc: %0 is yielded by an
// scf.if inside an scf.for whose result is returned. It must stay an
// allocation of its own (it was a view of an arena freed before the return).
// CHECK-LABEL: func.func @loop_nested_if_alloc
// CHECK-NOT:   moe.arena
// CHECK:       %[[A:.*]] = memref.alloc() : memref<2xf32>
// CHECK:       scf.yield %[[A]]
// CHECK-NOT:   memref.dealloc
// CHECK:       return
func.func @loop_nested_if_alloc(%lb: index, %ub: index, %step: index, %buf: memref<2xf32>) -> memref<2xf32> {
  // expected-remark @below {{left out of the memory plan's arena: it leaves the block through 'func.return'}}
  %0 = memref.alloc() : memref<2xf32>
  %1 = scf.for %i = %lb to %ub step %step iter_args(%iterBuf = %buf) -> memref<2xf32> {
    %2 = arith.cmpi eq, %i, %ub : index
    %3 = scf.if %2 -> (memref<2xf32>) {
      scf.yield %0 : memref<2xf32>
    } else {
      scf.yield %iterBuf : memref<2xf32>
    }
    scf.yield %3 : memref<2xf32>
  }
  return %1 : memref<2xf32>
}

// -----

// A region result that stays in the block is an alias the plan follows: the
// buffer is planned and lives until the last use of the scf.if's result.
// CHECK-LABEL: func.func @region_result_inside
// CHECK:       %[[ARENA:.*]] = memref.alloc() {moe.arena}
// CHECK:       %[[R:.*]] = scf.if
// CHECK:       linalg.copy ins(%[[R]] {{.*}} outs(%arg2
// CHECK-NOT:   memref.dealloc %[[R]]
// CHECK:       memref.dealloc %[[ARENA]]
// CHECK-NEXT:  return
func.func @region_result_inside(%c: i1, %x: memref<64xf32> {llvm.noalias}, %o: memref<64xf32> {llvm.noalias}) {
  %a = memref.alloc() : memref<64xf32>
  %b = memref.alloc() : memref<64xf32>
  linalg.copy ins(%x : memref<64xf32>) outs(%a : memref<64xf32>)
  linalg.copy ins(%x : memref<64xf32>) outs(%b : memref<64xf32>)
  %r = scf.if %c -> memref<64xf32> {
    scf.yield %a : memref<64xf32>
  } else {
    scf.yield %b : memref<64xf32>
  }
  linalg.copy ins(%r : memref<64xf32>) outs(%o : memref<64xf32>)
  memref.dealloc %a : memref<64xf32>
  memref.dealloc %b : memref<64xf32>
  return
}

// -----

// Passed to another block: the arena is freed at the end of the entry block.
// CHECK-LABEL: func.func @to_another_block
// CHECK-NOT:   moe.arena
func.func @to_another_block(%x: memref<64xf32> {llvm.noalias}, %o: memref<64xf32> {llvm.noalias}) {
  // expected-remark @below {{it leaves the block through 'cf.br'}}
  %a = memref.alloc() : memref<64xf32>
  linalg.copy ins(%x : memref<64xf32>) outs(%a : memref<64xf32>)
  cf.br ^bb1(%a : memref<64xf32>)
^bb1(%b: memref<64xf32>):
  linalg.copy ins(%b : memref<64xf32>) outs(%o : memref<64xf32>)
  memref.dealloc %b : memref<64xf32>
  return
}

// -----

// Ownership taken by other ops: each would free planned memory a second time.
// CHECK-LABEL: func.func @realloc
// CHECK-NOT:   moe.arena
func.func @realloc(%x: memref<4xf32>) -> memref<8xf32> {
  // expected-remark @below {{it is reallocated by 'memref.realloc'}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  %b = memref.realloc %a : memref<4xf32> to memref<8xf32>
  return %b : memref<8xf32>
}

// -----

// CHECK-LABEL: func.func @dealloc_through_cast
// CHECK-NOT:   moe.arena
func.func @dealloc_through_cast(%x: memref<4xf32>, %o: memref<4xf32>) {
  // expected-remark @below {{it is freed by 'memref.dealloc' (not its own dealloc)}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  %c = memref.cast %a : memref<4xf32> to memref<?xf32>
  memref.dealloc %c : memref<?xf32>
  return
}

// -----

// CHECK-LABEL: func.func @bufferization_dealloc
// CHECK-NOT:   moe.arena
func.func @bufferization_dealloc(%x: memref<4xf32>, %o: memref<4xf32>, %cond: i1) {
  // expected-remark @below {{it is freed by 'bufferization.dealloc'}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  %base, %off, %size, %stride = memref.extract_strided_metadata %a : memref<4xf32> -> memref<f32>, index, index, index
  bufferization.dealloc (%base : memref<f32>) if (%cond)
  return
}

// -----

// Retained (not freed) by bufferization.dealloc: still plannable.
// CHECK-LABEL: func.func @bufferization_dealloc_retained
// CHECK:       moe.arena
func.func @bufferization_dealloc_retained(%x: memref<4xf32>, %o: memref<4xf32>, %other: memref<4xf32>, %cond: i1) {
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  %r = bufferization.dealloc (%other : memref<4xf32>) if (%cond) retain (%a : memref<4xf32>)
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

// A call may keep the pointer unless the callee's argument is llvm.nocapture.
// CHECK-LABEL: func.func @call_may_capture
// CHECK-NOT:   moe.arena
func.func private @keep(memref<*xf32>)
func.func @call_may_capture(%x: memref<4xf32>, %o: memref<4xf32>) {
  // expected-remark @below {{it is passed to a call, 'func.call', whose callee may keep it (no llvm.nocapture on the callee's argument)}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  %u = memref.cast %a : memref<4xf32> to memref<*xf32>
  func.call @keep(%u) : (memref<*xf32>) -> ()
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

// CHECK-LABEL: func.func @call_nocapture
// CHECK:       moe.arena
// CHECK:       call @print
func.func private @print(memref<*xf32> {llvm.nocapture})
func.func @call_nocapture(%x: memref<4xf32>, %o: memref<4xf32>) {
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  %u = memref.cast %a : memref<4xf32> to memref<*xf32>
  func.call @print(%u) : (memref<*xf32>) -> ()
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

// The address as an integer, a tensor of the buffer, an op with unknown
// effects, a select (an alias whose uses are followed: here it is returned).
// CHECK-LABEL: func.func @address_taken
// CHECK-NOT:   moe.arena
func.func @address_taken(%x: memref<4xf32>, %o: memref<4xf32>) -> index {
  // expected-remark @below {{its address is taken by 'memref.extract_aligned_pointer_as_index'}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  %p = memref.extract_aligned_pointer_as_index %a : memref<4xf32> -> index
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  memref.dealloc %a : memref<4xf32>
  return %p : index
}

// -----

// CHECK-LABEL: func.func @to_tensor
// CHECK-NOT:   moe.arena
func.func @to_tensor(%x: memref<4xf32>, %o: memref<4xf32>) -> tensor<4xf32> {
  // expected-remark @below {{it becomes a tensor through 'bufferization.to_tensor'}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  %t = bufferization.to_tensor %a : memref<4xf32> to tensor<4xf32>
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  memref.dealloc %a : memref<4xf32>
  return %t : tensor<4xf32>
}

// -----

// CHECK-LABEL: func.func @select_returned
// CHECK-NOT:   moe.arena
func.func @select_returned(%c: i1, %x: memref<4xf32>) -> memref<4xf32> {
  // expected-remark @below {{it leaves the block through 'func.return'}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  %s = arith.select %c, %a, %x : memref<4xf32>
  return %s : memref<4xf32>
}

// -----

// CHECK-LABEL: func.func @unknown_op
// CHECK-NOT:   moe.arena
func.func @unknown_op(%x: memref<4xf32>, %o: memref<4xf32>) {
  // expected-remark @below {{it is used by 'test.stash', whose memory effects are unknown}}
  %a = memref.alloc() : memref<4xf32>
  memref.copy %x, %a : memref<4xf32> to memref<4xf32>
  "test.stash"(%a) : (memref<4xf32>) -> ()
  memref.copy %a, %o : memref<4xf32> to memref<4xf32>
  memref.dealloc %a : memref<4xf32>
  return
}

// -----

// A buffer left out still counts: the arena plus the buffers outside it may
// not exceed the peak as written. Here %a and %b never live at once (peak 1
// KiB); with %a outside the arena, an arena for %b would make it 2 KiB.
// CHECK-LABEL: func.func @left_out_counts
// CHECK-NOT:   moe.arena
func.func @left_out_counts(%x: memref<256xf32>, %o: memref<256xf32>) {
  // expected-remark @below {{it is used by 'test.stash'}}
  %a = memref.alloc() : memref<256xf32>
  memref.copy %x, %a : memref<256xf32> to memref<256xf32>
  "test.stash"(%a) : (memref<256xf32>) -> ()
  memref.dealloc %a : memref<256xf32>
  %b = memref.alloc() : memref<256xf32>
  memref.copy %x, %b : memref<256xf32> to memref<256xf32>
  memref.copy %b, %o : memref<256xf32> to memref<256xf32>
  memref.dealloc %b : memref<256xf32>
  return
}
