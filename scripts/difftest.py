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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

ELEM_BYTES = {"bf16": 2, "f16": 2, "f32": 4, "i32": 4, "i8": 1}
LOWER = ["--convert-linalg-to-loops", "--convert-scf-to-cf",
         "--expand-strided-metadata", "--lower-affine",
         "--finalize-memref-to-llvm", "--convert-arith-to-llvm",
         "--convert-cf-to-llvm", "--convert-func-to-llvm",
         "--reconcile-unrealized-casts"]


class GenError(Exception):
    """The generator could not build a program (retried with another seed)."""


class Contract:
    """The op contract's checks and workspace formulas, asked of
    `moe-contract --query` (one process, answers cached): which routing
    parameters moe.topk accepts and how large each op's workspace is come
    from the contract, not from rules restated here."""

    def __init__(self):
        self.bin_dirs = [os.path.join(REPO, "build", "bin")]
        self.proc = None
        self.cache = {}
        self.lock = threading.Lock()

    def query(self, request):
        key = json.dumps(request, sort_keys=True)
        with self.lock:
            if key not in self.cache:
                if self.proc is None:
                    exe = next((os.path.join(d, "moe-contract") for d in self.bin_dirs
                                if d and os.path.exists(os.path.join(d, "moe-contract"))),
                               shutil.which("moe-contract"))
                    if not exe:
                        raise SystemExit("difftest: cannot find moe-contract (give --bin-dir)")
                    self.proc = subprocess.Popen([exe, "--query"], stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, text=True)
                self.proc.stdin.write(key + "\n")
                self.proc.stdin.flush()
                self.cache[key] = json.loads(self.proc.stdout.readline())
            return self.cache[key]

    def legal(self, op, sizes, attrs=None, absent=(), dtype="f32"):
        return self.query({"op": op, "sizes": sizes, "attrs": attrs or {},
                           "absent": list(absent), "dtype": dtype})["ok"]

    def workspace(self, op, sizes, dtype):
        answer = self.query({"op": op, "sizes": sizes, "dtype": dtype})
        if not answer["ok"]:
            raise GenError("contract: " + answer["error"])
        return tuple(answer["workspace"])


CONTRACT = Contract()


def mtype(shape, dtype):
    dims = "x".join("?" if d == "T" else str(d) for d in shape)
    return "memref<%sx%s>" % (dims, dtype) if dims else "memref<%s>" % dtype


# ---------------------------------------------------------------------------
# Programs, as the generator knows them
# ---------------------------------------------------------------------------

class Buf:
    def __init__(self, bid, shape, dtype, kind, role=None):
        self.id = bid
        self.written_at = -1
        self.shape = tuple(shape)
        self.dtype = dtype
        self.kind = kind            # "arg" or "alloc"
        self.role = role            # moe.role, or None
        self.distinct = False       # may not alias other arguments
        self.arg_index = None
        self.name = None            # SSA name in the generated text
        self.init = set()           # regions holding data: "all", "lo", "hi"
        self.ids_range = None       # i32 buffers: the ids are < this
        self.size_value = None      # allocs with a dynamic size: the SSA size

    @property
    def type(self):
        return mtype(self.shape, self.dtype)

    def initialized(self, region="all"):
        if "all" in self.init:
            return True
        if region == "all":
            return "lo" in self.init and "hi" in self.init
        return region in self.init

    def root(self):
        return ("a%d" % self.arg_index) if self.kind == "arg" else ("b%d" % self.id)


class Op:
    def __init__(self, kind):
        self.kind = kind
        self.id = None
        self.reads = []     # (root, region)
        self.writes = []
        self.bufs = []      # buffers the op uses (for alloc/dealloc placement)
        self.text = None    # a function of the names, filled at emission
        self.workspace = None  # (per_token, constant) for moe ops
        self.wrapper = None    # "loop": emitted inside an scf.for


class Program:
    def __init__(self, seed, kind):
        self.seed = seed
        self.kind = kind
        self.bufs = []
        self.ops = []
        self.text = ""
        self.effects = {}      # test.id -> (reads, writes)
        self.distinct_roots = set()
        self.tokens = None     # static token count, or None (dynamic)
        self.run_tokens = []   # moe, dynamic: the counts to run at
        self.hint = 16384
        self.has_shared = False
        self.dyn = None        # linalg: runtime size of "?"
        self.features = set()
        self.leaked = False
        self.budget = ""

    def new_buf(self, shape, dtype, kind, role=None):
        b = Buf(len(self.bufs), shape, dtype, kind, role)
        self.bufs.append(b)
        return b


def may_alias(distinct, r1, r2):
    """Roots: "aK" arguments (distinct ones in `distinct`), "bK" allocations,
    "OUT" the program's output stream."""
    if r1 == r2:
        return True
    if r1[0] == "a" and r2[0] == "a":
        return r1 not in distinct and r2 not in distinct
    return False


def regions_overlap(g1, g2):
    return not ({g1, g2} == {"lo", "hi"})


def conflict(distinct, e1, e2):
    r1, w1 = e1
    r2, w2 = e2

    def hit(xs, ys):
        for (ra, ga) in xs:
            for (rb, gb) in ys:
                if may_alias(distinct, ra, rb) and regions_overlap(ga, gb):
                    return True
        return False
    return hit(w1, r2) or hit(w1, w2) or hit(r1, w2)


# ---------------------------------------------------------------------------
# Emission shared by both kinds: allocation placement and test.id numbering
# ---------------------------------------------------------------------------

def place_allocs(prog, rng, allow_leak):
    """Random legal positions: each alloc at or before its first use, each
    dealloc after its last use (or none, sometimes). Returns the allocations
    before each op (slot n: after the last op) and the deallocations after
    each op (slot n: at the end)."""
    n = len(prog.ops)
    first, last = {}, {}
    for i, op in enumerate(prog.ops):
        for b in op.bufs:
            if b.kind != "alloc":
                continue
            first.setdefault(b.id, i)
            last[b.id] = i
    allocs_at = {i: [] for i in range(n + 1)}
    deallocs_after = {i: [] for i in range(n + 1)}
    for b in prog.bufs:
        if b.kind != "alloc":
            continue
        if b.id not in first:      # never used
            p = rng.randint(0, n)
            allocs_at[p].append(b)
            if rng.random() < 0.8:
                deallocs_after[rng.randint(p, n)].append(b)
            continue
        f, l = first[b.id], last[b.id]
        # Early allocations and late deallocations most of the time: work
        # for the scheduler.
        p = rng.randint(0, f) if rng.random() < 0.7 else f
        allocs_at[p].append(b)
        if allow_leak and rng.random() < 0.06:
            prog.leaked = True
            continue
        q = rng.randint(l, n) if rng.random() < 0.7 else l
        deallocs_after[q].append(b)
    return allocs_at, deallocs_after


class Emitter:
    def __init__(self, prog):
        self.prog = prog
        self.lines = []
        self.next_id = 0

    def tag(self, reads=(), writes=()):
        i = self.next_id
        self.next_id += 1
        self.prog.effects[i] = (list(reads), list(writes))
        return i

    def emit_body(self, allocs_at, deallocs_after, indent="  "):
        prog = self.prog
        for i in range(len(prog.ops) + 1):
            for b in allocs_at[i]:
                tid = self.tag()
                sizes = "(%s)" % b.size_value if "T" in b.shape else "()"
                self.lines.append("%s%s = memref.alloc%s {test.id = %d : i64} : %s"
                                  % (indent, b.name, sizes, tid, b.type))
            if i < len(prog.ops):
                prog.ops[i].emit(self, indent)
            for b in deallocs_after[i]:
                tid = self.tag()
                self.lines.append("%smemref.dealloc %s {test.id = %d : i64} : %s"
                                  % (indent, b.name, tid, b.type))


