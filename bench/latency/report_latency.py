"""Section 11 of bench/RESULTS.md: tail latency and scale (bench/latency/latency.cpp,
issue 11 item 7).

report.py calls section(RESULTS_DIR, goals); it returns (markdown lines, headline rows),
built from RESULTS_DIR/latency_bpf.json and latency_small.json (jitalloc_latency_bench
--out; run.sh makes one per workload), and appends this
section's goals to goals as (goal, figure, met). Run alone: python3 report_latency.py
RESULTS_DIR (prints the section)."""
import json
import os
import sys

OPS = ("alloc", "free", "update")
REF = "reference"  # fixed CPU work timed in the same loop: the machine's own tail
MAIN = "jitalloc_proc_mem"  # the default writer: the goals are judged on it
TAIL_GOAL = 2.0             # p99 <= 2x p50
SLOW_NS = 1_000_000         # no operation over 1 ms at 1 M live, growth apart


def us(ns):
    return "n/a" if ns is None else f"{ns / 1000:,.1f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def load(res):
    """The runs of every workload's file, in order; None when there is none."""
    parts = []
    for name in ("latency_bpf.json", "latency_small.json"):
        p = os.path.join(res, name)
        if os.path.exists(p):
            with open(p) as f:
                parts.append(json.load(f))
    if not parts:
        return None
    return {"steps": parts[0]["steps"], "loadavg_start": parts[0].get("loadavg_start"),
            "loadavg_end": parts[-1].get("loadavg_end"),
            "runs": [r for d in parts for r in d["runs"]]}


def tail_rows(runs, workload):
    """(contender, live, op, p99/p50) for every run of that workload."""
    out = []
    for r in runs:
        if r.get("workload", "bpf") != workload:
            continue
        for op in OPS:
            o = r["ops"][op]
            out.append((r["contender"], r["live"], op, ratio(o["p99_ns"], o["p50_ns"])))
    return out


def worst(rows, contender):
    rs = [x for x in rows if x[0] == contender and x[3] is not None]
    return max(rs, key=lambda x: x[3]) if rs else None


