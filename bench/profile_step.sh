#!/usr/bin/env bash
# Per-kernel profile of one steady-state training step of `cgrad train` (the last of N
# eager steps, JIT=0 so each kernel is timed by the engine): each kernel's time and share
# of the step, largest first, and the step's kernel and host totals.
#   usage: bench/profile_step.sh [build-dir] [batch] [steps]   (steps >= 3; default 512, 3)
set -euo pipefail
build=${1:-build}
batch=${2:-512}
steps=${3:-3}
threads=${CG_THREADS:-2}
echo "load average: $(cat /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo); CG_THREADS=$threads, batch $batch"
out=$(mktemp)
JIT=0 DEBUG=2 CG_THREADS=$threads "$build/cgrad" train --steps "$steps" --batch "$batch" --eval-images 500 --out "$out.st" >/dev/null 2>"$out" || true
# the step is the last realize that ran kernels before the evaluation: take the kernel
# lines between the second-to-last and the last "realized in" line with >= 10 kernels
awk '
  /^\*\*\* schedule: [0-9]+ kernels/ { n = $3 + 0; if (n >= 10) { step++; delete t; delete c; cur = step } else cur = 0; next }
  /^  [A-Za-z_0-9]+ +[0-9.]+ ms/ && cur { k[cur, ++nk[cur]] = $1; v[cur, nk[cur]] = $2 }
  /^\*\*\* realized in/ && cur { total[cur] = $4; kern[cur] = $7; host[cur] = $10; cur = 0 }
  END {
    s = step - 1  # the last step before the evaluation (the evaluation realizes one big schedule too)
    if (s < 1) { print "no step found"; exit 1 }
    for (i = 1; i <= nk[s]; i++) { tt[k[s, i]] += v[s, i]; cc[k[s, i]]++ }
    printf "step: %s ms in all, kernels %s ms, host %s ms, %d kernel launches\n", total[s], kern[s], host[s], nk[s]
    printf "%-28s %5s %10s %7s\n", "kernel", "runs", "ms", "share"
    for (name in tt) printf "%-28s %5d %10.3f %6.1f%%\n", name, cc[name], tt[name], 100 * tt[name] / kern[s] | "sort -k3 -n -r"
  }' "$out"
rm -f "$out" "$out.st"
