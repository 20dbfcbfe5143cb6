#!/usr/bin/env bash
# The x86-64 machine-code backend (DEVICE=X86, renderer/render_x86.c) on the Fashion-MNIST
# CNN training step against the C backend (gcc):
#   1. each kernel of the step, emitted code vs gcc's, in thread CPU time on 1 thread
#      (DEBUG_CPUTIME=1: what other processes on the cores change little), steps 2-3 summed;
#   2. the cold start: a fresh process with an empty kernel cache, first step and steady
#      ms/step, for the C backend (CPU CG_TIER=0), the default (CPU, tiered: machine code
#      first, gcc in the background, swapped in when the graph is met again), DEVICE=X86, and
#      DEVICE=X86 CG_TIER=1;
#   3. emit time per kernel (DEBUG=3's "bytes of machine code in N us" lines).
#   usage: bench/bench_x86.sh [build-dir] [batch]     (defaults: build, 512)
set -euo pipefail
build=${1:-build}
batch=${2:-512}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load average: $(cat /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo); batch $batch"
train() { "$build/cgrad" train --steps "$1" --batch "$batch" --eval-images 100 --eval-every 100000 --out "$work/o.st"; }
# 1. per kernel (a warm cache for the C backend first)
CG_CACHE_DIR="$work/warm" CG_THREADS=1 train 1 >/dev/null 2>&1
for dev in CPU X86; do
  JIT=0 DEVICE=$dev CG_CACHE_DIR="$work/warm" CG_THREADS=1 DEBUG=1 DEBUG_CPUTIME=1 train 3 2>&1 >/dev/null | grep -E '^  [Er]_' > "$work/k_$dev" || true
done
paste "$work/k_CPU" "$work/k_X86" | awk -v skip="$(($(wc -l < "$work/k_CPU") / 3))" '
  NR > skip { if ($1 != $10) bad = 1; c[$1] += $2; x[$1] += $11; tc += $2; tx += $11 }
  END {
    if (bad) print "(the two runs launched different kernels: the table pairs them by name)"
    printf "%-22s %10s %10s %7s\n", "kernel (steps 2-3)", "gcc ms", "x86 ms", "x86/gcc"
    for (k in c) printf "%-22s %10.3f %10.3f %7.2f\n", k, c[k], x[k], x[k] / c[k] | "sort -k3 -nr"
    close("sort -k3 -nr")
    printf "%-22s %10.3f %10.3f %7.2f\n", "all kernels", tc, tx, tx / tc }'
# 2. cold start
for mode in "CPU 0" "CPU 1" "X86 0" "X86 1"; do
  set -- $mode
  rm -rf "$work/cold"
  line=$(DEVICE=$1 CG_TIER=$2 CG_CACHE_DIR="$work/cold" train 10 2>/dev/null | grep '^test accuracy')
  echo "empty cache, DEVICE=$1 CG_TIER=$2: ${line#*: }"
done
# 3. emit time
rm -rf "$work/cold"
DEVICE=X86 CG_CACHE_DIR="$work/cold" DEBUG=3 train 1 2>&1 >/dev/null | grep 'bytes of machine code' |
  awk '{ n++; b += $4; t += $(NF-1) } END { printf "emit: %d kernels, %.0f KB of code, %.2f ms in all, %.1f us per kernel\n", n, b / 1024, t / 1e3, t / n }'
