// RUN: moe-opt %s -split-input-file -verify-diagnostics -o /dev/null

// One case per verifier rule of the moe dialect.

func.func @gate_dynamic_hidden(%h: memref<?x?xbf16>, %w: memref<8x64xbf16>, %l: memref<?x8xf32>) {
  // expected-error @+1 {{hidden size must be static: dimension 1 of 'hidden' is dynamic}}
  moe.gate ins(%h, %w : memref<?x?xbf16>, memref<8x64xbf16>) outs(%l : memref<?x8xf32>)
  return
}

// -----

func.func @gate_dynamic_experts(%h: memref<?x64xbf16>, %w: memref<?x64xbf16>, %l: memref<?x8xf32>) {
  // expected-error @+1 {{expert count must be static: dimension 0 of 'gate_weight' is dynamic}}
  moe.gate ins(%h, %w : memref<?x64xbf16>, memref<?x64xbf16>) outs(%l : memref<?x8xf32>)
  return
}

// -----

func.func @gate_hidden_mismatch(%h: memref<?x64xbf16>, %w: memref<8x32xbf16>, %l: memref<?x8xf32>) {
  // expected-error @+1 {{hidden size mismatch: 'hidden' has 64 (dimension 1) but 'gate_weight' has 32 (dimension 1)}}
  moe.gate ins(%h, %w : memref<?x64xbf16>, memref<8x32xbf16>) outs(%l : memref<?x8xf32>)
  return
}

// -----

func.func @gate_expert_mismatch(%h: memref<?x64xbf16>, %w: memref<8x64xbf16>, %l: memref<?x16xf32>) {
  // expected-error @+1 {{expert count mismatch: 'gate_weight' has 8 (dimension 0) but 'logits' has 16 (dimension 1)}}
  moe.gate ins(%h, %w : memref<?x64xbf16>, memref<8x64xbf16>) outs(%l : memref<?x16xf32>)
  return
}

// -----

func.func @gate_token_mismatch(%h: memref<4x64xbf16>, %w: memref<8x64xbf16>, %l: memref<5x8xf32>) {
  // expected-error @+1 {{token count mismatch: 'hidden' has 4 (dimension 0) but 'logits' has 5 (dimension 0)}}
  moe.gate ins(%h, %w : memref<4x64xbf16>, memref<8x64xbf16>) outs(%l : memref<5x8xf32>)
  return
}

// -----

func.func @gate_logits_not_f32(%h: memref<?x64xbf16>, %w: memref<8x64xbf16>, %l: memref<?x8xbf16>) {
  // expected-error @+1 {{'logits' must have element type f32, got 'bf16'}}
  moe.gate ins(%h, %w : memref<?x64xbf16>, memref<8x64xbf16>) outs(%l : memref<?x8xbf16>)
  return
}

// -----

func.func @gate_hidden_rank(%h: memref<64xbf16>, %w: memref<8x64xbf16>, %l: memref<?x8xf32>) {
  // expected-error @+1 {{'hidden' must have rank 2, got 1}}
  moe.gate ins(%h, %w : memref<64xbf16>, memref<8x64xbf16>) outs(%l : memref<?x8xf32>)
  return
}

// -----

func.func @gate_int_hidden(%h: memref<?x64xi32>, %w: memref<8x64xbf16>, %l: memref<?x8xf32>) {
  // expected-error @+1 {{'hidden' must have element type bf16, f16 or f32, got 'i32'}}
  moe.gate ins(%h, %w : memref<?x64xi32>, memref<8x64xbf16>) outs(%l : memref<?x8xf32>)
  return
}

// -----

func.func @topk_dynamic_experts(%l: memref<?x?xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{expert count must be static: dimension 1 of 'logits' is dynamic}}
  moe.topk softmax ins(%l : memref<?x?xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64}
  return
}

// -----

func.func @topk_token_mismatch_ids(%l: memref<4x8xf32>, %i: memref<3x2xi32>, %w: memref<4x2xf32>) {
  // expected-error @+1 {{token count mismatch: 'logits' has 4 (dimension 0) but 'topk_ids' has 3 (dimension 0)}}
  moe.topk softmax ins(%l : memref<4x8xf32>) outs(%i, %w : memref<3x2xi32>, memref<4x2xf32>) {k = 2 : i64}
  return
}

