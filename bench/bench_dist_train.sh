#!/usr/bin/env bash
# Scaling of `cgrad train` over MPI ranks on this machine (needs a -DCG_MPI=ON build):
# the CNN (default model) and the MLP, 1 process (the JIT step) against --distributed with
# 1 and 2 ranks at the same global batch, and 2 ranks at twice the batch (weak scaling),
# with the gradients' allreduce overlapped with the backward (the default) and after it;
# "waited" is the time rank 0 spent blocked in collectives per step.
# On one 2-core machine two ranks share the cores (CG_THREADS=1 each), so this measures the
# overhead of the distributed step, not a speed-up; the model of N machines is in
# bench/RESULTS.md, from the per-step bytes printed here.
#   bench/bench_dist_train.sh [build dir] [steps]
set -euo pipefail
B=${1:-build/release}
STEPS=${2:-30}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI="mpirun --allow-run-as-root --oversubscribe --bind-to none"
out=$(mktemp -d)
cat /proc/loadavg
run() { # label, command...
  local label=$1; shift
  local line
  line=$("$@" --steps "$STEPS" --eval-images 100 --out "$out/ck.st" 2>/dev/null | grep -o 'then [0-9]* ms/step\|waited [0-9.]* ms per step' | tr '\n' ' ' || echo "failed")
  printf '%-48s %s\n' "$label" "$line"
}
for model in mlp cnn; do
  echo "== $model, $STEPS steps"
  run "1 process, batch 256 (JIT)"            "$B/cgrad" train --model $model --batch 256
  run "1 rank --distributed, batch 256"        $MPI -np 1 "$B/cgrad" train --distributed --model $model --batch 256
  run "2 ranks x 128 (global 256), 1 thread"   $MPI -np 2 -x CG_THREADS=1 "$B/cgrad" train --distributed --model $model --batch 128
  run "2 ranks x 256 (global 512), 1 thread"   $MPI -np 2 -x CG_THREADS=1 "$B/cgrad" train --distributed --model $model --batch 256
  run "  the same, allreduce after the backward"  $MPI -np 2 -x CG_THREADS=1 -x CG_DIST_OVERLAP=0 "$B/cgrad" train --distributed --model $model --batch 256
done
rm -rf "$out"
cat /proc/loadavg
