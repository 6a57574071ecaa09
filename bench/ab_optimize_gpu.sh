#!/usr/bin/env bash
# Is the optimized module as fast as the unoptimized one? For every module
# pair of bench/make_ab_modules.sh and 4096 and 16384 tokens, one
# `moe-run NOOPT --compare OPT` process: both modules on the same arguments,
# alternating for 5 rounds of 2 warmup + 5 measured iterations (layer
# weights shared across layers with --share-weights, so 16 layers fit and
# fill fast). Writes OUTDIR/ab.jsonl (moe-run's reports) and prints a table:
# medians, OPT/NOOPT, peaks (measured, planned), outputs equal.
#   bench/ab_optimize_gpu.sh MOE_RUN MODULE_DIR OUTDIR [ROUNDS]
set -uo pipefail
run=$1; modules=$2; out=$3; rounds=${4:-5}
mkdir -p "$out"
log() { echo "[$(date +%H:%M:%S)] $*"; }
: > "$out/ab.jsonl"
status=0
for model in deepseek-v3 kimi-k2; do
  for layers in 1 4 16; do
    for tokens in 4096 16384; do
      name="$model-tp4-l$layers"
      log "$name, $tokens tokens"
      if ! "$run" "$modules/$name-noopt.so" --compare "$modules/$name-opt.so" \
          --backend cuda --tokens "$tokens" --seed 5 --rounds "$rounds" \
          --warmup 2 --repeat 5 --share-weights --json --quiet \
          > "$out/one.json" 2> "$out/one.err"; then
        log "FAILED: $(tail -3 "$out/one.err")"
        status=1
        continue
      fi
      python3 - "$out/one.json" "$name" "$layers" >> "$out/ab.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["name"], r["layers"] = sys.argv[2], int(sys.argv[3])
print(json.dumps(r))
PY
      tail -1 "$out/ab.jsonl" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); a, b = r["a"], r["b"]
print("  noopt %.3f ms  opt %.3f ms  opt/noopt %.4f  peak %.0f -> %.0f MiB (planned %s)  %s" % (
    a["median_ms"], b["median_ms"], r["b_over_a"], a["peak_bytes"] / 2**20,
    b["peak_bytes"] / 2**20,
    "%.0f" % (b["planned_peak_bytes"] / 2**20) if b["planned_peak_bytes"] else "-",
    "bitwise equal" if r["outputs_equal"] else "OUTPUTS DIFFER"))
print("    rounds noopt", a["round_medians_ms"], "opt", b["round_medians_ms"])'
    done
  done
done
python3 - "$out/ab.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | layers | tokens | unoptimized ms | optimized ms | opt/noopt | peak MiB (noopt -> opt, planned) | outputs |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    a, b = r["a"], r["b"]
    print("| %s | %d | %d | %.3f | %.3f | %.4f | %.0f -> %.0f (%s) | %s |" % (
        r["name"].split("-tp4")[0], r["layers"], r["tokens"], a["median_ms"],
        b["median_ms"], r["b_over_a"], a["peak_bytes"] / 2**20,
        b["peak_bytes"] / 2**20,
        "%.0f" % (b["planned_peak_bytes"] / 2**20) if b["planned_peak_bytes"] else "-",
        "bitwise equal" if r["outputs_equal"] else "DIFFER"))
PY
exit $status
