#!/usr/bin/env bash
# Per-pass profile of fused attention (causal, float32; src/tensor/flash.c) at one shape:
# each realize of one forward + backward (the forward's inputs, each key block, the
# output; the backward's inputs, each key block, the gradients) with its kernels, their
# time (the best of the timed runs, DEBUG=2's per-kernel clock), GFLOP/s and GB/s as the
# engine counts them, and the realize's host time. B 8, H 6, T 256, D 64 is the attention
# of `bench/bench_gpt.sh`'s GPT step (one layer; the step runs six; under --amp bf16 the
# GPT hands attention bf16 q, k, v: BF16=1 below).
#   usage: bench/profile_attention.sh [build-dir] [T B H D] [reps]   (default 256 8 6 64, 5)
# CG_THREADS: threads (1: kernel times a loaded machine inflates least); VERBOSE=1: every
# kernel, not only each realize's total. CG_FLASH_BLOCK as the library reads it (128).
# BF16=1: q, k, v cast to bf16 (autocast's attention: bf16 products).
set -euo pipefail
build=${1:-build}
cmake --build "$build" --target bench_attention >/dev/null # bench programs are not in the default build: never time a stale one
T=${2:-256} B=${3:-8} H=${4:-6} D=${5:-64} reps=${6:-5}
threads=${CG_THREADS:-1}
blk=${CG_FLASH_BLOCK:-128}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "load average: $(cat /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); CG_THREADS=$threads"
DEBUG=2 CG_THREADS=$threads "$build/bench_attention" "$T" "$B" "$H" "$D" "$reps" ${BF16:+bf16} 2>"$log" | head -1
nblk=$(((T + blk - 1) / blk))
# bench_attention's run: forward (inputs, nblk blocks, output), the seed gradient, the
# backward (inputs, nblk blocks), the gradients: 2 nblk + 5 realizes (+ any after)
awk -v reps="$reps" -v nblk="$nblk" -v verbose="${VERBOSE:-0}" -v useful="$(awk -v B="$B" -v H="$H" -v T="$T" -v D="$D" 'BEGIN { print 4 * B * H * T * T * D * 0.5 * 3.5 * 1e-9 }')" '
  /^\*\*\* schedule:/ { r++; k = 0; next }
  /^  [A-Za-z_0-9]+ +[0-9.]+ ms/ { ker[r, k] = $1; ms[r, k] = $2; gf[r, k] = $4; gb[r, k] = $6; k++; nk[r] = k; next }
  /^\*\*\* realized in/ { host[r] = $10 }
  END {
    per = r / (reps + 1)
    if (per != int(per)) { print "cannot split " r " realizes into " reps + 1 " runs"; exit 1 }
    for (i = 1; i <= per; i++) {
      j = i - 1
      name = j == 0 ? "fwd: q, k, v, k^T" : j <= nblk ? "fwd: key block " j - 1 : j == nblk + 1 ? "fwd: out, lse" : \
             j == nblk + 2 ? "bwd: seed" : j == nblk + 3 ? "bwd: dO, D, k^T, v^T" : j <= 2 * nblk + 3 ? "bwd: key block " j - nblk - 4 : "bwd: gradients"
      tk = 0; th = 1e30; tf = 0
      line = ""
      for (x = 0; x < nk[i]; x++) {
        best = 1e30
        for (run = 1; run <= reps; run++) { # run 0 compiles
          rr = i + run * per
          if (ms[rr, x] < best) { best = ms[rr, x]; bf = gf[rr, x]; bb = gb[rr, x] }
        }
        tk += best; tf += bf * best * 1e-3
        line = line sprintf("    %-22s %8.3f ms %8.1f GFLOP/s %7.1f GB/s\n", ker[i, x], best, bf, bb)
      }
      for (run = 1; run <= reps; run++) if (host[i + run * per] < th) th = host[i + run * per]
      printf "%-24s %3d kernels %8.3f ms kernels %6.2f ms host %7.3f GFLOP (%5.1f GFLOP/s)\n", name, nk[i], tk, th, tf, (tk > 0 ? tf / tk * 1e3 : 0)
      if (verbose) printf "%s", line
      if (j <= nblk + 1) { fk += tk; fh += th } else { bk += tk; bh += th }
      af += tf
    }
    printf "forward %.2f ms kernels + %.2f ms host; backward %.2f + %.2f; %.3f GFLOP run (%.3f useful: causal, 2 + 5 products)\n", fk, fh, bk, bh, af, useful
    printf "useful GFLOP/s of the kernels: %.1f\n", useful / (fk + bk) * 1e3
  }' "$log"
