// moe-test-check-arena (used by the lit tests and scripts/plan-robustness.py)
// rejects planned memory that escapes or is freed twice. These are the
// outputs that moe-plan-memory used to produce (docs/fuzzing.md).
// RUN: moe-opt %s -split-input-file -verify-diagnostics --moe-test-check-arena -o /dev/null

func.func @returned_through_loop(%lb: index, %ub: index, %step: index, %buf: memref<2xf32>) -> memref<2xf32> {
  %c0 = arith.constant 0 : index
  %alloc = memref.alloc() {moe.arena} : memref<16xi8>
  %view = memref.view %alloc[%c0][] : memref<16xi8> to memref<2xf32>
  %0 = scf.for %i = %lb to %ub step %step iter_args(%it = %buf) -> (memref<2xf32>) {
    %1 = arith.cmpi eq, %i, %ub : index
    %2 = scf.if %1 -> (memref<2xf32>) {
      scf.yield %view : memref<2xf32>
    } else {
      scf.yield %it : memref<2xf32>
    }
    scf.yield %2 : memref<2xf32>
  }
  memref.dealloc %alloc : memref<16xi8>
  // expected-error @below {{planned memory is used after the arena is freed}}
  // expected-error @below {{planned memory is returned}}
  return %0 : memref<2xf32>
}

// -----

func.func @realloc(%x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %alloc = memref.alloc() {moe.arena} : memref<16xi8>
  %view = memref.view %alloc[%c0][] : memref<16xi8> to memref<4xf32>
  memref.copy %x, %view : memref<4xf32> to memref<4xf32>
  // expected-error @below {{planned memory is freed or reallocated by an op other than the arena's dealloc}}
  %0 = memref.realloc %view : memref<4xf32> to memref<8xf32>
  memref.dealloc %alloc : memref<16xi8>
  return
}

// -----

func.func @dealloc_through_cast(%x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %alloc = memref.alloc() {moe.arena} : memref<16xi8>
  %view = memref.view %alloc[%c0][] : memref<16xi8> to memref<4xf32>
  memref.copy %x, %view : memref<4xf32> to memref<4xf32>
  %cast = memref.cast %view : memref<4xf32> to memref<?xf32>
  // expected-error @below {{planned memory is freed or reallocated by an op other than the arena's dealloc}}
  memref.dealloc %cast : memref<?xf32>
  memref.dealloc %alloc : memref<16xi8>
  return
}

// -----

func.func private @keep(memref<4xf32>)
func.func @passed_to_call(%x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %alloc = memref.alloc() {moe.arena} : memref<16xi8>
  %view = memref.view %alloc[%c0][] : memref<16xi8> to memref<4xf32>
  // expected-error @below {{planned memory is passed to a call that may keep it}}
  func.call @keep(%view) : (memref<4xf32>) -> ()
  memref.dealloc %alloc : memref<16xi8>
  return
}

// -----

func.func @to_another_block(%x: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %alloc = memref.alloc() {moe.arena} : memref<16xi8>
  %view = memref.view %alloc[%c0][] : memref<16xi8> to memref<4xf32>
  memref.dealloc %alloc : memref<16xi8>
  // expected-error @below {{planned memory is used after the arena is freed}}
  cf.br ^bb1(%view : memref<4xf32>)
// expected-error @below {{planned memory flows out of the arena's block}}
^bb1(%b: memref<4xf32>):
  memref.copy %x, %b : memref<4xf32> to memref<4xf32>
  return
}
