#!/usr/bin/env bash
# Is the optimized module as fast as the unoptimized one? For every module
# pair of bench/make_ab_modules.sh (MODEL-tp4-lLAYERS-{noopt,opt}.so) and
# 4096 and 16384 tokens, one `moe-run NOOPT --compare OPT` process: both
# modules on the same arguments (seed 5), alternating noopt, opt, noopt, opt,
# ... for ROUNDS rounds of 2 warmup + 5 measured iterations each (layer
# weights shared across layers with --share-weights, so 16 layers fit and
# fill fast; the transient memory and the work per layer are unchanged).
#   bench/ab_optimize_gpu.sh MOE_RUN MODULE_DIR OUTDIR [ROUNDS]   (ROUNDS >= 5, default 5)
# Environment (optional): MODELS ("deepseek-v3 kimi-k2"), LAYERS ("1 4 16"),
# TOKENS ("4096 16384"), WARMUP (2), REPEAT (5), BACKEND (cuda), TIMEOUT
# (seconds per moe-run process, 300).
# Writes OUTDIR/ab.jsonl (moe-run's report per case, as it finishes),
# OUTDIR/ab.json (the summary: per case the per-round medians, their median,
# opt/noopt, the per-round ratios, peaks measured and planned, checksums,
# outputs equal) and OUTDIR/ab.md (the table, also printed last).
# A case fails the run (exit 1) when moe-run fails or the outputs differ.
#
# Run time: every iteration also copies the output back and hashes it on
# the host (about 0.35 s at 16384 tokens x 7168 bf16, 0.1 s at 4096), so a
# case takes about 2 * ROUNDS * (WARMUP + REPEAT) * (that + the forward)
# plus filling layer 0's weights (5.6 GB DeepSeek-V3, 8.5 GB Kimi-K2):
# an estimated 5-6 minutes for the 12 cases at the defaults on one H200.
set -uo pipefail
run=$1; modules=$2; out=$3; rounds=${4:-5}
models=${MODELS:-deepseek-v3 kimi-k2}
layer_counts=${LAYERS:-1 4 16}
token_counts=${TOKENS:-4096 16384}
warmup=${WARMUP:-2}; repeat=${REPEAT:-5}
backend=${BACKEND:-cuda}; limit=${TIMEOUT:-300}
mkdir -p "$out"
log() { echo "[$(date +%H:%M:%S)] $*"; }
if (( rounds < 5 )); then echo "ROUNDS must be >= 5" >&2; exit 2; fi

card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
log "card: ${card:-none}; $rounds rounds of $warmup warmup + $repeat measured iterations per module"
: > "$out/ab.jsonl"
status=0
for model in $models; do
  for layers in $layer_counts; do
    for tokens in $token_counts; do
      name="$model-tp4-l$layers"
      log "$name, $tokens tokens"
      if ! timeout "$limit" "$run" "$modules/$name-noopt.so" \
          --compare "$modules/$name-opt.so" --backend "$backend" \
          --tokens "$tokens" --seed 5 --rounds "$rounds" --warmup "$warmup" \
          --repeat "$repeat" --share-weights --json --quiet \
          > "$out/one.json" 2> "$out/one.err"; then
        log "FAILED: $(tail -3 "$out/one.err")"
        status=1
        continue
      fi
      python3 - "$out/one.json" "$model" "$layers" >> "$out/ab.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["model"], r["layers"] = sys.argv[2], int(sys.argv[3])
print(json.dumps(r))
PY
      tail -1 "$out/ab.jsonl" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); a, b = r["a"], r["b"]
print("  noopt %.3f ms  opt %.3f ms  opt/noopt %.4f  peak %.1f -> %.1f MiB  %s" % (
    a["median_ms"], b["median_ms"], r["b_over_a"], a["peak_bytes"] / 2**20,
    b["peak_bytes"] / 2**20, "bitwise equal" if r["outputs_equal"] else "OUTPUTS DIFFER"))
print("    rounds noopt", a["round_medians_ms"], "opt", b["round_medians_ms"])'
    done
  done
done
rm -f "$out/one.json" "$out/one.err"

python3 - "$out" "$card" <<'PY' || status=1
import json, statistics, sys
out, card = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(f"{out}/ab.jsonl")]
cases, ok = [], True
for r in rows:
    a, b = r["a"], r["b"]
    # Paired per round: noopt then opt of the same round.
    pairs = [o / n for n, o in zip(a["round_medians_ms"], b["round_medians_ms"])]
    spread = max(a["round_medians_ms"]) / min(a["round_medians_ms"]) - 1
    cases.append({
        "model": r["model"], "layers": r["layers"], "tokens": r["tokens"],
        "rounds": r["rounds"], "warmup": r["warmup"], "repeat": r["repeat"],
        "noopt": {k: a[k] for k in ("module", "round_medians_ms", "median_ms",
                                    "peak_bytes", "planned_peak_bytes", "checksum")},
        "opt": {k: b[k] for k in ("module", "round_medians_ms", "median_ms",
                                  "peak_bytes", "planned_peak_bytes", "checksum")},
        "opt_over_noopt": r["b_over_a"],
        "round_ratios": pairs,
        "noopt_round_spread": spread,
        "peak_ratio": b["peak_bytes"] / a["peak_bytes"] if a["peak_bytes"] else None,
        "outputs_equal": r["outputs_equal"]})
    ok &= r["outputs_equal"]
json.dump({"card": card, "seed": 5, "share_weights": True, "cases": cases},
          open(f"{out}/ab.json", "w"), indent=1)
lines = [
    "| model | layers | tokens | noopt ms | opt ms | opt/noopt | per-round opt/noopt (min-max) | noopt round spread | peak MiB noopt -> opt (planned) | outputs bitwise equal |",
    "|---|---|---|---|---|---|---|---|---|---|"]
for c in cases:
    n, o = c["noopt"], c["opt"]
    planned = "%.1f" % (o["planned_peak_bytes"] / 2**20) if o["planned_peak_bytes"] else "-"
    lines.append("| %s | %d | %d | %.3f | %.3f | %.4f | %.4f-%.4f | %.1f%% | %.1f -> %.1f (%s) | %s |" % (
        c["model"], c["layers"], c["tokens"], n["median_ms"], o["median_ms"],
        c["opt_over_noopt"], min(c["round_ratios"]), max(c["round_ratios"]),
        100 * c["noopt_round_spread"], n["peak_bytes"] / 2**20,
        o["peak_bytes"] / 2**20, planned, "yes" if c["outputs_equal"] else "NO"))
open(f"{out}/ab.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok else 1)
PY
log "done (status $status)"
exit $status
