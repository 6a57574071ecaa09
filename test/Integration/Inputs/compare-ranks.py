#!/usr/bin/env python3
"""Facts about multi-rank runs, one per line, for FileCheck.

  compare-ranks.py report R.json
      rank R: peak == planned | peak != planned (P vs Q)   (every rank)
      ranks: same checksum | ranks: different checksums
  compare-ranks.py outputs A.bin B.bin DTYPE
      bitwise equal | not bitwise equal
      within 4 ulps of the largest | off by X of the largest
    The second compares a tensor-parallel output with the single-rank one:
    each rank's partial sum is rounded to DTYPE before the sum, so they differ
    by a few roundings of the largest element, not more (2^-6 of it for
    bf16: four ulps; a wrong shard is off by O(1)).
"""
import json
import struct
import sys


def load(path, dtype):
    data = open(path, "rb").read()
    if dtype == "f32":
        return list(struct.unpack("<%df" % (len(data) // 4), data))
    bits = struct.unpack("<%dH" % (len(data) // 2), data)
    if dtype == "bf16":
        return [struct.unpack("<f", struct.pack("<I", b << 16))[0] for b in bits]
    return [struct.unpack("<e", struct.pack("<H", b))[0] for b in bits]


if sys.argv[1] == "report":
    r = json.load(open(sys.argv[2]))
    for rank in r["per_rank"]:
        if rank["peak_bytes"] == r["planned_peak_bytes"]:
            print("rank %d: peak == planned" % rank["rank"])
        else:
            print("rank %d: peak != planned (%s vs %s)" %
                  (rank["rank"], rank["peak_bytes"], r["planned_peak_bytes"]))
    sums = {rank["checksum"] for rank in r["per_rank"]}
    print("ranks: same checksum" if len(sums) == 1 else "ranks: different checksums")
elif sys.argv[1] == "outputs":
    raw_a, raw_b = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
    print("bitwise equal" if raw_a == raw_b else "not bitwise equal")
    ulp = {"bf16": 2.0 ** -8, "f16": 2.0 ** -11, "f32": 2.0 ** -24}[sys.argv[4]]
    a, b = load(sys.argv[2], sys.argv[4]), load(sys.argv[3], sys.argv[4])
    assert len(a) == len(b) and a, "outputs of different sizes"
    largest = max(abs(x) for x in a)
    off = max(abs(x - y) for x, y in zip(a, b)) / largest
    if off <= 4 * ulp:
        print("within 4 ulps of the largest")
    else:
        print("off by %.3g of the largest" % off)
else:
    sys.exit("unknown mode " + sys.argv[1])
