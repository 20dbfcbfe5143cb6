#!/usr/bin/env bash
# Soak (issue 14): a long `cgrad train` at batch 32, sampling every 100 steps the process's
# resident memory (VmRSS), its open file descriptors and the size of the kernel disk cache.
#
#   bench/soak.sh [steps (default 10000)] [build dir (default build/release)]
#
# Writes build/soak.tsv (step, rss_kb, fds, cache_bytes, cache_files) and prints a summary:
# resident memory after warm-up (a tenth of the run, in whole hundreds; at least step 100) against the last sample,
# the largest sample after warm-up, descriptor and cache ranges. The kernel cache is a fresh
# directory (CG_CACHE_DIR) so its growth is this run's. Needs the Fashion-MNIST package.
# SOAK_MAX_S=seconds stops the run after that long (on a loaded machine 10,000 steps can
# take hours) and summarizes the steps it reached.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10000}
asked=$steps # (the loop below reuses the positional parameters)
bin=${2:-build/release}/cgrad
[ -x "$bin" ] || { echo "no $bin: build first (cmake -S . -B build/release && cmake --build build/release)"; exit 1; }
work=$(mktemp -d /tmp/cg_soak_XXXXXX)
export CG_CACHE_DIR=$work/cache CG_PRINT_LOSS=1
out=build/soak.tsv
warm=$(( steps / 10 / 100 * 100 )); [ "$warm" -ge 100 ] || warm=100 # a sampled step
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ)"
echo "command: $bin train --steps $steps --batch 32 --out $work/soak.safetensors"
printf 'step\trss_kb\tfds\tcache_bytes\tcache_files\n' >"$out"
coproc TRAIN { exec stdbuf -oL "$bin" train --steps "$steps" --batch 32 --out "$work/soak.safetensors" 2>"$work/stderr"; }
pid=$TRAIN_PID
stopped=$work/stopped
[ -z "${SOAK_MAX_S:-}" ] || { sleep "$SOAK_MAX_S" && touch "$stopped" && kill "$pid" 2>/dev/null; } &
timer=$!
while IFS= read -r line <&"${TRAIN[0]}"; do
  set -- $line
  [ "${1:-}" = step ] || { echo "$line"; continue; }
  step=$2
  if [ $((step % 100)) -eq 0 ]; then
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo -1)
    fds=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
    cache=$(du -sb "$CG_CACHE_DIR" 2>/dev/null | cut -f1)
    files=$(ls "$CG_CACHE_DIR" 2>/dev/null | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\n' "$step" "$rss" "$fds" "${cache:-0}" "$files" >>"$out"
  fi
done
if ! wait "$pid"; then
  [ -e "$stopped" ] || { echo "cgrad train failed:"; tail -5 "$work/stderr"; exit 1; }
  steps=$(( $(tail -1 "$out" | cut -f1) + 1 )) # every sample counts: no final evaluation ran
  echo "stopped after ${SOAK_MAX_S} s (SOAK_MAX_S), at step $((steps - 1)) of $asked"
else
  tail -1 "$work/stderr" | tr '\r' '\n' | tail -1
fi
kill "$timer" 2>/dev/null || true
# The last step's sample is left out: the tool starts its test-set evaluation (other shapes,
# one more kernel) right after printing that step, while the sample is being taken.
awk -v warm="$warm" -v last_step="$steps" 'NR > 1 && $1 < last_step {
    if ($1 == warm) w = $2
    if ($1 >= warm) { if ($2 > max) max = $2; if (min == "" || $2 < min) min = $2 }
    if (fmin == "" || $3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3
    if ($1 >= warm) { if (cmin == "" || $4 < cmin) cmin = $4; if ($4 > cmax) cmax = $4 }
    last = $2; lstep = $1; files = $5 }
  END {
    printf "resident memory: %.1f MB at step %d (after warm-up), %.1f MB at step %d (%+.2f%%); after warm-up min %.1f, max %.1f MB (%+.2f%% of warm-up)\n",
      w / 1024, warm, last / 1024, lstep, 100 * (last - w) / w, min / 1024, max / 1024, 100 * (max - w) / w
    printf "open descriptors: %d to %d over the run\n", fmin, fmax
    printf "kernel cache after warm-up: %d to %d bytes (%d files at the end)\n", cmin, cmax, files
  }' "$out"
rm -rf "$work"
