/* The safetensors fuzz harness as a plain program: replays tests/fuzz/corpus/safetensors/ (see fuzz.h). */
#define FUZZ_NAME "safetensors"
#include "fuzz_safetensors.c"
#include "replay.h"
