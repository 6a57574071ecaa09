"""The tensor path against the buffer path, on the CPU backend.

For each MODEL (a preset or a config.json) and layer count: moe-gen in both
forms; the buffer form through moe-compile; the tensor form through
moe-compile (the whole moe-lower-to-runtime pipeline) and, stage by stage,
through moe-opt (moe-select-inplace, moe-bufferize, moe-optimize) then
moe-compile --no-optimize; each module run by moe-run with the same seed and
token count. Prints one line per case, for FileCheck:

  NAME: outputs bitwise equal|DIFFER; tensor peak <=|> buffer peak

Usage: tensor-path.py OUTDIR TOKENS NAME=MODEL[:GEN_ARGS] ...
"""
import json
import subprocess
import sys

out, tokens = sys.argv[1], sys.argv[2]


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")


def moe_run(module):
    cmd = ["moe-run", module, "--tokens", tokens, "--seed", "7", "--json",
           "--check"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout)


for spec in sys.argv[3:]:
    name, model = spec.split("=", 1)
    model, _, extra = model.partition(":")
    gen = ["moe-gen", "--model", model] + extra.replace("_", " ").split()
    base = f"{out}/{name}"
    run(*gen, "-o", f"{base}-buffer.mlir")
    run(*gen, "--form", "tensor", "-o", f"{base}-tensor.mlir")
    run("moe-compile", f"{base}-buffer.mlir", "-o", f"{base}-buffer.so")
    run("moe-compile", f"{base}-tensor.mlir", "-o", f"{base}-tensor.so")
    run("moe-opt", f"{base}-tensor.mlir", "--moe-select-inplace",
        "--moe-bufferize", "--moe-optimize", "-o", f"{base}-staged.mlir")
    run("moe-compile", f"{base}-staged.mlir", "--no-optimize", "-o",
        f"{base}-staged.so")
    runs = {k: moe_run(f"{base}-{k}.so") for k in ("buffer", "tensor", "staged")}
    same = len({r["checksum"] for r in runs.values()}) == 1
    peak_t, peak_b = runs["tensor"]["peak_bytes"], runs["buffer"]["peak_bytes"]
    print(f"{name}: outputs {'bitwise equal' if same else 'DIFFER'}; "
          f"tensor peak {'<=' if peak_t <= peak_b else '>'} buffer peak "
          f"({peak_t} vs {peak_b})")
