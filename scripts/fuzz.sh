#!/usr/bin/env bash
# Builds moe-opt-fuzzer (clang, ASan+UBSan, libFuzzer) and runs it on the seed
# corpus made from the lit tests, with the moe dictionary. See docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS] [options] [-- libFuzzer flags...]
#     SECONDS           how long to fuzz (default 60)
#     --build-dir DIR   the build directory (default build-fuzz; configured
#                       here with clang-22 and -DMOE_ENABLE_FUZZERS=ON if new)
#     --jobs N          N fuzzing processes (libFuzzer -fork=N); default 1
#     --structured      also mutate inputs as IR (MOE_FUZZ_STRUCTURED=1)
#     --corpus DIR      the working corpus (default BUILD_DIR/fuzz/corpus):
#                       new inputs are added there, the seeds are read only
#     --no-build        run the fuzzer as built
#
# Exits non-zero when the fuzzer finds a crash, a leak, undefined behaviour or
# a timeout; the input is saved as BUILD_DIR/fuzz/artifacts/crash-<sha1> (or
# leak-, timeout-, oom-), to be reproduced with
#   BUILD_DIR/bin/moe-opt-fuzzer BUILD_DIR/fuzz/artifacts/crash-<sha1>
# The last line is a summary: executions, coverage, result.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

seconds=60
build="$root/build-fuzz"
jobs=1
structured=0
corpus=""
do_build=1
extra=()
while (($#)); do
  case "$1" in
    --build-dir) build=$(realpath -m "$2"); shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --structured) structured=1; shift ;;
    --corpus) corpus=$(realpath -m "$2"); shift 2 ;;
    --no-build) do_build=0; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    [0-9]*) seconds=$1; shift ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

if ((do_build)); then
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cc=${CC:-clang-22}
    cxx=${CXX:-clang++-22}
    if ! command -v "$cxx" >/dev/null; then
      echo "fuzz.sh: $cxx not found: run scripts/install-deps.sh --with-clang" >&2
      exit 2
    fi
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$cc" \
      -DCMAKE_CXX_COMPILER="$cxx" -DMOE_ENABLE_FUZZERS=ON || exit 2
  fi
  cmake --build "$build" --target moe-opt-fuzzer || exit 2
fi

fuzzer="$build/bin/moe-opt-fuzzer"
seeds="$build/fuzz/seed-corpus"
corpus=${corpus:-$build/fuzz/corpus}
artifacts="$build/fuzz/artifacts"
log="$build/fuzz/fuzz.log"
[[ -x "$fuzzer" ]] || { echo "fuzz.sh: $fuzzer not built (-DMOE_ENABLE_FUZZERS=ON)" >&2; exit 2; }
mkdir -p "$corpus" "$artifacts"

# Leaks are bugs too; UBSan stops at the first report (the build also has
# -fno-sanitize-recover) and prints its stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if ((structured)); then export MOE_FUZZ_STRUCTURED=1; fi

flags=(
  -max_total_time="$seconds"
  -dict="$root/fuzz/moe.dict"
  -timeout=20            # seconds per input: a pass that hangs is a bug
  -rss_limit_mb=4096
  -max_len=16384
  -print_final_stats=1
  -artifact_prefix="$artifacts/"
)
if ((jobs > 1)); then
  flags+=(-fork="$jobs")
fi

echo "fuzz.sh: $fuzzer for ${seconds}s, ${jobs} job(s)$( ((structured)) && echo ', structured'), corpus $corpus + seeds $seeds"
echo "fuzz.sh: started $(date -u '+%Y-%m-%d %H:%M:%S UTC'); log $log"
start=$(date +%s)
"$fuzzer" "${flags[@]}" "${extra[@]}" "$corpus" "$seeds" 2>&1 | tee "$log" |
  grep -E --line-buffered '^#[0-9]+([[:space:]]+(pulse|INITED|DONE)|: cov)|ERROR|BUG|runtime error|SUMMARY|Test unit written|^(stat::|Done)'
status=${PIPESTATUS[0]}
elapsed=$(( $(date +%s) - start ))

# Figures: executions, edge coverage and features from the last status line.
# In fork mode the parent's lines ("#N: cov: ...") count every job's
# executions; a crashing job's own lines follow them in the log.
last=$(grep -E '^#[0-9]+: cov' "$log" | tail -1)
[[ -n "$last" ]] || last=$(grep -E '^#[0-9]+' "$log" | tail -1)
execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
if [[ $status -eq 0 ]]; then result="no crash"; else result="FAILED (exit $status; see $artifacts and $log)"; fi
echo "fuzz.sh: ${execs:-?} executions in ${elapsed}s, cov ${cov:-?} edges, ft ${ft:-?} features, corpus ${corp:-?} inputs: $result"
exit $status
