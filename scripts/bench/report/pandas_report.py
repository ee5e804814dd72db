#!/usr/bin/python3
"""Peer of llem-report's 500-run benchmark: the report a Python user would write with
pandas and matplotlib (Debian's python3-pandas, python3-matplotlib) from the same
energy records. It does less than llem-report's HTML: a per-config table (mean, std,
95 % CI half width of energy per output token, throughput), a bar chart with CI bars
and an energy-throughput scatter, as inline SVG in one HTML file; no power-over-time,
no latency distributions, no flags matrix.

    pandas_report.py energy.ndjson report.html
"""
import io
import json
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402  (optional: falls back below)


def svg(fig):
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    s = buf.getvalue()
    return s[s.index("<svg"):]


def main(src, dst):
    rows = []
    with open(src) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") != "energy" or r.get("status") != "ok":
                continue
            m = r.get("metrics") or {}
            rows.append({"id": r["id"], "model": r.get("model"), "backend": r.get("backend"),
                         "j_per_output_token": m.get("j_per_output_token"),
                         "output_tokens_per_s": m.get("output_tokens_per_s")})
    df = pd.DataFrame(rows)
    g = df.groupby("id").agg(model=("model", "first"), n=("j_per_output_token", "count"),
                             j_mean=("j_per_output_token", "mean"), j_std=("j_per_output_token", "std"),
                             tps_mean=("output_tokens_per_s", "mean"))
    g["ci95"] = [stats.t.ppf(0.975, n - 1) * s / n ** 0.5 if n > 1 else float("nan") for n, s in zip(g.n, g.j_std)]
    g = g.sort_values("j_mean")
    fig, ax = plt.subplots(figsize=(8, max(3, len(g) * 0.15)))
    ax.barh(range(len(g)), g.j_mean, xerr=g.ci95)
    ax.set_yticks(range(len(g)), g.index, fontsize=5)
    ax.set_xlabel("J per output token")
    bars = svg(fig)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(g.j_mean, g.tps_mean)
    ax.set_xlabel("J per output token")
    ax.set_ylabel("output tokens/s")
    scatter = svg(fig)
    with open(dst, "w") as f:
        f.write("<!doctype html><meta charset=utf-8><title>report</title>")
        f.write(g.to_html(float_format=lambda v: f"{v:.4g}"))
        f.write(bars + scatter)
    print(f"pandas_report: {len(df)} runs, {len(g)} configs", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
