/* The ONNX load + run harness (fuzz/fuzz_onnx.c with CG_FUZZ_RUN=1) as a plain program:
 * replays tests/fuzz/corpus/onnx_run/ (inputs libFuzzer once found crashing or hanging)
 * under gcc's ASan + UBSan in test.sh. Without the ONNX importer every load fails with a
 * message, which the harness accepts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define FUZZ_NAME "onnx_run"
#include "../../fuzz/fuzz_onnx.c"

__attribute__((constructor)) static void load_and_run(void) { setenv("CG_FUZZ_RUN", "1", 1); }

#include "replay.h"
