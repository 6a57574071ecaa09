#!/usr/bin/env bash
# Re-creates .peers/vllm/ (git-ignored) for bench/vllm_fp8.py: vLLM's Triton fused-MoE kernel
# and its fp8 per-token-group quantization kernel, taken from vLLM's source at pinned commits.
#
# 1. Downloads from GitHub (vllm-project/vllm, each file at the commit pinned below):
#    fused_moe.py, fp8_utils.py, the tuned fused-MoE configs for DeepSeek-V3 at TP=4 in fp8
#    w8a8 with 128x128 blocks on H200 and H100 (where they exist), and the license.
#    In the config names E is the number of experts and N the per-partition intermediate size
#    (vLLM's try_get_optimal_moe_config takes N = w2.shape[2]): DeepSeek-V3's 2048 / 4 = 512.
# 2. Extracts with Python's ast the @triton.jit functions the benchmark launches
#    (fused_moe_kernel, _per_token_group_quant_fp8) and the @triton.jit helpers they call,
#    verbatim, into .peers/vllm/vllm_fused_moe.py, which imports only triton.
#
# Usage: bench/fetch_peers.sh              download, then extract
#        bench/fetch_peers.sh --from DIR   offline: DIR holds the files, either under their
#                                          upstream paths or flat under their file names
# Result: .peers/vllm/{vllm_fused_moe.py, configs/*.json, LICENSE, upstream/<path>}
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=$ROOT/.peers/vllm
REPO=vllm-project/vllm
FUSED_MOE_COMMIT=13cb3e44373beb1c8b9d2c017f565af6f7a1b601
FP8_UTILS_COMMIT=007d50058a06dec0f82472d63c819244d460c40d
CONFIGS=vllm/model_executor/layers/fused_moe/configs
# commit path required|optional
FILES="
$FUSED_MOE_COMMIT vllm/model_executor/layers/fused_moe/fused_moe.py required
$FP8_UTILS_COMMIT vllm/model_executor/layers/quantization/utils/fp8_utils.py required
2d9567486f72b8eb97c3401f1653f3cc855f0853 $CONFIGS/E=256,N=512,device_name=NVIDIA_H200,dtype=fp8_w8a8,block_shape=[128,128].json optional
b158249fceaa0ed4023d05285233c671c91befea $CONFIGS/E=256,N=512,device_name=NVIDIA_H100_80GB_HBM3,dtype=fp8_w8a8,block_shape=[128,128].json optional
$FUSED_MOE_COMMIT LICENSE required
"

FROM=
if [ "${1:-}" = "--from" ]; then
  FROM=$(cd "${2:?--from needs a directory}" && pwd)
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--from DIR]" >&2
  exit 2
fi

TMP=$DEST.tmp
rm -rf "$TMP"
mkdir -p "$TMP/upstream" "$TMP/configs"
trap 'rm -rf "$TMP"' EXIT

