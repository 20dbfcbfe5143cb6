#!/usr/bin/env bash
# Build cgrad twice — Release, and Debug with AddressSanitizer + UndefinedBehaviorSanitizer —
# and run the whole test suite in both, then the thread tests under ThreadSanitizer. Ends
# with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"
jobs=$(nproc 2>/dev/null || echo 2)
total_pass=0
total_fail=0
status=0
run() { # name, cmake args...
  local name=$1; shift
  local dir=build/$name log
  echo "=== $name build ==="
  if ! cmake -S . -B "$dir" "$@" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"; status=1; total_fail=$((total_fail + 1)); return
  fi
  if ! cmake --build "$dir" -j"$jobs"; then status=1; total_fail=$((total_fail + 1)); return; fi
  echo "=== $name tests ==="
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 1200 2>&1 | tee "$log"
  local line pass fail
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$log" | tail -1)
  fail=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  local all=$(sed -E 's/.* tests failed out of ([0-9]+).*/\1/' <<<"$line")
  [ -n "$line" ] || { fail=1; all=1; }
  pass=$((all - fail))
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
  [ "$fail" -eq 0 ] || status=1
  rm -f "$log"
}
# ThreadSanitizer: only the thread tests (tests/**/test_threads*.c), so it stays quick. A
# reported race fails the test (TSan exits 66).
tsan() {
  local dir=build/tsan t name
  echo "=== tsan build (thread tests only) ==="
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCG_TSAN=ON >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"; status=1; total_fail=$((total_fail + 1)); return
  fi
  for t in $(find tests -name 'test_threads*.c' | sort); do
    name=$(basename "$t" .c)
    if cmake --build "$dir" -j"$jobs" --target "$name" >"$dir.build.log" 2>&1 &&
       (cd "$dir" && TSAN_OPTIONS="halt_on_error=1 exitcode=66" timeout 600 "./$name"); then
      echo "tsan $name: passed"; total_pass=$((total_pass + 1))
    else
      tail -50 "$dir.build.log"; echo "tsan $name: FAILED"; total_fail=$((total_fail + 1)); status=1
    fi
  done
}
# libFuzzer (issues 12 and 14): a short coverage-guided run of the ONNX harness (decoder and
# importer 20 s, then load + import + run on INTERP 30 s, seeded with Debian's ONNX test
# models) and of the tensor-API harness (10 s), clang-14 with ASan + UBSan (bench/fuzz.sh:
# the library is built once more, with clang). Where clang-14 or libFuzzer is missing it
# is skipped with a message. A crash fails the suite; its input is in build/fuzz_ci/.
fuzz_ci() {
  echo "=== libFuzzer (short runs) ==="
  if ! command -v clang-14 >/dev/null ||
     ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
       clang-14 -fsanitize=fuzzer -x c - -o build/fuzz_probe 2>/dev/null; then
    echo "libFuzzer: skipped (needs clang-14 and libfuzzer-14-dev)"
    return
  fi
  rm -f build/fuzz_probe
  local h secs
  # a fixed seed and number of executions: the same inputs on every run (a CI result does not
  # depend on luck; bench/fuzz.sh runs by time for the long searches)
  for h in onnx:1000000 onnx_run:60000 api:60000; do
    runs=${h#*:} h=${h%%:*}
    [ "$h" = api ] || [ -d /usr/share/libonnx-testdata/data ] || { echo "libFuzzer $h: skipped (no libonnx-testdata)"; continue; }
    if FUZZ_OUT=build/fuzz_ci FUZZ_SEED=1 FUZZ_RUNS=$runs bench/fuzz.sh 0 "$h" 2>&1 | tail -2; [ "${PIPESTATUS[0]}" -eq 0 ]; then
      echo "libfuzzer $h: passed"; total_pass=$((total_pass + 1))
    else
      # the log's end names the input and its stack (a CI record keeps only this output)
      grep -v -E '^#[0-9]+' "build/fuzz_ci/fuzz_$h.log" | tail -60
      for f in build/fuzz_ci/crash-"$h"-*; do # small inputs in base64, to replay from the record
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 16384 ] && { echo "$f (base64):"; base64 -w 120 "$f"; }
      done
      echo "libfuzzer $h: FAILED (build/fuzz_ci/fuzz_$h.log)"; total_fail=$((total_fail + 1)); status=1
    fi
  done
}
mkdir -p build
# Release with MPI when an MPI library is there (tests/dist runs mpirun -np 2); the ASan build
# without it, so the build without MPI stays tested (and Open MPI's own allocations stay out
# of LeakSanitizer's report).
mpi=-DCG_MPI=OFF
command -v mpicc >/dev/null 2>&1 && mpi=-DCG_MPI=ON
run release -DCMAKE_BUILD_TYPE=Release -DCG_FAULT_INJECTION=ON $mpi
run asan -DCMAKE_BUILD_TYPE=Debug -DCG_SANITIZE=ON -DCG_FAULT_INJECTION=ON -DCG_MPI=OFF
tsan
fuzz_ci
echo "$total_pass passed, $total_fail failed"
exit $status
