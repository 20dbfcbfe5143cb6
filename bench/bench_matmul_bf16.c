/* bf16 matmul: cgrad against torch's bf16 matmul (oneDNN) in the same run, and the bf16
 * unit's peak measured here.
 *
 * cgrad: C = A @ B for bfloat16 A, B (N x N, realized bf16 buffers, from the same uniform
 * values as torch's), products summed in float32 into a float32 C: cg_matmul of their
 * float32 casts, which the TC opt (src/codegen/tc.c) runs on the CPU's bf16 unit when it
 * has one. DEBUG=2 prints the unit each kernel uses; CG_CPU_FEATURES=-avx512bf16 measures
 * the float32 fallback. Each timed run builds the graph again inside a scope (scheduling,
 * program lookup and launch included); warm-up first (compiles).
 * torch: `a @ b` of bf16 tensors with torch.set_num_threads(CG_THREADS), /usr/bin/python3
 * run after cgrad has finished (a missing torch is reported, not fatal).
 * Peak: vdpbf16ps into 24 independent accumulators (its latency needs 16 or more), one
 * thread per core, as GFLOP/s (64 flops per instruction: 32 products + 32 sums).
 *
 *   CG_THREADS=2 build/bench_matmul_bf16 [N...]     (default 1024 2048 4096) */
#define _GNU_SOURCE
#include "bench_util.h"
#include "peaks.h"
#include "cgrad.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAXN = 8 };

int main(int argc, char **argv) {
  int ns[MAXN], nn = 0;
  for (int i = 1; i < argc && nn < MAXN; i++) ns[nn++] = atoi(argv[i]);
  if (!nn) ns[nn++] = 1024, ns[nn++] = 2048, ns[nn++] = 4096;
  if (!cg_get_config("CG_THREADS")) cg_set_config("CG_THREADS", "2");
  int threads = atoi(cg_get_config("CG_THREADS"));
  double pk1 = dpbf16_peak(1), pk = dpbf16_peak(threads);
  printf("vdpbf16ps peak: %.1f GFLOP/s on 1 thread, %.1f on %d threads%s\n", pk1, pk, threads, pk ? "" : " (no AVX512-BF16 here)");
  printf("cgrad bf16 matmul (bf16 in, float32 sums and out), CG_THREADS=%d\n", threads);
  double tcg[MAXN], gcg[MAXN];
  for (int s = 0; s < nn; s++) {
    int n = ns[s];
    size_t nel = (size_t)n * n;
    float *h = malloc(nel * 4);
    if (!h) return fprintf(stderr, "out of memory\n"), 1;
    int64_t shp[2] = {n, n};
    cg_tensor *ab[2];
    for (int m = 0; m < 2; m++) { /* the same values torch makes: uniform [-1, 1) from seed n + m */
      srand((unsigned)(n + m));
      for (size_t i = 0; i < nel; i++) h[i] = (float)rand() / RAND_MAX * 2 - 1;
      ab[m] = cg_contiguous(cg_cast(cg_from_data(h, CG_FLOAT32, shp, 2), CG_BFLOAT16));
      if (!ab[m] || cg_realize(ab[m])) die_cg("creating inputs");
    }
    free(h);
    double t[7], t0 = now();
    cg_scope_begin();
    cg_tensor *c = cg_matmul(cg_cast(ab[0], CG_FLOAT32), cg_cast(ab[1], CG_FLOAT32));
    if (!c || cg_realize(c)) die_cg("matmul");
    cg_scope_end();
    double twarm = now() - t0;
    int runs = n <= 2048 ? 7 : 3;
    for (int r = 0; r < runs; r++) {
      cg_scope_begin();
      t0 = now();
      c = cg_matmul(cg_cast(ab[0], CG_FLOAT32), cg_cast(ab[1], CG_FLOAT32));
      if (!c || cg_realize(c)) die_cg("matmul");
      t[r] = now() - t0;
      cg_scope_end();
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    tcg[s] = t[runs / 2], gcg[s] = 2.0 * n * n * (double)n / tcg[s] * 1e-9;
    printf("cgrad  N=%5d  %9.2f ms  %8.1f GFLOP/s  %5.1f%% of the unit's peak  (warm-up %.0f ms, median of %d)\n", n, 1e3 * tcg[s], gcg[s],
           pk ? 100 * gcg[s] / pk : 0.0, 1e3 * twarm, runs);
    fflush(stdout);
    cg_free(ab[0]), cg_free(ab[1]);
  }
  /* torch, after cgrad's threads are idle */
  char cmd[512], line[256], script[2048];
  int w = snprintf(script, sizeof script,
                   "import time, torch\ntorch.set_num_threads(%d)\nfor n in [", threads);
  for (int s = 0; s < nn; s++) w += snprintf(script + w, sizeof script - (size_t)w, "%d,", ns[s]);
  snprintf(script + w, sizeof script - (size_t)w,
           "]:\n  a = (torch.rand(n, n) * 2 - 1).bfloat16(); b = (torch.rand(n, n) * 2 - 1).bfloat16()\n"
           "  c = a @ b; ts = []\n"
           "  for r in range(7 if n <= 2048 else 3):\n    t0 = time.perf_counter(); c = a @ b; ts.append(time.perf_counter() - t0)\n"
           "  ts.sort(); t = ts[len(ts) // 2]\n  print('torch %%d %%.6f' %% (n, t), flush=True)\n");
  char tmp[] = "/tmp/cg_bench_bf16_XXXXXX";
  int fd = mkstemp(tmp);
  if (fd < 0) return 0;
  FILE *f = fdopen(fd, "w");
  fputs(script, f);
  fclose(f);
  snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d /usr/bin/python3 %s 2>&1", threads, tmp);
  FILE *p = popen(cmd, "r");
  double ttorch[MAXN];
  for (int s = 0; s < nn; s++) ttorch[s] = NAN;
  while (p && fgets(line, sizeof line, p)) {
    int n;
    double t;
    if (sscanf(line, "torch %d %lf", &n, &t) == 2) {
      for (int s = 0; s < nn; s++)
        if (ns[s] == n) ttorch[s] = t;
    } else printf("python: %s", line);
  }
  if (p) pclose(p);
  remove(tmp);
  printf("\n  %6s %10s %10s %10s %10s %12s %12s\n", "N", "cgrad ms", "cg GF/s", "torch ms", "torch GF/s", "cgrad/torch", "%unit peak");
  for (int s = 0; s < nn; s++) {
    double gt = 2.0 * ns[s] * ns[s] * (double)ns[s] / ttorch[s] * 1e-9;
    printf("  %6d %10.2f %10.1f %10.2f %10.1f %11.2fx %11.1f%%\n", ns[s], 1e3 * tcg[s], gcg[s], 1e3 * ttorch[s], gt, ttorch[s] / tcg[s],
           pk ? 100 * gcg[s] / pk : 0.0);
  }
  return 0;
}
