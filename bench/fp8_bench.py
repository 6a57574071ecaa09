#!/usr/bin/env python3
"""fp8 block-scaled routed experts: ours (kernels/, through the C ABI of libmoe_kernels_capi.so)
against vLLM's Triton fused_moe_kernel in its fp8 w8a8 block-quantized mode, on DeepSeek-V3 at
TP=4 (H=7168, I=512, E=256, K=8), in one process on one card.

Data (seeded): hidden states ~ N(0, 1) in bf16. Routing (--routing deepseek, the default):
DeepSeek-V3's rule on a random gate (std 0.02) and correction bias (std 0.05): sigmoid scores,
the best 4 of 8 expert groups by the sum of their top-2 biased scores, the top 8 biased experts
in them, weights = their unbiased scores renormalized times 2.5; --routing uniform: 8 distinct
experts per token uniformly at random, weights uniform in [0, 1) renormalized times 2.5.
Expert weights: random bf16 (std 0.02); for the fp8 variants quantized to e4m3 in 128x128 blocks
with fp32 scales = block amax / 448 (as DeepSeek-V3's checkpoints store them).

Variants, each from bf16 hidden states, int32 ids and fp32 weights [T, K] to the bf16 [T, H] sum:
  vllm-fp8          vLLM's kernels launched as vLLM does (bench/vllm_fp8.py; needs .peers/,
                    made by bench/fetch_peers.sh)
  vllm-fp8-noalign  the same with the expert alignment computed beforehand (vLLM aligns with a
                    CUDA op, bench/vllm_fp8.py in PyTorch, whose host time shows at small T):
                    a lower bound of vLLM's time (T <= 16384: one chunk)
  ours-fp8          moek_routed_experts_fp8 on the same e4m3 weights and scales
  ours-bf16         moek_routed_experts on the unquantized bf16 weights
Timing: CUDA events around each call, outputs and workspaces allocated by torch in the call;
the variants interleaved (one call of each per round: A B C A B C ...), --warmup rounds dropped,
median over --reps rounds. TFLOP/s from 2*T*K*(H*2I + I*H) useful flops, set beside DeepGEMM's
published 1.2-1.5 PFLOP/s for its fp8 grouped GEMMs on H800 (GEMMs alone, no quantization,
activation or sum). Accuracy: each output against an fp32 reference from the unquantized bf16
weights on the first --ref-tokens tokens: relative L2 error and max |error| / rms(reference).
Transient memory: torch.cuda.max_memory_allocated above the baseline around one call.
Prints a markdown table; --json writes the results.
"""
import argparse
import ctypes
import datetime
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moe_bench import MODELS, Lib, peak_bytes  # noqa: E402

MODEL = MODELS["deepseek-v3-tp4"]
H, I, E, K = MODEL["H"], MODEL["I"], MODEL["E"], MODEL["K"]
N_GROUP, TOPK_GROUP, SCALE = MODEL["n_group"], MODEL["topk_group"], MODEL["scale"]
BLOCK = 128
FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max  # 448
DEEPGEMM_TFLOPS = (1200.0, 1500.0)
TARGET_SPEEDUP = 1.3


