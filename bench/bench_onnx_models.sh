#!/usr/bin/env bash
# ONNX inference: torchvision models (random weights) through `cgrad onnx bench` against
# PyTorch CPU (eval, no_grad) on the same thread count, at batch 1 and 32: resnet18,
# mobilenet_v2, squeezenet1_0 and efficientnet_b0 at 224x224, and the tests' small vision
# transformer (vit_small: 32x32, patch 8, 2 layers). Prints latency (ms per batch) and
# images/s for both, and the ratio.
#   bench/bench_onnx_models.sh [ITERS] [MODEL...]   (default 5 and all five; batch 32 runs
#                                                    ITERS/5 + 1 times)
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-5}
shift || true
models=${*:-resnet18 mobilenet_v2 squeezenet1_0 efficientnet_b0 vit_small}
threads=${CG_THREADS:-$(nproc)}
dir=build/release/onnx_bench
cmake --build build/release --target cgrad >/dev/null
/usr/bin/python3 tests/onnx/make_torchvision_models.py $dir 0 --size 224 $models >/dev/null 2>&1
for m in $models; do
  for b in 1 32; do
    n=$iters; [ "$b" = 32 ] && n=$((iters / 5 + 1))
    c=$(CG_THREADS=$threads ./build/release/cgrad onnx bench $dir/$m.onnx --batch $b --iters $n 2>/dev/null | sed -E 's/.*then mean ([0-9.]+) ms.*/\1/')
    t=$(/usr/bin/python3 - "$m" "$b" "$n" "$threads" <<'PY'
import sys, time, torch, torchvision
m, b, n, th = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(th)
if m == "vit_small":  # as tests/onnx/make_torchvision_models.py makes it
    from torchvision.models.vision_transformer import VisionTransformer
    net, size = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128, num_classes=10), 32
else:
    net, size = getattr(torchvision.models, m)(), 224
net = net.eval()
x = torch.randn(b, 3, size, size)
with torch.no_grad():
    net(x)
    t = time.perf_counter()
    for _ in range(n): net(x)
print("%.2f" % (1e3 * (time.perf_counter() - t) / n))
PY
)
    awk -v m=$m -v b=$b -v c=$c -v t=$t -v th=$threads 'BEGIN { printf "%-15s batch %2d, %d threads: cgrad %9.2f ms (%7.1f img/s)  torch %8.2f ms (%7.1f img/s)  cgrad/torch speed %.3fx\n", m, b, th, c, 1000*b/c, t, 1000*b/t, t/c }'
  done
done
