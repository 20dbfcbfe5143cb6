/* The api fuzz harness as a plain program: replays tests/fuzz/corpus/api/ (see fuzz.h). */
#define FUZZ_NAME "api"
#include "fuzz_api.c"
#include "replay.h"
