#!/usr/bin/env python3
"""Random MoE programs through the whole tool chain, checked op by op.

For each seed: a random Hugging Face-style config.json (odd hidden and
intermediate sizes, 4-32 experts, softmax or grouped sigmoid with shared
experts), 1-8 chained layers, in place or not, 1-5000 tokens; then moe-gen,
moe-compile and `moe-run --check --json`. Prints one line per program and
exits 1 if any check fails.

With --dtype fp8 (first argument), fp8 layers instead (moe-gen --dtype fp8:
f8E4M3FN expert weights with 128x128 block scales, bf16 activations):
hidden 256 or 384, moe_intermediate 128 or 256 (multiples of 128, as the
fp8 format needs), 4-16 experts, softmax or grouped sigmoid with shared
experts, 1-4 layers, 1-1000 tokens.

With --compile-only (after --dtype, if given), the programs are generated
and compiled but not run: OUTDIR/list.txt gets one line per program,
"p<seed>.so TOKENS SEED", for running them elsewhere (e.g. on a GPU machine
with `moe-run DIR/p<seed>.so --backend cuda --tokens TOKENS --seed SEED
--check`: bench/check_programs_gpu.sh).

usage: random-programs.py [--dtype bf16|fp8] [--compile-only] OUTDIR SEEDS
                          [moe-run options...]
  SEEDS: "1-16" or "3,5,8"
"""
import json
import os
import random
import subprocess
import sys


def seeds_of(text):
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def program(seed):
    r = random.Random(seed)
    E = r.choice([4, 6, 8, 12, 16, 24, 32])
    G = r.choice([g for g in (1, 2, 4) if E % g == 0 and E // g >= 2])
    cfg = {"hidden_size": r.randrange(17, 200, 2) + (r.random() < .5),
           "moe_intermediate_size": r.randrange(7, 90, 2),
           "n_routed_experts": E,
           "norm_topk_prob": r.random() < .7}
    K = r.randint(1, min(8, E // G * max(1, G // 2)))
    if r.random() < .5:
        cfg.update(model_type="deepseek_v3", n_group=G, topk_group=max(1, G // 2),
                   n_shared_experts=r.randint(0, 2),
                   routed_scaling_factor=round(r.uniform(1, 3), 3))
        K = min(K, (E // G) * max(1, G // 2))
    else:
        cfg.update(model_type="qwen3_moe")
    cfg["num_experts_per_tok"] = K
    layers = r.randint(1, 8)
    tokens = r.choice([1, 2, 7, r.randint(1, 300), r.randint(1, 5000)])
    return cfg, layers, tokens, r.random() < .3


def fp8_program(seed):
    r = random.Random(seed)
    E = r.choice([4, 6, 8, 12, 16])
    G = r.choice([g for g in (1, 2, 4) if E % g == 0 and E // g >= 2])
    cfg = {"hidden_size": r.choice([256, 384]),
           "moe_intermediate_size": r.choice([128, 256]),
           "n_routed_experts": E,
           "norm_topk_prob": r.random() < .7}
    K = r.randint(1, min(8, E // G * max(1, G // 2)))
    if r.random() < .5:
        cfg.update(model_type="deepseek_v3", n_group=G, topk_group=max(1, G // 2),
                   n_shared_experts=r.randint(0, 2),
                   routed_scaling_factor=round(r.uniform(1, 3), 3))
        K = min(K, (E // G) * max(1, G // 2))
    else:
        cfg.update(model_type="qwen3_moe")
    cfg["num_experts_per_tok"] = K
    layers = r.randint(1, 4)
    tokens = r.choice([1, 2, 7, r.randint(1, 300), r.randint(1, 1000)])
    return cfg, layers, tokens, r.random() < .3


def main():
    args = sys.argv[1:]
    dtype = "bf16"
    if args[:1] == ["--dtype"]:
        dtype, args = args[1], args[2:]
    compile_only = args[:1] == ["--compile-only"]
    if compile_only:
        args = args[1:]
    if dtype not in ("bf16", "fp8"):
        sys.exit(f"random-programs.py: unknown --dtype {dtype} (bf16 or fp8)")
    out, seeds, extra = args[0], seeds_of(args[1]), args[2:]
    os.makedirs(out, exist_ok=True)
    failed = 0
    listing = open(os.path.join(out, "list.txt"), "w") if compile_only else None
    for seed in seeds:
        cfg, layers, tokens, inplace = (fp8_program if dtype == "fp8"
                                        else program)(seed)
        base = os.path.join(out, f"p{seed}")
        with open(base + ".json", "w") as f:
            json.dump(cfg, f)
        gen = ["moe-gen", "--model", base + ".json", "--layers", str(layers),
               "-o", base + ".mlir"] + (["--routed-inplace"] if inplace else [])
        if dtype == "fp8":
            gen += ["--dtype", "fp8"]
        subprocess.run(gen, check=True)
        subprocess.run(["moe-compile", base + ".mlir", "-o", base + ".so"],
                       check=True)
        if listing:
            listing.write(f"p{seed}.so {tokens} {seed}\n")
            continue
        run = subprocess.run(["moe-run", base + ".so", "--tokens", str(tokens),
                              "--seed", str(seed), "--check", "--json"] + extra,
                             capture_output=True, text=True)
        try:
            report = json.loads(run.stdout)
        except ValueError:
            report = {}
        ok = run.returncode == 0 and report.get("check") == "passed"
        failed += not ok
        what = (f"{cfg['model_type']} E={cfg['n_routed_experts']} "
                f"K={cfg['num_experts_per_tok']} H={cfg['hidden_size']} "
                f"I={cfg['moe_intermediate_size']} layers={layers} "
                f"tokens={tokens}{' inplace' if inplace else ''}")
        worst = report.get("op_max_err_over_tolerance")
        print(f"seed {seed}: {what}: {'passed' if ok else 'FAILED'}"
              + (f" (worst op {worst:.2f} of its tolerance)" if ok else ""))
        if not ok:
            print("  " + run.stderr.strip().replace("\n", "\n  "))
    if listing:
        listing.close()
        print(f"{len(seeds)} programs compiled")
        return 0
    print(f"{len(seeds) - failed} of {len(seeds)} programs passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
