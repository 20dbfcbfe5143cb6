#!/usr/bin/python3
"""Where a training step's threads spend their time, from CG_POOL_TRACE=1 logs
(runtime/cpu_launch.c: one 'pool ...' line per kernel launch).

  pool_trace.py ONE.log            one run: per kernel, wall, CPU and idle per step
  pool_trace.py ONE.log MANY.log   a 1-thread run against a run on more threads

A step is found as the period of the launch sequence (the JIT replays the same list each
step); the first SKIP steps (default 2) are dropped and each launch's figure is the median
over the remaining steps, so a step slowed by the machine's other work moves it little.
Columns: the kernel (name and THREAD trips), its launches per step, 1-thread CPU ms (the
1-thread run's time in chunks, thread CPU time), wall ms on N threads, speed-up, CPU ms
on N threads (all threads' time in chunks: above the 1-thread CPU when the threads slow
each other: memory bandwidth, shared caches), idle ms (thread time within the launch
outside chunks: N x wall - time in chunks: uneven last chunks, late starts) and the late
start of the other threads (ms, summed over them); SORT=loss orders by wall - 1-thread CPU / N
(the time lost against a perfect split) instead of by wall."""
import collections
import os
import statistics
import sys

SKIP = int(os.environ.get("SKIP", "2"))
TOP = int(os.environ.get("TOP", "40"))
SORT = os.environ.get("SORT", "wall")  # or "loss": wall - 1-thread CPU / threads, the most first


def load(path):
    rows = []
    for line in open(path, errors="replace"):
        if not line.startswith("pool "):
            continue
        parts = line.split(" | ")
        head = parts[0].split()
        d = {"name": head[1]}
        for kv in head[2:]:
            k, v = kv.split("=")
            d[k] = float(v)
        d["threads"] = []
        for p in parts[1:]:
            t = {}
            for kv in p.split()[1:]:
                k, v = kv.split("=")
                t[k] = float(v)
            d["threads"].append(t)
        rows.append(d)
    return rows


def steps(rows):
    """The steady steps: the launch sequence's period and the runs of it."""
    sig = ["%s/%d" % (r["name"], r["trips"]) for r in rows]
    n = len(sig)
    best = None
    for p in range(50, n // 3):
        lo = n // 2 - p
        if lo < 0:
            break
        m = sum(sig[i] == sig[i + p] for i in range(lo, lo + p)) / p
        if best is None or m > best[0] + 1e-9:
            best = (m, p)
        if m == 1.0:
            break
    if not best:
        sys.exit("no repeating launch sequence (too few steps?)")
    p = best[1]
    start = next(i for i in range(n - p) if sig[i] == sig[i + p])
    first, out = sig[start:start + p], []
    while start + p <= n and sig[start:start + p] == first:  # (a window of p launches: each launch once)
        out.append(rows[start:start + p])
        start += p
    return p, out


def per_launch(path):
    p, st = steps(load(path))
    if len(st) <= SKIP:
        sys.exit("%s: %d steps found, SKIP=%d" % (path, len(st), SKIP))
    st = st[SKIP:]
    med = statistics.median
    out = []
    for i in range(p):
        r = st[0][i]
        nthr = len(r["threads"])
        wall = med(s[i]["wall_us"] for s in st) / 1e3
        busy = med(sum(t["busy_us"] for t in s[i]["threads"]) for s in st) / 1e3
        cpu = med(sum(t["cpu_us"] for t in s[i]["threads"]) for s in st) / 1e3
        late = med(sum(max(t["start_us"], 0) if t["chunks"] else s[i]["wall_us"] for t in s[i]["threads"][1:]) for s in st) / 1e3
        gap = med(s[i]["at_us"] - s[i - 1]["at_us"] - s[i - 1]["wall_us"] for s in st) / 1e3 if i else 0.0
        out.append(dict(key=(r["name"], int(r["trips"])), threads=nthr, wall=wall, busy=busy, cpu=cpu, idle=nthr * wall - busy, late=late, gap=gap))
    steptimes = [(s[-1]["at_us"] + s[-1]["wall_us"] - s[0]["at_us"]) / 1e3 for s in st]
    return out, len(st), steptimes


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    one, nst1, sts1 = per_launch(sys.argv[1])
    many, nst, sts = (per_launch(sys.argv[2]) if len(sys.argv) > 2 else (None, 0, []))
    if many and [x["key"] for x in one] != [x["key"] for x in many]:
        sys.exit("the two runs launch different kernels")
    base = many or one
    T = base[0]["threads"]
    agg = collections.OrderedDict()
    tot = collections.Counter()
    for i, x in enumerate(base):
        a = agg.setdefault(x["key"], collections.Counter())
        a["n"] += 1
        c1 = one[i]["cpu"]
        a["cpu1"] += c1
        for k in ("wall", "cpu", "idle", "late"):
            a[k] += x[k]
        cat = x["key"][0][0]
        for k, v in (("cpu1", c1), ("wall", x["wall"]), ("cpu", x["cpu"]), ("idle", x["idle"]), ("late", x["late"]), ("gap", x["gap"])):
            tot[k] += v
            tot[cat + k] += v
    print("%d steady steps (%d launches each) of %s%s" % (nst1, len(one), sys.argv[1], "" if not many else "; %d of %s (%d threads)" % (nst, sys.argv[2], T)))
    print("step (first launch to last end), median: %.1f ms%s" % (statistics.median(sts1), "" if not many else " on 1 thread, %.1f ms on %d" % (statistics.median(sts), T)))
    if not many:
        print("(one run: '1-thread CPU' below is this run's CPU in chunks, all threads; x = CPU / wall)")
    print("per step: kernels' 1-thread CPU %.1f ms; on %d threads: kernels' wall %.1f ms (x%.2f), CPU in chunks %.1f ms (x%.3f of 1 thread), idle %.1f thread-ms, "
          "late starts %.1f thread-ms, host time between launches %.1f ms" % (tot["cpu1"], T, tot["wall"], tot["cpu1"] / max(tot["wall"], 1e-9), tot["cpu"],
                                                                               tot["cpu"] / max(tot["cpu1"], 1e-9), tot["idle"], tot["late"], tot["gap"]))
    for cat, what in (("r", "reductions (r_*: GEMMs, sums)"), ("E", "elementwise (E_*)")):
        print("  %-30s 1-thread CPU %7.1f ms, wall %7.1f ms (x%.2f), CPU %7.1f ms (x%.3f), idle %5.1f thread-ms" % (
            what, tot[cat + "cpu1"], tot[cat + "wall"], tot[cat + "cpu1"] / max(tot[cat + "wall"], 1e-9), tot[cat + "cpu"], tot[cat + "cpu"] / max(tot[cat + "cpu1"], 1e-9),
            tot[cat + "idle"]))
    print("%-18s %8s %4s %9s %9s %6s %9s %9s %8s %8s" % ("kernel", "trips", "runs", "1t CPU", "wall", "x", "CPU", "idle", "late", "lost"))
    key = (lambda kv: -(kv[1]["wall"] - kv[1]["cpu1"] / T)) if SORT == "loss" else (lambda kv: -kv[1]["wall"])
    for (name, trips), a in sorted(agg.items(), key=key)[:TOP]:
        print("%-18s %8d %4d %9.2f %9.2f %6.2f %9.2f %9.2f %8.2f %8.2f" % (name, trips, a["n"], a["cpu1"], a["wall"], a["cpu1"] / max(a["wall"], 1e-9), a["cpu"], a["idle"], a["late"],
                                                                      a["wall"] - a["cpu1"] / T))


main()
