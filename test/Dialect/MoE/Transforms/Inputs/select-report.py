"""Prints one line of a moe-select-inplace report: the choice per routed op
(I: in place, O: out of place), the chosen peak in MiB, and whether it is at
most each uniform choice's peak (an uniform choice that cannot bufferize
without a copy counts as satisfied)."""
import json
import sys

report = json.load(open(sys.argv[1]))
for f in report["functions"]:
    choices = "".join("I" if op["choice"] == "in_place" else "O"
                      for op in f["routed_ops"])
    peak = f["peak_bytes"]
    out = f["peak_bytes_all_out_of_place"]
    inp = f["peak_bytes_all_in_place"]
    ok = peak <= out and (inp is None or peak <= inp)
    print(f"{sys.argv[2]} {choices} peak {peak / 2**20:.2f} MiB "
          f"all-out {out / 2**20:.2f} "
          f"all-in {'none' if inp is None else f'{inp / 2**20:.2f}'} "
          f"{'<= both' if ok else 'ABOVE A UNIFORM CHOICE'}")
