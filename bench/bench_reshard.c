/* Resharding between CPU device instances in one process (cg_multi_reshard), against the
 * memcpy bound: an expert-parallel all-to-all, tokens (E, C, D) split by slots (axis 1)
 * over n devices becoming split by experts (axis 0). Every piece is a contiguous range of
 * its shard, so each device sends (n-1)/n of its shard with no staging copy; a run along
 * the other direction (axis 0 -> 1) stages every piece first. GB/s counts the bytes that
 * cross devices (cg_copy_stats), and the memcpy row copies the same bytes in one call.
 *
 *   ./build/bench_reshard [devices (2)]                      (median of 9 runs) */
#include <cgrad.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2;
  if (n < 2 || n > 8) return fprintf(stderr, "devices: 2 to 8\n"), 2;
  const char *devs[8];
  char names[8][16];
  for (int i = 0; i < n; i++) snprintf(names[i], sizeof names[i], "CPU:%d", i), devs[i] = names[i];
  printf("reshard over %d CPU devices: tokens (E, C, D) float32, slots -> experts; median of 9\n", n);
  printf("%12s %14s %14s %14s %10s %12s\n", "tensor bytes", "sent bytes", "slots->exp", "exp->slots", "memcpy", "ratio");
  static const int64_t D[] = {64, 256, 1024, 4096, 16384};
  for (size_t s = 0; s < sizeof D / sizeof *D; s++) {
    int64_t E = 8, C = 64, d = D[s], cnt = E * C * d;
    float *h = malloc(sizeof(float) * (size_t)cnt), *dst = malloc(sizeof(float) * (size_t)cnt);
    for (int64_t i = 0; i < cnt; i++) h[i] = (float)i;
    cg_tensor *x = cg_from_data(h, CG_FLOAT32, (int64_t[]){E, C, d}, 3);
    cg_multi *tok = cg_shard(x, devs, n, 1);
    cg_multi_realize(tok);
    double t1[9], t2[9], tm[9];
    int64_t sent = 0;
    for (int k = -1; k < 9; k++) {
      int64_t a0, b0;
      cg_copy_stats(&a0, NULL);
      double a = now();
      cg_multi *e = cg_multi_reshard(tok, 0);
      cg_multi_realize(e);
      double b = now();
      cg_copy_stats(&b0, NULL);
      sent = b0 - a0;
      cg_multi *back = cg_multi_reshard(e, 1);
      cg_multi_realize(back);
      double c = now();
      memcpy(dst, h, (size_t)sent);
      double dd = now();
      if (k >= 0) t1[k] = b - a, t2[k] = c - b, tm[k] = dd - c;
      cg_multi_free(e), cg_multi_free(back);
    }
    qsort(t1, 9, sizeof(double), cmp), qsort(t2, 9, sizeof(double), cmp), qsort(tm, 9, sizeof(double), cmp);
    double m1 = t1[4], m2 = t2[4], mm = tm[4];
    printf("%12lld %14lld %9.2f GB/s %9.2f GB/s %5.2f GB/s %12.2f\n", (long long)(cnt * 4), (long long)sent, sent / m1 / 1e9, sent / m2 / 1e9, sent / mm / 1e9, mm / m1);
    cg_multi_free(tok);
    cg_free(x);
    free(h), free(dst);
  }
  return 0;
}
