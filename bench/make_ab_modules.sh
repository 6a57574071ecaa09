#!/usr/bin/env bash
# Compiles the modules of the optimized-vs-unoptimized A/B (on the machine
# with MLIR): DeepSeek-V3 and Kimi-K2 at TP=4, 1, 4 and 16 layers, each with
# and without moe-optimize.
#   bench/make_ab_modules.sh BUILD_DIR OUTDIR
# Then bench/ab_optimize_gpu.sh runs them.
set -euo pipefail
build=$1; out=$2
mkdir -p "$out"
for model in deepseek-v3 kimi-k2; do
  for layers in 1 4 16; do
    name="$model-tp4-l$layers"
    "$build/bin/moe-gen" --model "$model" --tp 4 --layers "$layers" -o "$out/$name.mlir"
    "$build/bin/moe-compile" "$out/$name.mlir" -o "$out/$name-opt.so"
    "$build/bin/moe-compile" "$out/$name.mlir" --no-optimize -o "$out/$name-noopt.so"
    rm "$out/$name.mlir"
  done
done
ls -l "$out"