# ---------------------------------------------------------------------------
# moe programs
# ---------------------------------------------------------------------------

SCALES = ["1.0", "0.5", "2.0", "-1.0", "0.25", "1.5"]


class MoEGen:
    def __init__(self, prog, rng):
        self.p = prog
        self.r = rng
        r = rng
        self.dtype = r.choice(["bf16", "bf16", "f16", "f32"])
        self.H = r.choice([3, 5, 7, 8, 9, 12, 13, 16, 17, 24, 31, 33])
        if r.random() < 0.4:
            prog.tokens = None
            prog.run_tokens = [r.choice([1, 2, 3, 5, 7, 9, 13, 16, 21]),
                               r.choice([0, 1, 4, 6, 11, 19, 30])]
            prog.hint = prog.run_tokens[0]
        else:
            prog.tokens = r.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 16, 19, 23])
            if prog.tokens == 0 and r.random() < 0.6:
                prog.tokens = 5
            prog.hint = r.choice([prog.tokens, 16384])
        # Static token counts are concrete from the start, so that a weight
        # may have the very type of an activation.
        self.T = "T" if prog.tokens is None else prog.tokens
        self.configs = [self.make_config() for _ in range(r.choice([1, 1, 2, 3]))]
        self.shared_sizes = [r.choice([1, 2, 3, 5, 6, 8, 11])
                             for _ in range(r.choice([1, 2]))]
        # Sometimes a weight has the type of an activation (T = 2*Is): the
        # passes must not mistake either for the other.
        if prog.tokens and prog.tokens % 2 == 0 and r.random() < 0.3:
            self.shared_sizes.append(prog.tokens // 2)
        self.n_args = 0
        self.layer = None
        self.named = r.random() < 0.5
        self.dims = ["%T0"]
        if prog.tokens is None and r.random() < 0.2:
            self.dims.append("%T1")  # a second token-count value: no plan
            prog.features.add("two-token-values")

    def make_config(self):
        """Routing parameters that moe.topk's contract accepts: drawn
        broadly, kept when the contract says they are legal."""
        r = self.r
        for _ in range(200):
            E = r.choice([2, 3, 4, 5, 6, 7, 8, 9, 12])
            scoring = r.choice(["softmax", "sigmoid"])
            n_group = r.randint(1, E) if r.random() < 0.5 else 1
            topk_group = r.randint(1, n_group)
            k = r.randint(1, min(E, 4))
            bias = scoring == "sigmoid" and r.random() < 0.6
            c = {"E": E, "k": k, "I": r.choice([1, 2, 3, 4, 5, 7, 9, 16]),
                 "scoring": scoring, "n_group": n_group, "topk_group": topk_group,
                 "renormalize": r.random() < 0.5,
                 "scale": r.choice(["1.0", "2.5", "0.75", "1.5"]), "bias": bias}
            attrs = {"scoring": scoring, "k": k, "n_group": n_group,
                     "topk_group": topk_group, "renormalize": c["renormalize"],
                     "routed_scaling_factor": float(c["scale"])}
            if CONTRACT.legal("moe.topk", {"T": 1, "E": E, "K": k}, attrs,
                              absent=() if bias else ("bias",)):
                return c
        raise GenError("no legal routing parameters")

    # Buffers ---------------------------------------------------------------

    def new_arg(self, shape, dtype, role):
        b = self.p.new_buf(shape, dtype, "arg", role)
        b.arg_index = self.n_args
        self.n_args += 1
        b.distinct = True
        self.p.distinct_roots.add(b.root())
        b.name = "%%a%d" % b.arg_index
        if role in ("input", "weight"):
            b.init.add("all")
        return b

    def new_alloc(self, shape, dtype):
        b = self.p.new_buf(shape, dtype, "alloc")
        b.name = "%%b%d" % b.id
        if "T" in shape:
            b.size_value = self.r.choice(self.dims)
        return b

    def candidates(self, shape, dtype, pred=None):
        return [b for b in self.p.bufs
                if b.shape == tuple(shape) and b.dtype == dtype and b.initialized()
                and (pred is None or pred(b))]

    def source(self, shape, dtype, role="input", pred=None, fresh=0.2):
        """An initialized buffer of this type (an argument, or anything that
        holds data), or a new argument."""
        c = self.candidates(shape, dtype, pred)
        if c and self.layer and role != "weight":
            # Inside a layer: the hidden input, or what was written last.
            if self.layer in c:
                return self.layer
            return max(c, key=lambda b: b.written_at)
        if c and self.r.random() > fresh:
            return self.r.choice(c)
        if pred is not None and not c:
            raise GenError("no source")
        if role == "input" and shape[0] != self.T:
            role = "weight"
        return self.new_arg(shape, dtype, role)

    def weight(self, shape, dtype):
        # Mostly weight arguments; sometimes a copy of one or another buffer
        # of the same type.
        return self.source(shape, dtype, "weight", fresh=0.5)

    def target(self, shape, dtype, exclude=()):
        r = self.r
        x = r.random()
        token_major = shape[0] == self.T
        excl = {b.id for b in exclude}
        if x < 0.5:
            return self.new_alloc(shape, dtype)
        if x < 0.75:
            c = [b for b in self.p.bufs if b.kind == "alloc" and b.shape == tuple(shape)
                 and b.dtype == dtype and b.id not in excl]
            if c:
                return r.choice(c)
            return self.new_alloc(shape, dtype)
        if token_major and x < 0.95:
            c = [b for b in self.p.bufs if b.kind == "arg" and b.role == "output"
                 and b.shape == tuple(shape) and b.dtype == dtype and b.id not in excl]
            if c and r.random() < 0.5:
                return r.choice(c)
            return self.new_arg(shape, dtype, "output")
        if token_major:
            c = [b for b in self.p.bufs if b.kind == "arg" and b.role == "input"
                 and b.shape == tuple(shape) and b.dtype == dtype and b.id not in excl]
            if c:
                return r.choice(c)
        return self.new_alloc(shape, dtype)

    # Ops -------------------------------------------------------------------

    def add_op(self, kind, reads, writes, text, workspace=None):
        op = Op(kind)
        op.reads = [(b.root(), "all") for b in reads]
        op.writes = [(b.root(), "all") for b in writes]
        seen = []
        for b in reads + writes:
            if b not in seen:
                seen.append(b)
        op.bufs = seen
        op.outs = writes
        op.text = text
        op.workspace = workspace

        def emit(em, indent, op=op):
            tid = em.tag(op.reads, op.writes)
            op.id = tid
            em.lines.append(indent + op.text(tid))
        op.emit = emit
        self.p.ops.append(op)
        for b in writes:
            b.init.add("all")
            b.written_at = len(self.p.ops)
        return op

    def gen_gate(self):
        T, H, D = self.T, self.H, self.dtype
        c = self.r.choice(self.configs)
        hidden = self.source((T, H), D, fresh=0.1)
        wdt = D if self.r.random() < 0.85 else self.r.choice(["bf16", "f16", "f32"])
        w = self.weight((c["E"], H), wdt)
        out = self.target((T, c["E"]), "f32", exclude=[hidden, w])
        if w.kind == "alloc" or w.role != "weight":
            self.p.features.add("weight-from-a-buffer")
        if wdt != D:
            self.p.features.add("mixed-gate-dtypes")
        self.add_op("gate", [hidden, w], [out], lambda i: (
            "moe.gate ins(%s, %s : %s, %s) outs(%s : %s) {test.id = %d : i64}"
            % (hidden.name, w.name, hidden.type, w.type, out.name, out.type, i)))

    def gen_topk(self):
        T = self.T
        cs = [c for c in self.configs if self.candidates((T, c["E"]), "f32")]
        if not cs:
            raise GenError("no logits")
        c = self.r.choice(cs)
        logits = self.source((T, c["E"]), "f32", fresh=0.0,
                             pred=lambda b: True)
        bias = self.weight((c["E"],), "f32") if c["bias"] else None
        ins = [logits] + ([bias] if bias else [])
        ids = self.target((T, c["k"]), "i32", exclude=ins)
        wts = self.target((T, c["k"]), "f32", exclude=ins + [ids])
        if wts is ids:
            raise GenError("same target")
        ids.ids_range = c["E"]
        self.p.features.add("topk-" + c["scoring"])
        if bias:
            self.p.features.add("topk-bias")
        if c["n_group"] > 1:
            self.p.features.add("topk-groups")
        if c["k"] > 1:
            self.p.features.add("k>1")
        attrs = ["k = %d : i64" % c["k"]]
        if c["n_group"] > 1 or self.r.random() < 0.2:
            attrs.append("n_group = %d : i64" % c["n_group"])
            attrs.append("topk_group = %d : i64" % c["topk_group"])
        if c["renormalize"]:
            attrs.append("renormalize")
        if c["scale"] != "1.0":
            attrs.append("routed_scaling_factor = %s : f32" % c["scale"])

        def text(i):
            s = "moe.topk %s ins(%s : %s) " % (c["scoring"], logits.name, logits.type)
            if bias:
                s += "bias(%s : %s) " % (bias.name, bias.type)
            s += "outs(%s, %s : %s, %s) {%s, test.id = %d : i64}" % (
                ids.name, wts.name, ids.type, wts.type, ", ".join(attrs), i)
            return s
        self.add_op("topk", ins, [ids, wts], text)

    def routed_workspace(self, c):
        return CONTRACT.workspace(
            "moe.routed_experts",
            {"T": 1, "H": self.H, "E": c["E"], "K": c["k"], "I": c["I"]}, self.dtype)

    def gen_routed(self):
        T, H, D = self.T, self.H, self.dtype
        r = self.r
        options = []
        for c in self.configs:
            ids = self.candidates((T, c["k"]), "i32",
                                  lambda b, c=c: b.ids_range == c["E"])
            wts = self.candidates((T, c["k"]), "f32")
            if (ids or r.random() < 0.15) and (wts or r.random() < 0.3):
                options.append((c, ids, wts))
        if not options:
            raise GenError("no routing")
        c, ids_c, wts_c = r.choice(options)
        if ids_c and r.random() < 0.9:
            ids = r.choice(ids_c)
        else:
            # An ids argument: moe-run fills it with distinct ids < E.
            ids = self.new_arg((T, c["k"]), "i32", "input")
            ids.ids_range = c["E"]
            self.p.features.add("ids-argument")
        wts = r.choice(wts_c) if wts_c and r.random() < 0.9 else \
            self.new_arg((T, c["k"]), "f32", "input")
        hidden = self.source((T, H), D, fresh=0.1)
        w13 = self.weight((c["E"], 2 * c["I"], H), D)
        w2 = self.weight((c["E"], H, c["I"]), D)
        ins = [hidden, ids, wts, w13, w2]
        inplace = r.random() < 0.3 and not (hidden.kind == "arg" and hidden.role == "weight")
        if inplace:
            out = hidden
            self.p.features.add("routed-inplace")
        else:
            out = self.target((T, H), D, exclude=ins)
        types = ", ".join(b.type for b in ins)
        names = ", ".join(b.name for b in ins)
        self.add_op("routed", ins, [out], lambda i: (
            "moe.routed_experts %sins(%s : %s) outs(%s : %s) {test.id = %d : i64}"
            % ("inplace " if inplace else "", names, types, out.name, out.type, i)),
            workspace=self.routed_workspace(c))

    def gen_shared(self):
        T, H, D = self.T, self.H, self.dtype
        Is = self.r.choice(self.shared_sizes)
        hidden = self.source((T, H), D, fresh=0.1)
        w13 = self.weight((2 * Is, H), D)
        w2 = self.weight((H, Is), D)
        ins = [hidden, w13, w2]
        out = self.target((T, H), D, exclude=ins)
        self.p.has_shared = True
        if any(b.kind == "alloc" or b.role != "weight" for b in (w13, w2)):
            self.p.features.add("weight-from-a-buffer")
        workspace = CONTRACT.workspace("moe.shared_experts",
                                       {"T": 1, "H": H, "I": Is}, D)
        self.add_op("shared", ins, [out], lambda i: (
            "moe.shared_experts ins(%s, %s, %s : %s, %s, %s) outs(%s : %s) "
            "{test.id = %d : i64}" % (hidden.name, w13.name, w2.name, hidden.type,
                                      w13.type, w2.type, out.name, out.type, i)),
            workspace=workspace)

    def gen_add(self):
        T, H, D = self.T, self.H, self.dtype
        r = self.r
        kinds = [((T, H), D)] * 4
        for c in self.configs:
            kinds.append(((T, c["E"]), "f32"))
            kinds.append(((T, c["k"]), "f32"))
        shape, dt = r.choice(kinds)
        if not self.candidates(shape, dt):
            shape, dt = (T, H), D
        lhs = self.source(shape, dt, fresh=0.1)
        rhs = self.source(shape, dt, fresh=0.2)
        x = r.random()
        if x < 0.2 and not (lhs.kind == "arg" and lhs.role == "weight"):
            out = lhs
        elif x < 0.3 and not (rhs.kind == "arg" and rhs.role == "weight"):
            out = rhs
        else:
            out = self.target(shape, dt, exclude=[lhs, rhs])
        scale = r.choice(SCALES)
        attr = "" if scale == "1.0" and r.random() < 0.7 else "scale = %s : f32, " % scale
        self.add_op("add", [lhs, rhs], [out], lambda i: (
            "moe.add ins(%s, %s : %s, %s) outs(%s : %s) {%stest.id = %d : i64}"
            % (lhs.name, rhs.name, lhs.type, rhs.type, out.name, out.type, attr, i)))

    def gen_copy(self):
        r = self.r
        T, H, D = self.T, self.H, self.dtype
        kinds = [((T, H), D)] * 3
        for c in self.configs:
            kinds.append(((c["E"], 2 * c["I"], H), D))   # a copy of a weight
            kinds.append(((T, c["k"]), "i32"))
            kinds.append(((T, c["E"]), "f32"))
        for Is in self.shared_sizes:
            kinds.append(((2 * Is, H), D))
        shape, dt = r.choice(kinds)
        if dt == "i32":
            src_c = self.candidates(shape, dt, lambda b: b.ids_range is not None)
            if not src_c:
                raise GenError("no ids")
            src = r.choice(src_c)
        else:
            src = self.source(shape, dt, "weight" if shape[0] != T else "input",
                              fresh=0.3)
        if shape[0] == T:
            dst = self.target(shape, dt, exclude=[src])
        else:
            dst = self.new_alloc(shape, dt)
        if dt == "i32":
            dst.ids_range = src.ids_range
        self.add_op("copy", [src], [dst], lambda i: (
            "memref.copy %s, %s {test.id = %d : i64} : %s to %s"
            % (src.name, dst.name, i, src.type, dst.type)))

    def gen_layer(self):
        """sglang's order on one hidden input: shared experts, gate, top-k,
        routed experts, add (what moe-defer-shared-experts looks for)."""
        T, H, D = self.T, self.H, self.dtype
        self.layer = self.source((T, H), D, fresh=0.1)
        try:
            self.gen_shared()
            shared_out = self.p.ops[-1].outs[0]
            if self.r.random() < 0.8:
                self.gen_gate()
                self.gen_topk()
            self.gen_routed()
            routed_out = self.p.ops[-1].outs[0]
            if self.r.random() < 0.8 and shared_out.initialized():
                self.layer = None
                out = self.target((T, H), D, exclude=[routed_out, shared_out])
                self.add_op("add", [routed_out, shared_out], [out], lambda i: (
                    "moe.add ins(%s, %s : %s, %s) outs(%s : %s) {test.id = %d : i64}"
                    % (routed_out.name, shared_out.name, routed_out.type,
                       shared_out.type, out.name, out.type, i)))
        finally:
            self.layer = None

    def generate(self):
        r = self.r
        p = self.p
        self.new_arg((self.T, self.H), self.dtype, "input")
        p.features.add("dynamic" if p.tokens is None else "static")
        p.features.add(self.dtype)
        gens = [(self.gen_layer, 2),
                (self.gen_gate, 3), (self.gen_topk, 3), (self.gen_routed, 3),
                (self.gen_shared, 2), (self.gen_add, 2), (self.gen_copy, 1)]
        n = r.randint(2, 14)
        tries = 0
        while len(p.ops) < n and tries < 200:
            tries += 1
            g = r.choices([g for g, _ in gens], [w for _, w in gens])[0]
            snapshot = (len(p.bufs), self.n_args, len(p.ops),
                        [(set(b.init), b.ids_range) for b in p.bufs])
            try:
                g()
            except GenError:
                # Undo what the failed op created.
                nb, na, no, states = snapshot
                del p.bufs[nb:]
                self.n_args = na
                del p.ops[no:]
                for b, (init, ids) in zip(p.bufs, states):
                    b.init, b.ids_range = init, ids
                p.distinct_roots = {b.root() for b in p.bufs if b.kind == "arg"}
        # Every program writes an output argument.
        if not any(b.role == "output" for b in p.bufs if b.kind == "arg"):
            src = self.source((self.T, self.H), self.dtype, fresh=0.0)
            dst = self.new_arg((self.T, self.H), self.dtype, "output")
            if r.random() < 0.5:
                self.add_op("copy", [src], [dst], lambda i: (
                    "memref.copy %s, %s {test.id = %d : i64} : %s to %s"
                    % (src.name, dst.name, i, src.type, dst.type)))
            else:
                self.add_op("add", [src, src], [dst], lambda i: (
                    "moe.add ins(%s, %s : %s, %s) outs(%s : %s) {test.id = %d : i64}"
                    % (src.name, src.name, src.type, src.type, dst.name, dst.type, i)))
        # An output argument that nothing writes stays NaN in both runs:
        # harmless, but the generator only makes them as targets anyway.
        if r.random() < 0.1:
            self.new_alloc((self.T, self.H), self.dtype)  # never used
            p.features.add("unused-buffer")
        for op in p.ops:
            p.features.add(op.kind)
        self.emit()

    def emit(self):
        p, r = self.p, self.r
        args = [b for b in p.bufs if b.kind == "arg"]
        args.sort(key=lambda b: b.arg_index)
        # Shuffle the argument order (names keep their data).
        order = list(range(len(args)))
        r.shuffle(order)
        sig = []
        # A variant for the order checks only: some arguments lose their
        # role (they may alias one another) or are marked llvm.noalias.
        alias_sig = []
        p.alias_distinct = set()
        for pos, ai in enumerate(order):
            b = args[ai]
            attrs = ['moe.role = "%s"' % b.role]
            if self.named or r.random() < 0.2:
                attrs.append('moe.name = "t%d"' % b.arg_index)
            sig.append("%s: %s {%s}" % (b.name, b.type, ", ".join(attrs)))
            x = r.random()
            if x < 0.5:
                alias_sig.append("%s: %s" % (b.name, b.type))
            else:
                alias_sig.append("%s: %s {%s}" % (b.name, b.type, "llvm.noalias" if x < 0.7
                                                 else 'moe.role = "%s"' % b.role))
                p.alias_distinct.add(b.root())
        em = Emitter(p)
        lines = ["func.func @moe_diff(%s) {" % ", ".join(sig)]
        if p.tokens is None:
            first_input = min((b for b in args if b.role != "weight"),
                              key=lambda b: order.index(b.arg_index))
            lines.append("  %c0 = arith.constant 0 : index")
            for d in self.dims:
                lines.append("  %s = memref.dim %s, %%c0 : %s"
                             % (d, first_input.name, first_input.type))
        allocs_at, deallocs_after = place_allocs(p, r, allow_leak=True)
        em.emit_body(allocs_at, deallocs_after)
        if p.leaked:
            p.features.add("leaked-buffer")
        lines += em.lines
        lines.append("  return")
        lines.append("}")
        p.text = "\n".join(lines) + "\n"
        p.alias_text = p.text.replace(lines[0], "func.func @moe_diff(%s) {" % ", ".join(alias_sig), 1)
        # Argument positions in the function (for the order check).
        p.workspaces = {op.id: op.workspace for op in p.ops if op.workspace}


# ---------------------------------------------------------------------------
# linalg programs
# ---------------------------------------------------------------------------

class LinalgGen:
    def __init__(self, prog, rng):
        self.p = prog
        self.r = rng
        self.splits = {}  # shape -> the row where "lo" ends and "hi" starts
        r = rng
        n = r.choice([2, 3, 4, 5, 6, 7])
        c = r.choice([4, 4, 8, 3, 5]) if r.random() < 0.8 else n
        self.classes = [(n,), (n, c)]
        self.square = (n, n) if r.random() < 0.3 else None
        if self.square and self.square not in self.classes:
            self.classes.append(self.square)
        if r.random() < 0.5:
            prog.dyn = r.choice([1, 2, 3, 5, 6])
            self.classes += [("T",), ("T", c)]
            prog.hint = prog.dyn
        else:
            prog.hint = r.choice([1, 16384])
        self.n_args = 0
        self.consts = ["%cst0", "%cst1", "%cst2"]
        self.const_values = [r.choice(["1.5", "-0.75", "2.0", "0.5", "3.0", "-2.5"])
                             for _ in self.consts]
        self.dims = []
        self.uid = 0

    def fresh(self, prefix):
        self.uid += 1
        return "%%%s%d" % (prefix, self.uid)

    def new_arg(self, shape):
        b = self.p.new_buf(shape, "f32", "arg")
        b.arg_index = self.n_args
        self.n_args += 1
        b.name = "%%a%d" % b.arg_index
        x = self.r.random()
        b.attr = ""
        if x < 0.35:
            b.attr = " {llvm.noalias}"
            b.distinct = True
        elif x < 0.5:
            b.attr = ' {moe.role = "%s"}' % self.r.choice(["input", "output", "weight"])
            b.distinct = True
        if b.distinct:
            self.p.distinct_roots.add(b.root())
        b.init.add("all")
        return b

    def new_alloc(self, shape):
        b = self.p.new_buf(shape, "f32", "alloc")
        b.name = "%%b%d" % b.id
        if "T" in shape:
            if not self.dims or self.r.random() < 0.1:
                self.dims.append(None)  # filled at emission
                b.size_dim = len(self.dims) - 1
            else:
                b.size_dim = self.r.randrange(len(self.dims))
        return b

    def any_init(self, shape, region="all"):
        c = [b for b in self.p.bufs if b.shape == shape and b.initialized(region)]
        if not c or self.r.random() < 0.1:
            return self.new_arg(shape)
        return self.r.choice(c)

    def target(self, shape, exclude=()):
        x = self.r.random()
        if x < 0.45:
            return self.new_alloc(shape)
        c = [b for b in self.p.bufs if b.shape == shape and b not in exclude]
        if c:
            return self.r.choice(c)
        return self.new_alloc(shape)

    def maps(self, rank):
        dims = ", ".join("d%d" % i for i in range(rank))
        return "affine_map<(%s) -> (%s)>" % (dims, dims)

    def add_op(self, kind, reads, writes, text, uses, wrapper=None):
        op = Op(kind)
        op.reads = reads
        op.writes = writes
        op.bufs = uses
        op.wrapper = wrapper

        def emit(em, indent, op=op):
            pre = []
            # Subviews and casts the op needs, each tagged.
            for (var, line) in op.pre:
                tid = em.tag()
                pre.append(indent + line.replace("@ID", str(tid)))
            em.lines += pre
            tid = em.tag(op.reads, op.writes)
            op.id = tid
            if op.wrapper == "loop":
                em.lines.append(indent + "scf.for %%i%d = %%c0 to %%c2 step %%c1 {" % tid)
                em.lines.append(indent + "  " + text(tid))
                em.lines.append(indent + "}")
            else:
                em.lines.append(indent + text(tid))
        op.pre = []
        op.emit = emit
        self.p.ops.append(op)
        return op

    def expr(self, leaves, depth=0):
        """A random f32 expression over `leaves`: (lines, value)."""
        r = self.r
        if depth >= 2 or r.random() < 0.3:
            return [], r.choice(leaves)
        la, a = self.expr(leaves, depth + 1)
        lb, b = self.expr(leaves, depth + 1)
        v = self.fresh("v")
        fn = r.choice(["arith.addf", "arith.mulf", "arith.subf", "arith.maximumf",
                       "arith.minimumf"])
        return la + lb + ["%s = %s %s, %s : f32" % (v, fn, a, b)], v

    def gen(self):
        r = self.r
        shape = r.choice(self.classes)
        kind = r.choices(["fill", "copy", "binary", "generic", "memcopy", "reduce",
                          "transpose", "partial", "loop", "print"],
                         [2, 2, 3, 3, 1, 1, 1, 2, 1, 1])[0]
        reg = lambda bs, g="all": [(b.root(), g) for b in bs]
        if kind == "fill":
            t = self.target(shape)
            cst = r.choice(self.consts)
            self.add_op(kind, [], reg([t]), lambda i: (
                "linalg.fill {test.id = %d : i64} ins(%s : f32) outs(%s : %s)"
                % (i, cst, t.name, t.type)), [t])
            t.init.add("all")
        elif kind in ("copy", "memcopy"):
            a = self.any_init(shape)
            t = self.target(shape, exclude=[a])
            if kind == "copy":
                text = lambda i: ("linalg.copy {test.id = %d : i64} ins(%s : %s) outs(%s : %s)"
                                  % (i, a.name, a.type, t.name, t.type))
            else:
                text = lambda i: ("memref.copy %s, %s {test.id = %d : i64} : %s to %s"
                                  % (a.name, t.name, i, a.type, t.type))
            self.add_op(kind, reg([a]), reg([t]), text, [a, t])
            t.init.add("all")
        elif kind in ("binary", "loop"):
            a = self.any_init(shape)
            b = self.any_init(shape)
            x = r.random()
            if kind == "loop" or x < 0.3:
                t = a            # in place
            elif x < 0.4:
                t = b
            else:
                t = self.target(shape)
            fn = r.choice(["linalg.add", "linalg.sub", "linalg.mul"])
            self.add_op(kind, reg([a, b]), reg([t]), lambda i: (
                "%s {test.id = %d : i64} ins(%s, %s : %s, %s) outs(%s : %s)"
                % (fn, i, a.name, b.name, a.type, b.type, t.name, t.type)),
                [a, b, t], wrapper="loop" if kind == "loop" else None)
            t.init.add("all")
            if kind == "loop":
                self.p.features.add("loop")
        elif kind == "generic":
            ins = [self.any_init(shape) for _ in range(r.randint(1, 2))]
            x = r.random()
            t = ins[0] if x < 0.3 else self.target(shape)
            read_out = t.initialized() and r.random() < 0.5
            leaves = ["%%in%d" % k for k in range(len(ins))] + \
                ([] if not read_out else ["%out"]) + self.consts
            body, v = self.expr(leaves)
            if v in self.consts and r.random() < 0.7:
                body, v = ["%s = arith.addf %%in0, %s : f32" % (self.fresh("v"), v)], None
                v = body[0].split(" ")[0]
            rank = len(shape)
            m = self.maps(rank)
            reads = reg(ins) + (reg([t]) if read_out else [])

            def text(i, ins=ins, t=t, body=body, v=v, m=m, rank=rank):
                args = ", ".join("%%in%d: f32" % k for k in range(len(ins)))
                s = ("linalg.generic {indexing_maps = [%s], iterator_types = [%s]} "
                     "ins(%s : %s) outs(%s : %s) attrs = {test.id = %d : i64} {\n"
                     % (", ".join([m] * (len(ins) + 1)),
                        ", ".join(['"parallel"'] * rank),
                        ", ".join(b.name for b in ins), ", ".join(b.type for b in ins),
                        t.name, t.type, i))
                s += "  ^bb0(%s, %%out: f32):\n" % args
                for line in body:
                    s += "      %s\n" % line
                s += "      linalg.yield %s : f32\n    }" % v
                return s
            self.add_op(kind, reads, reg([t]), text, ins + [t])
            t.init.add("all")
        elif kind == "reduce":
            if len(shape) != 2:
                shape = self.classes[1] if shape[0] != "T" else ("T", self.classes[1][1])
            a = self.any_init(shape)
            oshape = (shape[0],)
            t = self.any_init(oshape) if r.random() < 0.7 else None
            if t is None or t is a:
                t = self.target(oshape)
                # The body reads the output: it must hold data.
                if not t.initialized():
                    cst = r.choice(self.consts)
                    self.add_op("fill", [], reg([t]), lambda i, t=t, cst=cst: (
                        "linalg.fill {test.id = %d : i64} ins(%s : f32) outs(%s : %s)"
                        % (i, cst, t.name, t.type)), [t])
                    t.init.add("all")
            fn = r.choice(["arith.addf", "arith.maximumf"])
            self.add_op(kind, reg([a, t]), reg([t]), lambda i: (
                "linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, "
                "affine_map<(d0, d1) -> (d0)>], iterator_types = [\"parallel\", "
                "\"reduction\"]} ins(%s : %s) outs(%s : %s) attrs = {test.id = %d : i64} {\n"
                "    ^bb0(%%in: f32, %%acc: f32):\n"
                "      %%r = %s %%in, %%acc : f32\n"
                "      linalg.yield %%r : f32\n    }"
                % (a.name, a.type, t.name, t.type, i, fn)), [a, t])
        elif kind == "transpose":
            if not self.square:
                return
            a = self.any_init(self.square)
            t = self.target(self.square, exclude=[a])
            if t is a:
                return
            self.add_op(kind, reg([a]), reg([t]), lambda i: (
                "linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, "
                "affine_map<(d0, d1) -> (d0, d1)>], iterator_types = [\"parallel\", "
                "\"parallel\"]} ins(%s : %s) outs(%s : %s) attrs = {test.id = %d : i64} {\n"
                "    ^bb0(%%in: f32, %%o: f32):\n"
                "      linalg.yield %%in : f32\n    }"
                % (a.name, a.type, t.name, t.type, i)), [a, t])
            t.init.add("all")
        elif kind == "partial":
            # Writes through a subview of one half (rows) of a static 2-D buffer.
            shape = self.classes[1]
            if shape[0] == "T" or shape[0] < 2:
                return
            rows, cols = shape
            # One split per shape for the whole program: "lo" and "hi" name
            # the same rows in every op, so that what init says was written is
            # what a later read covers (a split drawn per op let a read of
            # rows 0..4 follow a write of rows 0..3: uninitialized data).
            h = self.splits.setdefault(shape, r.randint(1, rows - 1))
            half = r.choice(["lo", "hi"])

            def sub(buf, half):
                off = 0 if half == "lo" else h
                n = h if half == "lo" else rows - h
                layout = "strided<[%d, 1]>" % cols if off == 0 else \
                    "strided<[%d, 1], offset: %d>" % (cols, off * cols)
                ty = "memref<%dx%dxf32, %s>" % (n, cols, layout)
                var = self.fresh("sv")
                line = ("%s = memref.subview %s[%d, 0] [%d, %d] [1, 1] {test.id = @ID : i64} "
                        ": %s to %s" % (var, buf.name, off, n, cols, buf.type, ty))
                return var, ty, line
            t = self.target(shape)
            tv, tty, tline = sub(t, half)
            if r.random() < 0.5:
                cst = r.choice(self.consts)
                op = self.add_op(kind, [], [(t.root(), half)], lambda i: (
                    "linalg.fill {test.id = %d : i64} ins(%s : f32) outs(%s : %s)"
                    % (i, cst, tv, tty)), [t])
                op.pre = [(tv, tline)]
            else:
                # From the same half of a buffer holding data there, or from
                # the other half of the target itself.
                src_half = half
                cands = [b for b in self.p.bufs if b.shape == shape and
                         b.initialized(half) and b is not t]
                if not cands:
                    cands = [self.new_arg(shape)]
                a = r.choice(cands)
                av, aty, aline = sub(a, src_half)
                op = self.add_op(kind, [(a.root(), src_half)], [(t.root(), half)],
                                 lambda i: ("linalg.copy {test.id = %d : i64} ins(%s : %s) "
                                            "outs(%s : %s)" % (i, av, aty, tv, tty)),
                                 [a, t])
                op.pre = [(av, aline), (tv, tline)]
            t.init.add(half)
            self.p.features.add("subview")
        elif kind == "print":
            a = self.any_init(shape)
            u = self.fresh("u")
            op = self.add_op(kind, [(a.root(), "all")], [("OUT", "all")], lambda i: (
                "func.call @printMemrefF32(%s) {test.id = %d : i64} : (memref<*xf32>) -> ()"
                % (u, i)), [a])
            op.pre = [(u, "%s = memref.cast %s {test.id = @ID : i64} : %s to memref<*xf32>"
                       % (u, a.name, a.type))]
            self.p.features.add("print")

    def generate(self):
        r = self.r
        p = self.p
        for _ in range(r.randint(1, 3)):
            self.new_arg(r.choice(self.classes))
        if p.dyn is not None and not any("T" in b.shape for b in p.bufs):
            self.new_arg(("T",) + ((self.classes[1][1],) if r.random() < 0.5 else ()))
        n = r.randint(3, 14)
        while len(p.ops) < n:
            self.gen()
        if r.random() < 0.1:
            self.new_alloc(r.choice(self.classes))  # never used
            p.features.add("unused-buffer")
        p.features.add("dynamic" if p.dyn is not None else "static")
        for op in p.ops:
            p.features.add(op.kind)
            if any(w in op.reads for w in op.writes):
                p.features.add("in-place")
        self.emit()

    def emit(self):
        p, r = self.p, self.r
        args = sorted((b for b in p.bufs if b.kind == "arg"), key=lambda b: b.arg_index)
        dyn_args = [b for b in args if "T" in b.shape]
        if any(b.kind == "alloc" and "T" in b.shape for b in p.bufs) and not dyn_args:
            raise GenError("dynamic alloc without a dynamic argument")
        dim_lines = []
        for k in range(len(self.dims)):
            a = r.choice(dyn_args)
            self.dims[k] = "%%n%d" % k
            dim_lines.append("  %%n%d = memref.dim %s, %%c0 : %s" % (k, a.name, a.type))
        for b in p.bufs:
            if b.kind == "alloc" and "T" in b.shape:
                b.size_value = self.dims[b.size_dim]
        em = Emitter(p)
        allocs_at, deallocs_after = place_allocs(p, r, allow_leak=True)
        em.emit_body(allocs_at, deallocs_after)
        if p.leaked:
            p.features.add("leaked-buffer")
        if len(self.dims) > 1:
            p.features.add("two-token-values")
        sig = ", ".join("%s: %s%s" % (b.name, b.type, b.attr) for b in args)
        lines = ["func.func @compute(%s) {" % sig,
                 "  %c0 = arith.constant 0 : index",
                 "  %c1 = arith.constant 1 : index",
                 "  %c2 = arith.constant 2 : index"]
        for c, v in zip(self.consts, self.const_values):
            lines.append("  %s = arith.constant %s : f32" % (c, v))
        lines += dim_lines
        lines += em.lines
        lines += ["  return", "}", ""]
        lines += self.emit_main(args)
        p.text = "\n".join(lines) + "\n"

    def emit_main(self, args):
        p, r = self.p, self.r
        N = p.dyn

        def static_shape(shape):
            return tuple(N if d == "T" else d for d in shape)
        # The printers keep no pointer past the call: declared so
        # (llvm.nocapture), the buffers they print may still be planned. One
        # program in four leaves it out, and those buffers must stay
        # allocations of their own (a callee may keep them).
        nocapture = " {llvm.nocapture}" if p.seed % 4 else ""
        lines = ["func.func private @printMemrefF32(memref<*xf32>%s)" % nocapture,
                 "func.func private @printMemrefI32(memref<*xi32>%s)" % nocapture,
                 "",
                 "func.func @main() {",
                 "  %c0 = arith.constant 0 : index",
                 "  %c1 = arith.constant 1 : index",
                 "  %c7 = arith.constant 7 : index",
                 "  %c13 = arith.constant 13 : index",
                 "  %q = arith.constant 0.25 : f32",
                 "  %h = arith.constant 1.5 : f32"]
        # Arguments that may alias are sometimes passed the same buffer.
        storage = {}
        names = []
        for b in args:
            shared = None
            if not b.distinct:
                for a in args[:b.arg_index]:
                    if not a.distinct and a.type == b.type and r.random() < 0.3:
                        shared = storage[a.arg_index]
                        p.features.add("aliased-arguments")
                        break
            if shared:
                storage[b.arg_index] = shared
                names.append(shared[0])
                continue
            st = static_shape(b.shape)
            m = "%%m%d" % b.arg_index
            lines.append("  %s = memref.alloc() : %s" % (m, mtype(st, "f32")))
            # Fill: value = ((linear index * 7 + 5 * arg) mod 13) * 0.25 - 1.5
            ivs = ["%%i%d_%d" % (b.arg_index, d) for d in range(len(st))]
            ind = "  "
            for d, iv in enumerate(ivs):
                lines.append("%s%%ub%d_%d = arith.constant %d : index"
                             % (ind, b.arg_index, d, st[d]))
                lines.append("%sscf.for %s = %%c0 to %%ub%d_%d step %%c1 {"
                             % (ind, iv, b.arg_index, d))
                ind += "  "
            lin = ivs[0]
            if len(st) == 2:
                lines.append("%s%%cc = arith.constant %d : index" % (ind, st[1]))
                lines.append("%s%%r0 = arith.muli %s, %%cc : index" % (ind, ivs[0]))
                lines.append("%s%%r1 = arith.addi %%r0, %s : index" % (ind, ivs[1]))
                lin = "%r1"
            lines.append("%s%%k = arith.constant %d : index" % (ind, 5 * b.arg_index + 3))
            lines.append("%s%%s0 = arith.muli %s, %%c7 : index" % (ind, lin))
            lines.append("%s%%s1 = arith.addi %%s0, %%k : index" % ind)
            lines.append("%s%%s2 = arith.remui %%s1, %%c13 : index" % ind)
            lines.append("%s%%s3 = arith.index_cast %%s2 : index to i32" % ind)
            lines.append("%s%%s4 = arith.sitofp %%s3 : i32 to f32" % ind)
            lines.append("%s%%s5 = arith.mulf %%s4, %%q : f32" % ind)
            lines.append("%s%%s6 = arith.subf %%s5, %%h : f32" % ind)
            lines.append("%smemref.store %%s6, %s[%s] : %s"
                         % (ind, m, ", ".join(ivs), mtype(st, "f32")))
            for d in range(len(st)):
                ind = ind[:-2]
                lines.append(ind + "}")
            v = m
            if st != b.shape:
                v = "%%mc%d" % b.arg_index
                lines.append("  %s = memref.cast %s : %s to %s"
                             % (v, m, mtype(st, "f32"), b.type))
            storage[b.arg_index] = (v, m, st)
            names.append(v)
        lines.append("  call @compute(%s) : (%s) -> ()"
                     % (", ".join(names), ", ".join(b.type for b in args)))
        printed = []
        for b in args:
            v, m, st = storage[b.arg_index]
            if m in printed:
                continue
            printed.append(m)
            k = b.arg_index
            lines.append("  %%p%d = memref.cast %s : %s to memref<*xf32>"
                         % (k, m, mtype(st, "f32")))
            lines.append("  call @printMemrefF32(%%p%d) : (memref<*xf32>) -> ()" % k)
            # The bits.
            rank = len(st)
            mp = self.maps(rank)
            lines.append("  %%bits%d = memref.alloc() : %s" % (k, mtype(st, "i32")))
            lines.append("  linalg.generic {indexing_maps = [%s, %s], iterator_types = [%s]} "
                         "ins(%s : %s) outs(%%bits%d : %s) {"
                         % (mp, mp, ", ".join(['"parallel"'] * rank), m,
                            mtype(st, "f32"), k, mtype(st, "i32")))
            lines.append("  ^bb0(%in: f32, %out: i32):")
            lines.append("    %bc = arith.bitcast %in : f32 to i32")
            lines.append("    linalg.yield %bc : i32")
            lines.append("  }")
            lines.append("  %%pb%d = memref.cast %%bits%d : %s to memref<*xi32>"
                         % (k, k, mtype(st, "i32")))
            lines.append("  call @printMemrefI32(%%pb%d) : (memref<*xi32>) -> ()" % k)
            lines.append("  memref.dealloc %%bits%d : %s" % (k, mtype(st, "i32")))
        for b in args:
            v, m, st = storage[b.arg_index]
            if m in printed:
                printed.remove(m)
                lines.append("  memref.dealloc %s : %s" % (m, mtype(st, "f32")))
        lines += ["  return", "}"]
        return lines


def generate(seed):
    """The program of `seed` (deterministic)."""
    for attempt in range(20):
        rng = random.Random("difftest-%d-%d" % (seed, attempt))
        kind = "moe" if rng.random() < 0.6 else "linalg"
        prog = Program(seed, kind)
        try:
            if kind == "moe":
                MoEGen(prog, rng).generate()
            else:
                LinalgGen(prog, rng).generate()
            # Sometimes a tiny state budget: the scheduler's heuristics
            # instead of its exact search (moe-opt runs only).
            extra = random.Random("difftest-budget-%d" % seed)
            if extra.random() < 0.3:
                prog.budget = " state-budget=%d" % extra.choice([1, 2, 5, 20])
                prog.features.add("heuristic-schedule")
            return prog
        except GenError:
            continue
    raise RuntimeError("cannot generate a program for seed %d" % seed)


# ---------------------------------------------------------------------------
# Reading the IR back
# ---------------------------------------------------------------------------

SSA = re.compile(r"%[A-Za-z0-9_$.#-]+")
ID = re.compile(r"test\.id = (\d+) : i64")


def parse_function(text, name):
    """The ops of function @name, in order: dicts with id (or None), result
    names, operand names, the line, and the op name."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if re.match(r"\s*func\.func @%s\(" % re.escape(name), line):
            start = i
            break
    if start is None:
        raise ValueError("no function @%s in the output" % name)
    header = lines[start]
    args = []
    m = re.match(r"\s*func\.func @\w+\((.*)\)\s*(attributes.*)?\{\s*$", header)
    if m:
        args = re.findall(r"(%[\w$.-]+):", m.group(1))
    ops = []
    depth = 0
    for line in lines[start + 1:]:
        stripped = line.strip()
        if depth == 0 and stripped == "}":
            break
        opens = stripped.endswith("{") and not stripped.startswith("^")
        closes = stripped.startswith("}")
        if closes:
            depth -= 1
        if stripped and not stripped.startswith("^") and not stripped.startswith("}"):
            results = []
            body = stripped
            rm = re.match(r"((?:%[\w$.#-]+(?::\d+)?(?:, )?)+) = (.*)$", stripped)
            if rm:
                results = SSA.findall(rm.group(1))
                body = rm.group(2)
            opname = body.split(" ")[0].split("(")[0]
            # Operands: the %names before the type signature / attributes.
            idm = ID.search(body)
            clean = re.sub(r"\{[^{}]*\}", "", body) if not opens else body
            if opens:
                clean = body[:-1]
                clean = re.sub(r"attrs =\s*\{[^{}]*\}", "", clean)
            clean = re.sub(r"<\{[^{}]*\}>", "", clean)
            clean = re.sub(r"\{[^{}]*\}", "", clean)
            operands = SSA.findall(clean)
            if opname == "scf.for":
                operands = operands[1:]
            ops.append({"id": int(idm.group(1)) if idm else None, "results": results,
                        "operands": operands, "op": opname, "line": stripped,
                        "depth": depth})
        if opens:
            depth += 1
    return args, ops


def linear_values(ops):
    """Values of index SSA names as (per_token, constant), from constants,
    memref.dim (the token count), muli, addi and maxui (as a list of lines)."""
    vals = {}
    for op in ops:
        line = op["line"]
        if not op["results"]:
            continue
        res = op["results"][0]
        m = re.match(r"%[\w$.#-]+ = arith\.constant (-?\d+) : index", line)
        if m:
            vals[res] = [(0, int(m.group(1)))]
            continue
        if op["op"] == "memref.dim":
            vals[res] = [(1, 0)]
            continue
        if op["op"] in ("arith.muli", "arith.addi", "arith.maxui") and \
                all(o in vals for o in op["operands"][:2]):
            a, b = vals[op["operands"][0]], vals[op["operands"][1]]
            if op["op"] == "arith.maxui":
                vals[res] = a + b
            elif len(a) == 1 and len(b) == 1:
                (pa, ca), (pb, cb) = a[0], b[0]
                if op["op"] == "arith.addi":
                    vals[res] = [(pa + pb, ca + cb)]
                elif pa == 0:
                    vals[res] = [(ca * pb, ca * cb)]
                elif pb == 0:
                    vals[res] = [(pa * cb, ca * cb)]
    return vals


def at(lines, t):
    return max(p * t + c for p, c in lines)


class CheckFailure(Exception):
    pass


def identities(prog, args, ops):
    """SSA name -> identity: ("arg", i) or ("def", test.id)."""
    ident = {}
    for pos, a in enumerate(args):
        ident[a] = ("arg", pos)
    for op in ops:
        if op["id"] is not None:
            for res in op["results"]:
                ident[res] = ("def", op["id"])
    return ident


def check_order(prog, in_text, out_text, func, what, distinct=None):
    """The optimized function keeps the ops, their operands, the order of
    every conflicting pair, and alloc < uses < dealloc."""
    if distinct is None:
        distinct = prog.distinct_roots
    in_args, in_ops = parse_function(in_text, func)
    out_args, out_ops = parse_function(out_text, func)
    in_id = identities(prog, in_args, in_ops)
    out_id = identities(prog, out_args, out_ops)

    def operand_ids(op, ident):
        return [ident.get(o, "*") for o in op["operands"]]
    tin = {op["id"]: op for op in in_ops if op["id"] is not None}
    tout = {op["id"]: op for op in out_ops if op["id"] is not None}
    if set(tin) != set(tout):
        missing = sorted(set(tin) - set(tout))
        extra = sorted(set(tout) - set(tin))
        raise CheckFailure("%s: ops lost %s or added %s" % (what, missing, extra))
    for i, op in tin.items():
        a = [x for x in operand_ids(op, in_id) if x != "*"]
        b = [x for x in operand_ids(tout[i], out_id) if x != "*"]
        if a != b:
            raise CheckFailure("%s: op test.id=%d (%s) has operands %s, was %s"
                               % (what, i, op["op"], b, a))
    pos = {op["id"]: k for k, op in enumerate(out_ops) if op["id"] is not None}
    inpos = {op["id"]: k for k, op in enumerate(in_ops) if op["id"] is not None}
    eff = [(i, prog.effects[i]) for i in sorted(inpos, key=inpos.get)
           if prog.effects.get(i) and (prog.effects[i][0] or prog.effects[i][1])]
    for x in range(len(eff)):
        for y in range(x + 1, len(eff)):
            i, ei = eff[x]
            j, ej = eff[y]
            if pos[i] > pos[j] and conflict(distinct, ei, ej):
                raise CheckFailure(
                    "%s: illegal order: test.id=%d (%s) now runs after test.id=%d (%s), "
                    "but they conflict on memory" % (what, i, tin[i]["op"], j, tin[j]["op"]))
    # Allocation before, deallocation after every use (through views too).
    root_of = {}
    for op in out_ops:
        for res in op["results"]:
            if op["op"] == "memref.alloc":
                root_of[res] = res
            elif op["op"] in ("memref.subview", "memref.cast", "memref.view") and \
                    op["operands"] and op["operands"][0] in root_of:
                root_of[res] = root_of[op["operands"][0]]
    alloc_pos, dealloc_pos, uses = {}, {}, {}
    for k, op in enumerate(out_ops):
        if op["op"] == "memref.alloc":
            alloc_pos[op["results"][0]] = k
        elif op["op"] == "memref.dealloc":
            dealloc_pos[root_of.get(op["operands"][0])] = k
        else:
            for o in op["operands"]:
                if o in root_of:
                    uses.setdefault(root_of[o], []).append(k)
    for b, ks in uses.items():
        if b in dealloc_pos and max(ks) > dealloc_pos[b]:
            raise CheckFailure("%s: %s is used after its deallocation" % (what, b))
        if min(ks) < alloc_pos[b]:
            raise CheckFailure("%s: %s is used before its allocation" % (what, b))
    # A function has the same structure: every tagged op at the same depth.
    for i, op in tin.items():
        if op["depth"] != tout[i]["depth"]:
            raise CheckFailure("%s: test.id=%d moved between regions" % (what, i))
    return pos


def check_plan(prog, in_text, out_text, func, samples):
    """Arena items whose lifetimes overlap never share a byte, and all lie
    inside the arena, at each token count in `samples`."""
    in_args, in_ops = parse_function(in_text, func)
    out_args, out_ops = parse_function(out_text, func)
    arena = [op for op in out_ops if op["op"] == "memref.alloc" and "moe.arena" in op["line"]]
    if not arena:
        return None
    if len(arena) != 1:
        raise CheckFailure("plan: %d arenas" % len(arena))
    arena = arena[0]
    vals = linear_values(out_ops)
    m = re.search(r"memref<(\d+)xi8>", arena["line"])
    if m:
        arena_size = [(0, int(m.group(1)))]
    else:
        if arena["operands"][0] not in vals:
            raise CheckFailure("plan: cannot read the arena size")
        arena_size = vals[arena["operands"][0]]
    # Views: offset and size.
    items = {}
    aname = arena["results"][0]
    root_of = {}
    for op in out_ops:
        if op["op"] == "memref.view" and op["operands"][0] == aname:
            v = op["results"][0]
            off = vals.get(op["operands"][1])
            if off is None:
                raise CheckFailure("plan: cannot read the offset of %s" % v)
            tm = re.search(r"to (memref<[^>]*>)\s*$", op["line"])
            dims = tm.group(1)[len("memref<"):-1].split("x")
            elem = ELEM_BYTES[dims[-1]]
            per, const = 0, elem
            dyn = False
            for d in dims[:-1]:
                if d == "?":
                    dyn = True
                else:
                    const *= int(d)
            size = [(const, 0)] if dyn else [(0, const)]
            items[v] = {"offset": off, "size": size, "uses": []}
            root_of[v] = v
        elif op["op"] in ("memref.subview", "memref.cast") and op["results"] and \
                op["operands"] and op["operands"][0] in root_of:
            root_of[op["results"][0]] = root_of[op["operands"][0]]
    # Lifetimes over the tagged ops with effects, in the output order.
    step = 0
    for op in out_ops:
        if op["id"] is None or op["op"] in ("memref.subview", "memref.cast"):
            continue
        used = {root_of[o] for o in op["operands"] if o in root_of}
        for v in used:
            items[v]["uses"].append(step)
        wm = re.search(r"moe\.workspace_offset = array<i64: (\d+), (\d+)>", op["line"])
        if wm:
            ws = prog.workspaces.get(op["id"])
            if ws is None:
                raise CheckFailure("plan: workspace on an op without one")
            per, const = ws
            if prog.tokens is not None:
                size = [(0, per * prog.tokens + const)]
            else:
                size = [(per, const)]
            items["ws%d" % op["id"]] = {"offset": [(int(wm.group(1)), int(wm.group(2)))],
                                       "size": size, "uses": [step]}
        step += 1
    live = [(k, v) for k, v in items.items() if v["uses"]]
    for t in samples:
        asz = at(arena_size, t)
        spans = []
        for k, v in live:
            o = at(v["offset"], t)
            e = o + at(v["size"], t)
            if o < 0 or e > asz:
                raise CheckFailure("plan: %s [%d, %d) is outside the arena (%d bytes) at T=%d"
                                   % (k, o, e, asz, t))
            spans.append((k, o, e, min(v["uses"]), max(v["uses"])))
        for x in range(len(spans)):
            for y in range(x + 1, len(spans)):
                k1, o1, e1, f1, l1 = spans[x]
                k2, o2, e2, f2, l2 = spans[y]
                if f1 <= l2 and f2 <= l1 and o1 < e2 and o2 < e1 and e1 > o1 and e2 > o2:
                    raise CheckFailure(
                        "plan: %s [%d, %d) and %s [%d, %d) overlap in the arena at T=%d "
                        "while both are live (steps %d-%d and %d-%d)"
                        % (k1, o1, e1, k2, o2, e2, t, f1, l1, f2, l2))
    others = [op for op in out_ops if op["op"] == "memref.alloc" and op is not arena]
    return {"arena": arena_size, "other_allocs": len(others)}


def walked_peak(text, func, tokens):
    """Peak bytes of the allocations of @func, walking it as written."""
    args, ops = parse_function(text, func)
    live = peak = 0
    size = {}
    vals = linear_values(ops)
    for op in ops:
        if op["op"] == "memref.alloc":
            m = re.search(r": (memref<[^>]*>)\s*$", op["line"])
            dims = m.group(1)[len("memref<"):-1].split("x")
            n = ELEM_BYTES[dims[-1]]
            for d in dims[:-1]:
                n *= tokens if d == "?" else int(d)
            if "moe.arena" in op["line"] and "?" in dims:
                n = at(vals[op["operands"][0]], tokens)
            size[op["results"][0]] = n
            live += n
            peak = max(peak, live)
        elif op["op"] == "memref.dealloc":
            live -= size.get(op["operands"][0], 0)
    return peak


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
