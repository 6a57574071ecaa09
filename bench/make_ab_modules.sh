#!/usr/bin/env bash
# Compiles the modules of the optimized-vs-unoptimized A/B (on the machine
# with MLIR): DeepSeek-V3 and Kimi-K2 at TP=4, 1, 4 and 16 layers (dynamic
# token count), each with moe-compile's default pipeline (NAME-opt.so) and
# with --no-optimize (NAME-noopt.so), NAME = MODEL-tp4-lLAYERS: 12 modules.
#   bench/make_ab_modules.sh BIN_DIR OUTDIR
# BIN_DIR holds moe-gen and moe-compile (a build directory works too: its
# bin/ is used). Prints each compile's time. Then bench/ab_optimize_gpu.sh
# runs them on the GPU.
set -euo pipefail
bin=$1; out=$2
[[ -x "$bin/moe-compile" ]] || bin="$bin/bin"
mkdir -p "$out"
now() { date +%s.%N; }
for model in deepseek-v3 kimi-k2; do
  for layers in 1 4 16; do
    name="$model-tp4-l$layers"
    "$bin/moe-gen" --model "$model" --tp 4 --shard-only --layers "$layers" -o "$out/$name.mlir"
    t0=$(now)
    "$bin/moe-compile" "$out/$name.mlir" -o "$out/$name-opt.so"
    t1=$(now)
    "$bin/moe-compile" "$out/$name.mlir" --no-optimize -o "$out/$name-noopt.so"
    t2=$(now)
    awk -v n="$name" -v a="$t0" -v b="$t1" -v c="$t2" \
      'BEGIN { printf "%-22s moe-compile %.2f s, --no-optimize %.2f s\n", n, b - a, c - b }'
    rm "$out/$name.mlir"
  done
done
ls -l "$out"
