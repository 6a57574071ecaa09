#!/usr/bin/env bash
# The whole fp8 layer beside the bf16 layer of the same model: for every
# module pair of bench/make_fp8_layer_modules.sh and each token count, ROUNDS
# rounds alternating a bf16 and an fp8 moe-run process (2 warmup + 5
# measured iterations each), then per form the median of the per-round
# medians, the measured transient peak and the plan's.
#   bench/fp8_layer_gpu.sh MOE_RUN MODULE_DIR OUTDIR [ROUNDS]   (default 3)
# Environment: MODELS ("deepseek-v3 kimi-k2"), TOKENS ("4096 16384"),
# BACKEND (cuda), TIMEOUT (seconds per moe-run process, 240).
# Writes OUTDIR/fp8-layer.jsonl (moe-run's reports) and prints the table.
set -uo pipefail
run=$1; modules=$2; out=$3; rounds=${4:-3}
models=${MODELS:-deepseek-v3 kimi-k2}
token_counts=${TOKENS:-4096 16384}
backend=${BACKEND:-cuda}; limit=${TIMEOUT:-240}
mkdir -p "$out"
log() { echo "[$(date +%H:%M:%S)] $*"; }
card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
log "card: ${card:-none}; $rounds rounds, bf16 and fp8 alternating"
: > "$out/fp8-layer.jsonl"
status=0
for model in $models; do
  for tokens in $token_counts; do
    for round in $(seq "$rounds"); do
      for dtype in bf16 fp8; do
        if ! timeout "$limit" "$run" "$modules/$model-tp4-$dtype.so" \
            --backend "$backend" --tokens "$tokens" --seed 5 --warmup 2 \
            --repeat 5 --json --quiet > "$out/one.json" 2> "$out/one.err"; then
          log "FAILED $model $dtype $tokens: $(tail -3 "$out/one.err")"
          status=1
          continue
        fi
        python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
r.update(model=sys.argv[2], dtype=sys.argv[3], round=int(sys.argv[4]))
r.pop("latencies_ms", None)
print(json.dumps(r))' "$out/one.json" "$model" "$dtype" "$round" >> "$out/fp8-layer.jsonl"
      done
    done
    log "$model $tokens done"
  done
done
python3 - "$out/fp8-layer.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cases = {}
for r in rows:
    cases.setdefault((r["model"], r["tokens"], r["dtype"]), []).append(r)
print("| model | tokens | bf16 ms | fp8 ms | fp8/bf16 | bf16 peak MiB (plan) | fp8 peak MiB (plan) | fp8 measured = plan |")
print("|---|---|---|---|---|---|---|---|")
for (model, tokens) in sorted({(m, t) for m, t, _ in cases}):
    b, f = cases.get((model, tokens, "bf16"), []), cases.get((model, tokens, "fp8"), [])
    if not b or not f:
        continue
    mb = statistics.median(r["latency_ms"] for r in b)
    mf = statistics.median(r["latency_ms"] for r in f)
    mib = lambda x: x / 2**20
    print(f"| {model} | {tokens} | {mb:.3f} | {mf:.3f} | {mf/mb:.2f} | "
          f"{mib(b[0]['peak_bytes']):.1f} ({mib(b[0]['planned_peak_bytes']):.1f}) | "
          f"{mib(f[0]['peak_bytes']):.1f} ({mib(f[0]['planned_peak_bytes']):.1f}) | "
          f"{all(r['peak_bytes'] == r['planned_peak_bytes'] for r in f)} |")
PY
exit $status
