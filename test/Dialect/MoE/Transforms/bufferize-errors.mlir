// RUN: moe-opt %s -split-input-file --moe-bufferize -verify-diagnostics -o /dev/null

// A routed op asks to write into its hidden tensor, which is read later: in
// place is impossible, and a copy of the hidden tensor would be hidden from
// the memory plan. A located error instead.

func.func @hidden_used_later(%x: tensor<?x64xbf16>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                             %w13: tensor<8x32x64xbf16>, %w2: tensor<8x64x16xbf16>,
                             %sw13: tensor<32x64xbf16>, %sw2: tensor<64x16xbf16>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %T = tensor.dim %x, %c0 : tensor<?x64xbf16>
  // expected-error @+1 {{'moe.routed_experts' op cannot write its output into its hidden tensor in place without a copy of that tensor, which the memory plan would not see: the hidden tensor is used after it; give the output its own init (tensor.empty) or move that use before it}}
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%x : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e0 = tensor.empty(%T) : tensor<?x64xbf16>
  // expected-note @+1 {{used here}}
  %shared = moe.shared_experts ins(%x, %sw13, %sw2 : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%e0 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  %e1 = tensor.empty(%T) : tensor<?x64xbf16>
  %y = moe.add ins(%routed, %shared : tensor<?x64xbf16>, tensor<?x64xbf16>) outs(%e1 : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A read-only argument cannot be written in place either.

func.func @read_only(%x: tensor<?x64xbf16> {bufferization.writable = false}, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                     %w13: tensor<8x32x64xbf16>, %w2: tensor<8x64x16xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{the hidden tensor is not writable here or is used after it; give the output its own init (tensor.empty)}}
  %routed = moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%x : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return %routed : tensor<?x64xbf16>
}

