#!/usr/bin/env bash
# Compiles the layers that bench/run_compiled_gpu.sh runs (on the machine
# with MLIR): bench/make_compiled_modules.sh BUILD_DIR OUTDIR
set -euo pipefail
build=$1; out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
gen="$build/bin/moe-gen"; opt="$build/bin/moe-opt"; compile="$build/bin/moe-compile"
"$gen" --model "$root/examples/deepseek-v3-mini.json" > "$out/mini.mlir"
"$gen" --model "$root/test/tools/moe-gen/Inputs/minimal-qwen3.json" --routed-inplace > "$out/mini-inplace-qwen.mlir"
"$gen" --model deepseek-v3 --tp 4 --shard-only > "$out/ds-tp4.mlir"
for m in mini mini-inplace-qwen ds-tp4; do
  "$compile" "$out/$m.mlir" -o "$out/$m-opt.so"
  "$compile" "$out/$m.mlir" -o "$out/$m-noopt.so" --no-optimize
done
# Only the seed's rule: shared experts deferred, no scheduling or plan.
"$opt" "$out/ds-tp4.mlir" --moe-defer-shared-experts > "$out/ds-tp4-defer.mlir"
"$compile" "$out/ds-tp4-defer.mlir" -o "$out/ds-tp4-defer.so" --no-optimize
rm -f "$out"/*.mlir
