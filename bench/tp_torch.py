#!/usr/bin/env python3
"""The PyTorch peer of a tensor-parallel MoE layer, and NCCL's own all-reduce,
on N GPUs with torch.distributed (NCCL), one process per rank.

Each rank holds 1/N of every expert's intermediate size (the layer of
bench/moe_bench.py with I/N and IS/N: gate, top-k, routed experts through
torch._grouped_mm, shared experts, add) and ends with dist.all_reduce of its
output, as sglang's TP MoE does. Reported per rank: median latency (CUDA
events, all ranks entering each iteration together), max_memory_allocated
above the weights and input; and the all-reduce alone on a T x H bf16 tensor:
its time and bus bandwidth (2 (N-1)/N bytes / time, NCCL's convention).

  bench/tp_torch.py --ranks N --model deepseek-v3 --tokens 4096 16384
prints one JSON line per (model, tokens). NVLink multicast is left as NCCL
finds it configured (never enabled here).
"""
import argparse
import json
import os
import statistics
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moe_bench import MODELS, Weights, torch_layer  # noqa: E402

# The whole layers (TP=1 sizes); each rank takes I/N and IS/N.
WHOLE = {
    "deepseek-v3": MODELS["deepseek-v3-tp1"],
    "kimi-k2": dict(MODELS["kimi-k2-tp4"], I=2048, IS=2048),
}


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        dist.barrier()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def rank_main(rank, n, args, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=n)
    for model in args.model:
        whole = WHOLE[model]
        m = dict(whole, I=whole["I"] // n, IS=whole["IS"] // n)
        W = Weights(m, seed=1 + rank)
        for T in args.tokens:
            g = torch.Generator(device="cuda").manual_seed(7)  # same x on every rank
            x = torch.randn(T, m["H"], generator=g, device="cuda").to(torch.bfloat16)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()

            def layer():
                y = torch_layer(x, W, m)
                dist.all_reduce(y)
                return y

            ms = timed(layer, args.warmup, args.repeat)
            peak = torch.cuda.max_memory_allocated() - base
            buf = torch.empty(T, m["H"], device="cuda", dtype=torch.bfloat16)
            ar_ms = timed(lambda: dist.all_reduce(buf), args.warmup, args.repeat)
            nbytes = buf.numel() * buf.element_size()
            del buf
            queue.put(dict(model=model, tokens=T, rank=rank, ranks=n,
                           latency_ms=ms, peak_bytes=peak,
                           all_reduce_ms=ar_ms, all_reduce_bytes=nbytes,
                           all_reduce_busbw_gbs=2 * (n - 1) / n * nbytes / ar_ms / 1e6
                           if n > 1 else None))
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=torch.cuda.device_count())
    ap.add_argument("--model", nargs="+", default=["deepseek-v3", "kimi-k2"],
                    choices=sorted(WHOLE))
    ap.add_argument("--tokens", nargs="+", type=int, default=[4096, 16384])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--port", type=int, default=29517)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, args.ranks, args, args.port, queue))
             for r in range(args.ranks)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows = []
    while not queue.empty():
        rows.append(queue.get())
    if any(p.exitcode != 0 for p in procs):
        sys.exit("a rank failed")
    for key in sorted({(r["model"], r["tokens"]) for r in rows}):
        ranks = sorted((r for r in rows if (r["model"], r["tokens"]) == key),
                       key=lambda r: r["rank"])
        print(json.dumps(dict(model=key[0], tokens=key[1], ranks=args.ranks,
                              latency_ms=max(r["latency_ms"] for r in ranks),
                              per_rank=ranks)))


if __name__ == "__main__":
    main()
