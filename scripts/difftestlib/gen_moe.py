"""Random programs of moe ops (MoE layers, chains, in-place routing, shared
experts, adds, copies), with the reads and writes the checks need."""
import random

from .common import *  # noqa: F401,F403


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
        sizes = {"T": T, "H": H, "E": c["E"]}
        shape = lambda name: CONTRACT.shape("moe.gate", name, sizes)  # noqa: E731
        hidden = self.source(shape("hidden"), D, fresh=0.1)
        wdt = D if self.r.random() < 0.85 else self.r.choice(["bf16", "f16", "f32"])
        w = self.weight(shape("gate_weight"), wdt)
        out = self.target(shape("logits"), "f32", exclude=[hidden, w])
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
        sizes = {"T": T, "E": c["E"], "K": c["k"]}
        shape = lambda name: CONTRACT.shape("moe.topk", name, sizes)  # noqa: E731
        logits = self.source(shape("logits"), "f32", fresh=0.0,
                             pred=lambda b: True)
        bias = self.weight(shape("bias"), "f32") if c["bias"] else None
        ins = [logits] + ([bias] if bias else [])
        ids = self.target(shape("topk_ids"), "i32", exclude=ins)
        wts = self.target(shape("topk_weights"), "f32", exclude=ins + [ids])
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
        sizes = {"T": T, "H": H, "E": c["E"], "K": c["k"], "I": c["I"]}
        shape = lambda name: CONTRACT.shape("moe.routed_experts", name, sizes)  # noqa: E731
        hidden = self.source(shape("hidden"), D, fresh=0.1)
        w13 = self.weight(shape("w13"), D)
        w2 = self.weight(shape("w2"), D)
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
        sizes = {"T": T, "H": H, "I": Is}
        shape = lambda name: CONTRACT.shape("moe.shared_experts", name, sizes)  # noqa: E731
        hidden = self.source(shape("hidden"), D, fresh=0.1)
        w13 = self.weight(shape("w13"), D)
        w2 = self.weight(shape("w2"), D)
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
