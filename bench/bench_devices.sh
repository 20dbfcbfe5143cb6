#!/usr/bin/env bash
# Two CPU device instances computing at once (bench_devices.c): one device with every
# thread, the rows split over 2 devices run at once, and the same 2 devices one after the
# other, all with CG_THREADS threads in all; prints each line and the ratios.
#   bench/bench_devices.sh [build dir (build/release)] [threads (2)] [M K N (1024 1024 1024)]
set -euo pipefail
b=${1:-build/release}; th=${2:-2}; shift 2 2>/dev/null || true
dims="${*:-1024 1024 1024}"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
one=$(CG_THREADS=$th CG_DEVICES=1 "$b/bench_devices" 1 $dims); echo "$one"
two=$(CG_THREADS=$th CG_DEVICES=2 "$b/bench_devices" 2 $dims); echo "$two"
ser=$(CG_THREADS=$th CG_DEVICES=2 CG_CONCURRENT=0 "$b/bench_devices" 2 $dims); echo "$ser"
ms() { sed -E 's/.*: ([0-9.]+) ms median.*/\1/' <<<"$1"; }
awk -v a="$(ms "$one")" -v b="$(ms "$two")" -v c="$(ms "$ser")" 'BEGIN {
  printf "2 devices at once / 1 device: %.2f;  2 devices at once / one after another: %.2f\n", b / a, b / c }'
