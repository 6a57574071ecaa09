#!/usr/bin/env python3
"""Full MoE layer benchmark: our CUDA kernels (kernels/, through the C ABI of
libmoe_kernels_capi.so) against a PyTorch reference of the same layer, in the
same process and on the same data.

Layer: gate (router GEMM, fp32 logits) -> top-k -> routed experts -> shared
experts -> add. Ours runs the routed experts out of place and the shared
experts after them (the deferred order); the PyTorch reference follows
sglang's order for an in-place routed kernel (shared experts first), with the
routed experts through torch._grouped_mm on an argsort permutation.

Reported per (model, tokens): median latency (CUDA events, after warm-up) of
the layer and of the routed experts alone, routed-expert TFLOP/s (6*T*K*H*I
useful flops), transient peak memory above weights and input (ours: the sum of
our allocations and the measured peak; PyTorch: max_memory_allocated minus the
baseline), and numerics (rel. L2 error of our output against the reference;
routed experts also compared on identical routing).

Adding a backend (e.g. the compiled module through moe-run) means adding one
function with the signature of `ours_layer` and a column in `run_config`.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F

TUNING_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tuning")

BF16 = 0

MODELS = {
    # name: hidden, routed intermediate per shard, experts, top-k, shared
    # intermediate per shard, scoring, n_group, topk_group, scale, renormalize
    "deepseek-v3-tp4": dict(H=7168, I=512, E=256, K=8, IS=512, scoring="sigmoid",
                            n_group=8, topk_group=4, scale=2.5, renorm=True),
    "deepseek-v3-tp1": dict(H=7168, I=2048, E=256, K=8, IS=2048, scoring="sigmoid",
                            n_group=8, topk_group=4, scale=2.5, renorm=True),
    "kimi-k2-tp4": dict(H=7168, I=512, E=384, K=8, IS=512, scoring="sigmoid",
                        n_group=1, topk_group=1, scale=2.827, renorm=True),
    "qwen3-235b-tp4": dict(H=4096, I=384, E=128, K=8, IS=0, scoring="softmax",
                           n_group=1, topk_group=1, scale=1.0, renorm=True),
}


class Lib:
    """ctypes bindings of kernels/capi.cpp."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        L = self.lib
        vp, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
        L.moek_gate.argtypes = [vp, vp, vp, i64, i64, i64, i32, vp]
        L.moek_topk.argtypes = [vp, vp, vp, vp, i64, i64, i32, i32, i32, i32, i32, f32, vp]
        L.moek_routed_workspace_bytes.argtypes = [i64, i64, i64, i64, i64, i32]
        L.moek_routed_workspace_bytes.restype = i64
        L.moek_shared_workspace_bytes.argtypes = [i64, i64, i32]
        L.moek_shared_workspace_bytes.restype = i64
        L.moek_routed_experts.argtypes = [vp, vp, vp, vp, vp, vp, i64, i64, i64, i64, i64,
                                          i32, vp, i64, vp, vp]
        L.moek_shared_experts.argtypes = [vp, vp, vp, vp, i64, i64, i64, i32, vp, i64, vp, vp]
        L.moek_add.argtypes = [vp, vp, vp, i64, f32, i32, vp]
        L.moek_tuning_load.argtypes = [ctypes.c_char_p]
        L.moek_tuning_load.restype = vp
        L.moek_tuning_free.argtypes = [vp]
        L.moek_tuning_error.restype = ctypes.c_char_p
        L.moek_last_error.restype = ctypes.c_char_p
        self.tuning = None  # the table routed()/shared() pass (None: defaults)
        self.tables = {}  # tuning file name -> loaded table

    def check(self, rc, what):
        if rc != 0:
            raise RuntimeError(f"{what} failed ({rc}): {self.lib.moek_last_error().decode()}")

    @staticmethod
    def stream():
        return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def gate(self, x, wg, logits):
        T, H = x.shape
        E = wg.shape[0]
        self.check(self.lib.moek_gate(x.data_ptr(), wg.data_ptr(), logits.data_ptr(), T, H, E,
                                      BF16, self.stream()), "gate")

    def topk(self, logits, bias, ids, weights, m):
        T, E = logits.shape
        self.check(self.lib.moek_topk(
            logits.data_ptr(), bias.data_ptr() if bias is not None else None, ids.data_ptr(),
            weights.data_ptr(), T, E, m["K"], 1 if m["scoring"] == "sigmoid" else 0,
            m["n_group"], m["topk_group"], int(m["renorm"]), m["scale"], self.stream()), "topk")

    def routed_ws_bytes(self, T, m):
        return self.lib.moek_routed_workspace_bytes(T, m["H"], m["E"], m["K"], m["I"], BF16)

    def shared_ws_bytes(self, T, I):
        return self.lib.moek_shared_workspace_bytes(T, I, BF16)

    def routed(self, x, ids, weights, w13, w2, out, ws, m):
        T = x.shape[0]
        self.check(self.lib.moek_routed_experts(
            x.data_ptr(), ids.data_ptr(), weights.data_ptr(), w13.data_ptr(), w2.data_ptr(),
            out.data_ptr(), T, m["H"], m["E"], m["K"], m["I"], BF16, ws.data_ptr(), ws.numel(),
            self.stream(), self.tuning), "routed_experts")

    def shared(self, x, w13, w2, out, ws, I):
        T, H = x.shape
        self.check(self.lib.moek_shared_experts(
            x.data_ptr(), w13.data_ptr(), w2.data_ptr(), out.data_ptr(), T, H, I, BF16,
            ws.data_ptr(), ws.numel(), self.stream(), self.tuning), "shared_experts")

    def add(self, a, b, out, scale=1.0):
        self.check(self.lib.moek_add(a.data_ptr(), b.data_ptr(), out.data_ptr(), a.numel(),
                                     scale, BF16, self.stream()), "add")

    def use_tuning(self, name):
        """Launch configs of the following expert calls: bench/tuning/<name>.tuning
        over the defaults (format in docs/kernels.md), or the defaults (None).
        Tables are loaded once and passed per call."""
        if name is None:
            self.tuning = None
            return
        if name not in self.tables:
            path = os.path.join(TUNING_DIR, name + ".tuning")
            table = self.lib.moek_tuning_load(path.encode())
            if not table:
                raise RuntimeError(self.lib.moek_tuning_error().decode())
            self.tables[name] = table
        self.tuning = self.tables[name]


