#!/usr/bin/env bash
# Sampling speed with the KV cache (issue 13): `cgrad sample` against the same model in
# PyTorch (bench/gpt_torch.py --sample: the same checkpoint's weights, a KV cache, one
# token per forward, float32), 1 and 2 threads, cold and warm:
#   cgrad cold: a new kernel cache directory (every kernel made in the run); warm: the
#   same command again (the kernels on disk); tokens/s from the first token on, and the
#   whole process's wall time (load, compile, exit). torch cold: the process's first N tokens;
#   warm: the next N in the same process.
# The bound: a decode step reads every weight once (float32), so tokens/s cannot pass
# (read bandwidth) / (weight bytes); the bandwidth is bench_read_bw's over a buffer of the
# weights' size read again and again (mostly from L3 here, as the decode's weights are).
#   usage: bench/bench_sample.sh [build-dir] [tokens (200: within one window)] [layers embd heads block]
# The issue's model is 6 384 6 256 (the default): ~10.7M parameters.
set -euo pipefail
build=${1:-build}
N=${2:-200}
L=${3:-6} C=${4:-384} H=${5:-6} T=${6:-256}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE # torch's BLAS picks its AVX-512 kernels (PERF-NOTES)
echo "load average: $(cat /proc/loadavg);$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(date -u '+%F %H:%M UTC')"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CG_CACHE_DIR="$out/train_cc" "$build/cgrad" train gpt --layers "$L" --embd "$C" --heads "$H" --block "$T" --batch 1 --steps 1 --warmup 1 \
  --eval-every 0 --eval-batches 1 --out "$out/g.safetensors" >/dev/null 2>&1
wbytes=$(/usr/bin/python3 -c "
import json,sys; r=open('$out/g.safetensors','rb').read(); n=int.from_bytes(r[:8],'little'); h=json.loads(r[8:8+n])
print(sum(v['data_offsets'][1]-v['data_offsets'][0] for k,v in h.items() if k.startswith('transformer') and 'wpe' not in k))")
cmake --build "$build" --target bench_read_bw >/dev/null
bwlines=$("$build/bench_read_bw" "$(awk "BEGIN{print $wbytes/1e6}")")
echo "$bwlines"
for th in 1 2; do
  export CG_THREADS=$th OMP_NUM_THREADS=$th
  bw=$(echo "$bwlines" | grep " $th thread" | grep -o '[0-9.]* GB/s' | cut -d' ' -f1)
  echo "== $th thread(s): weights read per token $(awk "BEGIN{printf \"%.1f\", $wbytes/1e6}") MB, read bandwidth $bw GB/s: bound $(awk "BEGIN{printf \"%.0f\", $bw*1e9/$wbytes}") tokens/s"
  cc="$out/cc$th"
  r1=$(CG_CACHE_DIR=$cc /usr/bin/time -f "process %e s" "$build/cgrad" sample --checkpoint "$out/g.safetensors" --tokens "$N" --seed 1 2>&1 >/dev/null)
  r2=$(CG_CACHE_DIR=$cc /usr/bin/time -f "process %e s" "$build/cgrad" sample --checkpoint "$out/g.safetensors" --tokens "$N" --seed 1 2>&1 >/dev/null)
  n1=$(echo "$r1" | grep -o '[0-9.]* tokens/s' | head -1 | cut -d' ' -f1) n2=$(echo "$r2" | grep -o '[0-9.]* tokens/s' | head -1 | cut -d' ' -f1)
  c1="$n1 tokens/s ($(echo "$r1" | grep -o 'process [0-9.]* s') in all)" c2="$n2 tokens/s ($(echo "$r2" | grep -o 'process [0-9.]* s') in all)"
  t=$(/usr/bin/python3 "$(dirname "$0")/gpt_torch.py" --sample "$out/g.safetensors" --tokens "$N" --threads "$th" 2>/dev/null)
  t1=$(echo "$t" | grep cold | grep -o '[0-9.]* tokens/s' | cut -d' ' -f1); t2=$(echo "$t" | grep warm | grep -o '[0-9.]* tokens/s' | cut -d' ' -f1)
  echo "cgrad  cold $c1, warm $c2"
  echo "torch  cold $t1 tokens/s, warm $t2 tokens/s"
  echo "ratio (cgrad/torch tokens/s): cold $(awk "BEGIN{printf \"%.2f\", $n1/$t1}")x, warm $(awk "BEGIN{printf \"%.2f\", $n2/$t2}")x"
done
echo "load average: $(cat /proc/loadavg)"
