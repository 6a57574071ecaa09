"""Independent checks of a pass's output: the IR read back, the order
(every dependence kept), the plan (every buffer and workspace inside the
arena, no two live at once overlapping) and the walked peak."""
import re

from .common import *  # noqa: F401,F403


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
