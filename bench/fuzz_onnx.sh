#!/usr/bin/env bash
# Fuzz the ONNX decoder + importer with libFuzzer (clang-14, libfuzzer-14-dev), ASan and
# UBSan, seeded with every model of Debian's libonnx-testdata (see bench/fuzz.sh).
#   bench/fuzz_onnx.sh [RUNS]          (default 1000000 executions) load only
#   bench/fuzz_onnx.sh RUNS onnx_run   load, import and run on the INTERP device
exec env FUZZ_RUNS="${1:-1000000}" FUZZ_CHUNK="${FUZZ_CHUNK:-100000}" "$(dirname "$0")/fuzz.sh" 0 "${2:-onnx}"