# ----------------------------------------------------------------------------
# Layers


class Weights:
    def __init__(self, m, seed):
        g = torch.Generator(device="cuda").manual_seed(seed)
        H, I, E, IS = m["H"], m["I"], m["E"], m["IS"]
        dev, bf = "cuda", torch.bfloat16

        def randn(*shape, std=0.02, dtype=bf):
            return (torch.randn(*shape, generator=g, device=dev, dtype=torch.float32) * std).to(dtype)

        self.wg = randn(E, H)
        self.bias = randn(E, std=0.05, dtype=torch.float32) if m["scoring"] == "sigmoid" else None
        # Large tensors in bf16 directly (an fp32 temporary of w13 at TP=1 is 30 GB).
        self.w13 = torch.empty(E, 2 * I, H, device=dev, dtype=bf)
        self.w2 = torch.empty(E, H, I, device=dev, dtype=bf)
        for e in range(E):
            self.w13[e].normal_(0, 0.02, generator=g)
            self.w2[e].normal_(0, 0.02, generator=g)
        self.sw13 = randn(2 * IS, H) if IS else None
        self.sw2 = randn(H, IS) if IS else None


def ours_layer(lib, x, W, m, keep=None):
    """Our kernels, deferred order: gate, topk, routed (out of place), shared, add.
    Buffers are torch allocations released as soon as they are dead, so that
    max_memory_allocated measures our real peak. Returns (out, bytes_allocated_sum)."""
    T = x.shape[0]
    H, E, K, IS = m["H"], m["E"], m["K"], m["IS"]
    total = 0
    logits = torch.empty(T, E, device="cuda", dtype=torch.float32)
    total += logits.nbytes
    lib.gate(x, W.wg, logits)
    ids = torch.empty(T, K, device="cuda", dtype=torch.int32)
    weights = torch.empty(T, K, device="cuda", dtype=torch.float32)
    total += ids.nbytes + weights.nbytes
    lib.topk(logits, W.bias, ids, weights, m)
    if keep is not None:
        keep["logits"], keep["ids"], keep["weights"] = logits, ids, weights
    del logits
    out = torch.empty(T, H, device="cuda", dtype=torch.bfloat16)
    ws = torch.empty(lib.routed_ws_bytes(T, m), device="cuda", dtype=torch.uint8)
    total += out.nbytes + ws.nbytes
    lib.routed(x, ids, weights, W.w13, W.w2, out, ws, m)
    del ws, ids, weights
    if IS:
        sh = torch.empty(T, H, device="cuda", dtype=torch.bfloat16)
        sws = torch.empty(lib.shared_ws_bytes(T, IS), device="cuda", dtype=torch.uint8)
        total += sh.nbytes + sws.nbytes
        lib.shared(x, W.sw13, W.sw2, sh, sws, IS)
        del sws
        lib.add(out, sh, out)
        del sh
    return out, total


