/* The idx fuzz harness as a plain program: replays tests/fuzz/corpus/idx/ (see fuzz.h). */
#define FUZZ_NAME "idx"
#include "fuzz_idx.c"
#include "replay.h"
