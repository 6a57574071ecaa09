func.func @layer(%x: memref<4x64xbf16>) {
  moe.gate ins(%x : memref<4x64xbf16>)
  return
}
