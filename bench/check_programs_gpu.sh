#!/usr/bin/env bash
# Runs `moe-run --check` on the CUDA backend over programs compiled by
#   test/Integration/Inputs/random-programs.py [--dtype fp8] --compile-only DIR SEEDS
# (DIR/list.txt: "p<seed>.so TOKENS SEED" per line) and prints one line per
# program (the check's verdict, the worst op's error over its tolerance, the
# measured and planned peak), then the count. Exits 1 if any check fails.
#   bench/check_programs_gpu.sh MOE_RUN DIR   (TIMEOUT: seconds per program, 120)
set -uo pipefail
run=$1; dir=$2; limit=${TIMEOUT:-120}
pass=0; fail=0
while read -r so tokens seed; do
  [[ -z "$so" ]] && continue
  if timeout "$limit" "$run" "$dir/$so" --backend cuda --tokens "$tokens" \
      --seed "$seed" --check --json > "$dir/last.json" 2> "$dir/last.err"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAILED $so tokens $tokens seed $seed: $(tail -2 "$dir/last.err")"
  fi
  python3 - "$dir/last.json" "$so" "$tokens" <<'PY' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1]))
worst = r.get("op_max_err_over_tolerance")
print(sys.argv[2], "tokens", sys.argv[3], r.get("check"), "worst",
      None if worst is None else round(worst, 3), "peak", r.get("peak_bytes"),
      "plan", r.get("planned_peak_bytes"))
PY
done < "$dir/list.txt"
echo "$pass of $((pass + fail)) programs passed on the CUDA backend"
[[ $fail -eq 0 ]]
