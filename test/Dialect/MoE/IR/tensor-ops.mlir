// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s
// RUN: moe-opt %s --moe-test-print-effects -o /dev/null 2>&1 | FileCheck %s --check-prefix=EFFECTS --implicit-check-not='operand #'

// The tensor form of every moe op: destination-passing style, one result per
// output (`outs`), printed and parsed back unchanged.

// CHECK-LABEL: func.func @layer
// CHECK-SAME:    -> (tensor<?x64xbf16> {moe.name = "output", moe.role = "output"})
func.func @layer(%x: tensor<?x64xbf16> {moe.role = "input", moe.name = "hidden_states"},
                 %gate: tensor<8x64xbf16> {moe.role = "weight", moe.name = "gate"},
                 %bias: tensor<8xf32> {moe.role = "weight", moe.name = "bias"},
                 %w13: tensor<8x32x64xbf16> {moe.role = "weight", moe.name = "w13"},
                 %w2: tensor<8x64x16xbf16> {moe.role = "weight", moe.name = "w2"},
                 %sw13: tensor<32x64xbf16> {moe.role = "weight", moe.name = "sw13"},
                 %sw2: tensor<64x16xbf16> {moe.role = "weight", moe.name = "sw2"})
    -> (tensor<?x64xbf16> {moe.role = "output", moe.name = "output"}) {
  %c0 = arith.constant 0 : index
  %T = tensor.dim %x, %c0 : tensor<?x64xbf16>
  %e0 = tensor.empty(%T) : tensor<?x64xbf16>
  // CHECK: %[[SH:.*]] = moe.shared_experts ins(%{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%{{.*}} : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %shared = moe.shared_experts ins(%x, %sw13, %sw2 : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%e0 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e1 = tensor.empty(%T) : tensor<?x8xf32>
  // CHECK: moe.gate ins({{.*}}) outs({{.*}} : tensor<?x8xf32>) -> tensor<?x8xf32>
  %logits = moe.gate ins(%x, %gate : tensor<?x64xbf16>, tensor<8x64xbf16>) outs(%e1 : tensor<?x8xf32>) -> tensor<?x8xf32>
  %e2 = tensor.empty(%T) : tensor<?x2xi32>
  %e3 = tensor.empty(%T) : tensor<?x2xf32>
  // CHECK: %[[TOPK:.*]]:2 = moe.topk sigmoid ins({{.*}}) bias({{.*}}) outs({{.*}}) {k = 2 : i64, n_group = 2 : i64, renormalize} -> tensor<?x2xi32>, tensor<?x2xf32>
  %ids, %w = moe.topk sigmoid ins(%logits : tensor<?x8xf32>) bias(%bias : tensor<8xf32>) outs(%e2, %e3 : tensor<?x2xi32>, tensor<?x2xf32>) {k = 2 : i64, n_group = 2 : i64, topk_group = 1 : i64, renormalize} -> tensor<?x2xi32>, tensor<?x2xf32>
  // The routed op's init is its hidden tensor: a request to write in place.
  // CHECK: %[[R:.*]] = moe.routed_experts ins(%[[X:[^,]*]], %[[TOPK]]#0, %[[TOPK]]#1, {{.*}}) outs(%[[X]] : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%x : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  // An add may write into one of its inputs.
  // CHECK: moe.add ins(%[[R]], %[[SH]] : {{.*}}) outs(%[[R]] : tensor<?x64xbf16>) {scale = 5.000000e-01 : f32} -> tensor<?x64xbf16>
  %y = moe.add ins(%routed, %shared : tensor<?x64xbf16>, tensor<?x64xbf16>) outs(%routed : tensor<?x64xbf16>) {scale = 0.5 : f32} -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// On tensors the ops are values: no memory effects, the same workspace.
// EFFECTS:     :22:13: remark: effects: workspace: 32*T + 256 bytes
// EFFECTS:     :32:13: remark: effects: workspace: 336*T + 1316 bytes
