// convert-moe-to-runtime's preconditions not covered by
// test/Conversion/MoEToRuntime/moe-to-runtime.mlir: a planned workspace needs its arena.
// RUN: moe-opt %s --convert-moe-to-runtime -verify-diagnostics -o /dev/null

func.func @workspace_without_arena(%x: memref<4x8xf32>, %w13: memref<4x8xf32>, %w2: memref<8x2xf32>, %o: memref<4x8xf32>) {
  // expected-error @+1 {{has a planned workspace but its block has no arena (run moe-plan-memory on the whole function)}}
  moe.shared_experts ins(%x, %w13, %w2 : memref<4x8xf32>, memref<4x8xf32>, memref<8x2xf32>) outs(%o : memref<4x8xf32>) {moe.workspace_offset = array<i64: 0, 0>}
  return
}
