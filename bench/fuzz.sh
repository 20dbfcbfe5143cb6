#!/usr/bin/env bash
# Coverage-guided fuzzing of cgrad's readers, tensor API and ONNX import with libFuzzer
# (issues 12 and 14).
#
#   bench/fuzz.sh [seconds per harness] [harness ...]
#   FUZZ_RUNS=10000000 bench/fuzz.sh 0 safetensors    # a number of executions instead of a time
#   FUZZ_SEED=1 FUZZ_RUNS=50000 bench/fuzz.sh 0 api     # the same executions every time (CI)
#
# Harnesses: safetensors npy idx cache_entry api (tests/fuzz/fuzz_<name>.c), onnx (the
# decoder and importer: fuzz/fuzz_onnx.c) and onnx_run (the same, and every model that
# loads is run on the INTERP device). Default: all but onnx and onnx_run.
#
# Builds the library and the harnesses with clang-14, -fsanitize=fuzzer, address and
# undefined (in $FUZZ_OUT, default build/fuzz), then runs each under `nice -n 19`
# (FUZZ_NICE=n: another niceness, 0 for a counted run that needs the CPU), one at a
# time, starting from a copy of its checked-in seed corpus (tests/fuzz/corpus/<name>/;
# for onnx and onnx_run also every model of Debian's libonnx-testdata) in $FUZZ_OUT/corpus/<name>/.
# Prints, per harness, the wall time, executions and what libFuzzer found; a crash input
# is saved as $FUZZ_OUT/crash-<name>-* (replay it: build/asan/test_fuzz_<name> FILE, or
# the harness binary with the file as argument). Exit status 1 if any harness crashed.
#
# FUZZ_CHUNK=k (with FUZZ_RUNS): a fresh process every k executions. The api and onnx_run
# harnesses make new kernels all the time and a process keeps every program it made (the
# in-process program cache has no eviction), so long runs restart to keep memory flat.
#
# The API harness runs on the INTERP device unless DEVICE is set (DEVICE=CPU: every new
# kernel compiled by cc, ~100x slower) and realizes every input's checked tensors
# (FUZZ_API_REALIZE=k: one input in k). Needs clang-14 and libfuzzer-14-dev (Debian 12).
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
libs="$(pkg-config --libs zlib 2>/dev/null || echo -lz) -lm -lpthread -ldl"
[ ! -d "$out/lib/onnx_pb" ] || libs="$libs -lprotobuf-c" # the library has the ONNX importer
export CG_CACHE_DIR=${CG_CACHE_DIR:-$PWD/$out/kernel_cache} FUZZ_API_REALIZE=${FUZZ_API_REALIZE:-1}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%FT%TZ)"
crashed=0
for n in "${names[@]}"; do
  src="tests/fuzz/fuzz_$n.c" max_len=4096 run_env=()
  case $n in
    onnx | onnx_run)
      src=fuzz/fuzz_onnx.c max_len=65536
      [ $n = onnx_run ] && run_env=(CG_FUZZ_RUN=1)
      mkdir -p "$out/corpus/$n"
      if [ -z "$(ls -A "$out/corpus/$n")" ]; then
        i=0
        for f in /usr/share/libonnx-testdata/data/*/*/model.onnx; do [ -f "$f" ] && cp "$f" "$out/corpus/$n/seed_$i.onnx" && i=$((i + 1)); done
      fi
      cp -n tests/fuzz/corpus/$n/* "$out/corpus/$n/" 2>/dev/null || true # inputs that once crashed
      ;;
    *)
      mkdir -p "$out/corpus/$n"
      cp -n tests/fuzz/corpus/$n/* "$out/corpus/$n/" 2>/dev/null || true
      ;;
  esac
  "$CC" $flags -fsanitize=fuzzer -Iinclude -Isrc -Itests/fuzz "$src" "$out/lib/libcgrad.a" $libs -o "$out/fuzz_$n"
  log="$out/fuzz_$n.log"
  : >"$log"
  t0=$(date +%s) execs=0 rc=0
  while :; do
    if [ -n "${FUZZ_RUNS:-}" ]; then
      left=$((FUZZ_RUNS - execs)); [ "$left" -gt 0 ] || break
      chunk=${FUZZ_CHUNK:-$left}; [ "$chunk" -le "$left" ] || chunk=$left
      limit=(-runs="$chunk")
    else
      limit=(-max_total_time="$secs")
    fi
    set +e
    seedarg=(); [ -z "${FUZZ_SEED:-}" ] || seedarg=(-seed="$FUZZ_SEED")
    env "${run_env[@]}" nice -n "${FUZZ_NICE:-19}" "$out/fuzz_$n" "${limit[@]}" "${seedarg[@]}" -print_final_stats=1 -max_len=$max_len -timeout=60 \
      -rss_limit_mb=4096 -artifact_prefix="$out/crash-$n-" "$out/corpus/$n" >>"$log" 2>&1
    rc=$?
    set -e
    e=$(grep 'stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2}')
    execs=$((execs + ${e:-0}))
    [ $rc -eq 0 ] && [ -n "${FUZZ_RUNS:-}" ] && [ "${e:-0}" -gt 0 ] || break
  done
  cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW)' "$log" | tail -1 | grep -oE 'cov: [0-9]+' || true)
  printf '%-12s %6s s  %12s executions  %s  %s\n' "$n" "$(($(date +%s) - t0))" "$execs" "${cov:-}" \
    "$([ $rc -eq 0 ] && echo 'no crash' || echo "CRASH (exit $rc): see $log")"
  [ $rc -eq 0 ] || crashed=1
done
exit $crashed
