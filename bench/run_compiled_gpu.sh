#!/usr/bin/env bash
# Runs layers compiled by moe-compile on the GPU through moe-run:
#  1. numerics: small layers --check against moe-run's CPU double reference,
#     optimized and unoptimized modules bit-identical (same checksum);
#  2. DeepSeek-V3 TP=4 at 16384 tokens: unoptimized, shared experts deferred
#     only, and fully optimized (defer + schedule + plan): latency, measured
#     transient peak (runtime allocator) vs the plan, same output bits;
#  3. DeepSeek-V3 TP=4 at 64 tokens with --check;
#  4. compute-sanitizer memcheck of a small compiled layer.
# Usage (GPU machine, repo root): bench/run_compiled_gpu.sh MOE_RUN MODULES OUTDIR
# where MODULES holds the .so files made by bench/make_compiled_modules.sh.
set -uo pipefail
run=$1; modules=$2; out=${3:-bench-out}
mkdir -p "$out"
jsonl="$out/compiled.jsonl"; : > "$jsonl"
status=0
step() { # name, then the moe-run arguments
  local name=$1; shift
  local line
  line=$(timeout 300 "$run" "$@" --json 2> "$out/$name.err")
  local rc=$?
  if [[ $rc != 0 ]]; then
    echo "FAIL $name (rc=$rc): $(tail -2 "$out/$name.err")"; status=1
    return
  fi
  echo "{\"name\": \"$name\", \"result\": $line}" >> "$jsonl"
  echo "ok   $name"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
echo "== numerics (small layers)"
for m in mini mini-inplace-qwen; do
  for variant in opt noopt; do
    step "$m-$variant-cuda" "$modules/$m-$variant.so" --backend cuda --tokens 257 --seed 7 --check --check-finite --warmup 1 --repeat 2
  done
  step "$m-opt-cpu" "$modules/$m-opt.so" --backend cpu --tokens 257 --seed 7 --check
done
echo "== DeepSeek-V3 TP=4, 16384 tokens"
for variant in noopt defer opt; do
  step "ds-tp4-16384-$variant" "$modules/ds-tp4-$variant.so" --backend cuda --tokens 16384 --seed 1 --warmup 2 --repeat 10 --check-finite
done
echo "== DeepSeek-V3 TP=4, 64 tokens, checked"
step "ds-tp4-64-opt" "$modules/ds-tp4-opt.so" --backend cuda --tokens 64 --seed 2 --warmup 3 --repeat 20 --check
step "ds-tp4-64-noopt" "$modules/ds-tp4-noopt.so" --backend cuda --tokens 64 --seed 2 --warmup 3 --repeat 20
echo "== compute-sanitizer memcheck"
if timeout 300 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$run" "$modules/mini-opt.so" --backend cuda --tokens 33 --seed 3 --quiet > "$out/memcheck.log" 2>&1; then
  echo "ok   memcheck"; echo '{"name": "memcheck", "result": {"errors": 0}}' >> "$jsonl"
else
  echo "FAIL memcheck: $(tail -3 "$out/memcheck.log")"; status=1
fi

python3 - "$jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["name"]: r["result"] for r in rows}
print(f"{'run':28} {'latency ms':>11} {'peak MiB':>10} {'planned MiB':>12} {'max_rel_err':>12} checksum")
for name, r in by.items():
    if "latency_ms" not in r: continue
    planned = r.get("planned_peak_bytes")
    err = r.get("max_rel_err")
    print(f"{name:28} {r['latency_ms']:11.3f} {r['peak_bytes']/2**20:10.1f} "
          f"{'-' if planned is None else f'{planned/2**20:12.1f}':>12} "
          f"{'-' if err is None else f'{err:.2e}':>12} {r['checksum']}")
def same(*names):
    sums = {by[n]["checksum"] for n in names if n in by}
    return len(sums) == 1
print("bit-identical opt/noopt (mini, cuda):", same("mini-opt-cuda", "mini-noopt-cuda"))
print("bit-identical opt/noopt (qwen in place, cuda):", same("mini-inplace-qwen-opt-cuda", "mini-inplace-qwen-noopt-cuda"))
print("bit-identical DS-V3 16384 noopt/defer/opt:", same("ds-tp4-16384-noopt", "ds-tp4-16384-defer", "ds-tp4-16384-opt"))
print("bit-identical DS-V3 64 opt/noopt:", same("ds-tp4-64-opt", "ds-tp4-64-noopt"))
o = by.get("ds-tp4-16384-opt")
if o and o.get("planned_peak_bytes"):
    print("measured / planned peak (DS-V3 16384):", o["peak_bytes"] / o["planned_peak_bytes"])
PY
exit $status
