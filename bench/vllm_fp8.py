"""vLLM's Triton fused-MoE path in fp8 w8a8 block-quantized mode (block_shape [128, 128]), for
bench/fp8_bench.py.

Runs vLLM's own kernels (fused_moe_kernel and _per_token_group_quant_fp8, copied into
.peers/vllm/vllm_fused_moe.py by bench/fetch_peers.sh) and launches them as vLLM's
fused_experts_impl and invoke_fused_moe_kernel do at the pinned commit (SOURCES below):
  1. chunks of at most CHUNK_SIZE tokens (VLLM_FUSED_MOE_CHUNK_SIZE's default);
  2. the launch config: vLLM's tuned table for the card (E=..,N=..,device_name=..,dtype=fp8_w8a8,
     block_shape=[128,128].json in .peers/vllm/configs, N = w2.shape[2]; the entry whose token
     count is nearest the chunk's), else vLLM's get_default_config for fp8 block quantization;
  3. the hidden states quantized per token and 128-column group to e4m3 with fp32 scales
     (vLLM's Triton kernel; on CUDA vLLM runs a CUDA op of the same arithmetic by default);
  4. moe_align_block_size in PyTorch (vLLM uses a CUDA op; align_blocks below gives the same
     sorted pair ids, padded per expert to BLOCK_SIZE_M with the sentinel T*K, the expert of
     each block and the padded count, without waiting for the host);
  5. GEMM1 gathering hidden rows -> [T, K, 2I] bf16; silu(gate) * up in PyTorch (vLLM's
     silu_and_mul CUDA op rounds the same way) -> [T*K, I]; quantized like 3;
  6. GEMM2 times the routing weight in the epilogue -> [T, K, H] bf16; the sum over K
     (vLLM's moe_sum CUDA op; torch.sum here).
Intermediate buffers are allocated as vLLM does (one buffer shared by GEMM1's and GEMM2's
outputs), so the transient memory matches.
"""
import functools
import json
import os
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

PEERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".peers",
                     "vllm")
if not os.path.exists(os.path.join(PEERS, "vllm_fused_moe.py")):
    raise ImportError(f"{PEERS}/vllm_fused_moe.py is missing: run bench/fetch_peers.sh")
sys.path.insert(0, PEERS)
import vllm_fused_moe as vk  # noqa: E402

SOURCES = vk.SOURCES
BLOCK_SHAPE = [128, 128]
CHUNK_SIZE = 16 * 1024
FP8 = torch.float8_e4m3fn
DEFAULT_CONFIG = {  # get_default_config(dtype="fp8_w8a8", block_shape=[128, 128]) on CUDA
    "BLOCK_SIZE_M": 64, "BLOCK_SIZE_N": BLOCK_SHAPE[0], "BLOCK_SIZE_K": BLOCK_SHAPE[1],
    "GROUP_SIZE_M": 32, "SPLIT_K": 1, "num_warps": 4, "num_stages": 3,
}


def config_file_name(E, N, device_name=None):
    """vLLM's get_config_file_name for fp8 w8a8 with 128x128 blocks."""
    name = (device_name or torch.cuda.get_device_name()).replace(" ", "_")
    if "H200" in name.split("_"):
        name = "NVIDIA_H200"
    return f"E={E},N={N},device_name={name},dtype=fp8_w8a8,block_shape=[128,128].json"


@functools.lru_cache
def tuned_configs(E, N):
    """{token count: config} from vLLM's table for this card, or None."""
    path = os.path.join(PEERS, "configs", config_file_name(E, N))
    if not os.path.exists(path):
        return None
    with open(path) as f:
        table = json.load(f)
    table.pop("triton_version", None)
    return {int(k): v for k, v in table.items()}


def get_config(M, E, N):
    """(config, source): vLLM's try_get_optimal_moe_config for M tokens."""
    table = tuned_configs(E, N)
    if table:
        key = min(table, key=lambda m: abs(m - M))
        return dict(table[key]), f"{config_file_name(E, N)}[{key}]"
    return dict(DEFAULT_CONFIG), "vLLM default (no tuned table for this card)"