// -----

func.func @topk_token_mismatch_weights(%l: memref<4x8xf32>, %i: memref<4x2xi32>, %w: memref<3x2xf32>) {
  // expected-error @+1 {{token count mismatch: 'logits' has 4 (dimension 0) but 'topk_weights' has 3 (dimension 0)}}
  moe.topk softmax ins(%l : memref<4x8xf32>) outs(%i, %w : memref<4x2xi32>, memref<3x2xf32>) {k = 2 : i64}
  return
}

// -----

func.func @topk_k_mismatch(%l: memref<?x8xf32>, %i: memref<?x2xi32>, %w: memref<?x3xf32>) {
  // expected-error @+1 {{k mismatch: 'topk_ids' has 2 (dimension 1) but 'topk_weights' has 3 (dimension 1)}}
  moe.topk softmax ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x3xf32>) {k = 2 : i64}
  return
}

// -----

func.func @topk_ids_columns(%l: memref<?x8xf32>, %i: memref<?x3xi32>, %w: memref<?x3xf32>) {
  // expected-error @+1 {{'topk_ids' must have k = 2 columns, but has 3}}
  moe.topk softmax ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x3xi32>, memref<?x3xf32>) {k = 2 : i64}
  return
}

// -----

func.func @topk_k_zero(%l: memref<?x8xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{k must be at least 1, got 0}}
  moe.topk softmax ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 0 : i64}
  return
}

// -----

func.func @topk_k_too_large(%l: memref<?x4xf32>, %i: memref<?x5xi32>, %w: memref<?x5xf32>) {
  // expected-error @+1 {{k = 5 exceeds the number of experts (4)}}
  moe.topk softmax ins(%l : memref<?x4xf32>) outs(%i, %w : memref<?x5xi32>, memref<?x5xf32>) {k = 5 : i64}
  return
}

// -----

func.func @topk_n_group_divides(%l: memref<?x8xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{n_group = 3 must divide the number of experts (8)}}
  moe.topk sigmoid ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 3 : i64}
  return
}

// -----

func.func @topk_n_group_positive(%l: memref<?x8xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{n_group must be at least 1, got 0}}
  moe.topk sigmoid ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 0 : i64}
  return
}

// -----

func.func @topk_topk_group_le_n_group(%l: memref<?x8xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{topk_group = 3 exceeds n_group = 2}}
  moe.topk sigmoid ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 2 : i64, topk_group = 3 : i64}
  return
}

// -----

func.func @topk_k_within_groups(%l: memref<?x8xf32>, %i: memref<?x3xi32>, %w: memref<?x3xf32>) {
  // expected-error @+1 {{k = 3 exceeds the 2 experts of the best topk_group = 1 groups}}
  moe.topk sigmoid ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x3xi32>, memref<?x3xf32>) {k = 3 : i64, n_group = 4 : i64, topk_group = 1 : i64}
  return
}

// -----

func.func @topk_sigmoid_group_size(%l: memref<?x8xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{sigmoid group scores sum the two best experts of a group, so each of the n_group = 8 groups needs at least 2 experts}}
  moe.topk sigmoid ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, n_group = 8 : i64, topk_group = 2 : i64}
  return
}

// -----

func.func @topk_scale_positive(%l: memref<?x8xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{routed_scaling_factor must be positive and finite, got -1}}
  moe.topk sigmoid ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64, routed_scaling_factor = -1.0 : f32}
  return
}

// -----

func.func @topk_bias_softmax(%l: memref<?x8xf32>, %b: memref<8xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{a correction 'bias' requires sigmoid scoring}}
  moe.topk softmax ins(%l : memref<?x8xf32>) bias(%b : memref<8xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64}
  return
}

// -----

func.func @topk_bias_size(%l: memref<?x8xf32>, %b: memref<16xf32>, %i: memref<?x2xi32>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{expert count mismatch: 'logits' has 8 (dimension 1) but 'bias' has 16 (dimension 0)}}
  moe.topk sigmoid ins(%l : memref<?x8xf32>) bias(%b : memref<16xf32>) outs(%i, %w : memref<?x2xi32>, memref<?x2xf32>) {k = 2 : i64}
  return
}

