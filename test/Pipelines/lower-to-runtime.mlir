// RUN: moe-opt %s --moe-lower-to-runtime | FileCheck %s
// RUN: moe-opt %s --moe-lower-to-runtime=optimize=false | FileCheck %s --check-prefix=NOOPT
// RUN: moe-gen --model %moe_src_root/examples/deepseek-v3-mini.json | moe-opt --moe-lower-to-runtime | FileCheck %s --check-prefix=BUFFER
// RUN: moe-opt %s --moe-lower-to-runtime=export-entry=false | FileCheck %s --check-prefix=NOENTRY

// One pipeline from the tensor form (or the buffer form) to the LLVM dialect
// with calls into the runtime; docs/pipelines.md lists its stages.

// CHECK-NOT:   moe.
// CHECK-NOT:   tensor.
// CHECK-LABEL: llvm.func @layer
// The routed op in place (moe-select-inplace breaks the tie so), after the
// shared experts, the other reader of its input.
// CHECK:         llvm.call @moert_shared_experts
// CHECK:         llvm.call @moert_gate
// CHECK:         llvm.call @moert_topk
// CHECK:         llvm.call @moert_routed_experts
// CHECK:         llvm.call @moert_add
// CHECK:       llvm.mlir.global external constant @moe_module_description
// CHECK-SAME:    \22optimized\22:true
// CHECK:       llvm.func @moe_entry

// Without optimizing, the routed op writes a buffer of its own.
// NOOPT-LABEL: llvm.func @layer
// NOOPT:         llvm.call @moert_shared_experts
// NOOPT:         llvm.call @moert_gate
// NOOPT:         llvm.call @moert_topk
// NOOPT:         llvm.call @_mlir_memref_to_llvm_alloc
// NOOPT:         llvm.call @moert_routed_experts
// NOOPT:         \22optimized\22:false

// BUFFER:      llvm.func @deepseek_v3_mini_moe
// BUFFER:      llvm.func @moe_entry

// NOENTRY-NOT: moe_entry
// NOENTRY-NOT: moe_module_description

func.func @layer(%x: tensor<?x64xbf16> {moe.role = "input", moe.name = "x"},
                 %gate: tensor<8x64xbf16> {moe.role = "weight", moe.name = "gate"},
                 %w13: tensor<8x32x64xbf16> {moe.role = "weight", moe.name = "w13"},
                 %w2: tensor<8x64x16xbf16> {moe.role = "weight", moe.name = "w2"},
                 %sw13: tensor<32x64xbf16> {moe.role = "weight", moe.name = "sw13"},
                 %sw2: tensor<64x16xbf16> {moe.role = "weight", moe.name = "sw2"})
    -> (tensor<?x64xbf16> {moe.role = "output", moe.name = "output"}) {
  %c0 = arith.constant 0 : index
  %T = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %e0 = tensor.empty(%T) : tensor<?x64xbf16>
  %shared = moe.shared_experts ins(%x, %sw13, %sw2 : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%e0 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e1 = tensor.empty(%T) : tensor<?x8xf32>
  %logits = moe.gate ins(%x, %gate : tensor<?x64xbf16>, tensor<8x64xbf16>) outs(%e1 : tensor<?x8xf32>) -> tensor<?x8xf32>
  %e2 = tensor.empty(%T) : tensor<?x2xi32>
  %e3 = tensor.empty(%T) : tensor<?x2xf32>
  %ids, %w = moe.topk softmax ins(%logits : tensor<?x8xf32>) outs(%e2, %e3 : tensor<?x2xi32>, tensor<?x2xf32>) {k = 2 : i64} -> tensor<?x2xi32>, tensor<?x2xf32>
  %e4 = tensor.empty(%T) : tensor<?x64xbf16>
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%e4 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e5 = tensor.empty(%T) : tensor<?x64xbf16>
  %y = moe.add ins(%routed, %shared : tensor<?x64xbf16>, tensor<?x64xbf16>) outs(%e5 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
