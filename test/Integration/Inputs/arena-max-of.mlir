func.func @f(%x: memref<?x64xf32> {moe.role = "input"}, %big: memref<4096xf32> {moe.role = "weight"}, %o: memref<?x64xf32> {moe.role = "output"}, %o2: memref<4096xf32> {moe.role = "output"}) {
  %c0 = arith.constant 0 : index
  %T = memref.dim %x, %c0 : memref<?x64xf32>
  %s = memref.alloc() : memref<4096xf32>
  memref.copy %big, %s : memref<4096xf32> to memref<4096xf32>
  memref.copy %s, %o2 : memref<4096xf32> to memref<4096xf32>
  memref.dealloc %s : memref<4096xf32>
  %d = memref.alloc(%T) : memref<?x64xf32>
  memref.copy %x, %d : memref<?x64xf32> to memref<?x64xf32>
  memref.copy %d, %o : memref<?x64xf32> to memref<?x64xf32>
  memref.dealloc %d : memref<?x64xf32>
  return
}
