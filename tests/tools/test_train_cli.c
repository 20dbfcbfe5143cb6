/* The main job's command line: `cgrad train` runs a few steps, writes a checkpoint, gives
 * a bit-identical loss sequence for the same seed, says which package to install when
 * the dataset is missing, and rejects bad options. Skipped (with a note) when the
 * dataset is not installed. */
#include "check.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run a shell command, capture stdout+stderr into out; returns the exit status. */
static int run(const char *cmd, char *out, size_t n) {
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t len = fread(out, 1, n - 1, p);
  out[len] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void) {
  const char *bin = getenv("CG_BIN_DIR");
  char cgrad[4096], cmd[8192], dir[] = "/tmp/cgrad-train-test-XXXXXX";
  static char out1[1 << 16], out2[1 << 16], out3[1 << 14];
  snprintf(cgrad, sizeof cgrad, "%s/cgrad", bin ? bin : ".");
  CHECK(access(cgrad, X_OK) == 0, "the cgrad program is at %s", cgrad);
  CHECK(mkdtemp(dir) != NULL);

  snprintf(cmd, sizeof cmd, "'%s' train --data %s/none 2>&1", cgrad, dir);
  CHECK(run(cmd, out3, sizeof out3) == 1, "a missing dataset fails");
  CHECK(strstr(out3, "dataset-fashion-mnist") != NULL, "and says which package to install:\n%s", out3);
  snprintf(cmd, sizeof cmd, "'%s' train --steps zero 2>&1", cgrad);
  CHECK(run(cmd, out3, sizeof out3) == 2, "a bad option value is a usage error:\n%s", out3);
  snprintf(cmd, sizeof cmd, "'%s' fly 2>&1", cgrad);
  CHECK(run(cmd, out3, sizeof out3) == 2 && strstr(out3, "unknown command"), "an unknown command:\n%s", out3);

  struct stat sb;
  if (stat("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", &sb) != 0) {
    printf("skipped the training runs: Debian's dataset-fashion-mnist is not installed\n");
  } else {
    for (int i = 0; i < 2; i++) {
      snprintf(cmd, sizeof cmd, "CG_PRINT_LOSS=1 '%s' train --steps 4 --batch 32 --seed 7 --out %s/run%d.safetensors 2>&1", cgrad, dir, i);
      CHECK(run(cmd, i ? out2 : out1, sizeof out1) == 0, "training run %d:\n%s", i, i ? out2 : out1);
    }
    /* the loss lines, in order, must be identical */
    char l1[4096] = "", l2[4096] = "";
    for (int i = 0; i < 2; i++) {
      char *src = i ? out2 : out1, *dst = i ? l2 : l1, *p = src;
      while ((p = strstr(p, "step ")) && strlen(dst) < 3800) {
        char *e = strchr(p, '\n');
        if (!e) break;
        bool line_start = p == src || p[-1] == '\n';
        if (line_start && strstr(p, " loss ") && strstr(p, " loss ") < e) strncat(dst, p, (size_t)(e - p + 1));
        p = e;
      }
    }
    CHECK(strlen(l1) > 0 && strstr(l1, "step 4 loss"), "the loss of every step is printed:\n%s", out1);
    CHECK(!strcmp(l1, l2), "the same seed gives the same losses, bit for bit:\n%s---\n%s", l1, l2);
    CHECK(strstr(out1, "test accuracy") != NULL, "test accuracy is reported");
    snprintf(cmd, sizeof cmd, "%s/run0.safetensors", dir);
    CHECK(stat(cmd, &sb) == 0 && sb.st_size > 100000, "the checkpoint is written (%lld bytes)", (long long)sb.st_size);
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", dir);
    CHECK(run(cmd, out3, sizeof out3) != 0 || atoi(out3) == 0, "no temporary file is left");
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  return test_summary();
}
