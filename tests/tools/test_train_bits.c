/* One seed gives one checkpoint, whichever backend computed it: `cgrad train` (the CNN,
 * forward, backward, Adam, BatchNorm statistics) writes the same checkpoint bytes and the
 * same losses on the C backend (DEVICE=CPU), on the x86 machine code (DEVICE=X86), with
 * tiering (DEVICE=X86 CG_TIER=1: machine code first, gcc's functions swapped in as they
 * finish, from an empty and from a warm kernel cache), on 1 and on 2 threads, and with a
 * C compiler that does not exist (tiering keeps the machine code). The runs share a fresh
 * kernel cache. Skipped (with a note) when the dataset is not installed. */
#include "check.h"
#include "run_cli.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char cgrad[4096], dir[] = "/tmp/cgrad-train-bits-XXXXXX";

static int run(const char *env, const char *out_name, char *out, size_t n) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && CG_CACHE_DIR='%s/cache' CG_PRINT_LOSS=1 %s '%s' train --steps 3 --batch 16 --seed 5 --eval-images 200 --out %s 2>&1", dir,
           dir, env, cgrad, out_name);
  return run_command(cmd, out, n);
}

static bool same_file(const char *a, const char *b) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cmp -s '%s/%s' '%s/%s'", dir, a, dir, b);
  return system(cmd) == 0;
}

int main(void) {
  const char *bin = getenv("CG_BIN_DIR");
  snprintf(cgrad, sizeof cgrad, "%s/cgrad", bin ? bin : ".");
  if (cgrad[0] != '/') {
    char *abs = realpath(cgrad, NULL);
    if (abs && strlen(abs) < sizeof cgrad) strcpy(cgrad, abs);
    free(abs);
  }
  CHECK(access(cgrad, X_OK) == 0, "the cgrad program is at %s", cgrad);
  struct stat sb;
  if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &sb) != 0) {
    printf("skipped: Debian's dataset-fashion-mnist is not installed\n");
    return test_summary();
  }
  CHECK(mkdtemp(dir) != NULL);
  static const struct {
    const char *env, *out;
  } runs[] = {
      {"DEVICE=CPU CG_THREADS=2", "cpu.st"},
      {"DEVICE=X86 CG_THREADS=2", "x86.st"},
      {"DEVICE=X86 CG_THREADS=1", "x86_1.st"},
      {"DEVICE=X86 CG_TIER=1 CG_CACHE_DIR=\"$PWD/cache2\" CG_THREADS=2", "tier_cold.st"},
      {"DEVICE=X86 CG_TIER=1 CG_THREADS=2", "tier_warm.st"},
      {"DEVICE=X86 CG_TIER=1 CG_CC=/nonexistent/cc CG_CACHE_DIR=\"$PWD/cache3\"", "tier_nocc.st"},
      {"DEVICE=CPU CG_THREADS=1", "cpu_1.st"},
  };
  static char out0[1 << 16], out[1 << 16];
  char l0[2048] = "", l[2048];
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    char *o = i ? out : out0;
    int st = run(runs[i].env, runs[i].out, o, sizeof out);
    CHECK(st == 0, "%s: exit %d:\n%s", runs[i].env, st, o);
    double loss[8];
    int n = parse_losses(o, loss, 8);
    CHECK(n == 3, "%s: 3 losses printed, got %d:\n%s", runs[i].env, n, o);
    snprintf(l, sizeof l, "%.9g %.9g %.9g", loss[0], loss[1], loss[2]);
    if (!i) strcpy(l0, l);
    else {
      CHECK(!strcmp(l, l0), "%s: losses %s, DEVICE=CPU: %s", runs[i].env, l, l0);
      CHECK(same_file(runs[i].out, runs[0].out), "%s writes DEVICE=CPU's checkpoint bytes", runs[i].env);
    }
    printf("%-70s losses %s\n", runs[i].env, l);
  }
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return test_summary();
}
