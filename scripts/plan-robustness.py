#!/usr/bin/env python3
"""Runs moe-plan-memory and moe-optimize over a folder of .mlir files.

Every file (and every `// -----` chunk of it) that moe-opt can parse is run
through each pass followed by moe-test-check-arena. A run passes when moe-opt
exits cleanly: the pass manager verifies the output, and the checker rejects
planned memory that is returned, yielded or passed out of its block, used
after the arena is freed, freed or reallocated by another op, or passed to a
call that may keep it. Prints one line per failure and a summary of counts.

    scripts/plan-robustness.py DIR [DIR...] [--bin-dir build/bin] [--jobs N]

Chunks that do not parse (tests of diagnostics, ops of dialects moe-opt does
not have) are counted and skipped. MLIR's own buffer tests use two ops of its
test dialect, which moe-opt does not register; they are rewritten to the
memref op with the same effects (`--keep-test-ops` leaves them):
`test.copy(%a, %b) : (A, B)` and `test.buffer_based in(%a: A) out(%b: B)`
become `memref.copy %a, %b : A to B` (read %a, write %b).
Exit status: 0 when no run crashed, produced invalid IR, violated the checks
or timed out.
"""
import argparse
import collections
import concurrent.futures
import os
import re
import subprocess
import sys
import time

SPLIT = re.compile(r"^// -----\s*$", re.M)
PASSES = ["--moe-plan-memory", "--moe-optimize"]
LEFT_OUT = re.compile(r"left out of the memory plan's arena: (.*)")


TEST_COPY = re.compile(r"\btest\.copy\s*\(\s*(%[\w.#]+)\s*,\s*(%[\w.#]+)\s*\)\s*:\s*\((.*)\)\s*$", re.M)
TEST_BUFFER_BASED = re.compile(
    r"\btest\.buffer_based\s+in\(\s*(%[\w.#]+)\s*:\s*(.*?)\)\s+out\(\s*(%[\w.#]+)\s*:\s*(.*)\)\s*$", re.M)


def split_types(text):
    """Splits 'A, B' at the top-level comma (types nest <>, [], ())."""
    depth = 0
    for i, ch in enumerate(text):
        depth += ch in "<[(" and 1 or ch in ">])" and -1 or 0
        if ch == "," and depth == 0:
            return text[:i].strip(), text[i + 1:].strip()
    return None


def rewrite_test_ops(text):
    def copy(m):
        types = split_types(m.group(3))
        if not types:
            return m.group(0)
        return "memref.copy %s, %s : %s to %s" % (m.group(1), m.group(2), *types)
    text = TEST_COPY.sub(copy, text)
    return TEST_BUFFER_BASED.sub(
        lambda m: "memref.copy %s, %s : %s to %s" % (m.group(1), m.group(3),
                                                     m.group(2).strip(),
                                                     m.group(4).strip()), text)


def run(cmd, text, timeout):
    try:
        p = subprocess.run(cmd, input=text, capture_output=True, text=True,
                           timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", "timeout"


def reason_class(reason):
    """A remark's reason without the op names: 'it is freed by X' -> 'freed'."""
    for key in ("memory space", "leaves the block", "flows out", "outside the block",
                "reallocated", "freed", "call", "address", "tensor", "unknown",
                "terminator"):
        if key in reason:
            return key
    return reason


def check_chunk(moe_opt, text, timeout):
    base = [moe_opt, "--allow-unregistered-dialect", "-"]
    rc, _, _ = run(base + ["-o", "/dev/null"], text, timeout)
    if rc != 0:
        return {"parsed": False}
    result = {"parsed": True, "runs": []}
    for p in PASSES:
        rc, out, err = run(base + [p, "--moe-test-check-arena"], text, timeout)
        r = {"pass": p, "arenas": out.count("{moe.arena}"),
             "left_out": [reason_class(m) for m in LEFT_OUT.findall(err)]}
        if rc is None:
            r["failure"] = "timeout"
        elif rc < 0 or "Stack dump" in err or "PLEASE submit" in err:
            r["failure"] = "crash"
        elif "planned memory" in err:
            r["failure"] = "violation"
        elif rc != 0:
            r["failure"] = "invalid output"
        if "failure" in r:
            lines = [l for l in err.splitlines() if "error" in l or "Assertion" in l]
            r["detail"] = lines[0] if lines else err.strip().splitlines()[-1:] or ""
        result["runs"].append(r)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", help="folders (searched recursively) or files")
    ap.add_argument("--bin-dir", default="build/bin", help="where moe-opt is")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=60, help="seconds per run")
    ap.add_argument("--keep-test-ops", action="store_true",
                    help="do not rewrite test.copy and test.buffer_based")
    args = ap.parse_args()
    moe_opt = os.path.join(args.bin_dir, "moe-opt")

    files = []
    for d in args.dirs:
        if os.path.isfile(d):
            files.append(d)
            continue
        for root, _, names in os.walk(d):
            files += [os.path.join(root, n) for n in names if n.endswith(".mlir")]
    files.sort()

    jobs = []
    for f in files:
        with open(f, errors="replace") as fh:
            chunks = SPLIT.split(fh.read())
        if not args.keep_test_ops:
            chunks = [rewrite_test_ops(c) for c in chunks]
        jobs += [(f, i, c) for i, c in enumerate(chunks)]

    start = time.time()
    counts = collections.Counter()
    reasons = collections.Counter()
    failures = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(check_chunk, moe_opt, c, args.timeout): (f, i)
                   for f, i, c in jobs}
        for fut in concurrent.futures.as_completed(futures):
            f, i = futures[fut]
            res = fut.result()
            counts["chunks"] += 1
            if not res["parsed"]:
                counts["unparsable chunks"] += 1
                continue
            counts["parsed chunks"] += 1
            for r in res["runs"]:
                counts["runs"] += 1
                if r["arenas"]:
                    counts["runs with an arena"] += 1
                    counts["arenas"] += r["arenas"]
                for why in r["left_out"]:
                    reasons[why] += 1
                    counts["buffers left out"] += 1
                if "failure" in r:
                    counts[r["failure"]] += 1
                    failures.append("FAIL %s (chunk %d) %s: %s: %s"
                                    % (f, i, r["pass"], r["failure"], r["detail"]))
    for line in sorted(failures):
        print(line)
    print("plan-robustness: %d files, %d chunks (%d parsed, %d not), %d runs "
          "in %.0f s" % (len(files), counts["chunks"], counts["parsed chunks"],
                         counts["unparsable chunks"], counts["runs"],
                         time.time() - start))
    print("  runs with an arena: %d (%d arenas); buffers left out: %d"
          % (counts["runs with an arena"], counts["arenas"],
             counts["buffers left out"]))
    for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print("    left out (%s): %d" % (why, n))
    bad = sum(counts[k] for k in ("crash", "invalid output", "violation", "timeout"))
    print("  failures: %d (crash %d, invalid output %d, violation %d, timeout %d)"
          % (bad, counts["crash"], counts["invalid output"], counts["violation"],
             counts["timeout"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
