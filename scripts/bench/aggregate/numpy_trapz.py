#!/usr/bin/python3
"""Integrate the benchmark's sample stream over its windows with numpy: the
same trapezoid integral with linear interpolation at the window edges as
llem-aggregate, written the way a skilled numpy user would. The columns are
memory-mapped .npy files (Debian's pandas has no Arrow/Parquet reader: no
pyarrow); per device a boolean mask picks its rows, which are already in time
order in the stream (checked in one pass; sorted only if not, the assumption
llem-aggregate and the tuned DuckDB query make too), then a cumulative
trapezoid and np.searchsorted for every window edge. No DataFrame of the
samples, no groupby, no sort: the previous version built a DataFrame of all
columns and sorted each device's rows, at 5x the memory.

usage: numpy_trapz.py DIR OUT.csv     (DIR holds t.npy device.npy power_w.npy windows.csv devices.csv)
"""
import sys

import numpy as np
import pandas as pd


def integrate(t, p, starts, ends):
    """Energy in joules over each [start, end] of one device's time-ordered samples."""
    if np.any(t[1:] < t[:-1]):
        order = np.argsort(t, kind="stable")
        t, p = t[order], p[order]
    cum = np.empty(len(t))
    cum[0] = 0.0
    np.cumsum((p[1:] + p[:-1]) * 0.5 * (np.diff(t) / 1e9), out=cum[1:])

    def at(q):
        i = np.clip(np.searchsorted(t, q, side="right") - 1, 0, len(t) - 2)
        x = (q - t[i]).astype(np.float64)
        pq = p[i] + (p[i + 1] - p[i]) * (x / (t[i + 1] - t[i]))
        return cum[i] + x / 1e9 * (p[i] + pq) / 2

    return at(ends) - at(starts)


def main(d, out):
    t = np.load(f"{d}/t.npy", mmap_mode="r")
    dev = np.load(f"{d}/device.npy", mmap_mode="r")
    pw = np.load(f"{d}/power_w.npy", mmap_mode="r")
    w = pd.read_csv(f"{d}/windows.csv", dtype={"start_ns": np.int64, "end_ns": np.int64})
    names = pd.read_csv(f"{d}/devices.csv").set_index("dev")["device"]
    starts, ends = w["start_ns"].to_numpy(), w["end_ns"].to_numpy()
    parts = []
    for code, name in names.items():
        mask = dev == code
        p = pw[mask]
        keep = ~np.isnan(p)  # null readings are bridged, as llem does
        e = integrate(t[mask][keep], p[keep], starts, ends)
        parts.append(pd.DataFrame({"window": np.arange(len(w)), "device": name, "integral_j": e}))
    res = pd.concat(parts).sort_values(["window", "device"], kind="stable")
    res.to_csv(out, index=False, float_format="%.17g")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
