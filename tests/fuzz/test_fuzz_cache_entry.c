/* The cache_entry fuzz harness as a plain program: replays tests/fuzz/corpus/cache_entry/ (see fuzz.h). */
#define FUZZ_NAME "cache_entry"
#include "fuzz_cache_entry.c"
#include "replay.h"
