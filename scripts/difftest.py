#!/usr/bin/env python3
"""Differential testing of moe-optimize by execution.

Generates random effectful programs and runs each before and after the memory
passes:

* moe programs: random chains of moe.gate, moe.topk (softmax/sigmoid, groups,
  correction bias, renormalize, scaling), moe.routed_experts (in place or
  not), moe.shared_experts, moe.add and memref.copy on small odd shapes
  (several experts, k > 1, bf16/f16/f32, static or dynamic token counts), with
  a moe.role on every argument and intermediate memref.alloc/dealloc placed
  anywhere legal (allocations early, deallocations late: orders that are not
  memory-optimal). Each is compiled with `moe-compile --no-optimize` and with
  `moe-compile` (moe-optimize), run with `moe-run --backend cpu --json`, and
  the checksums must be equal (bitwise), the optimized peak no higher.
* linalg programs on memrefs: linalg.copy/add/sub/mul/fill/generic (in-place
  writes, read-modify-write bodies, reductions, transposes), memref.copy,
  writes through subviews, loops around in-place ops, prints of intermediate
  buffers (calls of unknown effect), static and dynamic sizes, arguments that
  may alias (and that main sometimes passes aliased). Each is lowered with
  mlir-opt and run by mlir-runner as written, after
  `moe-opt --moe-optimize=plan=false` and after `moe-opt --moe-optimize`; the
  outputs (values and their bits) must be identical.

Independently of the passes, the script also checks (from the IR text, with
ops identified by a `test.id` attribute the generator attaches):

* order: the optimized function has the same ops with the same operands, and
  every pair of ops that conflict on memory (RAW, WAR, WAW, by the
  generator's own knowledge of what each op reads and writes and which
  arguments may alias) keeps its relative order; no buffer is used before its
  allocation or after its deallocation; `moe-defer-shared-experts` alone too;
* plan: every buffer and workspace placed in the arena lies inside the arena,
  and no two of them whose lifetimes (first to last use) overlap share a byte,
  at several token counts;
* peak (linalg): the peak of the scheduled function, walked alloc by dealloc,
  is no higher than the input's.

Deterministic by seed: program i of a run uses seed S + i. One line per
failure (with the command that reproduces it), then a summary line.

  scripts/difftest.py --count 1000 --seed 1 --jobs 2
  scripts/difftest.py --seed 1234 --count 1 --keep /tmp/p1234   # reproduce
"""
import argparse
import concurrent.futures
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from difftestlib.common import *  # noqa: E402,F401,F403
from difftestlib.checks import *  # noqa: E402,F401,F403
from difftestlib.generate import generate  # noqa: E402

# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------

class Tools:
    def __init__(self, args):
        def find(name, dirs):
            for d in dirs:
                if d and os.path.exists(os.path.join(d, name)):
                    return os.path.join(d, name)
            w = shutil.which(name)
            if w:
                return w
            raise SystemExit("difftest: cannot find %s (give --bin-dir/--llvm-bin)" % name)
        moe_dirs = [args.bin_dir, os.path.join(REPO, "build", "bin")]
        llvm_dirs = [args.llvm_bin, "/usr/lib/llvm-22/bin"]
        self.moe_opt = find("moe-opt", moe_dirs)
        self.moe_compile = find("moe-compile", moe_dirs)
        self.moe_run = find("moe-run", moe_dirs)
        self.mlir_opt = find("mlir-opt", llvm_dirs)
        self.mlir_runner = find("mlir-runner", llvm_dirs)
        lib = args.mlir_lib_dir or os.path.join(
            os.path.dirname(os.path.dirname(os.path.realpath(self.mlir_runner))), "lib")
        self.runner_libs = ",".join(os.path.join(lib, "lib%s.so" % n)
                                    for n in ("mlir_runner_utils", "mlir_c_runner_utils"))


def run(cmd, stdin=None, timeout=60):
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def first_line(s):
    s = s.strip().splitlines()
    return s[0] if s else ""


def must(what, cmd, stdin=None):
    rc, out, err = run(cmd, stdin)
    if rc != 0:
        raise CheckFailure("%s failed (exit %d): %s" % (what, rc, first_line(err) or first_line(out)))
    if "warning" in err and "moe-run" not in cmd[0]:
        # Scheduler warnings (unmodellable blocks) are not expected here.
        raise CheckFailure("%s warned: %s" % (what, first_line(err)))
    return out, err


STATS_LOCK = __import__("threading").Lock()


def bump(stats, key):
    with STATS_LOCK:
        stats[key] = stats.get(key, 0) + 1


def moved(prog, pos):
    """Whether ops with effects changed their relative order."""
    ids = [i for i in pos if prog.effects.get(i) and any(prog.effects[i])]
    return sorted(ids, key=pos.get) != sorted(ids)


