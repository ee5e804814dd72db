#!/usr/bin/python3
"""compare.py A.csv B.csv: the integral_j of every (window, device) agrees to
a relative 1e-9 (they compute the same thing in different orders)."""
import sys

import pandas as pd


def load(p):
    df = pd.read_csv(p)
    return df[["window", "device", "integral_j"]].sort_values(["window", "device"]).reset_index(drop=True)


a, b = load(sys.argv[1]), load(sys.argv[2])
if len(a) != len(b) or (a["window"] != b["window"]).any() or (a["device"] != b["device"]).any():
    sys.exit(f"{sys.argv[1]} and {sys.argv[2]} hold different rows ({len(a)} vs {len(b)})")
rel = ((a["integral_j"] - b["integral_j"]).abs() / b["integral_j"].abs()).max()
print(f"{len(a)} windows×devices, max relative difference {rel:.2e}")
if not rel <= 1e-9:
    sys.exit("results differ")