def section(res, goals):
    data = load(res)
    md, head = [], []
    if not data:
        return md, head
    runs = data["runs"]
    w = md.append
    w("## 11. Tail latency and scale\n")
    w("`jitalloc_latency_bench` (bench/latency/latency.cpp): per contender and live count, a "
      "fresh allocator is filled with BPF-sized functions (half under 500 B, 95% under 8 KiB, "
      "a tail to 64 KiB), then each step frees a random live function, loads a new one and "
      "updates the first 64 B of a random live one; each operation is timed alone in wall "
      "clock (CLOCK_MONOTONIC) into a preallocated array, percentiles after. An operation "
      "during which the allocator mapped or gave back a chunk (jitalloc: chunks mapped + "
      "released moved; asmjit: its block count moved), read outside the timed window, is "
      "counted apart as growth and left out of the percentiles. The `small` rows repeat the "
      "run with sizes uniform in 64..512 B, to separate the size spread of the BPF mix (an "
      "alloc writes its whole length) from the allocator's own tail. `reference` is a fixed "
      "amount of CPU work (about 3 µs, no allocator) timed in the same loop: its p99/p50 is "
      "what preemption and host noise alone do to a constant operation at that moment.\n")
    desc = {}
    for r in runs:
        d = desc.setdefault(r.get("workload", "bpf"), {"c": [], "live": []})
        if r["contender"] not in d["c"]:
            d["c"].append(r["contender"])
        if r["live"] not in d["live"]:
            d["live"].append(r["live"])
    w("This run: " + "; ".join(
        f"{wl} sizes: {', '.join(d['c'])} at {', '.join(f'{n:,}' for n in d['live'])} live"
        for wl, d in desc.items()) + ". `bench/run.sh --quick` runs jitalloc_proc_mem and "
      "asmjit_dual at 5 000 / 50 000 / 200 000 live (BPF sizes) and 5 000 / 50 000 (64..512 B), "
      "5 000 steps each; the full run six contenders at 5 000 / 50 000 / 1 000 000 live and "
      "50 000 steps each.\n")
    w(f"{data['steps']:,} steps per run; load average {data.get('loadavg_start')} at the "
      f"start, {data.get('loadavg_end')} at the end (2 CPUs shared with other tenants: "
      "wall-clock tails include preemption, the same for every contender).\n")
    w("Times in µs: p50 / p99 / p99.9 / max, the p99/p50 ratio, and how many operations took "
      "over 1 ms (growth apart; growth count and its slowest operation in the last column).\n")
    w("| contender | sizes | live | op | p50 | p99 | p99.9 | max | p99/p50 | > 1 ms | growth (max µs) |")
    w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        for op in OPS + (REF,):
            if op not in r["ops"]:
                continue
            o = r["ops"][op]
            g = f"{o['growth_n']} ({us(o['growth_max_ns'])})" if o["growth_n"] else "0"
            w(f"| {r['contender']} | {r.get('workload', 'bpf')} | {r['live']:,} | {op} | "
              f"{us(o['p50_ns'])} | {us(o['p99_ns'])} | {us(o['p999_ns'])} | {us(o['max_ns'])} | "
              f"{ratio(o['p99_ns'], o['p50_ns']):.2f} | {o['over_1ms']} | {g} |")
    w("")
    w("Memory and `jit_shrink` after freeing a random half (asmjit has no shrink call: it "
      "gives an empty block back on the free that empties it). Resident / requested counts "
      "code pages resident after the steps plus metadata, like section 5.\n")
    w("| contender | sizes | live | fill s | chunks/blocks mapped in fill | metadata B / live | "
      "resident / requested | free half s | shrink µs | shrink gave back MiB | resident MiB before / after shrink |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in runs:
        w(f"| {r['contender']} | {r.get('workload', 'bpf')} | {r['live']:,} | {r['fill_s']:.2f} | "
          f"{r['fill_growth']} | {r['metadata_per_live']:.1f} | {r['resident_per_req']:.3f} | "
          f"{r['free_half_s']:.2f} | {r['shrink_us']:,.1f} | {r['shrink_bytes'] / 2**20:.1f} | "
          f"{r['resident_before_shrink'] / 2**20:,.0f} / {r['resident_after_shrink'] / 2**20:,.0f} |")
    w("")

    bpf = tail_rows(runs, "bpf")
    small = tail_rows(runs, "small")
    wb, ws = worst(bpf, MAIN), worst(small, MAIN)
    if wb:
        fig = f"worst {wb[3]:.2f} ({wb[2]} at {wb[1]:,} live, BPF sizes)"
        if ws:
            fig += f"; 64..512 B sizes: worst {ws[3]:.2f} ({ws[2]} at {ws[1]:,})"
        goals.append(("tail (issue 11): p99 ≤ 2x p50 for alloc, free and update at every "
                      "live count (proc_mem)", fig, wb[3] <= TAIL_GOAL))
        head.append(("tail latency: worst p99 / p50 of alloc, free, update over 5 000..1 M "
                     "live (proc_mem, BPF sizes / 64..512 B)",
                     f"{wb[3]:.2f} / {ws[3]:.2f}" if ws else f"{wb[3]:.2f}"))
    big = [r for r in runs if r["contender"] == MAIN and r["live"] >= 1_000_000]
    if big:
        r = big[0]
        slow = {op: r["ops"][op]["over_1ms"] for op in OPS}
        mx = max(r["ops"][op]["max_ns"] for op in OPS)
        gr = sum(r["ops"][op]["growth_n"] for op in OPS)
        fig = (", ".join(f"{op} {n}" for op, n in slow.items()) +
               f" over 1 ms (slowest non-growth {us(mx)} µs; {gr} growth ops apart)")
        goals.append(("scale (issue 11): no operation over 1 ms at 1 M live, chunk growth "
                      "apart (proc_mem)", fig, sum(slow.values()) == 0))
        head.append(("operations over 1 ms at 1 M live, growth apart (proc_mem): alloc / free "
                     "/ update", " / ".join(str(slow[op]) for op in OPS)))
    else:
        w("No run at 1 000 000 live in this file (see bench/run.sh: the quick run's sizes).\n")
    m50 = [r for r in runs if r["contender"] == MAIN and r["live"] == 50000
           and r.get("workload", "bpf") == "bpf"]
    if m50:
        head.append(("metadata bytes per live object at 50 000 live (proc_mem)",
                     f"{m50[0]['metadata_per_live']:.1f}"))
    return md, head


if __name__ == "__main__":
    g = []
    lines, h = section(sys.argv[1], g)
    print("\n".join(lines))
    for x in g:
        print(x)
    for x in h:
        print(x)
