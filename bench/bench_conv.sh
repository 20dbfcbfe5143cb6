#!/usr/bin/env bash
# The CNN's four convolutions (forward, input gradient, weight gradient) at batch B:
# cgrad (bench_conv) against PyTorch CPU (oneDNN) on the same shapes and threads; prints
# both medians and cgrad's speed relative to PyTorch (>1: cgrad faster), by wall time and by
# CPU time (the process's, all threads: under load the CPU ratio still compares the work
# each does, where the wall ratio compares who got the cores).
#   usage: bench/bench_conv.sh [build-dir] [batch] [runs]
set -euo pipefail
build=${1:-build}
batch=${2:-512}
runs=${3:-5}
threads=${CG_THREADS:-2}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE CG_THREADS=$threads
echo "load average: $(cat /proc/loadavg)"
cg=$("$build/bench_conv" "$batch" "$runs")
pt=$(/usr/bin/python3 - "$batch" "$runs" "$threads" <<'PY'
import sys, time, torch
import torch.nn.functional as F
B, runs, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
for i, (cin, cout, k, n) in enumerate([(1, 32, 5, 28), (32, 32, 5, 24), (32, 64, 3, 10), (64, 64, 3, 8)], 1):
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
echo "$cg" | head -1
printf "%-6s %-12s %10s %10s %10s %12s %12s %10s\n" layer pass cgrad_ms torch_ms speed cgrad_cpu_ms torch_cpu_ms cpu_speed
join <(echo "$cg" | awk '$2 != "checksums" && NF == 5 {print $1 "_" $2, $3, $5}' | sort) \
     <(echo "$pt" | awk '{print $1 "_" $2, $3, $4}' | sort) |
  awk '{split($1, a, "_"); p = substr($1, length(a[1]) + 2)
        printf "%-6s %-12s %10.2f %10.2f %9.2fx %12.2f %12.2f %9.2fx\n", a[1], p, $2, $4, $4 / $2, $3, $5, $5 / $3
        c += $2; t += $4; cc += $3; tc += $5}
       END {printf "%-6s %-12s %10.2f %10.2f %9.2fx %12.2f %12.2f %9.2fx\n", "all", "", c, t, t / c, cc, tc, tc / cc}'
