func.func @f(%x: memref<?x4xf32> {moe.role = "input"}, %o: memref<?x4xf32> {moe.role = "output"}) {
  linalg.copy ins(%x : memref<?x4xf32>) outs(%o : memref<?x4xf32>)
  return
}
