#!/usr/bin/env bash
# Time from process start to the first result of a 10-op expression (bench_startup.c),
# with a cold kernel cache (a fresh, empty CG_CACHE_DIR before every run) and a warm one
# (the same dir, already filled). Uses hyperfine when installed, else a loop timed with
# `date +%s%N`. Also prints the in-process figures the program reports (median over
# runs): main()-to-result time and seconds in the C compiler, and compile time per kernel.
#
#   bench/bench_startup.sh [build-dir]     (default: build; CG_THREADS default 2)
#   RUNS_COLD=10 RUNS_WARM=30 to change the run counts.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
export CG_THREADS=${CG_THREADS:-2}
RUNS_COLD=${RUNS_COLD:-10}
RUNS_WARM=${RUNS_WARM:-30}
cmake --build "$BUILD" --target bench_startup >/dev/null
BIN=$(cd "$BUILD" && pwd)/bench_startup
DIR=$(mktemp -d /tmp/cg_startup_cache.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
export CG_CACHE_DIR=$DIR/cache

echo "loadavg: $(cat /proc/loadavg)   cpus: $(nproc)   CG_THREADS=$CG_THREADS"
echo "binary: $BIN"
echo "cc: $(cc --version | head -1)"

# one cold run for the counters (and to show the program's line)
rm -rf "$CG_CACHE_DIR"
cold_line=$("$BIN")
echo "cold run: $cold_line"
warm_line=$("$BIN")
echo "warm run: $warm_line"
field() { sed -E "s/.*$1=([^ ]+).*/\1/" <<<"$2"; }
kernels=$(field kernels_compiled "$cold_line")

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

if command -v hyperfine >/dev/null; then
  echo
  echo "== hyperfine $(hyperfine --version | awk '{print $2}'), --shell=none"
  hyperfine -N --style basic --runs "$RUNS_COLD" --prepare "rm -rf $CG_CACHE_DIR" \
    --export-json "$DIR/cold.json" -n cold "$BIN"
  "$BIN" >/dev/null # fill the cache
  hyperfine -N --style basic --warmup 3 --runs "$RUNS_WARM" --export-json "$DIR/warm.json" -n warm "$BIN"
  # median wall seconds from the JSON ("median" key)
  jmed() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"; }
  cold_s=$(jmed "$DIR/cold.json")
  warm_s=$(jmed "$DIR/warm.json")
else
  echo
  echo "== no hyperfine: a loop of runs timed with date +%s%N"
  cold_t=()
  for ((i = 0; i < RUNS_COLD; i++)); do
    rm -rf "$CG_CACHE_DIR"
    t0=$(date +%s%N); "$BIN" >/dev/null; t1=$(date +%s%N)
    cold_t+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)/1e9}')")
  done
  "$BIN" >/dev/null
  warm_t=()
  for ((i = 0; i < RUNS_WARM; i++)); do
    t0=$(date +%s%N); "$BIN" >/dev/null; t1=$(date +%s%N)
    warm_t+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)/1e9}')")
  done
  cold_s=$(printf '%s\n' "${cold_t[@]}" | median)
  warm_s=$(printf '%s\n' "${warm_t[@]}" | median)
fi

# in-process figures, median over runs
in_cold=() comp_cold=() in_warm=()
for ((i = 0; i < RUNS_COLD; i++)); do
  rm -rf "$CG_CACHE_DIR"
  l=$("$BIN")
  in_cold+=("$(field first_result_ms "$l")")
  comp_cold+=("$(field compile_s "$l")")
done
for ((i = 0; i < RUNS_WARM; i++)); do
  l=$("$BIN")
  in_warm+=("$(field first_result_ms "$l")")
done
in_cold_ms=$(printf '%s\n' "${in_cold[@]}" | median)
comp_s=$(printf '%s\n' "${comp_cold[@]}" | median)
in_warm_ms=$(printf '%s\n' "${in_warm[@]}" | median)

echo
echo "== summary (medians; $RUNS_COLD cold runs, $RUNS_WARM warm runs; $kernels kernels compiled when cold)"
awk -v c="$cold_s" -v w="$warm_s" -v k="$kernels" -v ic="$in_cold_ms" -v iw="$in_warm_ms" -v cs="$comp_s" 'BEGIN {
  printf "  %-44s %10s %10s\n", "", "cold", "warm"
  printf "  %-44s %10.1f %10.1f\n", "process wall time, ms (exec to exit)", c * 1e3, w * 1e3
  printf "  %-44s %10.1f %10.1f\n", "in-process main() to first result, ms", ic, iw
  printf "  %-44s %10.1f\n", "in the C compiler (cg stats), ms", cs * 1e3
  printf "  %-44s %10.1f\n", "cold wall / kernels compiled, ms per kernel", c * 1e3 / k
  printf "  %-44s %10.1f\n", "(cold - warm wall) / kernels, ms per kernel", (c - w) * 1e3 / k
  printf "  %-44s %10.1f\n", "compiler time / kernels, ms per kernel", cs * 1e3 / k
  printf "  %-44s %10.1f\n", "cold / warm wall", c / w
}'
