#!/usr/bin/python3
"""Integrate the benchmark's sample stream over its windows with pandas/numpy:
the same trapezoid integral with linear interpolation at the window edges as
llem-aggregate, vectorised the way a numpy user would write it (cumulative
trapezoid per device, searchsorted for each edge). Debian's pandas has no
Arrow/Parquet reader (no pyarrow), so the columns are loaded from .npy files.

usage: pandas_trapz.py DIR OUT.csv     (DIR holds t.npy device.npy power_w.npy windows.csv)
"""
import sys

import numpy as np
import pandas as pd

DEVICES = ["GPU-6f1c2a7e-0000-4000-8000-000000000001", "GPU-6f1c2a7e-0000-4000-8000-000000000002",
           "package-0", "dram-0"]


def main(d, out):
    df = pd.DataFrame({"t": np.load(f"{d}/t.npy"), "device": np.load(f"{d}/device.npy"),
                       "power_w": np.load(f"{d}/power_w.npy")})
    w = pd.read_csv(f"{d}/windows.csv", dtype={"start_ns": np.int64, "end_ns": np.int64})
    parts = []
    for dev, g in df.dropna(subset=["power_w"]).groupby("device", sort=True):
        g = g.sort_values("t", kind="stable")
        t = g["t"].to_numpy()
        p = g["power_w"].to_numpy()
        cum = np.concatenate(([0.0], np.cumsum((p[1:] + p[:-1]) / 2 * np.diff(t) / 1e9)))

        def at(q):
            i = np.clip(np.searchsorted(t, q, side="right") - 1, 0, len(t) - 2)
            x = (q - t[i]).astype(np.float64)
            pq = p[i] + (p[i + 1] - p[i]) * (x / (t[i + 1] - t[i]))
            return cum[i] + x / 1e9 * (p[i] + pq) / 2

        e = at(w["end_ns"].to_numpy()) - at(w["start_ns"].to_numpy())
        parts.append(pd.DataFrame({"window": np.arange(len(w)), "device": DEVICES[dev], "integral_j": e}))
    res = pd.concat(parts).sort_values(["window", "device"], kind="stable")
    res.to_csv(out, index=False, float_format="%.17g")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
