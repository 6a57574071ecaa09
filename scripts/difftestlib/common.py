"""What the differential tester's generators and checks share: the program
model (buffers, ops, aliasing), the op contract's answers (moe-contract),
allocation placement and the emitter."""
import json
import os
import random
import re
import shutil
import subprocess
import threading

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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

    def exe(self):
        exe = next((os.path.join(d, "moe-contract") for d in self.bin_dirs
                    if d and os.path.exists(os.path.join(d, "moe-contract"))),
                   shutil.which("moe-contract"))
        if not exe:
            raise SystemExit("difftest: cannot find moe-contract (give --bin-dir)")
        return exe

    def query(self, request):
        key = json.dumps(request, sort_keys=True)
        with self.lock:
            if key not in self.cache:
                if self.proc is None:
                    self.proc = subprocess.Popen([self.exe(), "--query"], stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, text=True)
                self.proc.stdin.write(key + "\n")
                self.proc.stdin.flush()
                self.cache[key] = json.loads(self.proc.stdout.readline())
            return self.cache[key]

    def spec(self, op):
        """The op's entry in `moe-contract --json`."""
        with self.lock:
            if not hasattr(self, "ops"):
                out = subprocess.run([self.exe(), "--json"], capture_output=True, text=True,
                                     check=True).stdout
                self.ops = {o["name"]: o for o in json.loads(out)["ops"]}
        return self.ops[op]

    def shape(self, op, operand, sizes):
        """Operand `operand` of `op` in the layer's sizes ({"T": ..., "H":
        ...}; T may be symbolic): the contract's shape, e.g. w13 is (E, 2I,
        H)."""
        spec = next(o for o in self.spec(op)["operands"] if o["name"] == operand)
        return tuple(sizes[sym] if factor == 1 else factor * sizes[sym]
                     for sym, factor in spec["shape"])

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
