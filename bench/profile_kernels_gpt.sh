#!/usr/bin/env bash
# Each distinct kernel of one steady-state `cgrad train gpt` step (the 2nd, JIT=0) timed
# alone on 1 thread in thread CPU time (best of 12, bench/kernel_cpu_time.c), so a loaded
# machine changes little; with its launches per step, the step's total of it, its GFLOP and
# GB per launch (the engine's counts) and the fraction of one core's peak it reaches
# (PEAK GFLOP/s, default 270: 2 FMA ports x 16 lanes x 2 x ~4.2 GHz; give the vdpbf16ps
# figure of bench_matmul_bf16 for --amp bf16's TC kernels). Kernels run on buffers of
# their sizes with made-up values (index buffers zero, kernel variables zero), and their
# data stay in cache more than in the step: memory-bound kernels look faster than there
# (the issue's bf16 step: its elementwise kernels sum to ~27 ms here, ~53 ms in the step; for
# the step's own per-kernel times on 1 and 2 threads see bench/pool_scaling_gpt.sh).
#   usage: bench/profile_kernels_gpt.sh [build-dir] [cgrad train gpt options...]
#   default model: the issue's (6 layers, 384 wide, 6 heads, T 256, batch 8)
set -euo pipefail
build=${1:-build}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
# KEEP=dir keeps each kernel's source, .so and meta there (kNNN.c: time one again with
# kernel_cpu_time, its arguments from kNNN.meta)
if [ -n "${KEEP:-}" ]; then work=$KEEP; mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
model=${*:-"--layers 6 --embd 384 --heads 6 --block 256 --batch 8"}
cc -O2 -o "$work/time" "$here/kernel_cpu_time.c" -ldl
echo "load average: $(cat /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo); 1 thread, thread CPU time; $model"
# shellcheck disable=SC2086
JIT=0 CG_TIER=0 DEBUG=4 CG_THREADS=2 "$build/cgrad" train gpt $model --steps 2 --warmup 1 --eval-every 0 --eval-batches 1 \
  --out "$work/o.st" >/dev/null 2>"$work/log" || true
flags=$(sed -n 's/^#define RT_CC_FLAGS "\(.*\)"/\1/p' "$here/../src/runtime/cpu_compile.h")
flags="$flags ${CG_CFLAGS_ADD:-}"
# split the 2nd step's kernels (the realizes after the first of the largest ones, the 1st
# step's loss, gradients and updates, through the 2nd such; not the first's own kernels, or
# the step's tail, its loss, last gradients, clipping and AdamW, counted twice) into one
# file per distinct source
/usr/bin/python3 - "$work" <<'EOF'
import hashlib, re, sys
work = sys.argv[1]
lines = open(work + "/log", errors="replace").read().split("\n")
counts = [int(m.group(1)) for m in re.finditer(r"^\*\*\* schedule: (\d+) kernel", "\n".join(lines), re.M)]
last = 0.7 * max(counts) if counts else 1
big, cur, kern = 0, None, {}
order = []
first_tail = False
for l in lines:
    m = re.match(r"\*\*\* schedule: (\d+) kernel", l)
    if m:
        n = int(m.group(1))
        in_step = big == 1
        first_tail = n >= last and big == 0
        if n >= last: big += 1
        continue
    if first_tail or big < 1 or (big == 2 and not in_step) or big > 2: continue
    if l.startswith("--- kernel"): cur = [l]; continue
    if cur is None: continue
    m = re.match(r"  ([A-Za-z_0-9]+) +([0-9.]+) ms +([0-9.]+) GFLOP/s +([0-9.]+) GB/s", l)
    if m:
        text = "\n".join(cur)
        src = text[text.find("#ifndef CG_KERNEL_PRELUDE"):]
        h = hashlib.md5(src.encode()).hexdigest()[:10]
        ms = float(m.group(2))
        if h not in kern:
            kern[h] = dict(name=m.group(1), n=0, gflop=ms * float(m.group(3)) / 1e3, gb=ms * float(m.group(4)) / 1e3, text=text, src=src)
            order.append(h)
        kern[h]["n"] += 1
        cur = None
        continue
    cur.append(l)
for i, h in enumerate(order):
    k = kern[h]
    ast = k["text"][:k["text"].find("#ifndef CG_KERNEL_PRELUDE")]
    trips = 1
    m = re.search(r"RANGE int32 \(\d+, 2\)\n\s+(?:\w+ = )?CONST int32 (\d+)", ast)
    if m: trips = int(m.group(1))
    else:
        m = re.search(r"RANGE int32 \(\d+, 2\)\n\s+\^(n\d+)", ast)
        if m:
            m2 = re.search(m.group(1) + r" = CONST int32 (\d+)", ast)
            if m2: trips = int(m2.group(1))
    bufs = {}
    for m in re.finditer(r"DEFINE_GLOBAL (\w+) \((\d+), (\d+)\)", ast):
        bufs[int(m.group(2))] = ("i" if m.group(1).startswith("int") else "") + m.group(3)
    sizes = " ".join(bufs[j] for j in sorted(bufs))
    opts = re.search(r"\(opts: (.*)\)", k["text"].split("\n")[0])
    with open("%s/k%03d.c" % (work, i), "w") as f: f.write(k["src"].rsplit("\n", 1)[0] + "\n")
    with open("%s/k%03d.meta" % (work, i), "w") as f:
        f.write("%s|%d|%.6f|%.6f|%d|%s|%s\n" % (k["name"], k["n"], k["gflop"], k["gb"], trips, sizes, opts.group(1) if opts else ""))
EOF
peak=${PEAK:-270}
for m in "$work"/k*.meta; do
  f=${m%.meta}
  IFS='|' read -r name n gflop gb trips sizes opts <"$m"
  fn=$(awk '/^void /{ sub(/\(.*/, "", $2); print $2; exit }' "$f.c")
  # shellcheck disable=SC2086
  if cc $flags -shared -fPIC -o "$f.so" "$f.c" -lm 2>/dev/null && ms=$("$work/time" "$f.so" "$fn" "$trips" $sizes 2>/dev/null); then
    echo "$name|$n|$ms|$gflop|$gb|$opts"
  else
    echo "$name|$n|-|$gflop|$gb|$opts (did not run alone)"
  fi
done | awk -F'|' -v peak="$peak" '
  { t = ($3 == "-") ? 0 : $2 * $3; tot += t
    printf "%-22s %4d %9s %9.2f %8.3f %8.1f %6.1f%% %8.4f %7.1f  %s\n", $1, $2, $3, t, $4, ($3 == "-" || $3 == 0) ? 0 : $4 / $3 * 1e3,
      ($3 == "-" || $3 == 0) ? 0 : 100 * $4 / $3 * 1e3 / peak, $5, ($3 == "-" || $3 == 0) ? 0 : $5 / $3 * 1e3, $6 }
  END { printf "sum: %.1f ms of 1-thread CPU time per step\n", tot > "/dev/stderr" }' |
  sort -k4,4 -g -r | awk 'BEGIN { printf "%-22s %4s %9s %9s %8s %8s %7s %8s %7s  %s\n", "kernel", "runs", "ms/run", "ms/step", "GFLOP", "GFLOP/s", "peak", "GB", "GB/s", "opts" } { print }'
