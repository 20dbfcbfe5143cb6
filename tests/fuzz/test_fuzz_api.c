/* The api fuzz harness as a plain program: replays tests/fuzz/corpus/api/ (see fuzz.h). */
#define FUZZ_NAME "api"
#define FUZZ_API_BOTH_DEVICES /* each input on CPU (cc) and INTERP */
#include "fuzz_api.c"
#include "replay.h"