// -----

func.func @topk_ids_not_i32(%l: memref<?x8xf32>, %i: memref<?x2xi64>, %w: memref<?x2xf32>) {
  // expected-error @+1 {{'topk_ids' must have element type i32, got 'i64'}}
  moe.topk softmax ins(%l : memref<?x8xf32>) outs(%i, %w : memref<?x2xi64>, memref<?x2xf32>) {k = 2 : i64}
  return
}

// -----

func.func @routed_dynamic_hidden(%h: memref<?x?xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x?xbf16>) {
  // expected-error @+1 {{hidden size must be static: dimension 1 of 'hidden' is dynamic}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x?xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x?xbf16>)
  return
}

// -----

func.func @routed_dynamic_k(%h: memref<?x64xbf16>, %i: memref<?x?xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{k must be static: dimension 1 of 'topk_ids' is dynamic}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x?xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_dynamic_experts(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<?x32x64xbf16>, %w2: memref<?x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{expert count must be static: dimension 0 of 'w13' is dynamic}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<?x32x64xbf16>, memref<?x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_dynamic_intermediate(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x?xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{intermediate size must be static: dimension 2 of 'w2' is dynamic}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x?xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_dynamic_w13_rows(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x?x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{intermediate size must be static: dimension 1 of 'w13' is dynamic}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x?x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_hidden_w13(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x32xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'hidden' has 64 (dimension 1) but 'w13' has 32 (dimension 2)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x32xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_hidden_w2(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x32x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'hidden' has 64 (dimension 1) but 'w2' has 32 (dimension 1)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x32x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_hidden_output(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x32xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'hidden' has 64 (dimension 1) but 'output' has 32 (dimension 1)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x32xbf16>)
  return
}

// -----

func.func @routed_experts_mismatch(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<4x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{expert count mismatch: 'w13' has 8 (dimension 0) but 'w2' has 4 (dimension 0)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<4x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_tokens_ids(%h: memref<4x64xbf16>, %i: memref<5x2xi32>, %w: memref<4x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<4x64xbf16>) {
  // expected-error @+1 {{token count mismatch: 'hidden' has 4 (dimension 0) but 'topk_ids' has 5 (dimension 0)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<4x64xbf16>, memref<5x2xi32>, memref<4x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<4x64xbf16>)
  return
}

// -----

func.func @routed_tokens_weights(%h: memref<4x64xbf16>, %i: memref<4x2xi32>, %w: memref<5x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<4x64xbf16>) {
  // expected-error @+1 {{token count mismatch: 'hidden' has 4 (dimension 0) but 'topk_weights' has 5 (dimension 0)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<4x64xbf16>, memref<4x2xi32>, memref<5x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<4x64xbf16>)
  return
}

// -----

func.func @routed_tokens_output(%h: memref<4x64xbf16>, %i: memref<4x2xi32>, %w: memref<4x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<5x64xbf16>) {
  // expected-error @+1 {{token count mismatch: 'hidden' has 4 (dimension 0) but 'output' has 5 (dimension 0)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<4x64xbf16>, memref<4x2xi32>, memref<4x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<5x64xbf16>)
  return
}

// -----

func.func @routed_k_mismatch(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x3xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{k mismatch: 'topk_ids' has 2 (dimension 1) but 'topk_weights' has 3 (dimension 1)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x3xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_output_type(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xf32>) {
  // expected-error @+1 {{element types of 'hidden' ('bf16') and 'output' ('f32') must match}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xf32>)
  return
}

// -----

func.func @routed_w13_type(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{element types of 'hidden' ('bf16') and 'w13' ('f16') must match}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_w2_type(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xf32>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{element types of 'hidden' ('bf16') and 'w2' ('f32') must match}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xf32>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_w13_stacking(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x16x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{'w13' must stack gate and up rows: dimension 1 is 16, expected 2 x 16 (the intermediate size of 'w2')}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x16x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_k_exceeds_experts(%h: memref<?x64xbf16>, %i: memref<?x9xi32>, %w: memref<?x9xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{k = 9 exceeds the number of experts (8)}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x9xi32>, memref<?x9xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_inplace_distinct_output(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{is 'inplace' but its output is not its hidden input; drop 'inplace' or pass the hidden buffer as the output}}
  moe.routed_experts inplace ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @routed_aliased_output_not_inplace(%h: memref<?x64xbf16>, %i: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>) {
  // expected-error @+1 {{writes its output into its hidden input but is not marked 'inplace'; add 'inplace' or give it a separate output buffer}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%h : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_dynamic_hidden(%h: memref<?x?xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x16xbf16>, %o: memref<?x?xbf16>) {
  // expected-error @+1 {{hidden size must be static: dimension 1 of 'hidden' is dynamic}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x?xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%o : memref<?x?xbf16>)
  return
}

// -----

func.func @shared_dynamic_intermediate(%h: memref<?x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x?xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{intermediate size must be static: dimension 1 of 'w2' is dynamic}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x?xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_dynamic_w13_rows(%h: memref<?x64xbf16>, %w13: memref<?x64xbf16>, %w2: memref<64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{intermediate size must be static: dimension 0 of 'w13' is dynamic}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<?x64xbf16>, memref<64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_hidden_w13(%h: memref<?x64xbf16>, %w13: memref<32x32xbf16>, %w2: memref<64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'hidden' has 64 (dimension 1) but 'w13' has 32 (dimension 1)}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x32xbf16>, memref<64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_hidden_w2(%h: memref<?x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<32x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'hidden' has 64 (dimension 1) but 'w2' has 32 (dimension 0)}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<32x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_hidden_output(%h: memref<?x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x16xbf16>, %o: memref<?x32xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'hidden' has 64 (dimension 1) but 'output' has 32 (dimension 1)}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%o : memref<?x32xbf16>)
  return
}

// -----

func.func @shared_tokens(%h: memref<4x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x16xbf16>, %o: memref<5x64xbf16>) {
  // expected-error @+1 {{token count mismatch: 'hidden' has 4 (dimension 0) but 'output' has 5 (dimension 0)}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%o : memref<5x64xbf16>)
  return
}

// -----

func.func @shared_output_type(%h: memref<?x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x16xbf16>, %o: memref<?x64xf16>) {
  // expected-error @+1 {{element types of 'hidden' ('bf16') and 'output' ('f16') must match}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%o : memref<?x64xf16>)
  return
}

// -----

func.func @shared_w13_type(%h: memref<?x64xbf16>, %w13: memref<32x64xf32>, %w2: memref<64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{element types of 'hidden' ('bf16') and 'w13' ('f32') must match}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x64xf32>, memref<64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_w2_type(%h: memref<?x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x16xf32>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{element types of 'hidden' ('bf16') and 'w2' ('f32') must match}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xf32>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_w13_stacking(%h: memref<?x64xbf16>, %w13: memref<30x64xbf16>, %w2: memref<64x16xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{'w13' must stack gate and up rows: dimension 0 is 30, expected 2 x 16 (the intermediate size of 'w2')}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<30x64xbf16>, memref<64x16xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_output_is_hidden(%h: memref<?x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x16xbf16>) {
  // expected-error @+1 {{cannot write its output into its hidden input; give it a separate output buffer}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%h : memref<?x64xbf16>)
  return
}

// -----

func.func @add_rhs_type(%a: memref<?x64xbf16>, %b: memref<?x64xf32>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{element types of 'lhs' ('bf16') and 'rhs' ('f32') must match}}
  moe.add ins(%a, %b : memref<?x64xbf16>, memref<?x64xf32>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @add_output_type(%a: memref<?x64xbf16>, %b: memref<?x64xbf16>, %o: memref<?x64xf32>) {
  // expected-error @+1 {{element types of 'lhs' ('bf16') and 'output' ('f32') must match}}
  moe.add ins(%a, %b : memref<?x64xbf16>, memref<?x64xbf16>) outs(%o : memref<?x64xf32>)
  return
}

// -----

func.func @add_tokens(%a: memref<4x64xbf16>, %b: memref<5x64xbf16>, %o: memref<4x64xbf16>) {
  // expected-error @+1 {{token count mismatch: 'lhs' has 4 (dimension 0) but 'rhs' has 5 (dimension 0)}}
  moe.add ins(%a, %b : memref<4x64xbf16>, memref<5x64xbf16>) outs(%o : memref<4x64xbf16>)
  return
}

// -----

func.func @add_tokens_output(%a: memref<4x64xbf16>, %b: memref<4x64xbf16>, %o: memref<5x64xbf16>) {
  // expected-error @+1 {{token count mismatch: 'lhs' has 4 (dimension 0) but 'output' has 5 (dimension 0)}}
  moe.add ins(%a, %b : memref<4x64xbf16>, memref<4x64xbf16>) outs(%o : memref<5x64xbf16>)
  return
}

// -----

func.func @add_hidden(%a: memref<?x64xbf16>, %b: memref<?x32xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'lhs' has 64 (dimension 1) but 'rhs' has 32 (dimension 1)}}
  moe.add ins(%a, %b : memref<?x64xbf16>, memref<?x32xbf16>) outs(%o : memref<?x64xbf16>)
  return
}

// -----

func.func @add_hidden_output(%a: memref<?x64xbf16>, %b: memref<?x64xbf16>, %o: memref<?x32xbf16>) {
  // expected-error @+1 {{hidden size mismatch: 'lhs' has 64 (dimension 1) but 'output' has 32 (dimension 1)}}
  moe.add ins(%a, %b : memref<?x64xbf16>, memref<?x64xbf16>) outs(%o : memref<?x32xbf16>)
  return
}

// -----

func.func @add_scale_finite(%a: memref<?x64xbf16>, %b: memref<?x64xbf16>, %o: memref<?x64xbf16>) {
  // expected-error @+1 {{scale must be finite, got inf}}
  moe.add ins(%a, %b : memref<?x64xbf16>, memref<?x64xbf16>) outs(%o : memref<?x64xbf16>) {scale = 0x7F800000 : f32}
  return
}

// -----
// A view of the hidden buffer is still the hidden buffer.
func.func @routed_aliased_view_not_inplace(%h: memref<4x64xbf16>, %i: memref<4x2xi32>, %w: memref<4x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>) {
  %v = memref.cast %h : memref<4x64xbf16> to memref<?x64xbf16>
  // expected-error @+1 {{writes its output into its hidden input but is not marked 'inplace'}}
  moe.routed_experts ins(%h, %i, %w, %w13, %w2 : memref<4x64xbf16>, memref<4x2xi32>, memref<4x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%v : memref<?x64xbf16>)
  return
}

// -----

// In place means the very same value, not a view of it.
func.func @routed_inplace_view(%h: memref<4x64xbf16>, %i: memref<4x2xi32>, %w: memref<4x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>) {
  %v = memref.cast %h : memref<4x64xbf16> to memref<?x64xbf16>
  // expected-error @+1 {{is 'inplace' but its output is not its hidden input}}
  moe.routed_experts inplace ins(%h, %i, %w, %w13, %w2 : memref<4x64xbf16>, memref<4x2xi32>, memref<4x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%v : memref<?x64xbf16>)
  return
}

// -----

func.func @shared_output_view_of_hidden(%h: memref<4x64xbf16>, %w13: memref<32x64xbf16>, %w2: memref<64x16xbf16>) {
  %v = memref.subview %h[0, 0] [4, 64] [1, 1] : memref<4x64xbf16> to memref<4x64xbf16, strided<[64, 1]>>
  %c = memref.cast %v : memref<4x64xbf16, strided<[64, 1]>> to memref<4x64xbf16>
  // expected-error @+1 {{cannot write its output into its hidden input}}
  moe.shared_experts ins(%h, %w13, %w2 : memref<4x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%c : memref<4x64xbf16>)
  return
}

// -----

// expected-error @+1 {{'moe.fuse_shared_experts_inside_sbo' must be a unit attribute}}
func.func @sbo_not_unit() attributes {moe.fuse_shared_experts_inside_sbo = 1 : i32} {
  return
}

// -----

// expected-error @+1 {{'moe.fuse_shared_experts_inside_sbo' is only valid on a function}}
module attributes {moe.fuse_shared_experts_inside_sbo} {
}

// -----

// expected-error @+1 {{unknown moe dialect attribute 'moe.bogus'}}
func.func @unknown_attr() attributes {moe.bogus} {
  return
}

// -----

// expected-error @+1 {{'moe.role' of argument #0 must be one of "input", "weight", "output"}}
func.func @bad_role(%x: memref<4xf32> {moe.role = "activation"}) {
  return
}

// -----

// expected-error @+1 {{'moe.name' of argument #0 must be a string}}
func.func @bad_name(%x: memref<4xf32> {moe.name = 3 : i32}) {
  return
}

// -----

// expected-error @+1 {{unknown moe dialect argument attribute 'moe.size'}}
func.func @unknown_arg_attr(%x: memref<4xf32> {moe.size = 3 : i32}) {
  return
}

// -----

// fp8 weights: each rule of the contract, once.
func.func @fp8_missing_scales(%x: memref<?x256xbf16>, %sw13: memref<256x256xf8E4M3FN>, %sw2: memref<256x128xf8E4M3FN>, %o: memref<?x256xbf16>) {
  // expected-error @+1 {{'w13' is f8E4M3FN and needs its block scales 'w13_scale'}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x256xbf16>, memref<256x256xf8E4M3FN>, memref<256x128xf8E4M3FN>) outs(%o : memref<?x256xbf16>)
  return
}

// -----

func.func @fp8_one_scale(%x: memref<?x256xbf16>, %sw13: memref<256x256xf8E4M3FN>, %sw2: memref<256x128xf8E4M3FN>, %s: memref<2x2xf32>, %o: memref<?x256xbf16>) {
  // expected-error @+1 {{expects 6 operands (4 without 'w13_scale', 'w2_scale', which come together), got 5}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x256xbf16>, memref<256x256xf8E4M3FN>, memref<256x128xf8E4M3FN>) scales(%s : memref<2x2xf32>) outs(%o : memref<?x256xbf16>)
  return
}

// -----

func.func @fp8_scales_for_bf16(%x: memref<?x256xbf16>, %sw13: memref<256x256xbf16>, %sw2: memref<256x128xbf16>, %s13: memref<2x2xf32>, %s2: memref<2x1xf32>, %o: memref<?x256xbf16>) {
  // expected-error @+1 {{'w13_scale' is given but 'w13' is bf16; block scales belong to f8E4M3FN weights}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x256xbf16>, memref<256x256xbf16>, memref<256x128xbf16>) scales(%s13, %s2 : memref<2x2xf32>, memref<2x1xf32>) outs(%o : memref<?x256xbf16>)
  return
}

// -----

func.func @fp8_block_does_not_divide(%x: memref<?x200xbf16>, %sw13: memref<256x200xf8E4M3FN>, %sw2: memref<200x128xf8E4M3FN>, %s13: memref<2x2xf32>, %s2: memref<2x1xf32>, %o: memref<?x200xbf16>) {
  // expected-error @+1 {{'w13_scale' holds one scale per 128 x 128 block of 'w13', so its hidden size (200) must be a multiple of 128}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x200xbf16>, memref<256x200xf8E4M3FN>, memref<200x128xf8E4M3FN>) scales(%s13, %s2 : memref<2x2xf32>, memref<2x1xf32>) outs(%o : memref<?x200xbf16>)
  return
}

// -----

func.func @fp8_scale_shape(%x: memref<?x256xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<4x256x256xf8E4M3FN>, %w2: memref<4x256x128xf8E4M3FN>, %s13: memref<4x2x2xf32>, %s2: memref<4x2x2xf32>, %r: memref<?x256xbf16>) {
  // expected-error @+1 {{'w2_scale' must have one scale per block: dimension 2 is 2, expected 1 (128 / 128)}}
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x256xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<4x256x256xf8E4M3FN>, memref<4x256x128xf8E4M3FN>) scales(%s13, %s2 : memref<4x2x2xf32>, memref<4x2x2xf32>) outs(%r : memref<?x256xbf16>)
  return
}

// -----

func.func @fp8_mixed_weights(%x: memref<?x256xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<4x256x256xf8E4M3FN>, %w2: memref<4x256x128xbf16>, %s13: memref<4x2x2xf32>, %s2: memref<4x2x1xf32>, %r: memref<?x256xbf16>) {
  // expected-error @+1 {{'w2_scale' is given but 'w2' is bf16; block scales belong to f8E4M3FN weights}}
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x256xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<4x256x256xf8E4M3FN>, memref<4x256x128xbf16>) scales(%s13, %s2 : memref<4x2x2xf32>, memref<4x2x1xf32>) outs(%r : memref<?x256xbf16>)
  return
}

// -----

func.func @fp8_f32_hidden(%x: memref<?x256xf32>, %sw13: memref<256x256xf8E4M3FN>, %sw2: memref<256x128xf8E4M3FN>, %s13: memref<2x2xf32>, %s2: memref<2x1xf32>, %o: memref<?x256xf32>) {
  // expected-error @+1 {{f8E4M3FN weights need a bf16 'hidden' (activations are quantized from bf16), got f32}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x256xf32>, memref<256x256xf8E4M3FN>, memref<256x128xf8E4M3FN>) scales(%s13, %s2 : memref<2x2xf32>, memref<2x1xf32>) outs(%o : memref<?x256xf32>)
  return
}

// -----

func.func @fp8_hidden(%x: memref<?x256xf8E4M3FN>, %sw13: memref<256x256xf8E4M3FN>, %sw2: memref<256x128xf8E4M3FN>, %s13: memref<2x2xf32>, %s2: memref<2x1xf32>, %o: memref<?x256xf8E4M3FN>) {
  // expected-error @+1 {{'hidden' must have element type bf16, f16 or f32, got 'f8E4M3FN'}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x256xf8E4M3FN>, memref<256x256xf8E4M3FN>, memref<256x128xf8E4M3FN>) scales(%s13, %s2 : memref<2x2xf32>, memref<2x1xf32>) outs(%o : memref<?x256xf8E4M3FN>)
  return
}

// -----

func.func @fp8_e5m2(%x: memref<?x256xbf16>, %sw13: memref<256x256xf8E5M2>, %sw2: memref<256x128xf8E5M2>, %s13: memref<2x2xf32>, %s2: memref<2x1xf32>, %o: memref<?x256xbf16>) {
  // expected-error @+1 {{'w13' must have element type bf16, f16, f32 or f8E4M3FN, got 'f8E5M2'}}
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x256xbf16>, memref<256x256xf8E5M2>, memref<256x128xf8E5M2>) scales(%s13, %s2 : memref<2x2xf32>, memref<2x1xf32>) outs(%o : memref<?x256xbf16>)
  return
}

// -----

func.func @all_reduce_group(%x: memref<?x64xbf16>) {
  // expected-error @+1 {{group_size must be at least 1, got 0}}
  moe.all_reduce ins(%x : memref<?x64xbf16>) outs(%x : memref<?x64xbf16>) {group_size = 0 : i64}
  return
}

// -----

func.func @all_reduce_no_group(%x: memref<?x64xbf16>) {
  // expected-error @+1 {{requires attribute 'group_size'}}
  moe.all_reduce ins(%x : memref<?x64xbf16>) outs(%x : memref<?x64xbf16>)
  return
}

// -----

func.func @all_reduce_dtype(%x: memref<?x64xbf16>, %y: memref<?x64xf32>) {
  // expected-error @+1 {{element types of 'input' ('bf16') and 'output' ('f32') must match}}
  moe.all_reduce ins(%x : memref<?x64xbf16>) outs(%y : memref<?x64xf32>) {group_size = 2 : i64}
  return
}

// -----

func.func @all_reduce_shape(%x: memref<?x64xbf16>, %y: memref<?x32xbf16>) {
  // expected-error @+1 {{hidden size mismatch}}
  moe.all_reduce ins(%x : memref<?x64xbf16>) outs(%y : memref<?x32xbf16>) {group_size = 2 : i64}
  return
}
