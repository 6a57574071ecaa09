"""A tuned Triton fused-MoE baseline for bench/moe_bench.py (--triton).

The structure of the widely used Triton fused-MoE path:
  1. align: the (token, slot) pairs sorted by expert, each expert's list padded to a multiple of
     BLOCK_M with an invalid id, and the expert of every BLOCK_M block (on the GPU, no host sync);
  2. GEMM1: hidden rows gathered through the sorted list (in the kernel's loads) times the expert's
     w13, written in pair order: [T*K, 2I];
  3. SiLU(gate) * up (PyTorch): [T*K, I];
  4. GEMM2: those rows times the expert's w2, scaled by the routing weight in the epilogue, written
     in pair order: [T*K, H];
  5. the sum over the K slots of each token (PyTorch).
Its transient memory is T*K*(2I + I + H) elements plus the routing lists. Every kernel is
deterministic (no atomics), like ours.

Tuning: `tune()` times each configuration of CONFIGS on the problem and keeps the fastest, per
model and token count (the same configuration for both GEMMs, as the common tuned tables do).
"""

import torch
import torch.nn.functional as F
import triton
import triton.language as tl


@triton.jit
def _grouped_gemm(a_ptr, b_ptr, c_ptr, w_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr,
                  N, Kd, num_pairs,
                  stride_am, stride_be, stride_bn, stride_cm,
                  TOP_K: tl.constexpr, GATHER: tl.constexpr, MUL_WEIGHT: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                  GROUP_M: tl.constexpr):
    """C[pair, :N] = A[row(pair), :Kd] @ B[e]^T (B[e] is [N, Kd] row-major), optionally times the
    pair's routing weight. row(pair) = pair // TOP_K when GATHER (hidden states), else pair."""
    pid = tl.program_id(0)
    num_padded = tl.load(num_padded_ptr)
    num_pid_m = tl.cdiv(num_padded, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    # Grouped order: GROUP_M row blocks share each column block's weights in L2.
    per_group = GROUP_M * num_pid_n
    group = pid // per_group
    first_m = group * GROUP_M
    if first_m >= num_pid_m:
        return
    size_m = tl.minimum(num_pid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % per_group) % size_m
    pid_n = (pid % per_group) // size_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pair = tl.load(sorted_ptr + offs_m)
    valid = pair < num_pairs
    expert = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    if GATHER:
        rows = pair // TOP_K
    else:
        rows = pair
    rows = tl.where(valid, rows, 0).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + rows[:, None] * stride_am + offs_k[None, :]
    b_ptrs = (b_ptr + expert * stride_be + offs_n[None, :].to(tl.int64) * stride_bn
              + offs_k[:, None])
    n_ok = offs_n < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(Kd, BLOCK_K)):
        k_ok = offs_k < Kd - k * BLOCK_K
        a = tl.load(a_ptrs, mask=valid[:, None] & k_ok[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    if MUL_WEIGHT:
        w = tl.load(w_ptr + pair, mask=valid, other=0.0)
        acc = acc * w[:, None]
    c_ptrs = c_ptr + tl.where(valid, pair, 0).to(tl.int64)[:, None] * stride_cm + offs_n[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=valid[:, None] & n_ok[None, :])


# (BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages)
CONFIGS = [
    (64, 64, 64, 1, 4, 4),
    (64, 128, 64, 8, 4, 4),
    (64, 128, 128, 8, 8, 3),
    (128, 128, 64, 8, 8, 4),
    (128, 256, 64, 8, 8, 3),
    (128, 128, 128, 8, 8, 3),
]


def align(ids, E, block_m):
    """Pairs sorted by expert, each expert padded to a multiple of block_m with the invalid id
    T*K; the expert of each block; the padded count (a device scalar). Sizes are upper bounds,
    so nothing waits for the host."""
    flat = ids.view(-1).long()
    tk = flat.numel()
    cap = tk + E * (block_m - 1)
    cap = (cap + block_m - 1) // block_m * block_m
    counts = torch.bincount(flat, minlength=E)
    padded = (counts + block_m - 1) // block_m * block_m
    ends_padded = torch.cumsum(padded, 0)
    starts_padded = ends_padded - padded
    starts = torch.cumsum(counts, 0) - counts
    order = torch.argsort(flat, stable=True)
    e_sorted = flat[order]
    pos = torch.arange(tk, device=ids.device) - starts[e_sorted]
    sorted_ids = torch.full((cap,), tk, dtype=torch.int32, device=ids.device)
    sorted_ids[starts_padded[e_sorted] + pos] = order.to(torch.int32)
    block_start = torch.arange(0, cap, block_m, device=ids.device)
    block_expert = torch.searchsorted(ends_padded, block_start, right=True).clamp_(max=E - 1)
    num_padded = ends_padded[-1:].to(torch.int32)
    return sorted_ids, block_expert.to(torch.int32), num_padded


def _gemm(a, b, c, weights, sorted_ids, block_expert, num_padded, top_k, gather, mul_weight,
          cfg):
    bm, bn, bk, gm, warps, stages = cfg
    N, Kd = b.shape[1], b.shape[2]
    grid = (triton.cdiv(sorted_ids.numel(), bm) * triton.cdiv(N, bn),)
    _grouped_gemm[grid](a, b, c, weights, sorted_ids, block_expert, num_padded,
                        N, Kd, c.shape[0],
                        a.stride(0), b.stride(0), b.stride(1), c.stride(0),
                        TOP_K=top_k, GATHER=gather, MUL_WEIGHT=mul_weight,
                        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, GROUP_M=gm,
                        num_warps=warps, num_stages=stages)


def routed(x, ids, weights, w13, w2, cfg):
    """The routed experts' output [T, H] (bf16), as described at the top."""
    T, H = x.shape
    E, two_i, _ = w13.shape
    I = two_i // 2
    K = ids.shape[1]
    sorted_ids, block_expert, num_padded = align(ids, E, cfg[0])
    gu = torch.empty(T * K, two_i, device=x.device, dtype=x.dtype)
    _gemm(x, w13, gu, weights, sorted_ids, block_expert, num_padded, K, True, False, cfg)
    act = F.silu(gu[:, :I]) * gu[:, I:]
    del gu
    y = torch.empty(T * K, H, device=x.device, dtype=x.dtype)
    _gemm(act, w2, y, weights.reshape(-1), sorted_ids, block_expert, num_padded, K, False,
          True, cfg)
    del act
    return y.view(T, K, H).sum(dim=1)


def tune(x, ids, weights, w13, w2, time_ms, reps=5):
    """The fastest configuration of CONFIGS on this problem: (cfg, ms, every (cfg, ms))."""
    tried = []
    for cfg in CONFIGS:
        try:
            ms, _ = time_ms(lambda: routed(x, ids, weights, w13, w2, cfg), warmup=2, reps=reps)
        except Exception as e:  # a configuration that does not fit (shared memory)
            tried.append((cfg, None, str(e).splitlines()[0][:120]))
            continue
        tried.append((cfg, ms, ""))
    ok = [t for t in tried if t[1] is not None]
    best = min(ok, key=lambda t: t[1])
    return best[0], best[1], tried
