"""Section 7 of bench/RESULTS.md: the ORC benchmark (bench/orc/orc_bench.cpp, issue 12).

report.py calls section(RESULTS_DIR); it returns the section's Markdown lines, built from
RESULTS_DIR/orc.json (jitalloc_orc_bench --out). Every comparison is a ratio between
contenders of the same run."""
import json
import math
import os

CONTENDERS = ["jitalloc", "inprocess", "mapper_inprocess", "mapper_shared"]
DESC = {
    "jitalloc": "`jitalloc::orc::MemoryManager`, default writer (proc_mem)",
    "inprocess": "LLVM's `InProcessMemoryManager` (LLJIT's JITLink default)",
    "mapper_inprocess": "`MapperJITLinkMemoryManager` + `InProcessMemoryMapper`",
    "mapper_shared": "`MapperJITLinkMemoryManager` + `SharedMemoryMapper` (in-process, through "
                     "`SelfExecutorProcessControl` and `ExecutorSharedMemoryMapperService`)",
}
MIB = 1 << 20
CHUNK = 2 * MIB
GOAL_N = 10000


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def section(res_dir):
    path = os.path.join(res_dir, "orc.json")
    out = ["## 7. LLVM ORC (issue 12)\n"]
    if not os.path.exists(path):
        out.append("Not run: `jitalloc_orc_bench` is built only where LLVM 16 is found "
                   "(`apt install llvm-16-dev`, then `bench/run.sh`).\n")
        return out
    with open(path) as f:
        data = json.load(f)
    runs = {(r["contender"], r["n"]): r for r in data["results"]}
    sizes = sorted({r["n"] for r in data["results"]})
    errors = [r for r in data["results"] if r.get("error")]

    def val(c, n, key):
        r = runs.get((c, n))
        return None if r is None or r.get("error") else r.get(key)

    out.append(
        "N modules of one small function each (`f<i>(x) = x + i`, tests/orc/small_modules.h) "
        "compiled once to objects (PIC, small code model, default codegen optimisation; "
        f"{data['compile_cpu_s']:.1f} s of CPU for all of them, {data['object_bytes']} bytes "
        "each), then linked through LLJIT's JITLink `ObjectLinkingLayer` (with in-process "
        "eh-frame registration) by each memory manager, one fresh process per contender and "
        "size. *Link* is the CPU time of `addObjectFile` + `lookup` per module (ORC links on "
        "the calling thread); *mappings* are the /proc/self/maps lines the run added and the "
        "mappings that hold at least one block JITLink placed (learned by wrapping each "
        "manager in a recorder); *mapped* / *resident* are the sizes and smaps Rss of those "
        "mappings; *huge pages* is AnonHugePages + ShmemPmdMapped over Rss of the mappings "
        "holding code; *calls* is CPU ns per call, every function called once per round in "
        f"one fixed random order, median of {data['call_repetitions']}. The mappers reserve "
        f"{data['mapper_reservation'] // MIB} MiB at a time. This part ran on its own: "
        f"{data.get('date', '?')} (UTC), commit `{data.get('commit', '?')}`, load average "
        f"{data.get('loadavg_start', '?')} at the start and {data.get('loadavg_end', '?')} "
        "at the end on 2 CPUs; times are CPU times, so other tenants inflate them less than "
        "wall time, and every contender ran under the same conditions.\n")
    for c in CONTENDERS:
        out.append(f"- `{c}`: {DESC[c]}")
    out.append("")
    if errors:
        for r in errors:
            out.append(f"- **{r['contender']} at {r['n']} failed**: {r['error']}")
        out.append("")

    out.append("| contender | N | link µs/module (CPU) | link µs (wall) | maps added | maps "
               "holding graphs (code) | mapped MiB | resident MiB | code on huge pages | "
               "ns/call |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for c in CONTENDERS:
            r = runs.get((c, n))
            if r is None or r.get("error"):
                out.append(f"| {c} | {n:,} | failed | | | | | | | |")
                continue
            huge = ratio(r["code_huge"], r["code_resident"])
            out.append(
                f"| {c} | {n:,} | {fmt(r['link_cpu_us'], 1)} | {fmt(r['link_wall_us'], 1)} | "
                f"{r['maps_added']:,} | {r['holding_maps']:,} ({r['holding_code_maps']:,}) | "
                f"{fmt(r['mapped'] / MIB)} | {fmt(r['resident'] / MIB)} | "
                f"{fmt(huge * 100 if huge is not None else None, 0)}% | {fmt(r['ns_per_call'])} |")
    out.append("")

    out.append("Ratios to `inprocess` at the same N (below 1: less than LLVM's default):\n")
    out.append("| contender | N | link time | mappings holding graphs | resident | ns/call |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        for c in CONTENDERS:
            if c == "inprocess":
                continue
            cells = [ratio(val(c, n, k), val("inprocess", n, k))
                     for k in ("link_cpu_us", "holding_maps", "resident", "ns_per_call")]
            out.append(f"| {c} | {n:,} | " + " | ".join(f"{fmt(x, 3)}x" for x in cells) + " |")
    out.append("")

    # ---- goals at 10 000 modules
    n = GOAL_N
    j = runs.get(("jitalloc", n))
    goals = []
    if j and not j.get("error"):
        kinds = [("code", j["code_bytes"]), ("read-only data", j["ro_bytes"]),
                 ("read-write data", j["rw_bytes"])]
        per_kind = sum(math.ceil(b / CHUNK) for _, b in kinds if b)
        together = max(1, math.ceil(sum(b for _, b in kinds) / CHUNK))
        goals.append((
            "mappings ≤ 1 per 2 MiB of code plus data",
            f"{j['holding_maps']} mappings hold the {n:,} graphs ({j['maps_added']} lines added "
            f"in all) for {fmt(j['code_bytes'] / 1024, 0)} KiB of code, "
            f"{fmt(j['ro_bytes'] / 1024, 0)} KiB of R and {fmt(j['rw_bytes'] / 1024, 0)} KiB of "
            f"RW data: allowance {per_kind} counting each kind's bytes in 2 MiB units "
            f"(inprocess: {val('inprocess', n, 'holding_maps'):,})",
            j["holding_maps"] <= per_kind, together))
        for label, key, limit in (("resident ≤ 0.3x InProcess", "resident", 0.3),
                                  ("calls ≤ 0.5x InProcess", "ns_per_call", 0.5),
                                  ("link time ≤ 1.1x InProcess", "link_cpu_us", 1.1)):
            x = ratio(val("jitalloc", n, key), val("inprocess", n, key))
            goals.append((label, f"{fmt(x, 3)}x", x is not None and x <= limit, None))
    out.append(f"Goals (issue 12), at {n:,} modules:\n")
    out.append("| goal | figure | status |")
    out.append("|---|---|---|")
    for label, fig, ok, _ in goals:
        out.append(f"| {label} | {fig} | **{'MET' if ok else 'MISSED'}** |")
    if not goals:
        out.append("| all | the jitalloc run failed | **MISSED** |")
    out.append("")
    if goals:
        together = goals[0][3]
        out.append(
            "Why: code, read-only and read-write memory need three protections, so a manager "
            "that keeps R data read-only and code never writable needs a mapping of each "
            "kind in use; the allowance counts each kind's bytes in 2 MiB units. Read "
            "strictly (all bytes together in 2 MiB units) the allowance would be "
            f"{together}, which no W^X manager can meet once a graph has both code and data "
            "(they cannot share a mapping). jitalloc's count does not grow with the number of graphs: one 2 MiB code "
            "chunk holds every function (slab objects, no page per graph), and data of all "
            "graphs is packed into 2 MiB blocks near the code; LLVM's managers map whole "
            "pages per graph and segment, so their count is about (segments x graphs). "
            "Resident memory follows: a page or more per segment per graph for LLVM's "
            "managers, the 2 MiB huge page of code plus the touched data pages for jitalloc. "
            "Calls: with a page per function, calling 10 000 functions in random order "
            "misses the iTLB on nearly every call; jitalloc's functions share one 2 MiB "
            "page. Link time: LLVM's managers map and protect pages per graph (mmap, "
            "mprotect per segment, their TLB shootdowns), jitalloc makes one kernel write "
            "per code segment and no mapping change.\n")
    return out
