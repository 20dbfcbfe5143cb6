#!/usr/bin/env bash
# How a `cgrad train gpt` step's kernels scale from 1 thread to N: each launch of the
# steady steps traced (CG_POOL_TRACE=1, runtime/cpu_launch.c) in one run on 1 thread and
# one on N, compared per kernel by bench/pool_trace.py (1-thread CPU ms, N-thread wall ms,
# the N threads' CPU in chunks, idle and late-start thread time, host time between
# launches). Medians over the steady steps, so a noisy step moves little; on a loaded
# machine FIFO=1 runs both under `chrt -f 1` (root; the kernel still leaves others 5% of
# each second, so a step now and then is ~50 ms late: the medians hide it).
#   usage: bench/pool_scaling_gpt.sh [build-dir] [cgrad train gpt options...]
#   env: THREADS (2), STEPS (10), FIFO (0), KEEP=dir (keep the logs there)
#   default model: the issue's (6 layers, 384 wide, 6 heads, T 256, batch 8), --amp bf16
set -euo pipefail
build=${1:-build}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${KEEP:-}" ]; then work=$KEEP; mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
model=${*:-"--layers 6 --embd 384 --heads 6 --block 256 --batch 8 --amp bf16"}
prio=()
[ "${FIFO:-0}" = 1 ] && prio=(chrt -f 1)
echo "load average: $(cat /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo); $model; ${STEPS:-10} steps${FIFO:+, FIFO=$FIFO}"
for t in 1 "${THREADS:-2}"; do
  # shellcheck disable=SC2086
  CG_POOL_TRACE=1 CG_THREADS=$t "${prio[@]}" "$build/cgrad" train gpt $model --steps "${STEPS:-10}" --eval-every 0 --eval-batches 1 \
    --out "$work/o.st" 2>"$work/t$t.log" | grep -E "^trained" || { echo "the $t-thread run failed: $(tail -3 "$work/t$t.log")"; exit 1; }
done
/usr/bin/python3 "$here/pool_trace.py" "$work/t1.log" "$work/t${THREADS:-2}.log"
