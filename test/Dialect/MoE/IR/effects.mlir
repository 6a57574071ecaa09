// RUN: moe-opt %s --moe-test-print-effects -o /dev/null 2>&1 | FileCheck %s

// Each op's declared memory effects, per operand, as upstream analyses see
// them through MemoryEffectOpInterface, and the workspace each op reports.

func.func @effects(%x: memref<?x64xbf16>, %wg: memref<8x64xbf16>, %b: memref<8xf32>,
                   %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>,
                   %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>,
                   %logits: memref<?x8xf32>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>,
                   %r: memref<?x64xbf16>, %sh: memref<?x64xbf16>, %out: memref<?x64xbf16>,
                   %s: memref<16x64xbf16>, %sids: memref<16x2xi32>, %sw: memref<16x2xf32>, %sr: memref<16x64xbf16>) {
  // CHECK: remark: effects: read operand #0; read operand #1; write operand #2;{{$}}
  moe.gate ins(%x, %wg : memref<?x64xbf16>, memref<8x64xbf16>) outs(%logits : memref<?x8xf32>)
  // CHECK: remark: effects: read operand #0; read operand #1; write operand #2; write operand #3;{{$}}
  moe.topk sigmoid ins(%logits : memref<?x8xf32>) bias(%b : memref<8xf32>) outs(%ids, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 4 : i64, topk_group = 2 : i64}
  // CHECK: remark: effects: read operand #0; write operand #1; write operand #2;{{$}}
  moe.topk softmax ins(%logits : memref<?x8xf32>) outs(%ids, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64}
  // Not in place: reads all five inputs, writes only the output.
  // T*k*(8 + I*2 + min(H,512)*2) = T*2*(8 + 32 + 128); (E+1)*4 + 5*256.
  // CHECK: remark: effects: read operand #0; read operand #1; read operand #2; read operand #3; read operand #4; write operand #5; workspace: 336*T + 1316 bytes
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%r : memref<?x64xbf16>)
  // CHECK: remark: effects: read operand #0; read operand #1; read operand #2; write operand #3; workspace: 32*T + 256 bytes
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  // CHECK: remark: effects: read operand #0; read operand #1; write operand #2;{{$}}
  moe.add ins(%r, %sh : memref<?x64xbf16>, memref<?x64xbf16>) outs(%out : memref<?x64xbf16>)
  // In place: the hidden operand is read and written.
  // CHECK: remark: effects: read operand #0; read operand #1; read operand #2; read operand #3; read operand #4; write operand #0; write operand #5; workspace: 336*T + 1316 bytes
  moe.routed_experts inplace ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%x : memref<?x64xbf16>)
  // A static token count gives a constant workspace: 16*336 + 1316.
  // CHECK: remark: effects: {{.*}} workspace: 6692 bytes
  moe.routed_experts ins(%s, %sids, %sw, %w13, %w2 : memref<16x64xbf16>, memref<16x2xi32>, memref<16x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%sr : memref<16x64xbf16>)
  return
}

// fp8 experts read their block scales; the workspace holds the quantized
// activations: T*(H + 4*H/128) + T*k*(8 + I + 4*I/128 + 2*min(H,512)) +
// (E+1)*4 + 8*256 = T*(256+8) + 2*T*(8+128+4+512) + 20 + 2048.
func.func @fp8(%x: memref<?x256xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<4x256x256xf8E4M3FN>, %w2: memref<4x256x128xf8E4M3FN>, %s13: memref<4x2x2xf32>, %s2: memref<4x2x1xf32>, %r: memref<?x256xbf16>) {
  // CHECK: remark: effects: read operand #0; read operand #1; read operand #2; read operand #3; read operand #4; read operand #5; read operand #6; write operand #7; workspace: 1568*T + 2068 bytes
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x256xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<4x256x256xf8E4M3FN>, memref<4x256x128xf8E4M3FN>) scales(%s13, %s2 : memref<4x2x2xf32>, memref<4x2x1xf32>) outs(%r : memref<?x256xbf16>)
  return
}

// A collective reads its input, writes its output and the communicator (its
// order with other collectives is kept).
func.func @all_reduce(%x: memref<?x64xbf16>, %y: memref<?x64xbf16>) {
  // CHECK: remark: effects: read operand #0; write operand #1; write moe.communicator;{{$}}
  moe.all_reduce ins(%x : memref<?x64xbf16>) outs(%y : memref<?x64xbf16>) {group_size = 4 : i64}
  // CHECK: remark: effects: read operand #0; write operand #1; write moe.communicator;{{$}}
  moe.all_reduce ins(%y : memref<?x64xbf16>) outs(%y : memref<?x64xbf16>) {group_size = 4 : i64}
  return
}
