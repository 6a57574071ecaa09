"""Random programs of upstream linalg ops on memrefs (with scf loops,
views, casts and prints), run by mlir-runner."""
import random

from .common import *  # noqa: F401,F403


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
