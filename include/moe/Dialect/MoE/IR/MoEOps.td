//===- MoEOps.td - Operations of the moe dialect -----------*- tablegen -*-===//
#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "moe/Dialect/MoE/IR/MoEInterfaces.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Operand and attribute rules (element types, shapes, ranges, aliasing,
// effects, workspace) are not declared here: the op contract
// (include/moe-runtime/OpContract.h) declares them once for the compiler, the
// runtime and the tools, and every op's verifier, memory effects and
// workspace come from it (MoE_Op in MoEBase.td). This file gives each op its
// operands' and attributes' names (in the contract's order), its syntax and
// its documentation. Attribute defaults here must equal the contract's
// (they decide what the printer elides); test/Dialect/MoE/contract.mlir
// checks it.
// Every operand is a memref (buffer form) or a ranked tensor (tensor form),
// all of one kind in an op. On tensors the ops are in destination-passing
// style, as linalg's: each output operand (`outs`) is the init whose shape the
// result has, and the op returns one tensor per output; on memrefs they return
// nothing. docs/dialect.md, "Two forms", says why one op serves both.
def MoE_Shaped : AnyTypeOf<[MemRefOf<[AnyType]>, RankedTensorOf<[AnyType]>],
                           "memref or ranked tensor">;

//===----------------------------------------------------------------------===//
// moe.gate
//===----------------------------------------------------------------------===//

def MoE_GateOp : MoE_Op<"gate"> {
  let summary = "router linear layer: fp32 logits = hidden x gate_weight^T";
  let description = [{
    Computes the router logits of every token: `logits[t, e] = sum_h
    hidden[t, h] * gate_weight[e, h]`, accumulated and stored in f32.

    Shapes: `hidden` is `T x H`, `gate_weight` is `E x H`, `logits` is `T x E`.
    Reads `hidden` and `gate_weight`, writes `logits`. Workspace: none.

    ```mlir
    moe.gate ins(%x, %wg : memref<?x7168xbf16>, memref<256x7168xbf16>)
             outs(%logits : memref<?x256xf32>)
    ```
  }];
  let arguments = (ins
    MoE_Shaped:$hidden,
    MoE_Shaped:$gate_weight,
    MoE_Shaped:$logits);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $hidden `,` $gate_weight `:` type($hidden) `,` type($gate_weight) `)`
    `outs` `(` $logits `:` type($logits) `)` attr-dict (`->` type($results)^)?
  }];
}

//===----------------------------------------------------------------------===//
// moe.topk
//===----------------------------------------------------------------------===//

def MoE_TopKOp : MoE_Op<"topk"> {
  let summary = "top-k expert selection with softmax or sigmoid scoring";
  let description = [{
    Selects `k` experts per token from the router logits and their weights.

    * `softmax`: scores are the softmax of the logits over the experts.
    * `sigmoid`: scores are `sigmoid(logits)`; with a `bias` (DeepSeek-V3's
      correction bias, "noaux_tc") the bias is added for *selection* only.
    * Grouped selection (`n_group` > 1): the experts form `n_group` equal
      groups; a group's score is the sum of its two best (biased) scores for
      sigmoid scoring, its best score for softmax; only experts of the best
      `topk_group` groups can be selected.
    * The weights are the unbiased scores of the selected experts; with
      `renormalize` they are divided by their sum; finally they are multiplied
      by `routed_scaling_factor`.
    * Ties go to the lower expert index, so selection is deterministic.

    Shapes: `logits` is `T x E` (f32), `bias` is `E` (f32), `topk_ids` is `T x k`
    (i32), `topk_weights` is `T x k` (f32). Reads `logits` and `bias`, writes
    `topk_ids` and `topk_weights`. Workspace: none.

    ```mlir
    moe.topk sigmoid ins(%logits : memref<?x256xf32>) bias(%b : memref<256xf32>)
             outs(%ids, %w : memref<?x8xi32>, memref<?x8xf32>)
             {k = 8 : i64, n_group = 8 : i64, topk_group = 4 : i64, renormalize,
              routed_scaling_factor = 2.5 : f32}
    ```
  }];
  let arguments = (ins
    MoE_Shaped:$logits,
    Optional<MoE_Shaped>:$bias,
    MoE_Shaped:$topk_ids,
    MoE_Shaped:$topk_weights,
    MoE_ScoringFunc:$scoring,
    I64Attr:$k,
    DefaultValuedAttr<I64Attr, "1">:$n_group,
    DefaultValuedAttr<I64Attr, "1">:$topk_group,
    UnitAttr:$renormalize,
    DefaultValuedAttr<F32Attr, "1.0f">:$routed_scaling_factor);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $scoring `ins` `(` $logits `:` type($logits) `)`
    (`bias` `(` $bias^ `:` type($bias) `)`)?
    `outs` `(` $topk_ids `,` $topk_weights `:` type($topk_ids) `,` type($topk_weights) `)`
    attr-dict (`->` type($results)^)?
  }];
}

