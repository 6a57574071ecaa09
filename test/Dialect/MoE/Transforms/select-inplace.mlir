// RUN: moe-opt %s -split-input-file --moe-select-inplace=token-hint=1024 -verify-diagnostics | FileCheck %s

// In place: the shared experts (the other reader of the hidden tensor) move
// before the routed op, whose init becomes the hidden tensor. At these sizes
// the peak is the routed op's workspace either way, and a tie goes to in
// place (select-inplace-models.test shows the model layers, where it wins).

// CHECK-LABEL: func.func @one_layer
// CHECK:         moe.shared_experts ins(%[[X:arg0]],
// CHECK:         moe.routed_experts ins(%[[X]], {{.*}}) outs(%[[X]] : tensor<?x64xbf16>)
func.func @one_layer(%x: tensor<?x64xbf16> {moe.role = "input", moe.name = "x"},
                     %gate: tensor<8x64xbf16> {moe.role = "weight", moe.name = "gate"},
                     %w13: tensor<8x32x64xbf16> {moe.role = "weight", moe.name = "w13"},
                     %w2: tensor<8x64x16xbf16> {moe.role = "weight", moe.name = "w2"},
                     %sw13: tensor<32x64xbf16> {moe.role = "weight", moe.name = "sw13"},
                     %sw2: tensor<64x16xbf16> {moe.role = "weight", moe.name = "sw2"})
    -> (tensor<?x64xbf16> {moe.role = "output", moe.name = "output"}) {
  %c0 = arith.constant 0 : index
  %T = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %e1 = tensor.empty(%T) : tensor<?x8xf32>
  %logits = moe.gate ins(%x, %gate : tensor<?x64xbf16>, tensor<8x64xbf16>) outs(%e1 : tensor<?x8xf32>) -> tensor<?x8xf32>
  %e2 = tensor.empty(%T) : tensor<?x2xi32>
  %e3 = tensor.empty(%T) : tensor<?x2xf32>
  %ids, %w = moe.topk softmax ins(%logits : tensor<?x8xf32>) outs(%e2, %e3 : tensor<?x2xi32>, tensor<?x2xf32>) {k = 2 : i64} -> tensor<?x2xi32>, tensor<?x2xf32>
  %e4 = tensor.empty(%T) : tensor<?x64xbf16>
  // expected-remark @+1 {{routed experts in place: optimized peak in place 0.47 MiB, out of place 0.47 MiB (at 1024 tokens)}}
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%e4 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e0 = tensor.empty(%T) : tensor<?x64xbf16>
  %shared = moe.shared_experts ins(%x, %sw13, %sw2 : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%e0 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e5 = tensor.empty(%T) : tensor<?x64xbf16>
  %y = moe.add ins(%routed, %shared : tensor<?x64xbf16>, tensor<?x64xbf16>) outs(%e5 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// The routed result is the function's result and its hidden tensor is the
// function's input: in place would need a copy into the output. Out of
// place, whatever the input asked for.

// CHECK-LABEL: func.func @returned
// CHECK:         %[[E:.*]] = tensor.empty
// CHECK:         moe.routed_experts ins(%arg0, {{.*}}) outs(%[[E]] : tensor<?x64xbf16>)
func.func @returned(%x: tensor<?x64xbf16> {moe.role = "input", moe.name = "x"},
                    %ids: tensor<?x2xi32> {moe.role = "input", moe.name = "ids"},
                    %w: tensor<?x2xf32> {moe.role = "input", moe.name = "w"},
                    %w13: tensor<8x32x64xbf16> {moe.role = "weight", moe.name = "w13"},
                    %w2: tensor<8x64x16xbf16> {moe.role = "weight", moe.name = "w2"})
    -> (tensor<?x64xbf16> {moe.role = "output", moe.name = "output"}) {
  // expected-remark @+1 {{routed experts out of place: optimized peak in place does not bufferize without a copy, out of place 0.33 MiB (at 1024 tokens)}}
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%x : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return %routed : tensor<?x64xbf16>
}

// -----

// A later reader of the hidden tensor that needs the routed result cannot
// move before it: in place is impossible.

// CHECK-LABEL: func.func @reader_after
// CHECK:         moe.routed_experts ins(%arg0, {{.*}}) outs(%{{.*}} : tensor<?x64xbf16>)
// CHECK:         moe.add ins(%{{.*}}, %arg0
func.func @reader_after(%x: tensor<?x64xbf16> {moe.role = "input", moe.name = "x"},
                        %ids: tensor<?x2xi32> {moe.role = "input", moe.name = "ids"},
                        %w: tensor<?x2xf32> {moe.role = "input", moe.name = "w"},
                        %w13: tensor<8x32x64xbf16> {moe.role = "weight", moe.name = "w13"},
                        %w2: tensor<8x64x16xbf16> {moe.role = "weight", moe.name = "w2"})
    -> (tensor<?x64xbf16> {moe.role = "output", moe.name = "output"}) {
  %c0 = arith.constant 0 : index
  %T = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %e0 = tensor.empty(%T) : tensor<?x64xbf16>
  // expected-remark @+1 {{routed experts out of place: optimized peak in place does not bufferize without a copy}}
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%e0 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e1 = tensor.empty(%T) : tensor<?x64xbf16>
  %y = moe.add ins(%routed, %x : tensor<?x64xbf16>, tensor<?x64xbf16>) outs(%e1 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Buffer form: the IR's own `inplace` flag stands; nothing to choose.

// CHECK-LABEL: func.func @buffers
// CHECK-NEXT:    moe.routed_experts ins
func.func @buffers(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>,
                   %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}