def test_moe(prog, tools, work, stats):
    src = os.path.join(work, "prog.mlir")
    with open(src, "w") as f:
        f.write(prog.text)
    rc, out, err = run([tools.moe_opt, src])
    if rc != 0:
        raise CheckFailure("generator: invalid program: " + first_line(err))
    hint = prog.hint
    opt_nplan, _ = must("moe-opt --moe-optimize=plan=false",
                        [tools.moe_opt, src, "--moe-optimize=plan=false token-hint=%d" % hint])
    pos = check_order(prog, prog.text, opt_nplan, "moe_diff", "moe-optimize")
    if moved(prog, pos):
        bump(stats, "reordered")
    if prog.has_shared:
        defer, _ = must("moe-opt --moe-defer-shared-experts",
                        [tools.moe_opt, src, "--moe-defer-shared-experts"])
        dpos = check_order(prog, prog.text, defer, "moe_diff", "moe-defer-shared-experts")
        if moved(prog, dpos):
            bump(stats, "deferred")
    # The same program with arguments that may alias: order checks only.
    alias_src = os.path.join(work, "alias.mlir")
    with open(alias_src, "w") as f:
        f.write(prog.alias_text)
    for flags in (["--moe-optimize=plan=false token-hint=%d%s" % (hint, prog.budget)],
                  ["--moe-defer-shared-experts"] if prog.has_shared else None):
        if flags:
            out, _ = must("moe-opt %s (aliasing arguments)" % flags[0],
                          [tools.moe_opt, alias_src] + flags)
            check_order(prog, prog.alias_text, out, "moe_diff",
                        flags[0] + " (aliasing arguments)", prog.alias_distinct)
    opt_plan, _ = must("moe-opt --moe-optimize",
                       [tools.moe_opt, src, "--moe-optimize=token-hint=%d" % hint])
    samples = [0, 1, 2, 3, 7, 64, 1000] if prog.tokens is None else [prog.tokens]
    samples += prog.run_tokens
    planned = check_plan(prog, prog.text, opt_plan, "moe_diff", samples)
    if planned is not None:
        bump(stats, "planned")
    # Compile and run.
    so_a = os.path.join(work, "noopt.so")
    so_b = os.path.join(work, "opt.so")
    hint_flag = ["--token-hint=%d" % hint]
    must("moe-compile --no-optimize", [tools.moe_compile, src, "-o", so_a, "--no-optimize"] + hint_flag)
    must("moe-compile", [tools.moe_compile, src, "-o", so_b] + hint_flag)
    counts = prog.run_tokens if prog.tokens is None else [None]
    for n, T in enumerate(counts):
        res = []
        for so in (so_a, so_b):
            cmd = [tools.moe_run, so, "--backend", "cpu", "--json", "--quiet"]
            if T is not None:
                cmd += ["--tokens", str(T)]
            out, err = must("moe-run " + os.path.basename(so), cmd)
            try:
                res.append(json.loads(out))
            except ValueError:
                raise CheckFailure("moe-run printed no JSON: " + first_line(out))
        a, b = res
        tt = "T=%s" % (T if T is not None else prog.tokens)
        if a["checksum"] != b["checksum"]:
            raise CheckFailure("%s: checksums differ: %s unoptimized, %s optimized"
                               % (tt, a["checksum"], b["checksum"]))
        if n == 0:
            # At the hint: never higher.
            if b["peak_bytes"] > a["peak_bytes"]:
                raise CheckFailure("%s: optimized peak %d > unoptimized %d (%s)"
                                   % (tt, b["peak_bytes"], a["peak_bytes"],
                                      "arena" if planned else "no plan"))
            if b["peak_bytes"] < a["peak_bytes"]:
                bump(stats, "lower-peak")
        # A planned module allocates its arena and nothing else.
        if planned is not None and planned["other_allocs"] == 0:
            arena = at(planned["arena"], T if T is not None else prog.tokens)
            if b["peak_bytes"] != arena:
                raise CheckFailure("%s: measured peak %d != the arena's %d bytes"
                                   % (tt, b["peak_bytes"], arena))


def clean_runner_output(out):
    return re.sub(r"base@ = 0x[0-9a-f]+", "base@", out)