//===----------------------------------------------------------------------===//
// moe.routed_experts
//===----------------------------------------------------------------------===//

def MoE_RoutedExpertsOp : MoE_Op<"routed_experts"> {
  let summary = "the routed experts: per-token weighted sum of k expert MLPs";
  let description = [{
    For every token `t` and slot `j < k`, with `e = topk_ids[t, j]`:
    `y = down_e(SiLU(gate_e(x)) * up_e(x))`, and
    `output[t] = sum_j topk_weights[t, j] * y`, summed in slot order.
    `w13[e]` stacks the gate rows (first `I`) above the up rows (next `I`);
    `w2[e]` is the down projection.

    Shapes: `hidden` `T x H`, `topk_ids`/`topk_weights` `T x k`, `w13`
    `E x 2I x H`, `w2` `E x H x I`, `output` `T x H`.

    Effects: reads `hidden`, `topk_ids`, `topk_weights`, `w13`, `w2`; writes
    `output`. With `inplace` the op writes its result into `hidden`: `output`
    must then be the very same value as `hidden`, and the op also writes
    `hidden`. Without `inplace`, `output` must not be `hidden` (or a view of
    the same buffer). The verifier enforces both, so the flag cannot lie.

    Workspace (bytes, B bytes per element, C = min(H, 512)):
    `T*k*(8 + I*B + C*B) + (E+1)*4 + 1280` — routing metadata, the
    activations of every (token, slot) pair, and one column block of the down
    projection's partial rows, combined in a fixed order without atomics.

    **fp8 weights.** `w13` and `w2` may be `f8E4M3FN` (DeepSeek-V3's format)
    with their fp32 block scales after `scales`: `w13_scale`
    `E x 2I/128 x H/128`, `w2_scale` `E x H/128 x I/128`, one per 128 x 128
    block; `hidden` is then bf16 and H, I are multiples of 128. The op
    quantizes its activations itself (per token per 128 columns, scale =
    amax / 448, docs/runtime.md), so its workspace holds them:
    `T*(H + 4*ceil(H/128)) + T*k*(8 + I + 4*ceil(I/128) + 2*C) + (E+1)*4 +
    2304`. Quantization inside the op keeps those buffers within its run,
    where the memory plan sees them (docs/dialect.md says why not a
    separate op).

    ```mlir
    moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x7168xbf16>,
        memref<?x8xi32>, memref<?x8xf32>, memref<256x1024x7168xbf16>,
        memref<256x7168x512xbf16>) outs(%out : memref<?x7168xbf16>)
    moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x7168xbf16>,
        memref<?x8xi32>, memref<?x8xf32>, memref<256x1024x7168xf8E4M3FN>,
        memref<256x7168x512xf8E4M3FN>)
        scales(%s13, %s2 : memref<256x8x56xf32>, memref<256x56x4xf32>)
        outs(%out : memref<?x7168xbf16>)
    ```
  }];
  let arguments = (ins
    MoE_Shaped:$hidden,
    MoE_Shaped:$topk_ids,
    MoE_Shaped:$topk_weights,
    MoE_Shaped:$w13,
    MoE_Shaped:$w2,
    Variadic<MoE_Shaped>:$scales,
    MoE_Shaped:$output,
    UnitAttr:$inplace);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    (`inplace` $inplace^)?
    `ins` `(` $hidden `,` $topk_ids `,` $topk_weights `,` $w13 `,` $w2 `:`
      type($hidden) `,` type($topk_ids) `,` type($topk_weights) `,`
      type($w13) `,` type($w2) `)`
    (`scales` `(` $scales^ `:` type($scales) `)`)?
    `outs` `(` $output `:` type($output) `)` attr-dict (`->` type($results)^)?
  }];
}

