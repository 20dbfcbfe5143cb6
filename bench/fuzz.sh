#!/usr/bin/env bash
# Coverage-guided fuzzing of cgrad's readers and tensor API with libFuzzer (issue 14).
#
#   bench/fuzz.sh [seconds per harness] [harness ...]
#   FUZZ_RUNS=10000000 bench/fuzz.sh 0 safetensors    # a number of executions instead of a time
#
# Builds the library and the harnesses of tests/fuzz/ with clang-14, -fsanitize=fuzzer,
# address and undefined (build/fuzz), then runs each harness for the stated time (default
# 60 s) under `nice -n 19`, one at a time, starting from a copy of its checked-in seed
# corpus (tests/fuzz/corpus/<name>/; new inputs go to build/fuzz/corpus/<name>/). Prints,
# per harness, the executions and what libFuzzer found; a crash input is saved in
# build/fuzz/crash-<name>-* (replay it: build/asan/test_fuzz_<name> FILE). Needs clang-14
# and libfuzzer-14-dev (Debian 12). The API harness realizes checked tensors, which
# compiles kernels: FUZZ_API_REALIZE=k (default 64 here) realizes in one input of k.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(safetensors npy idx cache_entry api)
CC=${CC:-clang-14}
out=${FUZZ_OUT:-build/fuzz}
flags="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
mkdir -p "$out"
cmake -S . -B "$out/lib" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$CC" -DBUILD_TESTING=OFF \
  -DCMAKE_C_FLAGS="$flags -fsanitize=fuzzer-no-link" >"$out.configure.log" 2>&1 || { cat "$out.configure.log"; exit 1; }
cmake --build "$out/lib" -j2 --target cgrad_static >/dev/null
zlib=$(pkg-config --libs zlib 2>/dev/null || echo -lz)
export CG_CACHE_DIR=${CG_CACHE_DIR:-$PWD/$out/kernel_cache} FUZZ_API_REALIZE=${FUZZ_API_REALIZE:-64}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ)"
for n in "${names[@]}"; do
  "$CC" $flags -fsanitize=fuzzer -Iinclude -Isrc -Itests/fuzz "tests/fuzz/fuzz_$n.c" "$out/lib/libcgrad.a" \
    $zlib -lm -lpthread -ldl -o "$out/fuzz_$n"
  mkdir -p "$out/corpus/$n"
  cp -n tests/fuzz/corpus/$n/* "$out/corpus/$n/" 2>/dev/null || true
  log="$out/fuzz_$n.log"
  set +e
  limit=(-max_total_time="$secs"); [ -z "${FUZZ_RUNS:-}" ] || limit=(-runs="$FUZZ_RUNS")
  t0=$(date +%s)
  nice -n 19 "$out/fuzz_$n" "${limit[@]}" -print_final_stats=1 -max_len=4096 -timeout=60 -rss_limit_mb=4096 \
    -artifact_prefix="$out/crash-$n-" "$out/corpus/$n" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$log" | tail -1 | grep -oE 'cov: [0-9]+' || true)
  printf '%-12s %6s s  %12s executions  %s  %s\n' "$n" "$(( $(date +%s) - t0 ))" "${execs:-?}" "${cov:-}" \
    "$([ $rc -eq 0 ] && echo 'no crash' || echo "CRASH (exit $rc): see $log")"
done
