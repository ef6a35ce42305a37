"""Section "jitalloc::JitRuntime on batches" of bench/RESULTS.md (called by report.py).

The jitruntime/ benchmarks (bench/jitruntime_bench.cpp): assemble a 256-byte function
with a .data section, add it, call it, release it; jitalloc::JitRuntime as shipped (one
jit_batch per function), the path it took before (reserve with jit_arena_alloc_named,
one jit_arena_update), and asmjit::JitRuntime, in the same run."""


def section(runs, ctx, get, cpu, fmt, ratio, w):
    """Writes the section; returns {spinner: batch / reserve_update}."""
    if not runs:
        return {}
    w("## 10. jitalloc::JitRuntime on batches\n")
    w("Assemble a 256-byte function that reads a word from its own `.data` section "
      "(asmjit `x86::Assembler`), `add` it, call it, `release` it, per iteration. "
      "`batch`: `jitalloc::JitRuntime` as shipped, one `jit_batch` per function "
      "(`jit_batch_alloc(NULL)`, relocate, `jit_batch_update`, commit: every section and "
      "the trap tail in one kernel write, the function live only once written); "
      "`reserve_update`: the path it took before, kept in the bench as the reference "
      "(`jit_arena_alloc_named(NULL)`, relocate, `jit_arena_update`); `asmjit`: "
      "`asmjit::JitRuntime` (RWX, not strict W^X). proc_mem writer. Both jitalloc paths "
      "make one kernel write and no serialisation per function (fresh memory); what differs "
      "is the bookkeeping (a batch per call against a lookup of the reserved allocation), "
      "and that a failed add leaves nothing behind (nothing published and freed again). "
      "CPU µs per function, assembling included.\n")
    if ctx:
        w(f"Measured {ctx.get('date', '?')}, load average "
          f"{' '.join(f'{x:.2f}' for x in ctx.get('load_avg', [])) or '?'} at the start of "
          "this group: a shared, noisy machine.\n")
    w("| spinner | batch µs | reserve_update µs | asmjit µs | batch / reserve_update | "
      "batch / asmjit |")
    w("|---|---:|---:|---:|---:|---:|")
    res = {}
    for spin in (0, 1):
        b = cpu(get(runs, "batch", spinner=spin))
        r = cpu(get(runs, "reserve_update", spinner=spin))
        a = cpu(get(runs, "asmjit", spinner=spin))
        res[spin] = ratio(b, r)
        w(f"| {'+1 thread' if spin else 'alone'} | {fmt(b / 1000 if b else None, 2)} | "
          f"{fmt(r / 1000 if r else None, 2)} | {fmt(a / 1000 if a else None, 2)} | "
          f"{fmt(ratio(b, r), 2)} | {fmt(ratio(b, a), 2)} |")
    w("")
    return res
