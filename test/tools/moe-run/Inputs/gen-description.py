#!/usr/bin/env python3
"""Writes a module description in moe-gen's layer layout, for moe-run's tests
with the stand-in module (unittests/MoeRun/TestModule.cpp). The .json files
here were written with it; the command is in each test that uses them."""
import argparse, json

p = argparse.ArgumentParser()
p.add_argument("--name", default="test_moe")
p.add_argument("--hidden", type=int, required=True)
p.add_argument("--inter", type=int, required=True)
p.add_argument("--experts", type=int, required=True)
p.add_argument("--k", type=int, required=True)
p.add_argument("--n-group", type=int, default=1)
p.add_argument("--topk-group", type=int, default=1)
p.add_argument("--scoring", default="softmax")
p.add_argument("--bias", action="store_true")
p.add_argument("--shared", type=int, default=0)
p.add_argument("--layers", type=int, default=1)
p.add_argument("--dtype", default="bf16")
p.add_argument("--tokens", type=int, default=None)
p.add_argument("--inplace", action="store_true")
p.add_argument("--scale", type=float, default=1.0)
p.add_argument("--renormalize", action="store_true")
p.add_argument("--plan", default=None, help="per_token,constant")
a = p.parse_args()

T = -1 if a.tokens is None else a.tokens
H, I, E, K, dt = a.hidden, a.inter, a.experts, a.k, a.dtype
args, buffers, ops = [], [], []
def arg(name, role, dtype, shape):
    args.append({"name": name, "role": role, "dtype": dtype, "shape": shape}); return {"arg": len(args) - 1}
def buf(dtype, shape):
    buffers.append({"dtype": dtype, "shape": shape}); return {"buffer": len(buffers) - 1}
def op(name, operands, attrs=None):
    ops.append({"op": name, "operands": operands, "attrs": attrs or {}})

x = arg("hidden_states", "input", dt, [T, H])
layer_args = []
for l in range(a.layers):
    la = {"gate": arg(f"layers.{l}.gate.weight", "weight", dt, [E, H])}
    if a.bias:
        la["bias"] = arg(f"layers.{l}.gate.e_score_correction_bias", "weight", "f32", [E])
    la["w13"] = arg(f"layers.{l}.experts.w13", "weight", dt, [E, 2 * I, H])
    la["w2"] = arg(f"layers.{l}.experts.w2", "weight", dt, [E, H, I])
    if a.shared:
        la["sw13"] = arg(f"layers.{l}.shared_experts.w13", "weight", dt, [2 * a.shared, H])
        la["sw2"] = arg(f"layers.{l}.shared_experts.w2", "weight", dt, [H, a.shared])
    layer_args.append(la)
out = arg("output", "output", dt, [T, H])

cur = x
for l, la in enumerate(layer_args):
    y = out if l == a.layers - 1 else None
    if a.shared:
        sh = buf(dt, [T, H])
        op("moe.shared_experts", [cur, la["sw13"], la["sw2"], sh])
    logits = buf("f32", [T, E])
    op("moe.gate", [cur, la["gate"], logits])
    ids, w = buf("i32", [T, K]), buf("f32", [T, K])
    attrs = {"scoring": a.scoring, "k": K, "n_group": a.n_group, "topk_group": a.topk_group,
             "renormalize": a.renormalize, "routed_scaling_factor": a.scale, "has_bias": a.bias}
    op("moe.topk", [logits] + ([la["bias"]] if a.bias else []) + [ids, w], attrs)
    if a.inplace:
        op("moe.routed_experts", [cur, ids, w, la["w13"], la["w2"], cur], {"inplace": True})
        routed = cur
    else:
        routed = buf(dt, [T, H]) if (a.shared or y is None) else y
        op("moe.routed_experts", [cur, ids, w, la["w13"], la["w2"], routed], {"inplace": False})
    if y is None:
        y = buf(dt, [T, H])
    if a.shared:
        op("moe.add", [routed, sh, y], {"scale": 1.0})
    elif routed != y:
        op("memref.copy", [routed, y])
    cur = y

plan = None
if a.plan:
    pt, c = a.plan.split(",")
    plan = {"per_token": int(pt), "constant": int(c)}
doc = {"version": 1, "function": a.name, "token_count": a.tokens, "optimized": False,
       "planned_peak_bytes": plan, "args": args, "buffers": buffers, "ops": ops}
print(json.dumps(doc))
