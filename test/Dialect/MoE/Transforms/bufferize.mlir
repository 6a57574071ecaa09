// RUN: moe-opt %s -split-input-file --moe-bufferize | FileCheck %s

// moe-bufferize turns the tensor form into the buffer form: contiguous
// buffers, a memref.alloc per init, the returned tensor an output argument
// written directly, a dealloc per allocation.

// CHECK-LABEL: func.func @out_of_place
// CHECK-SAME:    (%[[X:arg[0-9]+]]: memref<?x64xbf16> {moe.name = "hidden_states", moe.role = "input"},
// CHECK-SAME:     %[[OUT:arg[0-9]+]]: memref<?x64xbf16> {moe.name = "output", moe.role = "output"}) {
// CHECK:         %[[T:.*]] = memref.dim %[[X]]
// CHECK:         %[[SH:.*]] = memref.alloc(%[[T]]) : memref<?x64xbf16>
// CHECK-NEXT:    moe.shared_experts ins(%[[X]], {{.*}}) outs(%[[SH]] : memref<?x64xbf16>)
// CHECK:         moe.topk
// CHECK:         %[[R:.*]] = memref.alloc(%[[T]]) : memref<?x64xbf16>
// CHECK-NEXT:    moe.routed_experts ins(%[[X]], {{.*}}) outs(%[[R]] : memref<?x64xbf16>)
// CHECK-NEXT:    moe.add ins(%[[R]], %[[SH]] : {{.*}}) outs(%[[OUT]] : memref<?x64xbf16>)
// CHECK-COUNT-5: memref.dealloc
// CHECK-NEXT:    return
// CHECK-NOT:     memref.copy
func.func @out_of_place(%x: tensor<?x64xbf16> {moe.role = "input", moe.name = "hidden_states"},
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

// -----

// The routed op's init is its hidden tensor, dead afterwards: it writes in
// place, and the buffer form says so with `inplace`. The add writes into the
// routed result's buffer (its init is that tensor): the same buffer again.

// CHECK-LABEL: func.func @in_place
// CHECK-SAME:    (%[[X:arg[0-9]+]]: memref<?x64xbf16>
// CHECK:         moe.routed_experts inplace ins(%[[X]], {{.*}}) outs(%[[X]] : memref<?x64xbf16>)
// CHECK-NEXT:    moe.add ins(%[[X]], %[[SH:[^ ]*]] : {{.*}}) outs(%[[OUT:.*]] : memref<?x64xbf16>)
// CHECK-NOT:     memref.copy
func.func @in_place(%x: tensor<?x64xbf16> {moe.role = "input", moe.name = "hidden_states"},
                    %ids: tensor<?x2xi32> {moe.role = "input", moe.name = "ids"},
                    %w: tensor<?x2xf32> {moe.role = "input", moe.name = "weights"},
                    %w13: tensor<8x32x64xbf16> {moe.role = "weight", moe.name = "w13"},
                    %w2: tensor<8x64x16xbf16> {moe.role = "weight", moe.name = "w2"},
                    %sw13: tensor<32x64xbf16> {moe.role = "weight", moe.name = "sw13"},
                    %sw2: tensor<64x16xbf16> {moe.role = "weight", moe.name = "sw2"})
    -> (tensor<?x64xbf16> {moe.role = "output", moe.name = "output"}) {
  %c0 = arith.constant 0 : index
  %T = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %e0 = tensor.empty(%T) : tensor<?x64xbf16>
  %shared = moe.shared_experts ins(%x, %sw13, %sw2 : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%e0 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%x : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e1 = tensor.empty(%T) : tensor<?x64xbf16>
  %y = moe.add ins(%routed, %shared : tensor<?x64xbf16>, tensor<?x64xbf16>) outs(%e1 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A module without tensors is left as it is.

// CHECK-LABEL: func.func @buffers
// CHECK-NEXT:    moe.add ins(%arg0, %arg1 : memref<4x8xbf16>, memref<4x8xbf16>) outs(%arg2 : memref<4x8xbf16>)
// CHECK-NEXT:    return
func.func @buffers(%a: memref<4x8xbf16>, %b: memref<4x8xbf16>, %c: memref<4x8xbf16>) {
  moe.add ins(%a, %b : memref<4x8xbf16>, memref<4x8xbf16>) outs(%c : memref<4x8xbf16>)
  return
}
