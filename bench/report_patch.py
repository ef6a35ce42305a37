"""Section "Live patching" of bench/RESULTS.md (called by report.py).

The patch/ benchmarks (bench/patch_bench.cpp): 64 sites patched in one jit_patch_batch,
by 64 jit_patch calls, by 64 plain jit_update calls (no protocol), and the floor of a
strict-W^X write (one raw pwrite to /proc/self/mem into a ROX THP page), all in the
same run. Times are CPU time per iteration (64 sites) of the patching thread."""


def section(runs, ctx, get, cpu, fmt, ratio, w, goals):
    """Writes the section; returns {(layout, spinner): batch / single} for the headline."""
    if not runs:
        return {}
    w("## 9. Live patching\n")
    w("64 five-byte `jmp rel32` sites retargeted between two functions, every site once "
      "per iteration, with `jit_patch_batch` (one batch: three `membarrier(SYNC_CORE)` in "
      "all), with 64 `jit_patch` calls (three each), and with 64 plain `jit_update` calls "
      "(one write and one sync each, no int3 protocol: not safe while threads run the "
      "sites; a reference). `table`: the sites 16 B apart in one allocation, so each "
      "protocol step of the batch is one kernel write; `adjacent`: each site in a 16-byte "
      "allocation of its own, allocated in a row so that they adjoin, again one write per "
      "step; `scattered`: each site in a 16-byte allocation of its own followed by a live "
      "16-byte allocation without a site, whose bytes a step writes back as they are under "
      "the write gate (src/poke/write_gate.h): again one write per step. `+1 thread`: a "
      "second thread calls through "
      "all 64 sites meanwhile, and so runs into the int3s. The floor is one raw `pwrite` of "
      "5 bytes to /proc/self/mem into a ROX THP page (proc_mem writer). CPU µs per "
      "iteration (64 sites) of the patching thread, and ratios.\n")
    if ctx:
        w(f"Measured {ctx.get('date', '?')}, load average "
          f"{' '.join(f'{x:.2f}' for x in ctx.get('load_avg', [])) or '?'} at the start of "
          "this group.\n")
    w("| layout | spinner | batch µs | 64 single µs | 64 update µs | floor µs | batch / single | "
      "batch / floor | single patch / floor |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    res = {}
    for layout, lname in ((1, "table"), (0, "adjacent"), (2, "scattered")):
        for spin in (0, 1):
            b = cpu(get(runs, "batch", layout=layout, spinner=spin))
            s = cpu(get(runs, "single", layout=layout, spinner=spin))
            u = cpu(get(runs, "update", layout=layout, spinner=spin))
            fl = cpu(get(runs, "floor", spinner=spin))
            res[(lname, spin)] = ratio(b, s)
            w(f"| {lname} | {'+1 thread' if spin else 'alone'} | "
              f"{fmt(b / 1000 if b else None, 3)} | {fmt(s / 1000 if s else None, 3)} | "
              f"{fmt(u / 1000 if u else None, 3)} | {fmt(fl / 1000 if fl else None, 3)} | "
              f"{fmt(ratio(b, s), 3)} | {fmt(ratio(b, fl), 1)} | "
              f"{fmt(ratio(s / 64 if s else None, fl), 1)} |")
    for lname in ("table", "adjacent", "scattered"):
        worst = max((res.get((lname, s)) or 99) for s in (0, 1))
        goals.append((f"live patch (issue 11): 64 sites in one batch ≤ 0.1x the time of 64 "
                      f"single patches, sites {lname}",
                      f"{fmt(worst, 3)}x (worst of alone / +1 thread)", worst <= 0.1))
    w("")
    w("A single `jit_patch` is three kernel writes (int3, the tail, the first byte) and "
      "three syncs, plus two `sigprocmask` calls that keep asynchronous signals off the "
      "patching thread: about eight system calls, where the floor is one. A batch pays the "
      "three syncs once for all sites; its writes are one per protocol step for each group "
      "of sites of one chunk within 4 KiB of one another. The bytes between the sites keep "
      "their values: those of the allocations holding sites are the caller's to leave alone "
      "(jitalloc.h); those of other allocations, or free ones, other threads may be writing, "
      "so a batch with such bytes holds the write gate exclusively from before its first "
      "int3 to after its last write, and every other code write in the process waits at the "
      "gate meanwhile (never lost, never undone: PatchForeignBytes.* tests it). "
      "With a second thread running, each of a single patch's "
      "three syncs interrupts the other CPU, so the batch's share falls: "
      + ", ".join(f"{lname} {fmt(res.get((lname, 1)), 3)}x"
                  for lname in ("table", "adjacent", "scattered")) + " of 64 single patches.\n")
    return res
