/* Every libFuzzer harness keeps a corpus replay in CTest: each tests/fuzz/fuzz_<name>.c
 * has a checked-in corpus (tests/fuzz/corpus/<name>/, not empty) and a replay program
 * tests/fuzz/test_fuzz_<name>.c (one CTest test by the tests/ glob); the ONNX harness
 * (fuzz/fuzz_onnx.c) replays its run corpus as test_fuzz_onnx_run.c; and every corpus
 * directory belongs to a replay. A new harness or corpus without its replay fails here. */
#include "check.h"
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char dir[1024]; /* tests/fuzz/ of the source tree */

static bool exists(const char *rel) {
  char p[2048];
  struct stat sb;
  snprintf(p, sizeof p, "%s/%s", dir, rel);
  return stat(p, &sb) == 0;
}

static int corpus_files(const char *name) {
  char p[2048];
  snprintf(p, sizeof p, "%s/corpus/%s", dir, name);
  DIR *d = opendir(p);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void needs_replay(const char *name, const char *why) {
  char rel[600];
  snprintf(rel, sizeof rel, "test_fuzz_%s.c", name);
  CHECK(exists(rel), "%s: no replay program tests/fuzz/%s", why, rel);
  CHECK(corpus_files(name) > 0, "%s: no checked-in corpus tests/fuzz/corpus/%s/", why, name);
}

int main(void) {
  snprintf(dir, sizeof dir, "%s", __FILE__);
  char *slash = strrchr(dir, '/');
  CHECK(slash != NULL, "cannot find this test's source directory from %s", __FILE__);
  if (!slash) return test_summary();
  *slash = 0;
  int harnesses = 0, corpora = 0;
  DIR *d = opendir(dir);
  CHECK(d != NULL, "cannot read %s", dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    if (strncmp(e->d_name, "fuzz_", 5) || n < 8 || strcmp(e->d_name + n - 2, ".c")) continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(n - 7), e->d_name + 5);
    needs_replay(name, e->d_name);
    harnesses++;
  }
  if (d) closedir(d);
  CHECK(exists("../../fuzz/fuzz_onnx.c"), "fuzz/fuzz_onnx.c is gone: update this test");
  needs_replay("onnx_run", "fuzz/fuzz_onnx.c (CG_FUZZ_RUN=1)");
  harnesses++;
  char cdir[1100];
  snprintf(cdir, sizeof cdir, "%s/corpus", dir);
  d = opendir(cdir);
  CHECK(d != NULL, "cannot read %s", cdir);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char rel[600];
    snprintf(rel, sizeof rel, "test_fuzz_%s.c", e->d_name);
    CHECK(exists(rel), "tests/fuzz/corpus/%s/ is replayed by no test (expected tests/fuzz/%s)", e->d_name, rel);
    corpora++;
  }
  if (d) closedir(d);
  CHECK(harnesses >= 6 && corpora == harnesses, "%d harnesses, %d corpora: expected one corpus per harness", harnesses, corpora);
  printf("%d harnesses, each with its corpus and replay test\n", harnesses);
  return test_summary();
}
