#!/usr/bin/env bash
# The main job, end to end on the CPU: generate a DeepSeek-V3-shaped MoE layer
# (reduced in size), optimize it (peak memory before and after), compile it,
# run it and check it against an independent reference.
#   scripts/demo.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${MOE_DEMO_DIR:-$build/demo}
mkdir -p "$out"
tokens=256

echo "== moe-gen: a DeepSeek-V3-shaped layer (hidden 1024, 64 experts, top-8, 1 shared expert), dynamic tokens"
"$build/bin/moe-gen" --model "$root/examples/deepseek-v3-mini.json" --tokens dynamic > "$out/layer.mlir"
grep -E '^ +moe\.' "$out/layer.mlir" | sed -E 's/ ins\(.*//'

echo
echo "== moe-opt --moe-optimize: defer shared experts, schedule, plan one arena (sizes at T = $tokens)"
"$build/bin/moe-opt" "$out/layer.mlir" --moe-optimize=token-hint=$tokens \
  --moe-memory-report="$out/report.json" --moe-memory-timeline="$out/timeline.svg" \
  > "$out/layer.opt.mlir"
python3 - "$out/report.json" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["functions"][0]
b, a = f["before"], f["after"]
print(f"  peak before: {b['peak']['expr']} bytes = {b['peak']['bytes_at_hint']} at T=hint (at {b['peak_op']})")
print(f"  peak after : {a['peak']['expr']} bytes = {a['peak']['bytes_at_hint']}")
print(f"  saving     : {f['saving']['expr']} bytes")
if "plan" in f and f["plan"].get("applied"):
    p = f["plan"]
    print(f"  arena      : {p['arena']['expr']} bytes (lower bound {p['lower_bound']['expr']})")
PY
grep -E '^ +moe\.' "$out/layer.opt.mlir" | sed -E 's/ ins\(.*//'
echo "  (report: $out/report.json, timeline: $out/timeline.svg)"

echo
echo "== moe-compile: optimized and unoptimized modules"
"$build/bin/moe-compile" "$out/layer.mlir" -o "$out/layer.so"
"$build/bin/moe-compile" "$out/layer.mlir" -o "$out/layer-noopt.so" --no-optimize

if [[ ! -x "$build/bin/moe-run" ]]; then
  echo "moe-run is not built; stopping here" >&2
  exit 1
fi
echo
echo "== moe-run --backend cpu --tokens $tokens --check"
"$build/bin/moe-run" "$out/layer.so" --backend cpu --tokens $tokens --seed 1 --check
echo
echo "== the unoptimized module: same output bits, higher peak"
"$build/bin/moe-run" "$out/layer-noopt.so" --backend cpu --tokens $tokens --seed 1 --check
