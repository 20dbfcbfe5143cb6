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
mkdir -p build
# Release with MPI when an MPI library is there (tests/dist runs mpirun -np 2); the ASan build
# without it, so the build without MPI stays tested (and Open MPI's own allocations stay out
# of LeakSanitizer's report).
mpi=-DCG_MPI=OFF
command -v mpicc >/dev/null 2>&1 && mpi=-DCG_MPI=ON
run release -DCMAKE_BUILD_TYPE=Release -DCG_FAULT_INJECTION=ON $mpi
run asan -DCMAKE_BUILD_TYPE=Debug -DCG_SANITIZE=ON -DCG_FAULT_INJECTION=ON -DCG_MPI=OFF
tsan
echo "$total_pass passed, $total_fail failed"
exit $status
