func.func @layer(%x: memref<4x64xbf16> {moe.role = "input"}, %wg: memref<8x32xbf16> {moe.role = "weight"}, %logits: memref<4x8xf32> {moe.role = "output"}) {
  moe.gate ins(%x, %wg : memref<4x64xbf16>, memref<8x32xbf16>) outs(%logits : memref<4x8xf32>)
  return
}
