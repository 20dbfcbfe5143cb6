#!/usr/bin/env bash
# ONNX inference: torchvision resnet18 and mobilenet_v2 (random weights, 224x224) through
# `cgrad onnx bench` against PyTorch CPU (eval, no_grad) on the same thread count, at
# batch 1 and 32. Prints latency (ms per batch) and images/s for both, and the ratio.
#   bench/bench_onnx_models.sh [ITERS]      (default 5; batch 32 runs ITERS/5 + 1 times)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-5}
threads=${CG_THREADS:-$(nproc)}
dir=build/release/onnx_bench
cmake --build build/release --target cgrad >/dev/null
/usr/bin/python3 tests/onnx/make_torchvision_models.py $dir 0 --size 224 resnet18 mobilenet_v2 >/dev/null 2>&1
for m in resnet18 mobilenet_v2; do
  for b in 1 32; do
    n=$iters; [ "$b" = 32 ] && n=$((iters / 5 + 1))
    c=$(CG_THREADS=$threads ./build/release/cgrad onnx bench $dir/$m.onnx --batch $b --iters $n 2>/dev/null | sed -E 's/.*then mean ([0-9.]+) ms.*/\1/')
    t=$(/usr/bin/python3 - "$m" "$b" "$n" "$threads" <<'PY'
import sys, time, torch, torchvision
m, b, n, th = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(th)
net = getattr(torchvision.models, m)().eval()
x = torch.randn(b, 3, 224, 224)
with torch.no_grad():
    net(x)
    t = time.perf_counter()
    for _ in range(n): net(x)
print("%.2f" % (1e3 * (time.perf_counter() - t) / n))
PY
)
    awk -v m=$m -v b=$b -v c=$c -v t=$t -v th=$threads 'BEGIN { printf "%-13s batch %2d, %d threads: cgrad %9.1f ms (%7.1f img/s)  torch %8.1f ms (%7.1f img/s)  cgrad/torch speed %.3fx\n", m, b, th, c, 1000*b/c, t, 1000*b/t, t/c }'
  done
done
