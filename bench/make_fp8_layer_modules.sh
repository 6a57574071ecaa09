#!/usr/bin/env bash
# Compiles the modules of the fp8-vs-bf16 layer comparison (on the machine
# with MLIR): DeepSeek-V3 and Kimi-K2 at TP=4, one layer, dynamic token
# count, bf16 and fp8 experts (moe-gen --dtype fp8), optimized:
# MODEL-tp4-{bf16,fp8}.so. Then bench/fp8_layer_gpu.sh runs them.
#   bench/make_fp8_layer_modules.sh BIN_DIR OUTDIR
set -euo pipefail
bin=$1; out=$2
[[ -x "$bin/moe-compile" ]] || bin="$bin/bin"
mkdir -p "$out"
for model in deepseek-v3 kimi-k2; do
  for dtype in bf16 fp8; do
    name="$model-tp4-$dtype"
    "$bin/moe-gen" --model "$model" --tp 4 --shard-only --dtype "$dtype" -o "$out/$name.mlir"
    "$bin/moe-compile" "$out/$name.mlir" -o "$out/$name.so"
    rm "$out/$name.mlir"
  done
done
ls -l "$out"