def quantize(x, group=BLOCK_SHAPE[1]):
    """per_token_group_quant_fp8 (Triton path, row-major scales, no UE8M0): x [M, D] ->
    (e4m3 [M, D], fp32 scales [M, D/group])."""
    M, D = x.shape
    finfo = torch.finfo(FP8)
    x_q = torch.empty(x.shape, device=x.device, dtype=FP8)
    x_s = torch.empty(M, D // group, device=x.device, dtype=torch.float32)
    block = triton.next_power_of_2(group)
    vk._per_token_group_quant_fp8[(x.numel() // group,)](
        x, x_q, x_s, group, D, x.stride(0), 1e-10,
        fp8_min=finfo.min, fp8_max=finfo.max, use_ue8m0=False, BLOCK=block,
        num_warps=min(max(block // 256, 1), 8), num_stages=1)
    return x_q, x_s


def align_blocks(ids, E, block_m):
    """moe_align_block_size: (sorted_token_ids [T*K + E*(block_m - 1)]: the pair ids t*K + k
    grouped by expert in pair order, each expert padded to a multiple of block_m with T*K;
    expert_ids: the expert of each block_m block; num_tokens_post_padded [1]). The same as
    bench/triton_moe.align, but counting with index_add_ (torch.bincount waits for the host)."""
    flat = ids.view(-1).long()
    numel = flat.numel()
    n = numel + E * (block_m - 1)
    counts = torch.zeros(E, dtype=torch.long, device=ids.device)
    counts.index_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    ends = torch.cumsum(padded, 0)
    order = torch.argsort(flat, stable=True)
    e_sorted = flat[order]
    rank = torch.arange(numel, device=ids.device) - (torch.cumsum(counts, 0) - counts)[e_sorted]
    sorted_ids = torch.full((n,), numel, dtype=torch.int32, device=ids.device)
    sorted_ids[ends[e_sorted] - padded[e_sorted] + rank] = order.to(torch.int32)
    starts = torch.arange(0, n, block_m, device=ids.device)
    expert_ids = torch.searchsorted(ends, starts, right=True).clamp_(max=E - 1)
    return sorted_ids, expert_ids.to(torch.int32), ends[-1:].to(torch.int32)


def invoke(A, B, C, A_scale, B_scale, topk_weights, sorted_ids, expert_ids, num_padded,
           mul_routed_weight, top_k, config):
    """invoke_fused_moe_kernel for use_fp8_w8a8 with block_shape [128, 128], no bias."""
    EM = sorted_ids.size(0)
    if A.size(0) < config["BLOCK_SIZE_M"]:
        EM = min(EM, A.size(0) * top_k * config["BLOCK_SIZE_M"])
    grid = lambda META: (triton.cdiv(EM, META["BLOCK_SIZE_M"])  # noqa: E731
                         * triton.cdiv(B.size(1), META["BLOCK_SIZE_N"]),)
    config = dict(config)
    config["SPLIT_K"] = 1
    block_k = min(config.pop("BLOCK_SIZE_K"), min(BLOCK_SHAPE))
    vk.fused_moe_kernel[grid](
        A, B, C, None, A_scale, B_scale, topk_weights, sorted_ids, expert_ids, num_padded,
        B.size(1), B.size(2), EM, A.size(0) * top_k,
        A.stride(0), A.stride(1), B.stride(0), B.stride(2), B.stride(1),
        C.stride(1), C.stride(2), A_scale.stride(0), A_scale.stride(1),
        B_scale.stride(0), B_scale.stride(2), B_scale.stride(1), 0, 0,
        BLOCK_SHAPE[0], BLOCK_SHAPE[1],
        MUL_ROUTED_WEIGHT=mul_routed_weight, top_k=top_k, compute_type=tl.bfloat16,
        use_fp8_w8a8=True, use_int8_w8a8=False, use_int8_w8a16=False,
        per_channel_quant=False, HAS_BIAS=False, BLOCK_SIZE_K=block_k, **config)


def routed(x, ids, weights, w13, w13_scale, w2, w2_scale, aligned=None):
    """Routed experts [T, H] bf16 from bf16 x [T, H], int32 ids and fp32 weights [T, K], e4m3
    w13 [E, 2I, H] (gate rows then up rows) with fp32 scales [E, 2I/128, H/128] and e4m3
    w2 [E, H, I] with scales [E, H/128, I/128]. `aligned`: the alignment precomputed by
    align_for(), to time the path without it (single chunk only)."""
    T, H = x.shape
    E, N, _ = w13.shape
    K = ids.shape[1]
    M = min(T, CHUNK_SIZE)
    config, _ = get_config(M, E, w2.shape[2])
    cache13 = torch.empty(M * K * max(N, H), device=x.device, dtype=x.dtype)
    cache1 = cache13[:M * K * N].view(M, K, N)
    cache3 = cache13[:M * K * H].view(M, K, H)
    cache2 = torch.empty(M * K, N // 2, device=x.device, dtype=x.dtype)
    out = torch.empty_like(x)
    for begin in range(0, T, CHUNK_SIZE):
        end = min(begin + CHUNK_SIZE, T)
        n = end - begin
        if n < CHUNK_SIZE and begin > 0:
            cache1, cache2, cache3 = cache1[:n], cache2[:n * K], cache3[:n]
            config, _ = get_config(n, E, w2.shape[2])
        ids_c, w_c = ids[begin:end], weights[begin:end]
        xq, xs = quantize(x[begin:end])
        if aligned is None or T > CHUNK_SIZE:
            aligned_c = align_blocks(ids_c, E, config["BLOCK_SIZE_M"])
        else:
            aligned_c = aligned
        invoke(xq, w13, cache1, xs, w13_scale, w_c, *aligned_c, False, K, config)
        gu = cache1.view(-1, N)
        torch.mul(F.silu(gu[:, :N // 2]), gu[:, N // 2:], out=cache2)
        aq, as_ = quantize(cache2)
        invoke(aq, w2, cache3, as_, w2_scale, w_c, *aligned_c, True, 1, config)
        torch.sum(cache3, dim=1, out=out[begin:end])
    return out


def align_for(ids, E, N):
    """The alignment routed() would compute for a single chunk of these ids."""
    config, _ = get_config(min(ids.shape[0], CHUNK_SIZE), E, N)
    return align_blocks(ids, E, config["BLOCK_SIZE_M"])
