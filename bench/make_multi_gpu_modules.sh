#!/usr/bin/env bash
# Per-rank programs for bench/multi_gpu.sh, compiled here (the GPU host has
# no MLIR): for each group size N,
#   check-tpN{,-noopt}.so  a small odd-shaped two-layer DeepSeek-like layer
#                          (test/Integration/Inputs/deepseek-odd.json), TP=N;
#   MODEL-tpN{,-noopt}.so  DeepSeek-V3 and Kimi-K2, one layer, TP=N, dynamic
#                          token count, optimized and not.
#   bench/make_multi_gpu_modules.sh BUILD_BIN OUTDIR ["2 4 8"]
set -euo pipefail
bin=$1; out=$2; sizes=${3:-2 4 8}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
for n in $sizes; do
  "$bin/moe-gen" --model "$here/test/Integration/Inputs/deepseek-odd.json" \
    --layers 2 --tp "$n" -o "$out/check-tp$n.mlir"
  "$bin/moe-compile" "$out/check-tp$n.mlir" -o "$out/check-tp$n.so"
  "$bin/moe-compile" "$out/check-tp$n.mlir" --no-optimize -o "$out/check-tp$n-noopt.so"
  for model in deepseek-v3 kimi-k2; do
    "$bin/moe-gen" --model "$model" --tp "$n" -o "$out/$model-tp$n.mlir"
    "$bin/moe-compile" "$out/$model-tp$n.mlir" -o "$out/$model-tp$n.so"
    "$bin/moe-compile" "$out/$model-tp$n.mlir" --no-optimize -o "$out/$model-tp$n-noopt.so"
  done
done
rm -f "$out"/*.mlir
ls "$out"
