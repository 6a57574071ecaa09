// Found by moe-opt-fuzzer: byte counts overflowed int64 at a huge token hint
// (undefined behaviour); they saturate now.
// RUN: moe-opt %s --moe-optimize=token-hint=1099511627776 -o /dev/null
// RUN: moe-opt %s --moe-optimize=token-hint=7 -o /dev/null

"builtin.module"() ({
  "func.func"() <{arg_attrs = [{moe.name = "hiddenWstates", moe.role = "input"}, {moe.name = "layers.0.gate.weight", moe.role = "weight"}, {moe.name = "layers.0.experts.w13", moe.role = "weight"}, {moe.name = "layers.0.experts.w2", moe.role = "weight"}, {moe.name = "layers.0.shared_experts'\00\00\00\00\00\00\00.w13", moe.role = "weight"}, {moe.name = "layers.0.shared_experts.w2", moe.role = "weight"}, {insmoe.name = "output", moe.role = "output"}], function_type = (memref<?x32xbf16>, memref<16x32xbf16>, memref<16x16x32xbf16>, memref<16x32x8xbf16>, memref<16x32xbf16>, memref<32x8xbf16>, memref<?x32xbf16>) -> (), sym_name = "grouped_softmax_moe"}> ({
  ^bb0(%arg0: memref<?x32xbf16>, %arg1: memref<16x32xbf16>, %arg2: memref<16x16x32xbf16>, %arg3: memref<16x32x8xbf16>, %arg4: memref<16x32xbf16>, %arg5: memref<32x8xbf16>, %arg6: memref<?x32xbf16>):
    %0 = "arith.constant"() <{value = 9223372036854775807 : index}> : () -> index
    %1 = "memref.dim"(%arg0, %0) : (memref<?x32xbf16>, index) -> index
    %2 = "memref.dim"(%arg0, %0) : (memref<?x32xbf16>, index) -> index
    %3 = "memref.alloc"(%0) <{operandSegmentSizes = array<i32: 1, 0>}> {moe.arena} : (index) -> memref<?x32xbf16>
    %4 = "memref.alloc"(%1) <{operandSegmentSizes = array<i32: 1, 0>}> : (index) -> memref<?x4xi32>
    "moe.shared_experts"(%arg0, %arg1, %arg5, %3) : (memref<?x32xbf16>, memref<16x32xbf16>, memref<32x8xbf16>, memref<?x32xbf16>) -> ()
    "moe.shared_experts"(%arg0, %arg1, %arg5, %3) : (memref<?x32xbf16>, memref<16x32xbf16>, memref<32x8xbf16>, memref<?x32xbf16>) -> ()
    %5 = "memref.alloc"(%1) <{operandSegmentSizes = array<i32: 1, 0>}> : (index) -> memref<?x16xf32>
    "moe.gate"(%arg0, %arg1, %5) : (memref<?x32xbf16>, memref<16x32xbf16>, memref<?x16xf32>) -> ()
    %6 = "memref.alloc"(%1) <{operandSegmentSizes = array<i32: 1, 0>}> {renormalize} : (index) -> memref<?x4xf32>
    "moe.topk"(%5, %4, %6) <{k = 4 : i64, n_group = 4 : i64, routed_scaling_factor = 1.600000e+01 : f32, scoring = 0 : i32, topk_group = 2 : i64}> : (memref<?x16xf32>, memref<?x4xi32>, memref<?x4xf32>) -> ()
    "moe.topk"(%5, %4, %6) <{k = 4 : i64, n_group = 4 : i64, routed_scaling_factor = 1.600000e+01 : f32, scoring = 0 : i32, topk_group = 2 : i64}> : (memref<?x16xf32>, memref<?x4xi32>, memref<?x4xf32>) -> ()
    "memref.dealloc"(%5) : (memref<?x16xf32>) -> ()
    "memref.dealloc"(%5) : (memref<?x16xf32>) -> ()
    "memref.dealloc"(%5) : (memref<?x16xf32>) -> ()
    %7 = "memref.alloc"(%1) <{operandSegmentSizes = array<i32: 1, 0>}> : (index) -> memref<?x32xbf16>
    %8 = "memref.alloc"(%1) <{operandSegmentSizes = array<i32: 1, 0>}> : (index) -> memref<?x32xbf16>
    "moe.routed_experts"(%arg0, %4, %6, %arg2, %arg3, %7) : (memref<?x32xbf16>, memref<?x4xi32>, memref<?x4xf32>, memref<16x16x32xbf16>, memref<16x32x8xbf16>, memref<?x32xbf16>) -> ()
    "moe.shared_experts"(%arg0, %arg4, %arg5, %3) : (memref<?x32xbf16>, memref<16x32xbf16>, memref<32x8xbf16>, memref<?x32xbf16>) -> ()
    "moe.routed_experts"(%arg0, %4, %6, %arg2, %arg3, %7) : (memref<?x32xbf16>, memref<?x4xi32>, memref<?x4xf32>, memref<16x16x32xbf16>, memref<16x32x8xbf16>, memref<?x32xbf16>) -> ()
    "memref.dealloc"(%6) : (memref<?x4xf32>) -> ()
    "memref.dealloc"(%6) : (memref<?x4xf32>) -> ()
    "moe.add"(%7, %3, %arg6) <{scale = 1.000000e+00 : f32}> : (memref<?x32xbf16>, memref<?x32xbf16>, memref<?x32xbf16>) -> ()
    "moe.add"(%7, %3, %arg6) <{scale = 1.000000e+00 : f32}> : (memref<?x32xbf16>, memref<?x32xbf16>, memref<?x32xbf16>) -> ()
    "memref.dealloc"(%7) : (memref<?x32xbf16>) -> ()
    "memref.dealloc"(%3) : (memref<?x32xbf16>) -> ()
    "func.return"() : () -> ()
  }) : () -> ()
}) : () -> ()