def test_linalg(prog, tools, work, stats):
    src = os.path.join(work, "prog.mlir")
    with open(src, "w") as f:
        f.write(prog.text)
    rc, out, err = run([tools.moe_opt, src])
    if rc != 0:
        raise CheckFailure("generator: invalid program: " + first_line(err))
    hint = prog.hint
    nplan, _ = must("moe-opt --moe-optimize=plan=false",
                    [tools.moe_opt, src, "--moe-optimize=plan=false token-hint=%d%s"
                     % (hint, prog.budget)])
    pos = check_order(prog, prog.text, nplan, "compute", "moe-optimize")
    if moved(prog, pos):
        bump(stats, "reordered")
    plan, _ = must("moe-opt --moe-optimize", [tools.moe_opt, src,
                                              "--moe-optimize=token-hint=%d%s"
                                              % (hint, prog.budget)])
    tokens = prog.dyn if prog.dyn is not None else 0
    samples = [tokens] if prog.dyn is not None else [0]
    if check_plan(prog, prog.text, plan, "compute", samples) is not None:
        bump(stats, "planned")
    # Peaks, walked: never higher than the input's (at the hint).
    at_t = prog.dyn if prog.dyn is not None else 0
    p_in = walked_peak(prog.text, "compute", at_t)
    p_sched = walked_peak(nplan, "compute", at_t)
    p_plan = walked_peak(plan, "compute", at_t)
    if p_sched > p_in:
        raise CheckFailure("scheduled peak %d > input peak %d" % (p_sched, p_in))
    if p_plan > p_in:
        raise CheckFailure("planned peak %d > input peak %d" % (p_plan, p_in))
    if p_sched < p_in:
        bump(stats, "lower-peak")
    outs = []
    for name, text in (("input", prog.text), ("scheduled", nplan), ("planned", plan)):
        lowered, _ = must("mlir-opt (%s)" % name, [tools.mlir_opt, "-"] + LOWER, stdin=text)
        out, _ = must("mlir-runner (%s)" % name,
                      [tools.mlir_runner, "-e", "main", "-entry-point-result=void",
                       "-shared-libs=" + tools.runner_libs], stdin=lowered)
        outs.append((name, clean_runner_output(out)))
        with open(os.path.join(work, name + ".out"), "w") as f:
            f.write(out)
    for name, out in outs[1:]:
        if out != outs[0][1]:
            raise CheckFailure("outputs differ: input vs %s" % name)


def test_one(seed, tools, keep_root, stats):
    prog = generate(seed)
    work = tempfile.mkdtemp(prefix="difftest-%d-" % seed)
    try:
        if prog.kind == "moe":
            test_moe(prog, tools, work, stats)
        else:
            test_linalg(prog, tools, work, stats)
        for f in prog.features:
            bump(stats, "%s:%s" % (prog.kind, f))
        return prog.kind, None
    except CheckFailure as e:
        return prog.kind, str(e)
    except subprocess.TimeoutExpired as e:
        return prog.kind, "timeout: %s" % " ".join(e.cmd[:2])
    except Exception as e:  # a bug of the script, or output it cannot read
        return prog.kind, "internal error of difftest.py: %s: %s" % (type(e).__name__, e)
    finally:
        if keep_root:
            dest = os.path.join(keep_root, "seed-%d" % seed)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(work, dest)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100, help="programs to test")
    ap.add_argument("--seed", type=int, default=1, help="seed of the first program")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--kind", choices=["moe", "linalg"], help="only this kind (others skipped)")
    ap.add_argument("--keep", help="keep each program's files under this folder")
    ap.add_argument("--print", action="store_true", help="print the program(s) and exit")
    ap.add_argument("--stats", action="store_true",
                    help="also print how many passing programs have each feature")
    ap.add_argument("--bin-dir", help="where moe-opt, moe-compile, moe-run are")
    ap.add_argument("--llvm-bin", help="where mlir-opt and mlir-runner are")
    ap.add_argument("--mlir-lib-dir", help="where libmlir_runner_utils.so is")
    args = ap.parse_args()

    seeds = list(range(args.seed, args.seed + args.count))
    CONTRACT.bin_dirs.insert(0, args.bin_dir)
    if args.print:
        for s in seeds:
            p = generate(s)
            print("// seed %d: %s program" % (s, p.kind))
            print(p.text)
        return 0
    tools = Tools(args)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    stats = {"reordered": 0, "deferred": 0, "planned": 0, "lower-peak": 0}
    kinds = {"moe": 0, "linalg": 0}
    failures = []
    start = time.time()
    me = os.path.abspath(__file__)
    if not os.path.relpath(me).startswith(".."):
        me = os.path.relpath(me)
    for flag in ("bin_dir", "llvm_bin", "mlir_lib_dir"):
        if getattr(args, flag):
            me += " --%s %s" % (flag.replace("_", "-"), getattr(args, flag))

    def job(s):
        if args.kind and generate(s).kind != args.kind:
            return None, None
        return test_one(s, tools, args.keep, stats)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        for s, (kind, err) in zip(seeds, ex.map(job, seeds)):
            if kind is None:
                continue
            kinds[kind] += 1
            if err:
                failures.append(s)
                print("FAIL seed %d (%s): %s\n  reproduce: %s --seed %d --count 1 --keep /tmp/difftest"
                      % (s, kind, err, me, s), flush=True)
    total = kinds["moe"] + kinds["linalg"]
    print("difftest: %d programs (%d moe, %d linalg), seeds %d..%d: %d failures; "
          "%d reordered (%d by the deferral), %d planned, %d with a lower peak; %.1f s"
          % (total, kinds["moe"], kinds["linalg"], args.seed, args.seed + args.count - 1,
             len(failures), stats["reordered"], stats["deferred"], stats["planned"],
             stats["lower-peak"], time.time() - start))
    if args.stats:
        for kind in ("moe", "linalg"):
            feats = sorted((k.split(":", 1)[1], v) for k, v in stats.items()
                           if k.startswith(kind + ":"))
            print("coverage (%s): %s" % (kind, ", ".join("%s %d" % f for f in feats)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
