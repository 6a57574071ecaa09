#!/usr/bin/env bash
# Builds the kernels, runs the numerics tests, compute-sanitizer (memcheck and
# racecheck on the quick tests), a SASS check, a per-kernel profile (ncu) and
# the layer benchmark against PyTorch. Run on the GPU machine from the repo
# root:   bench/run_gpu_bench.sh [OUTDIR]        (default: $OUT or bench/out)
# Steps can be chosen with STEPS (default all):
#   STEPS="build test sanitize sass profile bench" bench/run_gpu_bench.sh
# Extra arguments for bench/moe_bench.py go in BENCH_ARGS (default: --ab
# --compare-impls --triton), e.g.
#   BENCH_ARGS="--models deepseek-v3-tp4 --tokens 16384" bench/run_gpu_bench.sh
# A prebuilt build-kernels/ (built elsewhere with the same CUDA) is reused
# when SKIP_BUILD=1.
set -uo pipefail
OUTDIR=${1:-${OUT:-build-kernels/bench-out}}
mkdir -p "$OUTDIR"
STEPS=${STEPS:-"build test sanitize sass profile bench"}
BUILD=${BUILD_DIR:-build-kernels}
BENCH_ARGS=${BENCH_ARGS:-"--ab --compare-impls --triton"}
export PYTHONUNBUFFERED=1
status=0
has() { [[ " $STEPS " == *" $1 "* ]]; }

{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
  nvcc --version | tail -1
  python3 -c 'import torch; print("torch", torch.__version__)'
} > "$OUTDIR/env.txt" 2>&1
cat "$OUTDIR/env.txt"

if has build && [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  echo "== build"
  cmake -S kernels -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release > "$OUTDIR/build.log" 2>&1 &&
    cmake --build "$BUILD" -j >> "$OUTDIR/build.log" 2>&1 || { echo "BUILD FAILED"; tail -40 "$OUTDIR/build.log"; exit 1; }
fi

if has test; then
  echo "== tests"
  # A hung kernel must not eat the lease: every step runs under a timeout.
  timeout ${TEST_TIMEOUT_QUICK:-90} "$BUILD/moe-kernels-test" --quick > "$OUTDIR/test.log" 2>&1
  rc=$?; echo "quick test rc=$rc" >> "$OUTDIR/test.log"
  if [[ $rc != 0 ]]; then
    echo "quick test failed: again without the wgmma path" >> "$OUTDIR/test.log"
    timeout ${TEST_TIMEOUT_QUICK:-90} "$BUILD/moe-kernels-test" --quick --impls mma,simt >> "$OUTDIR/test.log" 2>&1
    echo "quick test (mma,simt) rc=$?" >> "$OUTDIR/test.log"
  else
    timeout ${TEST_TIMEOUT:-240} "$BUILD/moe-kernels-test" >> "$OUTDIR/test.log" 2>&1
    rc=$?; echo "full test rc=$rc" >> "$OUTDIR/test.log"
  fi
  [[ $rc != 0 ]] && status=1
  grep -E "^(FAIL|device)|^\[  (FAILED|PASSED|SKIPPED) |rc=" "$OUTDIR/test.log"; echo "test rc=$rc"
fi

if has sanitize; then
  echo "== compute-sanitizer (quick tests)"
  {
    echo "--- memcheck"; timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/moe-kernels-test" --quick; echo "memcheck rc=$?"
    echo "--- racecheck"; timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool racecheck --racecheck-report hazard --error-exitcode 9 "$BUILD/moe-kernels-test" --quick; echo "racecheck rc=$?"
    if [[ -n "${SYNCCHECK:-}" ]]; then
      echo "--- synccheck"; timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool synccheck --error-exitcode 9 "$BUILD/moe-kernels-test" --quick; echo "synccheck rc=$?"
    fi
  } > "$OUTDIR/sanitize.log" 2>&1
  grep -E "rc=|ERROR SUMMARY|RACECHECK SUMMARY|^FAIL|^\[  (FAILED|PASSED) " "$OUTDIR/sanitize.log"
fi

if has sass; then
  echo "== SASS"
  {
    cuobjdump -res-usage "$BUILD/libmoe_kernels.a" 2>&1 | grep -A1 -E "wgmmaGemm|mmaGemm" | head -40
    echo "HGMMA instructions per kernel:"
    cuobjdump -sass "$BUILD/libmoe_kernels.a" | awk '/Function :/{f=$3} /HGMMA/{c[f]++} END{for(k in c) print c[k], k}'
    echo "HMMA instructions per kernel:"
    cuobjdump -sass "$BUILD/libmoe_kernels.a" | awk '/Function :/{f=$3} /HMMA/{c[f]++} END{for(k in c) print c[k], k}'
    echo "local memory (LDL/STL):"
    cuobjdump -sass "$BUILD/libmoe_kernels.a" | grep -cE "\b(LDL|STL)\b"
  } > "$OUTDIR/sass.txt" 2>&1
  cat "$OUTDIR/sass.txt" | tail -20
fi

if has profile; then
  for T in ${PROFILE_TOKENS:-16384 64}; do
    echo "== ncu per-kernel times (one routed call, first model, T=$T)"
    timeout ${PROFILE_TIMEOUT:-120} ncu --clock-control none --profile-from-start off --metrics gpu__time_duration.sum \
      --csv python3 bench/moe_bench.py --lib "$BUILD/libmoe_kernels_capi.so" --profile-once --profile-tokens $T $BENCH_ARGS \
      > "$OUTDIR/ncu_$T.csv" 2>&1
    python3 - "$OUTDIR/ncu_$T.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: print(open(sys.argv[1]).read()[-2000:]); sys.exit()
h = rows[0]; ki = h.index("Kernel Name"); vi = h.index("Metric Value")
ui = h.index("Metric Unit") if "Metric Unit" in h else None
units = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}
scale = units.get(rows[1][ui] if ui is not None else "ns", 1e-3)
agg = collections.OrderedDict()
for r in rows[1:]:
    k = r[ki].split("(")[0][:70]
    v = float(r[vi].replace(",", ""))
    n, s = agg.get(k, (0, 0.0)); agg[k] = (n + 1, s + v)
tot = sum(s for _, s in agg.values())
for k, (n, s) in agg.items(): print(f"{s*scale:9.1f} us  x{n:3d}  {k}")
print(f"{tot*scale:9.1f} us  total")
PY
  done
fi

if has bench; then
  echo "== bench"
  # DEADLINE (seconds since the script started) bounds the whole run.
  if [[ -n "${DEADLINE:-}" ]]; then
    left=$(( DEADLINE - SECONDS )); (( left < 60 )) && left=60
    BENCH_TIMEOUT=${BENCH_TIMEOUT:-$left}
  fi
  timeout ${BENCH_TIMEOUT:-480} python3 bench/moe_bench.py --lib "$BUILD/libmoe_kernels_capi.so" \
    --out "$OUTDIR/bench.json" $BENCH_ARGS > "$OUTDIR/bench.log" 2>&1
  rc=$?; [[ $rc != 0 ]] && status=1
  grep -v '^{' "$OUTDIR/bench.log" | tail -40
fi
exit $status
