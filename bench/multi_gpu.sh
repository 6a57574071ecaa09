#!/usr/bin/env bash
# Tensor parallelism on every GPU of one host: the multi-rank checks, then the
# benchmark beside PyTorch distributed and NCCL's own all-reduce.
#   bench/multi_gpu.sh MOE_RUN MODULE_DIR OUTDIR
# MODULE_DIR from bench/make_multi_gpu_modules.sh; MOE_RUN built with
# -DMOE_ENABLE_CUDA=ON and NCCL (docs/multi-gpu.md). Environment: SIZES
# (group sizes to check, default every one of 2 4 8 the host has), TOKENS
# ("4096 16384"), MODELS ("deepseek-v3 kimi-k2"), ROUNDS (3), TIMEOUT (s per
# process, 300). NVLink multicast is never enabled.
# 1. checks, per group size N: --check on every rank, each rank's measured
#    peak = plan, the same output bits run to run and between the optimized
#    and unoptimized modules, compute-sanitizer on one small run (when
#    installed), and an injected rank failure (CPU group: the fault hook is
#    CPU-only) that must end every rank with an error;
# 2. the benchmark on the largest N: our layer (optimized and not,
#    alternating processes, ROUNDS rounds), tp_torch.py (PyTorch + NCCL) and
#    NCCL's all-reduce of the same message, in the same call.
# Writes OUTDIR/multi-gpu.jsonl and OUTDIR/torch.jsonl; prints the tables.
set -uo pipefail
run=$1; modules=$2; out=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
log() { echo "[$(date +%H:%M:%S)] $*"; }
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
sizes=${SIZES:-$(for n in 2 4 8; do [ "$n" -le "$gpus" ] && echo "$n"; done)}
token_counts=${TOKENS:-4096 16384}; models=${MODELS:-deepseek-v3 kimi-k2}
rounds=${ROUNDS:-3}; limit=${TIMEOUT:-300}
log "cards: $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | xargs); sizes: ${sizes:-none}"
status=0
fail() { log "FAILED: $*"; status=1; }
peak_is_plan='import json,sys
r = json.load(open(sys.argv[1]))
bad = [p["rank"] for p in r["per_rank"] if p["peak_bytes"] != r["planned_peak_bytes"]]
sys.exit("ranks %s: peak != plan" % bad if bad else 0)'
: > "$out/multi-gpu.jsonl"
for n in $sizes; do
  m=$modules/check-tp$n
  timeout "$limit" "$run" "$m.so" --backend cuda --ranks "$n" --tokens 301 \
    --check --json > "$out/c$n.json" || fail "check TP=$n"
  python3 -c "$peak_is_plan" "$out/c$n.json" || fail "peak TP=$n"
  a=$(timeout "$limit" "$run" "$m.so" --backend cuda --ranks "$n" --tokens 301 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["checksum"])')
  b=$(timeout "$limit" "$run" "$m-noopt.so" --backend cuda --ranks "$n" --tokens 301 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["checksum"])')
  c=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["checksum"])' "$out/c$n.json")
  [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] || fail "bits TP=$n: $a $b $c"
  if ! MOERT_TEST_FAULT=fail-on-rank:1 timeout 60 "$run" "$m.so" --backend cpu \
      --ranks "$n" --tokens 7 2> "$out/fault$n.err"; then
    [ "$(grep -c 'rank 1 failed\|injected failure' "$out/fault$n.err")" -eq "$n" ] || fail "fault TP=$n: $(cat "$out/fault$n.err")"
  else
    fail "fault TP=$n: the run succeeded"
  fi
  log "checks TP=$n done (checksum $a)"
done
first=$(echo $sizes | awk '{print $1}')
if [ -n "$first" ] && command -v compute-sanitizer > /dev/null; then
  timeout "$limit" compute-sanitizer --error-exitcode 9 "$run" \
    "$modules/check-tp$first.so" --backend cuda --ranks "$first" --tokens 5 \
    --quiet > "$out/sanitizer.log" 2>&1 || fail "compute-sanitizer: $(tail -5 "$out/sanitizer.log")"
  log "compute-sanitizer TP=$first: $(tail -1 "$out/sanitizer.log")"
fi
n=$(echo $sizes | awk '{print $NF}')
[ -n "$n" ] || { log "no group size to benchmark"; exit 1; }
for model in $models; do
  for tokens in $token_counts; do
    for round in $(seq "$rounds"); do
      for form in opt noopt; do
        f=$modules/$model-tp$n$([ $form = noopt ] && echo -noopt).so
        timeout "$limit" "$run" "$f" --backend cuda --ranks "$n" --tokens "$tokens" \
          --warmup 2 --repeat 5 --json > "$out/one.json" 2> "$out/one.err" ||
          { fail "$model $form $tokens: $(tail -2 "$out/one.err")"; continue; }
        python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(model=sys.argv[2], form=sys.argv[3], round=int(sys.argv[4])); print(json.dumps(r))' \
          "$out/one.json" "$model" "$form" "$round" >> "$out/multi-gpu.jsonl"
      done
    done
    log "ours $model $tokens done"
  done
done
timeout $((limit * 2)) python3 "$here/tp_torch.py" --ranks "$n" --model $models \
  --tokens $token_counts > "$out/torch.jsonl" || fail "tp_torch.py"
python3 - "$out/multi-gpu.jsonl" "$out/torch.jsonl" <<'PY'
import json, statistics, sys
ours = [json.loads(l) for l in open(sys.argv[1])]
torch = {(r["model"], r["tokens"]): r for r in map(json.loads, open(sys.argv[2]))}
mib = lambda b: b / 2**20
print("| model | TP | tokens/rank | ours ms (opt) | ours ms (noopt) | PyTorch ms | peak/rank MiB noopt → opt (plan) | PyTorch peak/rank MiB | NCCL all-reduce ms, bus GB/s |")
print("|---|---|---|---|---|---|---|---|---|")
for key in sorted({(r["model"], r["tokens"]) for r in ours}):
    o = [r for r in ours if (r["model"], r["tokens"]) == key and r["form"] == "opt"]
    u = [r for r in ours if (r["model"], r["tokens"]) == key and r["form"] == "noopt"]
    if not o or not u:
        continue
    t = torch.get(key)
    tp = f"{t['latency_ms']:.3f}" if t else "–"
    tpk = f"{mib(max(p['peak_bytes'] for p in t['per_rank'])):.0f}" if t else "–"
    ar = (f"{t['per_rank'][0]['all_reduce_ms']:.3f}, {t['per_rank'][0]['all_reduce_busbw_gbs']:.0f}"
          if t and t['per_rank'][0]['all_reduce_busbw_gbs'] else "–")
    print(f"| {key[0]} | {o[0]['ranks']} | {key[1]} | {statistics.median(r['latency_ms'] for r in o):.3f} | "
          f"{statistics.median(r['latency_ms'] for r in u):.3f} | {tp} | "
          f"{mib(u[0]['peak_bytes']):.0f} → {mib(o[0]['peak_bytes']):.0f} ({mib(o[0]['planned_peak_bytes']):.0f}) | {tpk} | {ar} |")
PY
log "done (status $status)"
exit $status
