/* The npy fuzz harness as a plain program: replays tests/fuzz/corpus/npy/ (see fuzz.h). */
#define FUZZ_NAME "npy"
#include "fuzz_npy.c"
#include "replay.h"
