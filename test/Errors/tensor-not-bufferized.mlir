// RUN: moe-opt %s --convert-moe-to-runtime -verify-diagnostics -o /dev/null

// Tensor-form ops reaching the lowering: bufferize first.

func.func @not_bufferized(%h: tensor<?x64xbf16>, %g: tensor<8x64xbf16>, %l: tensor<?x8xf32>) -> tensor<?x8xf32> {
  // expected-error @+1 {{'moe.gate' op is on tensors: bufferize it first (moe-bufferize, or one-shot-bufferize with the moe dialect's models registered)}}
  %0 = moe.gate ins(%h, %g : tensor<?x64xbf16>, tensor<8x64xbf16>) outs(%l : tensor<?x8xf32>) -> tensor<?x8xf32>
  return %0 : tensor<?x8xf32>
}