def ours_routed_alloc(lib, x, ids, weights, W, m):
    """Our routed experts alone with their own output and workspace (for the
    transient peak beside the Triton path's)."""
    out = torch.empty_like(x)
    ws = torch.empty(lib.routed_ws_bytes(x.shape[0], m), device="cuda", dtype=torch.uint8)
    lib.routed(x, ids, weights, W.w13, W.w2, out, ws, m)
    del ws
    return out


def torch_topk(logits, W, m):
    K = m["K"]
    T, E = logits.shape
    if m["scoring"] == "sigmoid":
        scores = logits.sigmoid()
        choice = scores + W.bias if W.bias is not None else scores
        if m["n_group"] > 1:
            ng, tg = m["n_group"], m["topk_group"]
            group_scores = choice.view(T, ng, -1).topk(2, dim=-1)[0].sum(dim=-1)
            group_idx = group_scores.topk(tg, dim=-1, sorted=False)[1]
            mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
            mask = mask.unsqueeze(-1).expand(T, ng, E // ng).reshape(T, E)
            choice = choice.masked_fill(mask == 0, float("-inf"))
        ids = torch.topk(choice, K, dim=-1, sorted=True)[1]
        w = scores.gather(1, ids)
    else:
        scores = torch.softmax(logits, dim=-1)
        w, ids = torch.topk(scores, K, dim=-1, sorted=True)
    if m["renorm"]:
        w = w / w.sum(dim=-1, keepdim=True)
    w = w * m["scale"]
    return ids.to(torch.int32), w.float()


def torch_routed(x, ids, w, W, m):
    """Routed experts in PyTorch: argsort permutation + torch._grouped_mm."""
    T, H = x.shape
    E, K, I = m["E"], m["K"], m["I"]
    flat = ids.view(-1).long()
    order = torch.argsort(flat, stable=True)
    tok = order // K
    counts = torch.bincount(flat, minlength=E)
    offs = torch.cumsum(counts, 0).to(torch.int32)
    xs = x[tok]
    gu = torch._grouped_mm(xs, W.w13.transpose(1, 2), offs=offs)
    del xs
    act = F.silu(gu[:, :I]) * gu[:, I:]
    del gu
    y = torch._grouped_mm(act, W.w2.transpose(1, 2), offs=offs)
    del act
    y.mul_(w.view(-1)[order].unsqueeze(1).to(y.dtype))
    yu = torch.empty_like(y)
    yu[order] = y
    del y
    return yu.view(T, K, H).sum(dim=1)


def torch_shared(x, W):
    gu = F.linear(x, W.sw13)
    IS = W.sw13.shape[0] // 2
    act = F.silu(gu[:, :IS]) * gu[:, IS:]
    del gu
    return F.linear(act, W.sw2)


def fp32_reference(x, ids, w, W, m, n):
    """The layer's routed + shared output for the first n tokens in fp32 end
    to end (bf16 inputs and weights upcast, no intermediate rounding)."""
    I, K = m["I"], m["K"]
    outs = []
    for t in range(n):
        xt = x[t].float()
        acc = torch.zeros(m["H"], device="cuda", dtype=torch.float32)
        for j in range(K):
            e = int(ids[t, j])
            gu = W.w13[e].float() @ xt
            act = F.silu(gu[:I]) * gu[I:]
            acc += float(w[t, j]) * (W.w2[e].float() @ act)
        if m["IS"]:
            gu = W.sw13.float() @ xt
            act = F.silu(gu[:m["IS"]]) * gu[m["IS"]:]
            acc += W.sw2.float() @ act
        outs.append(acc)
    return torch.stack(outs)


def torch_gate(x, W):
    try:
        return torch.mm(x, W.wg.t(), out_dtype=torch.float32)
    except (TypeError, RuntimeError):
        return F.linear(x, W.wg).float()


def torch_layer(x, W, m, keep=None):
    """sglang order for an in-place routed kernel: shared experts first."""
    sh = torch_shared(x, W) if m["IS"] else None
    logits = torch_gate(x, W)
    ids, w = torch_topk(logits, W, m)
    if keep is not None:
        keep["logits"], keep["ids"], keep["weights"] = logits, ids, w
    del logits
    r = torch_routed(x, ids, w, W, m)
    if sh is not None:
        r.add_(sh)
    return r


# ----------------------------------------------------------------------------
# Measurement


def time_ms(fn, warmup=3, reps=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times), min(times)


def peak_bytes(fn):
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    res = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del res
    return peak


def rel_l2(a, b):
    a = a.float()
    b = b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def measure_ceilings():
    n = 1 << 30  # 1 GiB
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    a.random_(0, 255)
    ms, _ = time_ms(lambda: b.copy_(a), warmup=3, reps=20)
    copy_tbs = 2 * n / (ms * 1e-3) / 1e12
    del a, b
    x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    y = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms, _ = time_ms(lambda: x @ y, warmup=3, reps=20)
    mm_tflops = 2 * 8192 ** 3 / (ms * 1e-3) / 1e12
    del x, y
    torch.cuda.empty_cache()
    return dict(copy_TBps=copy_tbs, bf16_mm_TFLOPs=mm_tflops)


def run_config(lib, name, m, W, T, args, ceil):
    H, E, K, I, IS = m["H"], m["E"], m["K"], m["I"], m["IS"]
    g = torch.Generator(device="cuda").manual_seed(1000 + T)
    x = torch.randn(T, H, generator=g, device="cuda", dtype=torch.float32).to(torch.bfloat16)
    res = dict(model=name, T=T, H=H, I=I, E=E, K=K, IS=IS)
    flops = 6.0 * T * K * H * I
    res["routed_GFLOP"] = flops / 1e9

    # Numerics: full layer, ours vs PyTorch, and routed experts on identical routing.
    keep_o, keep_t = {}, {}
    out_o, alloc_sum = ours_layer(lib, x, W, m, keep_o)
    out_t = torch_layer(x, W, m, keep_t)
    torch.cuda.synchronize()
    res["layer_relL2"] = rel_l2(out_o, out_t)
    res["logits_relL2"] = rel_l2(keep_o["logits"], keep_t["logits"])
    same = (torch.sort(keep_o["ids"], dim=1)[0] == torch.sort(keep_t["ids"], dim=1)[0]).all(dim=1)
    res["routing_agreement"] = same.float().mean().item()
    ids, weights = keep_o["ids"], keep_o["weights"]
    r_t = torch_routed(x, ids, weights, W, m)
    r_o = torch.empty_like(x)
    ws = torch.empty(lib.routed_ws_bytes(T, m), device="cuda", dtype=torch.uint8)
    lib.routed(x, ids, weights, W.w13, W.w2, r_o, ws, m)
    torch.cuda.synchronize()
    res["routed_relL2_same_routing"] = rel_l2(r_o, r_t)
    if args.triton:
        import triton_moe
        cfg, _, tried = triton_moe.tune(x, ids, weights, W.w13, W.w2, time_ms)
        res["triton_config"] = list(cfg)
        res["triton_tuning"] = [[list(c), ms, err] for c, ms, err in tried]
        r_tr = triton_moe.routed(x, ids, weights, W.w13, W.w2, cfg)
        torch.cuda.synchronize()
        res["triton_routed_relL2_same_routing"] = rel_l2(r_tr, r_t)
        del r_tr
    res["nan_in_ours"] = bool(torch.isnan(out_o).any().item())
    # Both against fp32 end to end, on the first tokens, with our routing
    # (where the two routings agree the reference is the same for both).
    n = min(T, args.ref_tokens)
    ref = fp32_reference(x, ids, weights, W, m, n)
    agree = same[:n]
    res["ours_relL2_vs_fp32"] = rel_l2(out_o[:n][agree], ref[agree]) if agree.any() else float("nan")
    res["torch_relL2_vs_fp32"] = rel_l2(out_t[:n][agree], ref[agree]) if agree.any() else float("nan")
    del out_o, out_t, r_t, keep_o, keep_t

    # Decode-style weight traffic: the weights of every expert that got a token.
    touched = int(torch.unique(ids[ids >= 0]).numel())
    res["experts_touched"] = touched
    weight_bytes = touched * 3 * I * H * 2
    res["routed_weight_GB"] = weight_bytes / 1e9

    # Latency.
    reps = args.reps
    res["ours_routed_ms"], _ = time_ms(
        lambda: lib.routed(x, ids, weights, W.w13, W.w2, r_o, ws, m), reps=reps)
    res["ours_layer_ms"], _ = time_ms(lambda: ours_layer(lib, x, W, m), reps=reps)
    res["torch_routed_ms"], _ = time_ms(lambda: torch_routed(x, ids, weights, W, m), reps=reps)
    res["torch_layer_ms"], _ = time_ms(lambda: torch_layer(x, W, m), reps=reps)
    if args.triton:
        res["triton_routed_ms"], _ = time_ms(
            lambda: triton_moe.routed(x, ids, weights, W.w13, W.w2, cfg), reps=reps)
        res["triton_routed_TFLOPs"] = flops / (res["triton_routed_ms"] * 1e-3) / 1e12
        res["triton_routed_peak_MB"] = peak_bytes(
            lambda: triton_moe.routed(x, ids, weights, W.w13, W.w2, cfg)) / 2**20
        res["ours_routed_peak_MB"] = peak_bytes(lambda: ours_routed_alloc(lib, x, ids, weights, W, m)) / 2**20
    if args.compare_impls:
        for impl in ("mma",):
            lib.use_tuning(impl)  # bench/tuning/mma.tuning
            res[f"ours_routed_{impl}_ms"], _ = time_ms(
                lambda: lib.routed(x, ids, weights, W.w13, W.w2, r_o, ws, m), reps=max(3, reps // 2))
            lib.use_tuning(None)
        lib.use_tuning("no-pdl")
        res["ours_routed_nopdl_ms"], _ = time_ms(
            lambda: lib.routed(x, ids, weights, W.w13, W.w2, r_o, ws, m), reps=max(3, reps // 2))
        lib.use_tuning(None)
    res["ours_routed_TFLOPs"] = flops / (res["ours_routed_ms"] * 1e-3) / 1e12
    res["torch_routed_TFLOPs"] = flops / (res["torch_routed_ms"] * 1e-3) / 1e12
    res["ours_routed_weight_TBps"] = weight_bytes / (res["ours_routed_ms"] * 1e-3) / 1e12
    res["ours_weight_bw_frac_of_copy"] = res["ours_routed_weight_TBps"] / ceil["copy_TBps"]
    del ws, r_o

    # Transient memory above weights and input.
    res["ours_alloc_sum_MB"] = alloc_sum / 2**20
    res["ours_peak_MB"] = peak_bytes(lambda: ours_layer(lib, x, W, m)[0]) / 2**20
    res["torch_peak_MB"] = peak_bytes(lambda: torch_layer(x, W, m)) / 2**20
    res["ours_routed_ws_MB"] = lib.routed_ws_bytes(T, m) / 2**20
    return res


def fmt_table(rows, ceil, dev):
    out = []
    out.append(f"device: {dev}; copy {ceil['copy_TBps']:.2f} TB/s (read+write), "
               f"bf16 8192^3 mm {ceil['bf16_mm_TFLOPs']:.0f} TFLOP/s")
    hdr = ("| model | T | ours layer ms | torch layer ms | ours routed ms | TFLOP/s | "
           "torch routed ms | TFLOP/s | ours peak MB (sum) | torch peak MB | layer relL2 | "
           "routed relL2 (same routing) | routing agree | ours / torch relL2 vs fp32 |")
    out.append(hdr)
    out.append("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        out.append(
            f"| {r['model']} | {r['T']} | {r['ours_layer_ms']:.3f} | {r['torch_layer_ms']:.3f} | "
            f"{r['ours_routed_ms']:.3f} | {r['ours_routed_TFLOPs']:.0f} | {r['torch_routed_ms']:.3f} | "
            f"{r['torch_routed_TFLOPs']:.0f} | {r['ours_peak_MB']:.0f} ({r['ours_alloc_sum_MB']:.0f}) | "
            f"{r['torch_peak_MB']:.0f} | {r['layer_relL2']:.2e} | {r['routed_relL2_same_routing']:.2e} | "
            f"{100 * r['routing_agreement']:.2f}% | {r['ours_relL2_vs_fp32']:.2e} / "
            f"{r['torch_relL2_vs_fp32']:.2e} |")
    dec = [r for r in rows if r["T"] <= 64]
    if dec:
        out.append("")
        out.append("| model | T | experts touched | weight GB | ours routed ms | weight TB/s | "
                   "fraction of copy bw |")
        out.append("|---|---|---|---|---|---|---|")
        for r in dec:
            out.append(f"| {r['model']} | {r['T']} | {r['experts_touched']} | "
                       f"{r['routed_weight_GB']:.2f} | {r['ours_routed_ms']:.3f} | "
                       f"{r['ours_routed_weight_TBps']:.2f} | "
                       f"{100 * r['ours_weight_bw_frac_of_copy']:.0f}% |")
    tri = [r for r in rows if "triton_routed_ms" in r]
    if tri:
        out.append("")
        out.append("| model | T | ours routed ms | TFLOP/s | triton routed ms | TFLOP/s | "
                   "torch routed ms | ours / triton peak MB | triton config (BM, BN, BK, GM, "
                   "warps, stages) | triton relL2 (same routing) |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in tri:
            out.append(f"| {r['model']} | {r['T']} | {r['ours_routed_ms']:.3f} | "
                       f"{r['ours_routed_TFLOPs']:.0f} | {r['triton_routed_ms']:.3f} | "
                       f"{r['triton_routed_TFLOPs']:.0f} | {r['torch_routed_ms']:.3f} | "
                       f"{r['ours_routed_peak_MB']:.0f} / {r['triton_routed_peak_MB']:.0f} | "
                       f"{tuple(r['triton_config'])} | "
                       f"{r['triton_routed_relL2_same_routing']:.2e} |")
    imp = [r for r in rows if "ours_routed_mma_ms" in r]
    if imp:
        out.append("")
        out.append("| model | T | routed wgmma ms | routed mma.sync ms | wgmma, PDL master off ms |")
        out.append("|---|---|---|---|---|")
        for r in imp:
            out.append(f"| {r['model']} | {r['T']} | {r['ours_routed_ms']:.3f} | "
                       f"{r['ours_routed_mma_ms']:.3f} | {r['ours_routed_nopdl_ms']:.3f} |")
    return "\n".join(out)


AB_VARIANTS = [  # name, tuning file in bench/tuning (None: the default configs)
    ("default (policy by size)", None),
    ("n256 plain", "n256-plain"),
    ("n256 +skip +PDL", "n256-skip-pdl"),
    ("n128 plain", "n128-plain"),
    ("n128 +skip +PDL", "n128-skip-pdl"),
    ("default, 128-row A boxes", "full-a-boxes"),
    ("default, 32-bit epilogue stores", "scalar-epilogue"),
    ("default, partial tiles from registers", "direct-partial-stores"),
]


def ab_matrix(lib, args):
    """Variants of our routed experts timed interleaved (one call of each per
    round, median over rounds), so that clock drift hits all alike."""
    name = args.models.split(",")[0]
    m = MODELS[name]
    W = Weights(m, seed=sum(map(ord, name)))
    rows = []
    for T in (int(t) for t in args.tokens.split(",")):
        x = torch.randn(T, m["H"], device="cuda", dtype=torch.bfloat16)
        logits = torch.empty(T, m["E"], device="cuda", dtype=torch.float32)
        ids = torch.empty(T, m["K"], device="cuda", dtype=torch.int32)
        w = torch.empty(T, m["K"], device="cuda", dtype=torch.float32)
        lib.gate(x, W.wg, logits)
        lib.topk(logits, W.bias, ids, w, m)
        out = torch.empty_like(x)
        ws = torch.empty(lib.routed_ws_bytes(T, m), device="cuda", dtype=torch.uint8)
        times = {v[0]: [] for v in AB_VARIANTS}
        for rnd in range(args.reps + 2):
            for vname, tuning in AB_VARIANTS:
                lib.use_tuning(tuning)
                s = torch.cuda.Event(enable_timing=True)
                e = torch.cuda.Event(enable_timing=True)
                s.record()
                lib.routed(x, ids, w, W.w13, W.w2, out, ws, m)
                e.record()
                e.synchronize()
                if rnd >= 2:
                    times[vname].append(s.elapsed_time(e))
        lib.use_tuning(None)
        row = dict(model=name, T=T, **{k: statistics.median(v) for k, v in times.items()})
        rows.append(row)
        print("AB", json.dumps(row), flush=True)
    del W
    torch.cuda.empty_cache()
    return rows


def grouped_mm_reference(lib, args):
    """torch._grouped_mm alone on the gate/up and down GEMMs of the first
    model at the largest T (our routing), for the GEMM-level comparison with
    the per-kernel (ncu) times of our GEMMs."""
    name = args.models.split(",")[0]
    m = MODELS[name]
    T = max(int(t) for t in args.tokens.split(","))
    W = Weights(m, seed=sum(map(ord, name)))
    x = torch.randn(T, m["H"], device="cuda", dtype=torch.bfloat16)
    logits = torch.empty(T, m["E"], device="cuda", dtype=torch.float32)
    ids = torch.empty(T, m["K"], device="cuda", dtype=torch.int32)
    w = torch.empty(T, m["K"], device="cuda", dtype=torch.float32)
    lib.gate(x, W.wg, logits)
    lib.topk(logits, W.bias, ids, w, m)
    flat = ids.view(-1).long()
    order = torch.argsort(flat, stable=True)
    offs = torch.cumsum(torch.bincount(flat, minlength=m["E"]), 0).to(torch.int32)
    xs = x[order // m["K"]]
    act = torch.randn(xs.shape[0], m["I"], device="cuda", dtype=torch.bfloat16)
    w13t, w2t = W.w13.transpose(1, 2), W.w2.transpose(1, 2)
    ms1, _ = time_ms(lambda: torch._grouped_mm(xs, w13t, offs=offs), reps=args.reps)
    ms2, _ = time_ms(lambda: torch._grouped_mm(act, w2t, offs=offs), reps=args.reps)
    TK = T * m["K"]
    f1, f2 = 2.0 * TK * 2 * m["I"] * m["H"], 2.0 * TK * m["H"] * m["I"]
    res = dict(model=name, T=T, gateup_ms=ms1, gateup_TFLOPs=f1 / ms1 / 1e9,
               down_ms=ms2, down_TFLOPs=f2 / ms2 / 1e9)
    print("GROUPED_MM", json.dumps(res), flush=True)
    return res


def profile_once(lib, args):
    """One routed-experts call of the first model at the largest T, for ncu."""
    name = args.models.split(",")[0]
    m = MODELS[name]
    T = args.profile_tokens or max(int(t) for t in args.tokens.split(","))
    W = Weights(m, seed=1)
    x = torch.randn(T, m["H"], device="cuda", dtype=torch.bfloat16)
    logits = torch.empty(T, m["E"], device="cuda", dtype=torch.float32)
    ids = torch.empty(T, m["K"], device="cuda", dtype=torch.int32)
    w = torch.empty(T, m["K"], device="cuda", dtype=torch.float32)
    lib.gate(x, W.wg, logits)
    lib.topk(logits, W.bias, ids, w, m)
    out = torch.empty_like(x)
    ws = torch.empty(lib.routed_ws_bytes(T, m), device="cuda", dtype=torch.uint8)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStart()
    lib.routed(x, ids, w, W.w13, W.w2, out, ws, m)
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaProfilerStop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-kernels/libmoe_kernels_capi.so")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--tokens", default="64,4096,16384")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--compare-impls", action="store_true",
                    help="also time the mma.sync GEMMs")
    ap.add_argument("--profile-once", action="store_true")
    ap.add_argument("--grouped-mm", action="store_true",
                    help="only time torch._grouped_mm on the first model's GEMMs")
    ap.add_argument("--ab", action="store_true",
                    help="first time the tuning variants of the first model")
    ap.add_argument("--triton", action="store_true",
                    help="also time a tuned Triton fused-MoE routed path (bench/triton_moe.py)")
    ap.add_argument("--profile-tokens", type=int, default=0)
    ap.add_argument("--ref-tokens", type=int, default=16,
                    help="tokens checked against the fp32 reference")
    args = ap.parse_args()
    lib = Lib(os.path.abspath(args.lib))
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.profile_once:
        profile_once(lib, args)
        return
    if args.grouped_mm:
        grouped_mm_reference(lib, args)
        return
    dev = torch.cuda.get_device_name()
    ceil = measure_ceilings()
    print(f"device {dev}: copy {ceil['copy_TBps']:.2f} TB/s, mm {ceil['bf16_mm_TFLOPs']:.0f} TFLOP/s",
          flush=True)
    ab = ab_matrix(lib, args) if args.ab else []
    rows = []
    for name in args.models.split(","):
        m = MODELS[name]
        W = Weights(m, seed=sum(map(ord, name)))
        torch.cuda.synchronize()
        for T in (int(t) for t in args.tokens.split(",")):
            r = run_config(lib, name, m, W, T, args, ceil)
            rows.append(r)
            print(json.dumps(r), flush=True)
        del W
        torch.cuda.empty_cache()
    table = fmt_table(rows, ceil, dev)
    if ab:
        names = [v[0] for v in AB_VARIANTS]
        lines = ["", "| model | T | " + " | ".join(f"{n} ms" for n in names) + " |",
                 "|---|---|" + "---|" * len(names)]
        for r in ab:
            lines.append(f"| {r['model']} | {r['T']} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |")
        table += "\n" + "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(device=dev, date=datetime.datetime.now().isoformat(),
                           torch=torch.__version__, ceilings=ceil, rows=rows, ab=ab,
                           table=table), f, indent=1)


if __name__ == "__main__":
    main()
