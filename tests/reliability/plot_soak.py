#!/usr/bin/env python3
"""Plots the curve soak_test writes (soak_test OPS POINTS CSV) as a PNG.

    python3 plot_soak.py soak_10M.csv soak_10M.png

Needs matplotlib (Debian: python3-matplotlib). A tool for the README figure only: no
test or CI step runs it.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    ops = [int(r["ops"]) / 1e6 for r in rows]
    mib = lambda key: [int(r[key]) / (1 << 20) for r in rows]  # noqa: E731
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.4]})
    top.plot(ops, mib("rss_bytes"), label="process RSS")
    top.plot(ops, mib("mapped_bytes"), label="code memory mapped")
    top.plot(ops, mib("resident_bytes"), label="code memory resident", linestyle=":")
    top.plot(ops, mib("metadata_bytes"), label="metadata")
    top.set_ylabel("MiB")
    top.set_title("soak_test: %d operations, one arena (writer AUTO)" % int(rows[-1]["ops"]))
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.plot(ops, [int(r["live"]) for r in rows], color="gray")
    bottom.set_ylabel("live allocations")
    bottom.set_xlabel("operations (millions)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(dst, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
