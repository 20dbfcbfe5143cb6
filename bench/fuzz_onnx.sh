#!/usr/bin/env bash
# Fuzz the ONNX decoder + importer with libFuzzer (clang-14, libfuzzer-14-dev), ASan and
# UBSan, seeded with every model of Debian's libonnx-testdata.
#   bench/fuzz_onnx.sh [RUNS]     (default 1000000 executions; extra args go to libFuzzer)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}; shift || true
dir=build/fuzz
CC=clang-14 cmake -S . -B $dir -DCMAKE_BUILD_TYPE=Debug -DCG_SANITIZE=ON -DCG_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
cmake --build $dir -j"$(nproc)" --target fuzz_onnx
corpus=$dir/corpus; mkdir -p $corpus
if [ -z "$(ls -A $corpus)" ]; then
  i=0; for f in /usr/share/libonnx-testdata/data/*/*/model.onnx; do cp "$f" $corpus/seed_$i.onnx; i=$((i+1)); done
fi
mkdir -p $dir/crashes
$dir/fuzz_onnx -runs="$runs" -max_len=65536 -artifact_prefix=$dir/crashes/ -print_final_stats=1 "$@" $corpus
