#!/usr/bin/env bash
# GPT training step, cgrad (`cgrad train gpt`, float32 and --amp bf16) against the same
# model in PyTorch (bench/gpt_torch.py, float32 and torch.autocast bf16), and sampling
# speed with the KV cache. Each line gives the wall-clock ms/step (after the first step)
# and the process CPU time per step (all threads): on a machine others load, the wall clock
# counts waiting for a core and only the CPU time is the step's own cost (compare them at
# CG_THREADS=1, where neither side's thread pool spins).
#   usage: bench/bench_gpt.sh [build-dir] [steps] [layers embd heads block batch]
# The issue's configuration is 6 384 6 256 8 (the default here). CG_THREADS: threads (2).
# Last, bench_gpt_bound (when built) prints the time the step's products alone take at this
# CPU's measured float32 and bf16 peaks, and the share of the peak each step time implies.
set -euo pipefail
build=${1:-build}
steps=${2:-4}
L=${3:-6} C=${4:-384} H=${5:-6} T=${6:-256} B=${7:-8}
threads=${CG_THREADS:-2}
# a fair PyTorch figure: its OpenMP and OpenBLAS pools at the same thread count, not spinning
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE CG_THREADS=$threads
# and this CPU's kernels: an environment pinning OpenBLAS to another core (OPENBLAS_CORETYPE=Haswell
# on the development machines) made PyTorch's float32 step 1.5x slower, a false ratio
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
echo "load average: $(cat /proc/loadavg); $threads thread(s)"
out=$(mktemp -d)
model="--layers $L --embd $C --heads $H --block $T --batch $B --steps $steps --warmup 1 --eval-every 0 --eval-batches 1"
# the steady step: each side's median step after the first (cgrad's mean also counts the
# JIT's capture step and the last step's evaluation and checkpoint)
declare -A cgmed
bound=()
for amp in "" "--amp bf16"; do
  lines=$("$build/cgrad" train gpt $model $amp --out "$out/g.safetensors" 2>"$out/err" | grep -E '^(trained|cpu:)' | tr '\n' ' ')
  vocab=$(grep -oE 'vocabulary [0-9]+' "$out/err" | head -1 | cut -d' ' -f2)
  echo "cgrad ${amp:-float32}: $lines"
  cgmed[${amp:-float32}]=$(grep -oE 'median [0-9.]+' <<<"$lines" | cut -d' ' -f2)
done
for amp in "" "--amp bf16"; do
  line=$(/usr/bin/python3 "$(dirname "$0")/gpt_torch.py" --layers "$L" --embd "$C" --heads "$H" --block "$T" --batch "$B" --time-steps "$steps" --threads "$threads" $amp 2>/dev/null)
  echo "$line"
  pt=$(grep -oE '[0-9.]+ ms/step \(median\)' <<<"$line" | cut -d' ' -f1)
  cg=${cgmed[${amp:-float32}]}
  kind=float32; [ -n "$amp" ] && kind=bf16
  [ -n "$pt" ] && bound+=("$kind:pytorch=$pt")
  [ -n "$cg" ] && bound+=("$kind:cgrad=$cg")
  [ -n "$pt" ] && [ -n "$cg" ] && awk -v c="$cg" -v p="$pt" -v a="${amp:-float32}" 'BEGIN{printf "%s steady step (medians): cgrad %.1f ms, pytorch %.1f ms, cgrad speed / pytorch %.2fx\n", a, c, p, p / c}'
done
# what the step's matrix products alone take at this CPU's measured peaks (bench_gpt_bound.c),
# when that program is built (cmake --build BUILD --target bench_gpt_bound)
[ -x "$build/bench_gpt_bound" ] && [ -n "${vocab:-}" ] && "$build/bench_gpt_bound" "$L" "$C" "$H" "$T" "$B" "$vocab" "${bound[@]}"
"$build/cgrad" sample --checkpoint "$out/g.safetensors" --tokens 100 --seed 1 2>&1 >/dev/null | tail -1
echo "load average: $(cat /proc/loadavg)"
rm -rf "$out"
