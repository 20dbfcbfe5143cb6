#!/usr/bin/env bash
# The CNN's four convolutions (forward, input gradient, weight gradient) at batch B:
# cgrad (bench_conv) with the direct algorithm (WINO=0) and with Winograd (WINO=1; the
# weight gradient is direct in both) against PyTorch CPU (oneDNN) on the same shapes and
# threads; prints the medians and cgrad's speed relative to PyTorch (>1: cgrad faster), by
# wall time and by CPU time (the process's, all threads: under load the CPU ratio still
# compares the work each does, where the wall ratio compares who got the cores).
# wide=1 adds two layers with more channels (64->64 3x3, 128->128 5x5 at 16x16 outputs),
# where the default (WINO unset) picks Winograd.
#   usage: [WINO_COL=1|2|rule] [CONV_LAYERS=3,4] bench/bench_conv.sh [build-dir] [batch] [runs] [wide]
set -euo pipefail
build=${1:-build}
cmake --build "$build" --target bench_conv >/dev/null # bench programs are not in the default build: never time a stale one
batch=${2:-512}
runs=${3:-5}
wide=${4:-0}
threads=${CG_THREADS:-2}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE CG_THREADS=$threads
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE # the baseline runs this CPU's kernels, not a pinned core's
echo "load average: $(cat /proc/loadavg)"
cg0=$(WINO=0 "$build/bench_conv" "$batch" "$runs" "$wide")
# the wino columns: WINO_COL=1 (default: the 2-d path everywhere), 2 (rows everywhere) or
# "rule" (WINO unset: the measured rule, what training runs)
col=${WINO_COL:-1}
if [ "$col" = rule ]; then cg1=$(env -u WINO "$build/bench_conv" "$batch" "$runs" "$wide")
else cg1=$(WINO=$col "$build/bench_conv" "$batch" "$runs" "$wide"); fi
echo "wino columns: WINO=${col/rule/unset}"
pt=$(/usr/bin/python3 - "$batch" "$runs" "$threads" "$wide" <<'PY'
import os, sys, time, torch
import torch.nn.functional as F
B, runs, threads, wide = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
layers = [(1, 32, 5, 28), (32, 32, 5, 24), (32, 64, 3, 10), (64, 64, 3, 8)] + ([(64, 64, 3, 18), (128, 128, 5, 20)] if wide else [])
only = os.environ.get("CONV_LAYERS", "")
for i, (cin, cout, k, n) in enumerate(layers, 1):
    if only and str(i) not in only: continue
    o = n - k + 1
    x, w, g = torch.randn(B, cin, n, n), torch.randn(cout, cin, k, k), torch.randn(B, cout, o, o)
    passes = [("forward", lambda: F.conv2d(x, w)),
              ("input_grad", lambda: torch.nn.grad.conv2d_input(x.shape, w, g)),
              ("weight_grad", lambda: torch.nn.grad.conv2d_weight(x, w.shape, g))]
    for name, f in passes:
        if i == 1 and name == "input_grad": continue
        f()
        t, c = [], []
        for _ in range(runs):
            t0, c0 = time.perf_counter(), time.process_time(); f(); t.append(time.perf_counter() - t0); c.append(time.process_time() - c0)
        print(f"conv{i} {name} {1e3 * sorted(t)[len(t) // 2]:.3f} {1e3 * sorted(c)[len(c) // 2]:.3f}")
PY
)
echo "$cg0" | head -1
printf "%-6s %-12s %9s %9s %9s %8s %8s %9s %9s %9s %8s %8s\n" layer pass direct_ms wino_ms torch_ms direct wino dir_cpu wino_cpu torch_cpu cpu_dir cpu_wino
join <(echo "$cg0" | awk '$2 != "checksums" && NF == 5 {print $1 "_" $2, $3, $5}' | sort) \
     <(echo "$cg1" | awk '$2 != "checksums" && NF == 5 {print $1 "_" $2, $3, $5}' | sort) |
  join - <(echo "$pt" | awk '{print $1 "_" $2, $3, $4}' | sort) |
  awk '{split($1, a, "_"); p = substr($1, length(a[1]) + 2)
        printf "%-6s %-12s %9.2f %9.2f %9.2f %7.2fx %7.2fx %9.2f %9.2f %9.2f %7.2fx %7.2fx\n", a[1], p, $2, $4, $6, $6 / $2, $6 / $4, $3, $5, $7, $7 / $3, $7 / $5
        d += $2; w += $4; t += $6; dc += $3; wc += $5; tc += $7}
       END {printf "%-6s %-12s %9.2f %9.2f %9.2f %7.2fx %7.2fx %9.2f %9.2f %9.2f %7.2fx %7.2fx\n", "all", "", d, w, t, t / d, t / w, dc, wc, tc, tc / dc, tc / wc}'
