#!/usr/bin/env bash
# Wait until the machine has been idle (at least 95% of all CPU time idle, from
# /proc/stat) for N consecutive seconds, then print the load average and return 0.
# Gives up after MAX seconds (return 1). For timing runs on a shared machine:
#
#   bench/wait_idle.sh [N=10] [MAX=600] && CG_THREADS=2 ./build/bench_matmul
set -u
need=${1:-10}
max=${2:-600}
quiet=0
waited=0
read -r _ u n s i w q sq st _ </proc/stat
prev_idle=$((i + w)) prev_total=$((u + n + s + i + w + q + sq + st))
while ((quiet < need)); do
  if ((waited >= max)); then
    echo "wait_idle: not idle for ${need}s within ${max}s; loadavg $(cat /proc/loadavg)" >&2
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
  read -r _ u n s i w q sq st _ </proc/stat
  idle=$((i + w)) total=$((u + n + s + i + w + q + sq + st))
  di=$((idle - prev_idle)) dt=$((total - prev_total))
  prev_idle=$idle prev_total=$total
  if ((dt > 0 && di * 100 >= dt * 95)); then quiet=$((quiet + 1)); else quiet=0; fi
done
echo "idle for ${need}s (waited ${waited}s); loadavg $(cat /proc/loadavg)"
