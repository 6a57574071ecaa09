#!/usr/bin/env python3
"""Compares two `moe-run --json` reports (A, B) for the integration tests.

Prints one line per fact, for FileCheck:
  checksums same|different
  A peak == planned|A peak != planned (PEAK vs PLANNED)|A has no plan
  A peak less|equal|greater than B (PEAK_A vs PEAK_B)
"""
import json
import sys

a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
print("checksums", "same" if a["checksum"] == b["checksum"] else "different")
if a["planned_peak_bytes"] is None:
    print("A has no plan")
elif a["peak_bytes"] == a["planned_peak_bytes"]:
    print("A peak == planned")
else:
    print("A peak != planned (%d vs %d)" % (a["peak_bytes"], a["planned_peak_bytes"]))
pa, pb = a["peak_bytes"], b["peak_bytes"]
rel = "less" if pa < pb else "equal" if pa == pb else "greater"
print("A peak %s than B (%d vs %d)" % (rel, pa, pb))
