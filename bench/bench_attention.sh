#!/usr/bin/env bash
# Causal attention forward + backward at T = 256, 1024, 4096 (B 1, H 8, D 64, float32):
# cgrad's fused attention against PyTorch (Debian's torch 1.13 has no
# F.scaled_dot_product_attention: its reference is the math SDPA is defined by,
# softmax(q k^T / sqrt(D) + causal mask) v, which is also what torch 2.x's "math" backend
# runs on CPU). Time (best of 3 after a warm-up) and peak resident memory above the inputs,
# each length in its own process.
#   usage: bench/bench_attention.sh [build-dir] [lengths...]
# BF16=1: q, k, v in bfloat16 on both sides (autocast's attention: cgrad's products on the
# bf16 unit, float32 softmax statistics; torch's bf16 matmuls and softmax).
set -euo pipefail
build=${1:-build}
cmake --build "$build" --target bench_attention >/dev/null # bench programs are not in the default build: never time a stale one
shift || true
lengths=${*:-256 1024 4096}
threads=${CG_THREADS:-2}
export OMP_NUM_THREADS=$threads CG_THREADS=$threads OPENBLAS_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE # this machine's env pins OpenBLAS to Haswell kernels: torch's baseline gets its AVX-512 ones
echo "load average: $(cat /proc/loadavg)"
for T in $lengths; do
  cgout=$("$build/bench_attention" "$T" 1 8 64 3 ${BF16:+bf16})
  cg=$(head -1 <<<"$cgout")
  tail -n +2 <<<"$cgout"
  pt=$(/usr/bin/python3 - "$T" "$threads" "${BF16:-0}" <<'PY'
import sys, time, resource, torch
T, th, bf = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
torch.set_num_threads(th)
torch.manual_seed(1)
q, k, v = (torch.randn(1, 8, T, 64, dtype=torch.bfloat16 if bf else torch.float32, requires_grad=True) for _ in range(3))
def hwm():
    for l in open('/proc/self/status'):
        if l.startswith('VmHWM:'): return int(l.split()[1])
base = hwm()
mask = torch.ones(T, T, dtype=torch.bool).tril()
best = best_cpu = 1e30
for r in range(4):
    t0, c0 = time.time(), time.process_time()
    s = (q @ k.transpose(-2, -1)) / 8.0
    o = torch.softmax(s.masked_fill(~mask, float('-inf')), -1) @ v
    o.sum().backward()
    dt, dc = time.time() - t0, time.process_time() - c0
    if r: best, best_cpu = min(best, dt), min(best_cpu, dc)
    q.grad = k.grad = v.grad = None
print(f"{1e3 * best:.1f} {(hwm() - base) / 1024:.1f} {1e3 * best_cpu:.1f}")
PY
)
  echo "$cg"
  read -r ptms ptmb ptcpu <<<"$pt"
  echo "pytorch T=$T: fwd+bwd $ptms ms, cpu $ptcpu ms, peak RSS +$ptmb MB"
  cgms=$(sed -E 's/.*fwd\+bwd ([0-9.]+) ms.*/\1/' <<<"$cg")
  cgcpu=$(sed -E 's/.*cpu ([0-9.]+) ms.*/\1/' <<<"$cg")
  awk -v a="$cgms" -v b="$ptms" -v c="$cgcpu" -v d="$ptcpu" -v T="$T" 'BEGIN { printf "T=%s: cgrad/pytorch time %.2f, cpu time %.2f\n", T, a / b, c / d }'
done
