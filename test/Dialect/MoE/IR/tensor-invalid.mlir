// RUN: moe-opt %s -split-input-file -verify-diagnostics -o /dev/null

// The tensor form's own rules; every other rule is the contract's, the same
// on both forms (one case here shows it).

func.func @mixed(%h: tensor<?x64xbf16>, %w: memref<8x64xbf16>, %l: tensor<?x8xf32>) {
  // expected-error @+1 {{mixes tensors and memrefs: its gate_weight is a memref but other operands are tensors; a moe op is on tensors or on memrefs, not both}}
  %0 = moe.gate ins(%h, %w : tensor<?x64xbf16>, memref<8x64xbf16>) outs(%l : tensor<?x8xf32>) -> tensor<?x8xf32>
  return
}

// -----

func.func @no_result(%h: tensor<?x64xbf16>, %w: tensor<8x64xbf16>, %l: tensor<?x8xf32>) {
  // expected-error @+1 {{expected the number of tensor results (0) to be equal to the number of output tensors (1)}}
  moe.gate ins(%h, %w : tensor<?x64xbf16>, tensor<8x64xbf16>) outs(%l : tensor<?x8xf32>)
  return
}

// -----

func.func @result_type(%h: tensor<?x64xbf16>, %w: tensor<8x64xbf16>, %l: tensor<?x8xf32>) {
  // expected-error @+1 {{expected type of operand #2 ('tensor<?x8xf32>') to match type of corresponding result ('tensor<4x8xf32>')}}
  %0 = moe.gate ins(%h, %w : tensor<?x64xbf16>, tensor<8x64xbf16>) outs(%l : tensor<?x8xf32>) -> tensor<4x8xf32>
  return
}

// -----

func.func @result_on_memrefs(%h: memref<?x64xbf16>, %w: memref<8x64xbf16>, %l: memref<?x8xf32>) {
  // expected-error @+1 {{expected the number of tensor results (1) to be equal to the number of output tensors (0)}}
  %0 = moe.gate ins(%h, %w : memref<?x64xbf16>, memref<8x64xbf16>) outs(%l : memref<?x8xf32>) -> tensor<?x8xf32>
  return
}

// -----

func.func @inplace_flag(%x: tensor<?x64xbf16>, %ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %w13: tensor<8x32x64xbf16>, %w2: tensor<8x64x16xbf16>) {
  // expected-error @+1 {{is 'inplace' on tensors, where bufferization decides what is in place: drop 'inplace' and pass the hidden tensor as the output's init to write in place}}
  %0 = moe.routed_experts inplace ins(%x, %ids, %w, %w13, %w2 : tensor<?x64xbf16>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<8x32x64xbf16>, tensor<8x64x16xbf16>) outs(%x : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return
}

// -----

func.func @shared_into_hidden(%x: tensor<?x64xbf16>, %sw13: tensor<32x64xbf16>, %sw2: tensor<64x16xbf16>) {
  // expected-error @+1 {{cannot write its output into its hidden input; give it a separate output init (tensor.empty)}}
  %0 = moe.shared_experts ins(%x, %sw13, %sw2 : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%x : tensor<?x64xbf16>) -> tensor<?x64xbf16>
  return
}

// -----

// Only the token count may be dynamic, as on memrefs.
func.func @dynamic_hidden_size(%h: tensor<?x?xbf16>, %w: tensor<8x64xbf16>, %l: tensor<?x8xf32>) {
  // expected-error @+1 {{hidden size must be static: dimension 1 of 'hidden' is dynamic}}
  %0 = moe.gate ins(%h, %w : tensor<?x?xbf16>, tensor<8x64xbf16>) outs(%l : tensor<?x8xf32>) -> tensor<?x8xf32>
  return
}

// -----

func.func @outs_shape(%x: tensor<?x64xbf16>, %sw13: tensor<32x64xbf16>, %sw2: tensor<64x16xbf16>, %o: tensor<?x32xbf16>) {
  // expected-error @+1 {{hidden size mismatch}}
  %0 = moe.shared_experts ins(%x, %sw13, %sw2 : tensor<?x64xbf16>, tensor<32x64xbf16>, tensor<64x16xbf16>) outs(%o : tensor<?x32xbf16>) -> tensor<?x32xbf16>
  return
}
