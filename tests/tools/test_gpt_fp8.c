/* `cgrad train gpt --amp fp8` on a 2-layer GPT (a small text with structure, same seed and
 * batches as float32): every loss finite, the mean training loss of the last 10 of 40
 * steps within 2% of float32's (the bound bench/gpt_amp_check.sh holds bf16 to), and the
 * step under the JIT (the default: the fp8 scale updates realized with the step) gives
 * the loss lines of the eager step (JIT=0) bit for bit. */
#include "check.h"
#include "run_cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { STEPS = 40 };

static double mean_last(const double *l, int n, int k) {
  double s = 0;
  for (int i = n - k; i < n; i++) s += l[i];
  return s / k;
}

int main(void) {
  const char *bin = getenv("CG_BIN_DIR");
  char cgrad[1024], cmd[4096], path[256], dir[] = "/tmp/cgrad-gpt-fp8-XXXXXX";
  static char out[3][1 << 16];
  snprintf(cgrad, sizeof cgrad, "%s/cgrad", bin ? bin : ".");
  CHECK(access(cgrad, X_OK) == 0, "the cgrad program is at %s", cgrad);
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/text.txt", dir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  for (int i = 0; f && i < 400; i++) fprintf(f, "%s %d: the quick brown fox jumps over the lazy dog\n", i % 3 ? "fox" : "dog", i % 17);
  if (f) fclose(f);
  const char *runs[3] = {"", "--amp fp8", "--amp fp8"}, *env[3] = {"", "", "JIT=0 "};
  double loss[3][STEPS];
  int n[3];
  for (int r = 0; r < 3; r++) {
    snprintf(cmd, sizeof cmd,
             "%sCG_PRINT_LOSS=1 '%s' train gpt --data %s --layers 2 --embd 32 --heads 2 --block 32 --batch 8 --steps %d --warmup 5 --lr 3e-3 "
             "--eval-every 0 --eval-batches 1 --seed 7 %s --out %s/m%d.safetensors 2>/dev/null",
             env[r], cgrad, path, STEPS, runs[r], dir, r);
    int rc = run_command(cmd, out[r], sizeof out[r]);
    n[r] = parse_losses(out[r], loss[r], STEPS);
    CHECK(rc == 0 && n[r] == STEPS, "%s%s: exit %d, %d losses:\n%s", env[r], runs[r][0] ? runs[r] : "float32", rc, n[r], out[r]);
  }
  if (n[0] == STEPS && n[1] == STEPS) {
    bool finite = true;
    for (int i = 0; i < STEPS; i++) finite &= isfinite(loss[1][i]);
    double a = mean_last(loss[0], STEPS, 10), b = mean_last(loss[1], STEPS, 10);
    printf("mean loss of the last 10 steps: float32 %.4f, fp8 %.4f (%+.2f%%); first %.4f / %.4f\n", a, b, 100 * (b - a) / a, loss[0][0], loss[1][0]);
    CHECK(finite, "fp8: a loss is not finite");
    CHECK(fabs(b - a) <= 0.02 * a, "fp8's mean loss %.4f is not within 2%% of float32's %.4f", b, a);
    CHECK(loss[1][STEPS - 1] < loss[1][0] - 0.5, "fp8 trains: loss %.4f -> %.4f", loss[1][0], loss[1][STEPS - 1]);
  }
  CHECK(n[1] == STEPS && n[2] == STEPS && !memcmp(loss[1], loss[2], sizeof loss[1]), "fp8 under the JIT and eager (JIT=0) differ");
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary();
}
