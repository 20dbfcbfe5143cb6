#!/usr/bin/env bash
# Each kernel of one steady-state CNN training step timed alone on 1 thread, in thread CPU
# time (the best of 12 runs): a per-kernel profile that a loaded machine changes little
# (bench/profile_step.sh is the step's wall clock). The step is the 2nd of `cgrad train`
# (JIT=0, DEBUG=4 prints each kernel's source); each kernel is compiled with cgrad's
# default flags and run on buffers of its sizes (values in [-0.3, 0.7)). Its data stay
# in cache more than in the step, so memory-bound kernels look faster than there.
#   usage: bench/profile_kernels_cpu.sh [build-dir] [batch]    (default build, 512)
set -euo pipefail
build=${1:-build}
batch=${2:-512}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -o "$work/time" "$here/kernel_cpu_time.c" -ldl
echo "load average: $(cat /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo); batch $batch; 1 thread, thread CPU time"
JIT=0 DEBUG=4 CG_THREADS=2 CG_CACHE_DIR="$work/cache" "$build/cgrad" train --steps 2 --batch "$batch" --eval-images 100 --eval-every 100000 \
  --out "$work/o.st" >/dev/null 2>"$work/log" || true
# the 2nd schedule of 60+ kernels is the 2nd step: one file per kernel (AST, source)
awk -v d="$work" '/^\*\*\* schedule: [0-9]+ kernels/ { n = $3 + 0; if (n >= 60) step++; cur = (n >= 60 && step == 2); f = ""; next }
  cur && /^--- kernel/ { split($3, a, ":"); f = sprintf("%s/k%03d_%s", d, a[1], $4) } cur && f { print > f }' "$work/log"
flags=$(sed -n 's/^#define RT_CC_FLAGS "\(.*\)"/\1/p' "$here/../src/runtime/cpu_compile.h")
flags="$flags ${CG_CFLAGS_ADD:-}"
total=0
for f in "$work"/k*; do
  name=$(awk '/^void /{ sub(/\(.*/, "", $2); print $2; exit }' "$f")
  [ -n "$name" ] || continue
  awk '/^#ifndef CG_KERNEL_PRELUDE/{ p = 1 } /^  [A-Za-z_0-9]+ +[0-9.]+ ms/{ p = 0 } p' "$f" > "$f.c"
  cc $flags -shared -fPIC -o "$f.so" "$f.c" -lm || { echo "$name: does not compile"; continue; }
  trips=$(awk '/RANGE int32 \([0-9]+, 2\)/{ getline; print $NF; exit }' "$f")
  case "$trips" in ^n*) trips=$(awk -v n="${trips#^} =" 'index($0, n) && /CONST int32/ { print $NF; exit }' "$f") ;; esac # a shared node
  sizes=$(grep -o 'DEFINE_GLOBAL [a-z0-9]* ([0-9]*, [0-9]*)' "$f" | sed 's/.*(\([0-9]*\), \([0-9]*\))/\1 \2/' | sort -n -u | awk '{ printf "%s ", $2 }')
  ms=$("$work/time" "$f.so" "$name" "${trips:-1}" $sizes) || { echo "$name: did not run"; continue; }
  opts=$(sed -n '1s/.*(opts: \(.*\))$/\1/p' "$f")
  printf "%-6s %-18s %8s ms  %s\n" "$(basename "$f" | cut -c2-4)" "$name" "$ms" "$opts"
  total=$(awk -v a="$total" -v b="$ms" 'BEGIN { print a + b }')
done
echo "sum: $total ms (1 thread)"