while read -r commit path need; do
  [ -n "$commit" ] || continue
  dst=$TMP/upstream/$path
  mkdir -p "$(dirname "$dst")"
  if [ -n "$FROM" ]; then
    src=$FROM/$path
    [ -f "$src" ] || src=$FROM/$(basename "$path")
    ok=0
    [ -f "$src" ] && cp "$src" "$dst" && ok=1
  else
    url_path=${path//\[/%5B}
    url_path=${url_path//\]/%5D}
    ok=0
    curl -fsSL -g --retry 3 -o "$dst" \
      "https://raw.githubusercontent.com/$REPO/$commit/$url_path" && ok=1
  fi
  if [ $ok = 0 ]; then
    rm -f "$dst"
    if [ "$need" = required ]; then
      echo "fetch_peers: cannot get $path @ $commit" >&2
      exit 1
    fi
    echo "fetch_peers: note: no $path @ $commit (skipped)" >&2
    continue
  fi
  case $path in
    */configs/*.json) cp "$dst" "$TMP/configs/" ;;
    LICENSE) cp "$dst" "$TMP/LICENSE" ;;
  esac
  echo "fetch_peers: $path @ ${commit:0:12}"
done <<< "$FILES"

python3 - "$TMP" "$FUSED_MOE_COMMIT" "$FP8_UTILS_COMMIT" <<'EOF'
"""Copies the named @triton.jit functions, and the @triton.jit functions they call, verbatim
out of the upstream files into vllm_fused_moe.py; fails if a name is missing or if the copied
code refers to anything but triton, tl, builtins and the other copied functions."""
import ast
import builtins
import os
import sys

tmp, fused_commit, fp8_commit = sys.argv[1:]
SOURCES = [  # (path, commit, entry points)
    ("vllm/model_executor/layers/fused_moe/fused_moe.py", fused_commit, ["fused_moe_kernel"]),
    ("vllm/model_executor/layers/quantization/utils/fp8_utils.py", fp8_commit,
     ["_per_token_group_quant_fp8"]),
]


def is_jit(node):
    for d in node.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        if (isinstance(d, ast.Attribute) and d.attr == "jit") or \
                (isinstance(d, ast.Name) and d.id == "jit"):
            return True
    return False


def extract(text, roots, where):
    tree = ast.parse(text)
    jit = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef) and is_jit(n)}
    missing = [r for r in roots if r not in jit]
    if missing:
        sys.exit(f"fetch_peers: no @triton.jit {missing} in {where}")
    keep, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo += [c.func.id for c in ast.walk(jit[name]) if isinstance(c, ast.Call)
                     and isinstance(c.func, ast.Name) and c.func.id in jit]
    lines = text.splitlines(keepends=True)
    out = []
    for node in tree.body:  # in file order
        if not (isinstance(node, ast.FunctionDef) and node.name in keep):
            continue
        start = min([d.lineno for d in node.decorator_list] + [node.lineno])
        out.append((node, "".join(lines[start - 1:node.end_lineno])))
    return out


known = set(dir(builtins)) | {"tl", "triton"}
funcs, header = [], []
for path, commit, roots in SOURCES:
    with open(os.path.join(tmp, "upstream", path)) as f:
        got = extract(f.read(), roots, f"{path} @ {commit}")
    funcs += got
    header.append(f"#   {path} @ {commit}:\n#     " + ", ".join(n.name for n, _ in got))
known |= {n.name for n, _ in funcs}
for node, _ in funcs:
    a = node.args
    local = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
    local |= {x.id for x in ast.walk(node) if isinstance(x, ast.Name)
              and isinstance(x.ctx, ast.Store)}
    free = {x.id for x in ast.walk(node) if isinstance(x, ast.Name)} - local - known
    if free:
        sys.exit(f"fetch_peers: {node.name} refers to {sorted(free)}: extend the extraction")

sources = {p: c for p, c, _ in SOURCES}
text = (
    "# vLLM's Triton kernels of the fused-MoE path (fp8 w8a8 block-quantized mode included),\n"
    "# copied verbatim by bench/fetch_peers.sh from https://github.com/vllm-project/vllm:\n"
    + "\n".join(header) + "\n"
    "# Copyright contributors to the vLLM project. SPDX-License-Identifier: Apache-2.0\n"
    "# (the license is in LICENSE beside this file). Changed: only the imports\n"
    "# (vllm.triton_utils -> triton) and this header; nothing of vLLM is imported.\n"
    "import triton\n"
    "import triton.language as tl\n\n"
    f"SOURCES = {sources!r}\n"
)
for _, src in funcs:
    text += "\n\n" + src
with open(os.path.join(tmp, "vllm_fused_moe.py"), "w") as f:
    f.write(text)
compile(text, "vllm_fused_moe.py", "exec")
print("fetch_peers: extracted", ", ".join(n.name for n, _ in funcs))
EOF

rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
echo "fetch_peers: wrote $DEST"
