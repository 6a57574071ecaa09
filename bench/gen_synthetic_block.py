#!/usr/bin/env python3
"""Writes a synthetic effectful block of N ops for scheduler timing.

Each op is a linalg op on memrefs (copy, add, fill; some in place) over a
sliding window of recent buffers, so the block has local dependences like a
real program; buffers have mixed sizes and are freed after their last use.

  gen_synthetic_block.py N [--seed S] > block.mlir
"""
import argparse
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sizes = [64, 256, 1024, 4096]
    lines = []
    live = []  # (name, size)
    uses = {}
    ops = []
    counter = 0

    def new_buffer():
        nonlocal counter
        size = rng.choice(sizes)
        name = f"%b{counter}"
        counter += 1
        lines.append(f"  {name} = memref.alloc() : memref<{size}xf32>")
        live.append((name, size))
        return name, size

    for i in range(args.ops):
        window = live[-args.window:]
        kind = rng.random()
        if not window or kind < 0.25:
            out = new_buffer()
            ops.append(f"  linalg.fill ins(%cst : f32) outs({out[0]} : memref<{out[1]}xf32>)")
            uses.setdefault(out[0], []).append(len(ops) - 1)
            continue
        src = rng.choice(window)
        same = [b for b in window if b[1] == src[1]]
        if kind < 0.6:
            out = new_buffer() if rng.random() < 0.6 else rng.choice(same)
            if out[1] != src[1]:
                out = src
            ops.append(f"  linalg.copy ins({src[0]} : memref<{src[1]}xf32>) outs({out[0]} : memref<{out[1]}xf32>)")
        else:
            other = rng.choice(same)
            out = rng.choice(same) if rng.random() < 0.3 else new_buffer()
            if out[1] != src[1]:
                out = src
            t = f"memref<{src[1]}xf32>"
            ops.append(f"  linalg.add ins({src[0]}, {other[0]} : {t}, {t}) outs({out[0]} : {t})")
            uses.setdefault(other[0], []).append(len(ops) - 1)
        uses.setdefault(src[0], []).append(len(ops) - 1)
        uses.setdefault(out[0], []).append(len(ops) - 1)
    print("func.func @block() {")
    print("  %cst = arith.constant 1.0 : f32")
    print("\n".join(lines))
    print("\n".join(ops))
    for name, size in live:
        print(f"  memref.dealloc {name} : memref<{size}xf32>")
    print("  return")
    print("}")


if __name__ == "__main__":
    main()
