#!/usr/bin/env bash
# Times moe-optimize (defer, schedule, plan) on a 61-layer DeepSeek-V3
# function and on synthetic blocks, with moe-opt's pass timer; prints the
# median of 5 runs of the pass (not parsing or printing), with and without
# the verifier that follows it.
#   bench/compile_time.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$build/bin/moe-gen" --model deepseek-v3 --tp 4 --shard-only --layers 61 > "$tmp/ds61.mlir"
# Synthetic moe blocks: chains of small MoE layers (17 ops per layer with
# allocations and deallocations).
"$build/bin/moe-gen" --model deepseek-v3 --tp 4 --shard-only --layers 590 > "$tmp/moe10k.mlir"
"$build/bin/moe-gen" --model deepseek-v3 --tp 4 --shard-only --layers 5900 > "$tmp/moe100k.mlir"
# Synthetic linalg blocks: random local dependences, in-place ops.
python3 "$here/gen_synthetic_block.py" 10000 > "$tmp/linalg10k.mlir"
python3 "$here/gen_synthetic_block.py" 100000 > "$tmp/linalg100k.mlir"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The pass timer's figure includes the verifier that runs after the pass
# (upstream code: linalg ops' verifiers are a large part of it); the last
# column is the pass alone (-verify-each=0).
printf '%-12s %10s %10s %16s %16s\n' block ops nodes "moe-optimize" "w/o verifier"
for name in ds61 moe10k moe100k linalg10k linalg100k; do
  file="$tmp/$name.mlir"
  ops=$(grep -cE '^ +(%[^ ]+ = )?[a-z_]+\.[a-z_]+' "$file")
  nodes=$(grep -cE '^ +(moe\.|linalg\.)' "$file")
  timed() {
    for _ in 1 2 3 4 5; do
      "$build/bin/moe-opt" "$file" --moe-optimize --mlir-timing "$@" -o /dev/null 2>&1 |
        awk '/MoEOptimize/ {print $1}'
    done | median
  }
  with=$(timed)
  without=$(timed -verify-each=0)
  printf '%-12s %10s %10s %13.1f ms %13.1f ms\n' "$name" "$ops" "$nodes" \
    "$(echo "$with * 1000" | bc -l)" "$(echo "$without * 1000" | bc -l)"
done
