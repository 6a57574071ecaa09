// The moe dialect's attributes that the other tests do not reach: those the
// memory planner writes (moe.arena, moe.workspace_offset), when written by
// hand. Each error carries the op's file:line:col.
// RUN: moe-opt %s -split-input-file -verify-diagnostics -o /dev/null

func.func @arena_on_a_view(%a: memref<64xi8>) {
  %c0 = arith.constant 0 : index
  // expected-error @+1 {{'moe.arena' must be a unit attribute on a memref.alloc}}
  %v = memref.view %a[%c0][] {moe.arena} : memref<64xi8> to memref<4xf32>
  return
}

// -----

func.func @bad_offset(%x: memref<4x8xf32>, %w13: memref<4x8xf32>, %w2: memref<8x2xf32>, %o: memref<4x8xf32>) {
  // expected-error @+1 {{'moe.workspace_offset' must be array<i64: perToken, constant> with non-negative values}}
  moe.shared_experts ins(%x, %w13, %w2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%o : memref<4x8xf32>) {moe.workspace_offset = array<i64: -16>}
  return
}

// -----

func.func @offset_without_workspace(%x: memref<4x8xf32>, %o: memref<4x8xf32>) {
  // expected-error @+1 {{'moe.workspace_offset' is only valid on an op with a workspace}}
  moe.add ins(%x, %x : memref<4x8xf32>, memref<4x8xf32>) outs(%o : memref<4x8xf32>) {moe.workspace_offset = array<i64: 0, 0>}
  return
}
