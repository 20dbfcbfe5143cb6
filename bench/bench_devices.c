/* Two devices' kernels at once: a float32 matmul (M x K) @ (K x N) with its rows split over
 * n CPU device instances (cg_shard, B replicated), realized as one schedule whose items
 * run one lane per device (engine/queue.h), against the same matmul on one device.
 *
 *   ./build/bench_devices 1 [M K N]       one device, every CG_THREADS thread
 *   ./build/bench_devices n [M K N]       rows over CPU:0..n-1 (set CG_DEVICES=n so the
 *                                         CG_THREADS threads are split over the pools)
 *   CG_CONCURRENT=0 ./build/bench_devices n    the same items one after another
 *
 * bench/bench_devices.sh runs all three with the same threads and prints the ratios.
 * Prints the median of 15 realizes (after 2 warm-ups: compiles) in ms and GFLOP/s, and the
 * max |difference| from the one-device product (the shards' kernels see other shapes). */
#include "bench_util.h"
#include <math.h>
#include <string.h>

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2;
  int64_t M = argc > 2 ? atoll(argv[2]) : 1024, K = argc > 3 ? atoll(argv[3]) : 1024, N = argc > 4 ? atoll(argv[4]) : 1024;
  if (n < 1 || n > 8 || M % n) return fprintf(stderr, "devices: 1 to 8, dividing M\n"), 2;
  float *ha = malloc(sizeof(float) * (size_t)(M * K)), *hb = malloc(sizeof(float) * (size_t)(K * N));
  float *ref = malloc(sizeof(float) * (size_t)(M * N)), *got = malloc(sizeof(float) * (size_t)(M * N));
  srand(1);
  for (int64_t i = 0; i < M * K; i++) ha[i] = (float)rand() / (float)RAND_MAX - 0.5f;
  for (int64_t i = 0; i < K * N; i++) hb[i] = (float)rand() / (float)RAND_MAX - 0.5f;
  cg_tensor *a = cg_from_data(ha, CG_FLOAT32, (int64_t[]){M, K}, 2), *b = cg_from_data(hb, CG_FLOAT32, (int64_t[]){K, N}, 2);
  if (cg_realize(a) || cg_realize(b)) die_cg("inputs");
  const char *devs[8];
  char names[8][16];
  for (int i = 0; i < n; i++) snprintf(names[i], sizeof names[i], "CPU:%d", i), devs[i] = names[i];
  cg_multi *ma = n > 1 ? cg_shard(a, devs, n, 0) : NULL, *mb = n > 1 ? cg_shard(b, devs, n, CG_REPLICATED) : NULL;
  if (n > 1 && (!ma || !mb || cg_multi_realize(ma) || cg_multi_realize(mb))) die_cg("shard");
  /* the one-device product, for the difference */
  cg_tensor *r = cg_matmul(a, b);
  if (cg_read(r, CG_FLOAT32, ref, sizeof(float) * (size_t)(M * N))) die_cg("reference");
  cg_free(r);
  enum { RUNS = 15 };
  double t[RUNS];
  for (int k = -2; k < RUNS; k++) {
    cg_scope_begin();
    double t0 = now();
    if (n == 1) {
      cg_tensor *c = cg_matmul(a, b);
      if (cg_realize(c)) die_cg("matmul");
      if (k == RUNS - 1 && cg_read(c, CG_FLOAT32, got, sizeof(float) * (size_t)(M * N))) die_cg("read");
    } else {
      cg_multi *mc = cg_multi_matmul(ma, mb);
      if (!mc || cg_multi_realize(mc)) die_cg("sharded matmul");
      if (k >= 0) t[k] = now() - t0;
      for (int i = 0; k == RUNS - 1 && i < n; i++)
        if (cg_read(cg_multi_shard(mc, i), CG_FLOAT32, got + i * (M / n) * N, sizeof(float) * (size_t)(M / n * N))) die_cg("read");
      cg_multi_free(mc);
    }
    if (n == 1 && k >= 0) t[k] = now() - t0;
    cg_scope_end();
  }
  qsort(t, RUNS, sizeof(double), cmp_double);
  double diff = 0;
  for (int64_t i = 0; i < M * N; i++) diff = fmax(diff, fabs((double)got[i] - ref[i]));
  const char *conc = cg_get_config("CG_CONCURRENT");
  printf("matmul %lldx%lldx%lld on %d device%s%s: %.2f ms median (min %.2f), %.1f GFLOP/s, max |diff| vs one device %.2g\n", (long long)M, (long long)K,
         (long long)N, n, n > 1 ? "s" : "", n > 1 && conc && !strcmp(conc, "0") ? " one after another" : n > 1 ? " at once" : "", 1e3 * t[RUNS / 2],
         1e3 * t[0], 2.0 * (double)M * K * N / t[RUNS / 2] * 1e-9, diff);
  cg_multi_free(ma), cg_multi_free(mb);
  cg_free(a), cg_free(b);
  free(ha), free(hb), free(ref), free(got);
  return 0;
}