class Fp8Lib(Lib):
    """moe_bench.Lib plus the fp8 entry points of kernels/capi.cpp (has_fp8, has_quant:
    whether the library has them)."""

    def __init__(self, path):
        super().__init__(path)
        L = self.lib
        self.has_fp8 = hasattr(L, "moek_routed_experts_fp8")
        if self.has_fp8:
            vp, i64 = ctypes.c_void_p, ctypes.c_int64
            L.moek_routed_experts_fp8_workspace_bytes.argtypes = [i64, i64, i64, i64, i64]
            L.moek_routed_experts_fp8_workspace_bytes.restype = i64
            # hidden, ids, weights, w13, w13Scale, w2, w2Scale, out, T, H, E, K, I, ws,
            # wsBytes, stream
            L.moek_routed_experts_fp8.argtypes = [vp] * 8 + [i64] * 5 + [vp, i64, vp]
        self.has_quant = hasattr(L, "moek_quantize_fp8")
        if self.has_quant:  # x, rows, cols, q, scales, stream
            L.moek_quantize_fp8.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def fp8_ws_bytes(self, T):
        return self.lib.moek_routed_experts_fp8_workspace_bytes(T, H, E, K, I)

    def routed_fp8(self, x, ids, weights, W, out, ws):
        self.check(self.lib.moek_routed_experts_fp8(
            x.data_ptr(), ids.data_ptr(), weights.data_ptr(), W.q13.data_ptr(),
            W.s13.data_ptr(), W.q2.data_ptr(), W.s2.data_ptr(), out.data_ptr(), x.shape[0],
            H, E, K, I, ws.data_ptr(), ws.numel(), self.stream()), "routed_experts_fp8")


    def quantize_fp8(self, x):
        """Our activation quantizer: bf16 x [R, C] -> (e4m3 [R, C], fp32 scales [R, C/128])."""
        q = torch.empty(x.shape, device="cuda", dtype=FP8)
        s = torch.empty(x.shape[0], x.shape[1] // BLOCK, device="cuda")
        self.check(self.lib.moek_quantize_fp8(x.data_ptr(), x.shape[0], x.shape[1], q.data_ptr(),
                                              s.data_ptr(), self.stream()), "quantize_fp8")
        return q, s


def quantize_blocks(w):
    """w [R, C] -> (e4m3 [R, C], fp32 scales [R/128, C/128]): each 128x128 block divided by
    its scale amax / 448."""
    R, C = w.shape
    b = w.float().view(R // BLOCK, BLOCK, C // BLOCK, BLOCK)
    s = b.abs().amax(dim=(1, 3), keepdim=True).clamp(min=1e-12) / FP8_MAX
    q = (b / s).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q.view(R, C), s.view(R // BLOCK, C // BLOCK)


class Weights:
    """bf16 w13 [E, 2I, H] (gate rows, then up rows) and w2 [E, H, I]; their e4m3 copies q13,
    q2 with scales s13 [E, 2I/128, H/128], s2 [E, H/128, I/128]; the router's gate and bias."""

    def __init__(self, seed):
        g = torch.Generator(device="cuda").manual_seed(seed)
        bf = torch.bfloat16
        self.gate = torch.randn(E, H, generator=g, device="cuda") * 0.02
        self.bias = torch.randn(E, generator=g, device="cuda") * 0.05
        self.w13 = torch.empty(E, 2 * I, H, device="cuda", dtype=bf)
        self.w2 = torch.empty(E, H, I, device="cuda", dtype=bf)
        self.q13 = torch.empty(E, 2 * I, H, device="cuda", dtype=FP8)
        self.q2 = torch.empty(E, H, I, device="cuda", dtype=FP8)
        self.s13 = torch.empty(E, 2 * I // BLOCK, H // BLOCK, device="cuda")
        self.s2 = torch.empty(E, H // BLOCK, I // BLOCK, device="cuda")
        for e in range(E):
            self.w13[e].normal_(0, 0.02, generator=g)
            self.w2[e].normal_(0, 0.02, generator=g)
            self.q13[e], self.s13[e] = quantize_blocks(self.w13[e])
            self.q2[e], self.s2[e] = quantize_blocks(self.w2[e])


def route(x, W, mode, seed):
    """int32 ids and fp32 weights [T, K] (see the top)."""
    T = x.shape[0]
    if mode == "uniform":
        g = torch.Generator(device="cuda").manual_seed(seed)
        ids = torch.rand(T, E, generator=g, device="cuda").topk(K, dim=1)[1]
        w = torch.rand(T, K, generator=g, device="cuda")
    else:
        scores = (x.float() @ W.gate.t()).sigmoid()
        choice = scores + W.bias
        groups = choice.view(T, N_GROUP, -1).topk(2, dim=-1)[0].sum(dim=-1)
        keep = torch.zeros_like(groups).scatter_(1, groups.topk(TOPK_GROUP, dim=-1)[1], 1)
        choice = choice.masked_fill(keep.repeat_interleave(E // N_GROUP, dim=1) == 0,
                                    float("-inf"))
        ids = choice.topk(K, dim=-1)[1]
        w = scores.gather(1, ids)
    w = w / w.sum(dim=-1, keepdim=True) * SCALE
    return ids.to(torch.int32).contiguous(), w.float().contiguous()


def reference(x, ids, w, W, n):
    """fp32 routed experts of the first n tokens from the unquantized bf16 weights."""
    x, ids, w = x[:n].float(), ids[:n].long(), w[:n]
    out = torch.zeros(n, H, device="cuda")
    for e in torch.unique(ids).tolist():
        tok, slot = (ids == e).nonzero(as_tuple=True)
        gu = x[tok] @ W.w13[e].float().t()
        act = F.silu(gu[:, :I]) * gu[:, I:]
        out.index_add_(0, tok, (act @ W.w2[e].float().t()) * w[tok, slot, None])
    return out


def errors(y, ref):
    d = y[:ref.shape[0]].float() - ref
    return dict(relL2_vs_fp32=(d.norm() / ref.norm()).item(),
                maxerr_over_rms=(d.abs().max() / ref.pow(2).mean().sqrt()).item(),
                nan=bool(torch.isnan(y).any().item()))


def interleaved(fns, warmup, reps):
    """{name: [ms per round]}: one call of each variant per round, rounds after warmup."""
    times = {n: [] for n in fns}
    for r in range(warmup + reps):
        for name, fn in fns.items():
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            if r >= warmup:
                times[name].append(s.elapsed_time(e))
    return times


def variants(lib, vllm, x, ids, w, W):
    """{name: call} for the variants that can run here, and the vLLM launch config."""
    T = x.shape[0]
    fns, info = {}, {}
    if vllm is not None:
        cfg, src = vllm.get_config(min(T, vllm.CHUNK_SIZE), E, I)
        info["vllm_config"], info["vllm_config_source"] = cfg, src
        pre = vllm.align_for(ids, E, I)
        fns["vllm-fp8"] = lambda: vllm.routed(x, ids, w, W.q13, W.s13, W.q2, W.s2)
        fns["vllm-fp8-noalign"] = lambda: vllm.routed(x, ids, w, W.q13, W.s13, W.q2, W.s2,
                                                      aligned=pre)
    if lib is not None and lib.has_fp8:
        def ours_fp8():
            out = torch.empty_like(x)
            ws = torch.empty(lib.fp8_ws_bytes(T), device="cuda", dtype=torch.uint8)
            lib.routed_fp8(x, ids, w, W, out, ws)
            return out
        fns["ours-fp8"] = ours_fp8
    if lib is not None:
        def ours_bf16():
            out = torch.empty_like(x)
            ws = torch.empty(lib.routed_ws_bytes(T, MODEL), device="cuda", dtype=torch.uint8)
            lib.routed(x, ids, w, W.w13, W.w2, out, ws, MODEL)
            return out
        fns["ours-bf16"] = ours_bf16
    return fns, info


def run(lib, vllm, W, T, args):
    g = torch.Generator(device="cuda").manual_seed(args.seed + T)
    x = torch.randn(T, H, generator=g, device="cuda").to(torch.bfloat16)
    ids, w = route(x, W, args.routing, args.seed + T)
    fns, res = variants(lib, vllm, x, ids, w, W)
    res.update(T=T, H=H, I=I, E=E, K=K, GFLOP=2.0 * T * K * (H * 2 * I + I * H) / 1e9)

    if vllm is not None and lib is not None and lib.has_quant:
        # The same rule; Triton's fp32 division is not IEEE-rounded, so a few values differ.
        (qa, sa), (qb, sb) = lib.quantize_fp8(x), vllm.quantize(x)
        res["act_quant_vs_vllm"] = dict(
            q_equal_frac=(qa.view(torch.uint8) == qb.view(torch.uint8)).float().mean().item(),
            scale_max_rel_diff=((sa - sb).abs() / sb).max().item())
        del qa, sa, qb, sb
    ref = reference(x, ids, w, W, min(T, args.ref_tokens))
    outs = {}
    for name, fn in list(fns.items()):  # also compiles the Triton kernels before timing
        try:
            outs[name] = fn()
        except RuntimeError as e:  # a launcher's error: report it, time the others
            print(f"T={T}: dropping {name}: {e}", flush=True)
            res[name + "_error"] = str(e)
            del fns[name]
            continue
        res[name] = errors(outs[name], ref)
    torch.cuda.synchronize()
    if "ours-fp8" in outs and "vllm-fp8" in outs:
        a, b = outs["ours-fp8"].float(), outs["vllm-fp8"].float()
        res["ours_fp8_vs_vllm_fp8_relL2"] = ((a - b).norm() / b.norm()).item()
    del outs, ref

    times = interleaved(fns, args.warmup, args.reps)
    for name, fn in fns.items():
        ms = statistics.median(times[name])
        tflops = res["GFLOP"] / ms
        res[name].update(ms=ms, min_ms=min(times[name]), TFLOPs=tflops,
                         frac_of_deepgemm=[tflops / DEEPGEMM_TFLOPS[1],
                                           tflops / DEEPGEMM_TFLOPS[0]])
        if name != "vllm-fp8-noalign":
            res[name]["peak_MB"] = peak_bytes(fn) / 2**20
    for base in ("vllm-fp8", "vllm-fp8-noalign"):
        if base in fns:
            for name in fns:
                res[name][f"speedup_over_{base}"] = res[base]["ms"] / res[name]["ms"]
    return res


def table(rows, dev):
    out = [f"device: {dev}", "",
           "| T | variant | ms | TFLOP/s | of DeepGEMM 1.2-1.5 PF/s | speedup over vllm-fp8 "
           "(noalign) | relL2 vs fp32 | max err / rms | peak MB |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for name in ("vllm-fp8", "vllm-fp8-noalign", "ours-fp8", "ours-bf16"):
            if name not in r:
                continue
            v = r[name]
            lo, hi = v["frac_of_deepgemm"]
            sp = (f"{v['speedup_over_vllm-fp8']:.2f}x ({v['speedup_over_vllm-fp8-noalign']:.2f}x)"
                  if "speedup_over_vllm-fp8" in v else "-")
            peak = f"{v['peak_MB']:.0f}" if "peak_MB" in v else "-"
            out.append(f"| {r['T']} | {name} | {v['ms']:.3f} | {v['TFLOPs']:.0f} | "
                       f"{100 * lo:.0f}-{100 * hi:.0f}% | {sp} | {v['relL2_vs_fp32']:.2e} | "
                       f"{v['maxerr_over_rms']:.2e} | {peak} |")
    out.append("")
    for r in rows:
        if "vllm_config" in r:
            out.append(f"T={r['T']}: vLLM config {r['vllm_config']} from "
                       f"{r['vllm_config_source']}")
        if "ours-fp8" in r and "vllm-fp8" in r:
            sp = r["ours-fp8"]["speedup_over_vllm-fp8"]
            out.append(f"T={r['T']}: ours-fp8 over vllm-fp8 {sp:.2f}x "
                       f"({'meets' if sp >= TARGET_SPEEDUP else 'below'} the "
                       f"{TARGET_SPEEDUP}x target; over vllm-fp8-noalign "
                       f"{r['ours-fp8']['speedup_over_vllm-fp8-noalign']:.2f}x); "
                       f"ours-fp8 vs vllm-fp8 relL2 {r['ours_fp8_vs_vllm_fp8_relL2']:.2e}")
        if "act_quant_vs_vllm" in r:
            q = r["act_quant_vs_vllm"]
            out.append(f"T={r['T']}: hidden quantized by ours vs vLLM's kernel: "
                       f"{100 * q['q_equal_frac']:.4f}% equal e4m3 values, scales within "
                       f"{q['scale_max_rel_diff']:.1e} (relative)")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capi", default="build-kernels/libmoe_kernels_capi.so",
                    help="libmoe_kernels_capi.so (ours-fp8, ours-bf16)")
    ap.add_argument("--tokens", default="4096,16384")
    ap.add_argument("--reps", type=int, default=20, help="timed rounds (median; >= 20)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--routing", choices=("deepseek", "uniform"), default="deepseek")
    ap.add_argument("--ref-tokens", type=int, default=256,
                    help="tokens checked against the fp32 reference")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    if args.reps < 20:
        print(f"note: --reps {args.reps} < 20", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False

    try:
        import vllm_fp8 as vllm
    except ImportError as e:
        print(f"skipping vllm-fp8: {e}", flush=True)
        vllm = None
    lib = None
    if os.path.exists(args.capi):
        lib = Fp8Lib(os.path.abspath(args.capi))
        if not lib.has_fp8:
            print(f"skipping ours-fp8: {args.capi} has no moek_routed_experts_fp8", flush=True)
    else:
        print(f"skipping ours-fp8 and ours-bf16: no {args.capi}", flush=True)

    dev = torch.cuda.get_device_name()
    W = Weights(args.seed)
    rows = []
    for T in (int(t) for t in args.tokens.split(",")):
        r = run(lib, vllm, W, T, args)
        rows.append(r)
        print(json.dumps(r), flush=True)
    text = table(rows, dev)
    print(text)
    if args.json:
        import triton
        with open(args.json, "w") as f:
            json.dump(dict(device=dev, date=datetime.datetime.now().isoformat(),
                           torch=torch.__version__, triton=triton.__version__,
                           vllm_sources=vllm.SOURCES if vllm else None, routing=args.routing,
                           reps=args.reps, warmup=args.warmup, seed=args.seed, rows=rows,
                           table=text), f, indent=1)


if __name__ == "__main__":
    main()