//===----------------------------------------------------------------------===//
// moe.shared_experts
//===----------------------------------------------------------------------===//

def MoE_SharedExpertsOp : MoE_Op<"shared_experts"> {
  let summary = "the shared-expert MLP applied to every token";
  let description = [{
    `output = down(SiLU(gate(hidden)) * up(hidden))`: `w13` stacks the gate
    rows (first `I`) above the up rows (next `I`), `w2` is the down projection.
    Several shared experts are one MLP with their intermediate sizes summed.

    Shapes: `hidden` `T x H`, `w13` `2I x H`, `w2` `H x I`, `output` `T x H`.
    Reads `hidden`, `w13`, `w2`; writes `output`, which must not be `hidden`.
    Workspace (bytes): `T*I*B + 256`, the activation `SiLU(gate)*up`.

    fp8 weights as for `moe.routed_experts`: `f8E4M3FN` `w13`, `w2` with
    `scales(w13_scale : 2I/128 x H/128, w2_scale : H/128 x I/128)`, a bf16
    `hidden`; workspace `T*(H + 4*ceil(H/128) + I + 4*ceil(I/128)) + 1024`.

    ```mlir
    moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x7168xbf16>,
        memref<1024x7168xbf16>, memref<7168x512xbf16>)
        outs(%sh : memref<?x7168xbf16>)
    ```
  }];
  let arguments = (ins
    MoE_Shaped:$hidden,
    MoE_Shaped:$w13,
    MoE_Shaped:$w2,
    Variadic<MoE_Shaped>:$scales,
    MoE_Shaped:$output);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $hidden `,` $w13 `,` $w2 `:` type($hidden) `,` type($w13) `,`
      type($w2) `)`
    (`scales` `(` $scales^ `:` type($scales) `)`)?
    `outs` `(` $output `:` type($output) `)` attr-dict (`->` type($results)^)?
  }];
}

//===----------------------------------------------------------------------===//
// moe.add
//===----------------------------------------------------------------------===//

def MoE_AddOp : MoE_Op<"add"> {
  let summary = "combine: output = scale * lhs + rhs";
  let description = [{
    Adds the routed result (`lhs`, multiplied by `scale`, default 1) and the
    shared-expert result (`rhs`), element by element, computing in f32 and
    rounding once to the output type. All three have the same type; `output`
    may be `lhs` or `rhs` (an in-place add). Reads `lhs` and `rhs`, writes
    `output`. Workspace: none.

    ```mlir
    moe.add ins(%r, %sh : memref<?x7168xbf16>, memref<?x7168xbf16>)
            outs(%y : memref<?x7168xbf16>)
    ```
  }];
  let arguments = (ins
    MoE_Shaped:$lhs,
    MoE_Shaped:$rhs,
    MoE_Shaped:$output,
    DefaultValuedAttr<F32Attr, "1.0f">:$scale);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $lhs `,` $rhs `:` type($lhs) `,` type($rhs) `)`
    `outs` `(` $output `:` type($output) `)` attr-dict (`->` type($results)^)?
  }];
}

//===----------------------------------------------------------------------===//
// moe.all_reduce
//===----------------------------------------------------------------------===//

def MoE_AllReduceOp : MoE_Op<"all_reduce"> {
  let summary = "collective: output = the sum of input over the ranks";
  let description = [{
    Tensor parallelism's sum: every rank of the program's group (the
    communicator of the run, `group_size` ranks, docs/multi-gpu.md) passes its
    partial result `input`; each rank's `output` receives the elementwise sum
    over the ranks, the same bits on every rank. `output` may be `input` (in
    place). Reads `input`, writes `output` and the communicator: a collective
    keeps its order with every other collective, so every rank runs them in
    the same order. Workspace: none.

    ```mlir
    moe.all_reduce ins(%y : memref<?x7168xbf16>) outs(%y : memref<?x7168xbf16>)
                   {group_size = 4 : i64}
    ```
  }];
  let arguments = (ins
    MoE_Shaped:$input,
    MoE_Shaped:$output,
    I64Attr:$group_size);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    `ins` `(` $input `:` type($input) `)`
    `outs` `(` $output `:` type($output) `)` attr-dict (`->` type($results)^)?
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
