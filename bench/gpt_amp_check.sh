#!/usr/bin/env bash
# bf16 / fp16 autocast and fp8 linears against float32 on a 2-layer GPT (fortunes, same seed and batches):
# no NaN or inf in any step, and the mean training loss of the last 20 steps within 2% of
# float32's; then the same model in PyTorch for the validation loss next to cgrad's.
#   usage: bench/gpt_amp_check.sh [build-dir] [steps]
set -euo pipefail
build=${1:-build}
steps=${2:-200}
threads=${CG_THREADS:-2}
export OMP_NUM_THREADS=$threads CG_THREADS=$threads
model="--layers 2 --embd 64 --heads 4 --block 64 --batch 16 --steps $steps --warmup 20 --eval-every $steps --eval-batches 8 --lr 3e-3"
echo "load average: $(cat /proc/loadavg)"
out=$(mktemp -d)
for amp in none bf16 fp16 fp8; do
  flag=""; [ "$amp" = none ] || flag="--amp $amp"
  CG_PRINT_LOSS=1 "$build/cgrad" train gpt $model $flag --out "$out/$amp.safetensors" >"$out/$amp.log" 2>/dev/null || echo "$amp run failed"
  bad=$(grep -ciE 'loss (nan|inf|-inf)' "$out/$amp.log" || true)
  tail20=$(grep '^step .* loss .* gnorm' "$out/$amp.log" | tail -20 | awk '{s += $4} END {printf "%.4f", s / NR}')
  val=$(grep 'val loss' "$out/$amp.log" | tail -1 | awk '{print $NF}')
  skips=$(grep -c 'skipped' "$out/$amp.log" || true)
  echo "$amp: mean train loss of the last 20 steps $tail20, val loss $val, non-finite losses $bad, skipped steps $skips; $(grep '^trained' "$out/$amp.log" | sed 's/;.*//')"
  eval "mean_$amp=$tail20"
done
awk -v a="$mean_none" -v b="$mean_bf16" -v c="$mean_fp16" -v d="$mean_fp8" 'BEGIN {
  printf "bf16 vs float32: %+.2f%%  fp16 vs float32: %+.2f%%  fp8 vs float32: %+.2f%%  (bound for bf16: 2%%)\n", 100 * (b - a) / a, 100 * (c - a) / a, 100 * (d - a) / a }'
/usr/bin/python3 "$(dirname "$0")/gpt_torch.py" --layers 2 --embd 64 --heads 4 --block 64 --batch 16 --steps "$steps" --warmup 20 \
  --eval-every "$steps" --eval-batches 8 --lr 3e-3 --threads "$threads" 2>/dev/null | sed 's/^/pytorch /'
rm -rf "$out"
