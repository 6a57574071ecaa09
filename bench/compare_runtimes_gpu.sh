#!/usr/bin/env bash
# Before/after check of a runtime or kernel change on the GPU machine:
#  1. builds the runtime, the kernels and moe-run of two source trees (the
#     compiler off; MLIR is not needed) side by side;
#  2. runs the after tree's ctest (runtime and kernel tests on the GPU) and
#     its full kernel test;
#  3. runs every compiled module (bench/make_compiled_modules.sh) with both
#     moe-runs, interleaved A, B, A, B, ...: the checksums and peaks must be
#     equal; latencies are compared by their medians;
#  4. bench/run_compiled_gpu.sh with the after tree.
# Usage: bench/compare_runtimes_gpu.sh BEFORE_SRC AFTER_SRC MODULES OUTDIR
#   [GTEST_SRC]  (GoogleTest's sources, built first when the machine has none)
set -uo pipefail
before=$1; after=$2; modules=$3; out=$4; gtest=${5:-}
mkdir -p "$out"
log() { echo "[$(date +%H:%M:%S)] $*"; }
jobs=$(( $(nproc) / 2 )); (( jobs < 1 )) && jobs=1

cmake_args=(-G Ninja -DMOE_ENABLE_COMPILER=OFF -DMOE_ENABLE_CUDA=ON)
if [[ -n "$gtest" ]]; then
  log "GoogleTest from $gtest"
  cmake -S "$gtest" -B /tmp/gtest-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_GMOCK=OFF > "$out/gtest.log" 2>&1 &&
    cmake --build /tmp/gtest-build >> "$out/gtest.log" 2>&1 &&
    cmake --install /tmp/gtest-build --prefix /tmp/gtest >> "$out/gtest.log" 2>&1 ||
    log "GoogleTest build failed (tests needing it are not built)"
  cmake_args+=(-DCMAKE_PREFIX_PATH=/tmp/gtest)
fi

log "building both trees ($jobs jobs each)"
build() { # src dir
  cmake -S "$1" -B "$2" "${cmake_args[@]}" > "$2.log" 2>&1 &&
    cmake --build "$2" -j "$jobs" >> "$2.log" 2>&1
}
build "$before" /tmp/rt-before & pb=$!
build "$after" /tmp/rt-after & pa=$!
wait $pb; rb=$?; wait $pa; ra=$?
cp /tmp/rt-before.log "$out/build-before.log"; cp /tmp/rt-after.log "$out/build-after.log"
if (( rb != 0 || ra != 0 )); then log "build failed (before $rb, after $ra)"; exit 1; fi
log "built"

status=0
log "ctest (after)"
ctest --test-dir /tmp/rt-after --output-on-failure > "$out/ctest-after.log" 2>&1 || status=1
tail -5 "$out/ctest-after.log"
if [[ -x /tmp/rt-after/bin/moe-kernels-test ]]; then
  log "full kernel test (after)"
  /tmp/rt-after/bin/moe-kernels-test --seed 1 > "$out/kernels-after.log" 2>&1 || status=1
  tail -3 "$out/kernels-after.log"
fi

log "interleaved before/after runs of the compiled modules"
python3 - "$modules" "$out" <<'PY' || status=1
import json, subprocess, sys, statistics
modules, out = sys.argv[1], sys.argv[2]
runs = [("mini-opt", 257, ["--check"]), ("mini-noopt", 257, []),
        ("mini-inplace-qwen-opt", 257, ["--check"]),
        ("ds-tp4-opt", 64, []), ("ds-tp4-noopt", 64, []),
        ("ds-tp4-opt", 16384, []), ("ds-tp4-noopt", 16384, [])]
rows, ok = [], True
for name, tokens, extra in runs:
    res = {"before": [], "after": []}
    for rnd in range(3):
        for side in ("before", "after"):
            cmd = [f"/tmp/rt-{side}/bin/moe-run", f"{modules}/{name}.so",
                   "--backend", "cuda", "--tokens", str(tokens), "--seed", "5",
                   "--warmup", "2", "--repeat", "5", "--json"] + extra
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                print("FAIL", side, name, tokens, p.stderr.strip()[-300:]); ok = False
                continue
            res[side].append(json.loads(p.stdout))
    if not res["before"] or not res["after"]:
        continue
    sums = {r["checksum"] for s in res for r in res[s]}
    peaks = {r["peak_bytes"] for s in res for r in res[s]}
    med = {s: statistics.median(r["latency_ms"] for r in res[s]) for s in res}
    row = {"module": name, "tokens": tokens, "checksums": sorted(sums),
           "peaks": sorted(peaks), "median_ms_before": med["before"],
           "median_ms_after": med["after"],
           "ratio_after_before": med["after"] / med["before"]}
    rows.append(row)
    same = len(sums) == 1 and len(peaks) == 1
    ok &= same
    print(f"{name:24} T={tokens:6} checksum {'same' if len(sums)==1 else 'DIFFERENT'}"
          f" peak {'same' if len(peaks)==1 else 'DIFFERENT'}  median ms"
          f" {med['before']:.3f} -> {med['after']:.3f}"
          f" ({med['after']/med['before']:.3f}x)")
json.dump(rows, open(f"{out}/compare.json", "w"), indent=1)
sys.exit(0 if ok else 1)
PY

log "run_compiled_gpu.sh (after)"
"$after/bench/run_compiled_gpu.sh" /tmp/rt-after/bin/moe-run "$modules" \
  "$out/compiled-after" > "$out/compiled-after.log" 2>&1 || status=1
tail -14 "$out/compiled-after.log"
log "done (status $status)"
exit $status
