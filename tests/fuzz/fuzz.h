/* Shared by the fuzz harnesses (issue 14). Each harness defines LLVMFuzzerTestOneInput;
 * built with clang -fsanitize=fuzzer it is a libFuzzer target (bench/fuzz.sh), and
 * #included by tests/fuzz/test_fuzz_<name>.c with replay.h it is a plain program that
 * replays the checked-in corpus (tests/fuzz/corpus/<name>/) as a CTest test.
 *
 * A harness checks properties, not only "no crash": FUZZ_CHECK aborts (a crash to
 * libFuzzer, a failed test in the replay) with the failed condition. */
#ifndef CG_FUZZ_H
#define CG_FUZZ_H
#include "cgrad.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                                     \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      fprintf(stderr, "fuzz check failed at %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, \
              #cond, cg_last_error());                                                       \
      abort();                                                                               \
    }                                                                                        \
  } while (0)

/* A scratch file of this process (in /dev/shm when there is one), removed at exit. */
static char fuzz_paths[8][256];
static int fuzz_npaths;
static inline void fuzz_cleanup(void) {
  for (int i = 0; i < fuzz_npaths; i++) unlink(fuzz_paths[i]);
}
static inline const char *fuzz_scratch(const char *suffix) {
  char (*path)[256] = fuzz_paths;
  int n = fuzz_npaths;
  for (int i = 0; i < n; i++)
    if (!strcmp(strrchr(path[i], '_') + 1, suffix)) return path[i];
  if (!n) atexit(fuzz_cleanup);
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(path[n], sizeof path[n], "%s/cg_fuzz%d_%s", dir, (int)getpid(), suffix);
  return path[fuzz_npaths++];
}

static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  FUZZ_CHECK(f);
  FUZZ_CHECK(fwrite(data, 1, size, f) == size || size == 0);
  FUZZ_CHECK(fclose(f) == 0);
}

/* After a failure the message says something (never an empty error). */
static inline void fuzz_failed_with_message(void) {
  FUZZ_CHECK(cg_last_status() != CG_OK && cg_last_error()[0]);
  cg_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#endif
