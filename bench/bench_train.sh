#!/usr/bin/env bash
# Training step time of the Fashion-MNIST CNN: cgrad (`cgrad train`) against PyTorch CPU
# (Debian's python3-torch), same model, batch, data and thread count, one script; prints
# time to the first step, steady-state ms/step and the ratio. The first step is timed from
# each process's start (the kernel's start time in /proc/self/stat: exec, dynamic loading,
# PyTorch's `import torch` included, as a user waits for it); PyTorch's figure from after
# its imports is printed beside it.
#   usage: bench/bench_train.sh [build-dir] [steps] [batch]   (needs GNU time: Debian package `time`)
set -euo pipefail
build=${1:-build}
steps=${2:-30}
batch=${3:-512}
threads=${CG_THREADS:-2}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE CG_THREADS=$threads
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE # the baseline runs this CPU's kernels, not a pinned core's
echo "load average: $(cat /proc/loadavg)"
out=$(mktemp -d)
# peak resident memory of each whole process (GNU time's "Maximum resident set size", KB)
peak() { grep -E 'Maximum resident set size' "$1" | awk '{print $NF}'; }
cg_all=$(/usr/bin/time -v -o "$out/cg.time" "$build/cgrad" train --steps "$steps" --batch "$batch" --out "$out/cg.safetensors" 2>/dev/null)
cg_line=$(grep '^test accuracy' <<<"$cg_all")
cg_peak=$(peak "$out/cg.time")
echo "cgrad:   $cg_line"
cg_first=$(sed -E 's/.*first step [0-9.]+ s \(([0-9.]+) s after the process started\).*/\1/' <<<"$cg_line")
# steady state: the median step after the first, as for PyTorch (the mean of a short run
# also counts the steps that wait for the background compiler; cgrad prints both)
cg_step=$(sed -E 's/.*\(median ([0-9.]+) ms\).*/\1/' <<<"$cg_line")
pt=$(/usr/bin/time -v -o "$out/pt.time" /usr/bin/python3 - "$steps" "$batch" "$threads" <<'PY'
import os, time
def process_age():  # seconds since this process started (/proc/self/stat field 22, clock ticks since boot)
    st = open("/proc/self/stat").read()
    return time.clock_gettime(time.CLOCK_BOOTTIME) - int(st[st.rindex(")") + 2:].split()[19]) / os.sysconf("SC_CLK_TCK")
import gzip, sys
import numpy as np, torch, torch.nn as nn
steps, batch, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
t0 = time.time()
d = "/usr/share/datasets/fashion-mnist/"
img = np.frombuffer(gzip.open(d + "train-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
lab = np.frombuffer(gzip.open(d + "train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
torch.manual_seed(42)
model = nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.Conv2d(32, 32, 5), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(576, 10))
opt = torch.optim.Adam(model.parameters(), 1e-3)
rng = np.random.default_rng(42)
times = []
for s in range(steps):
    idx = rng.integers(0, len(img), batch)
    x = torch.from_numpy((img[idx].astype(np.float32) / 255 - 0.2860) / 0.3530)
    y = torch.from_numpy(lab[idx].astype(np.int64))
    t = time.time()
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    loss.item()
    times.append(time.time() - t)
    if s == 0: first, first_proc = time.time() - t0, process_age()
print(f"{first_proc:.3f} {1e3 * sorted(times[1:])[len(times[1:]) // 2]:.1f} {first:.3f}")
PY
)
pt_peak=$(peak "$out/pt.time")
read -r pt_first pt_step pt_after_import <<<"$pt"
echo "pytorch: first step ${pt_first} s after the process started (${pt_after_import} s after its imports), then ${pt_step} ms/step (median)"
awk -v a="$cg_step" -v b="$pt_step" -v c="$cg_first" -v d="$pt_first" -v e="$cg_peak" -v f="$pt_peak" 'BEGIN {
  printf "steady-state step (median after the first): cgrad %.1f ms, pytorch %.1f ms, cgrad/pytorch %.2f\n", a, b, a / b
  printf "process start to the end of the first step: cgrad %.2f s, pytorch %.2f s, cgrad/pytorch %.2f\n", c, d, c / d
  printf "peak resident memory (whole process, incl. evaluation for cgrad): cgrad %.0f MB, pytorch %.0f MB, cgrad/pytorch %.2f\n", e / 1024, f / 1024, e / f }'
rm -rf "$out"
