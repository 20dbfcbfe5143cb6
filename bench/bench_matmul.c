/* fp32 matmul: cgrad against OpenBLAS cblas_sgemm in the same process, same thread count.
 *
 * cgrad: cg_matmul of two realized N x N float32 tensors, realized; each timed run builds
 * the graph again inside a scope (so it includes scheduling, the compiled-kernel lookup
 * and the launch; the kernel is compiled once, in the warm-up run).
 * OpenBLAS: loaded at run time (dlopen "libopenblas.so.0", no link-time dependency), row-
 * major C = A @ B with alpha 1, beta 0, threads set to CG_THREADS (OPENBLAS_NUM_THREADS
 * before loading, and openblas_set_num_threads). All cgrad runs come first and all
 * OpenBLAS runs after them, so OpenBLAS's spinning worker threads never compete with
 * cgrad's pool. Before OpenBLAS is timed at a size its result is compared with cgrad's
 * (max abs difference, and that over max |C|).
 *
 * GFLOP/s = 2 N^3 / median seconds. After one warm-up run, cgrad gets as many timed runs
 * as fit in about CG_BENCH_BUDGET seconds per size (default 60), at most 7 and at least 1;
 * the count used is printed. OpenBLAS gets 3 warm-up and 11 timed runs. The process's CPU
 * time over cgrad's timed runs, as a share of wall time x threads, is printed too: well
 * under 100% means other processes took the cores and the figure is not to be trusted.
 *
 *   CG_THREADS=2 build/bench_matmul [N...]       (default 512 1024 2048; CG_THREADS default 2) */
#define _GNU_SOURCE
#include "cgrad.h"
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static double cpu_now(void) { /* CPU time of the whole process, all threads */
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}
static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static void die_cg(const char *what) {
  fprintf(stderr, "cgrad failed in %s: %s\n", what, cg_last_error());
  exit(1);
}

/* cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) */
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
enum { CblasRowMajor = 101, CblasNoTrans = 111 };

enum { MAXN = 16 };

int main(int argc, char **argv) {
  int ns[MAXN], nn = 0;
  for (int i = 1; i < argc && nn < MAXN; i++) ns[nn++] = atoi(argv[i]);
  if (!nn) ns[nn++] = 512, ns[nn++] = 1024, ns[nn++] = 2048;
  if (!cg_get_config("CG_THREADS")) cg_set_config("CG_THREADS", "2");
  int threads = atoi(cg_get_config("CG_THREADS"));
  const char *be = getenv("CG_BENCH_BUDGET");
  double budget = be ? atof(be) : 60.0;

  /* OpenBLAS, before anything starts threads */
  char tn[16];
  snprintf(tn, sizeof tn, "%d", threads);
  setenv("OPENBLAS_NUM_THREADS", tn, 1);
  void *blas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  sgemm_fn sgemm = blas ? (sgemm_fn)dlsym(blas, "cblas_sgemm") : NULL;
  if (blas) {
    void (*set_threads)(int) = (void (*)(int))dlsym(blas, "openblas_set_num_threads");
    int (*get_threads)(void) = (int (*)(void))dlsym(blas, "openblas_get_num_threads");
    char *(*get_config)(void) = (char *(*)(void))dlsym(blas, "openblas_get_config");
    char *(*get_core)(void) = (char *(*)(void))dlsym(blas, "openblas_get_corename");
    if (set_threads) set_threads(threads);
    printf("OpenBLAS: %s, core %s, %d threads\n", get_config ? get_config() : "?", get_core ? get_core() : "?",
           get_threads ? get_threads() : -1);
  }
  if (!sgemm) printf("OpenBLAS not available (%s): cgrad only\n", blas ? "no cblas_sgemm" : dlerror());
  printf("cgrad fp32 matmul, CG_THREADS=%d, cgrad budget %.0f s per size\n\n", threads, budget);

  float *A[MAXN], *B[MAXN], *Ccg[MAXN];
  double gcg[MAXN], tcg[MAXN];
  int runs_cg[MAXN];
  /* ---- phase 1: cgrad ---- */
  for (int s = 0; s < nn; s++) {
    int n = ns[s];
    size_t nel = (size_t)n * n;
    A[s] = malloc(nel * 4), B[s] = malloc(nel * 4), Ccg[s] = malloc(nel * 4);
    if (!A[s] || !B[s] || !Ccg[s]) return fprintf(stderr, "out of memory\n"), 1;
    srand(1000 + n);
    for (size_t i = 0; i < nel; i++) A[s][i] = (float)rand() / RAND_MAX * 2 - 1, B[s][i] = (float)rand() / RAND_MAX * 2 - 1;
    int64_t shp[2] = {n, n};
    cg_tensor *ta = cg_from_data(A[s], CG_FLOAT32, shp, 2), *tb = cg_from_data(B[s], CG_FLOAT32, shp, 2);
    if (!ta || !tb || cg_realize(ta) || cg_realize(tb)) die_cg("creating inputs");
    /* warm-up (compiles the kernel), also the result to check */
    cg_scope_begin();
    double t0 = now();
    cg_tensor *c = cg_matmul(ta, tb);
    if (!c || cg_realize(c)) die_cg("matmul");
    double twarm = now() - t0;
    if (cg_read(c, CG_FLOAT32, Ccg[s], nel * 4)) die_cg("cg_read");
    cg_scope_end();
    int runs = (int)(budget / twarm);
    runs = runs < 1 ? 1 : runs > 7 ? 7 : runs;
    double t[7], wall0 = now(), cpu0 = cpu_now();
    for (int r = 0; r < runs; r++) {
      cg_scope_begin();
      t0 = now();
      c = cg_matmul(ta, tb);
      if (!c || cg_realize(c)) die_cg("matmul");
      t[r] = now() - t0;
      cg_scope_end();
    }
    double share = (cpu_now() - cpu0) / ((now() - wall0) * threads);
    tcg[s] = median(t, runs);
    gcg[s] = 2.0 * n * n * (double)n / tcg[s] * 1e-9;
    runs_cg[s] = runs;
    printf("cgrad    N=%5d  %10.2f ms  %8.2f GFLOP/s  (warm-up incl. compile %.2f ms; median of %d run%s; CPU use %.0f%% of %d threads%s)\n",
           n, 1e3 * tcg[s], gcg[s], 1e3 * twarm, runs, runs == 1 ? "" : "s", 100 * share, threads,
           share < 0.9 ? ": CONTENDED, rerun on a quiet machine" : "");
    fflush(stdout);
    cg_free(ta), cg_free(tb);
  }
  /* ---- phase 2: OpenBLAS ---- */
  double gbl[MAXN], tbl[MAXN], diff[MAXN], rel[MAXN];
  for (int s = 0; s < nn; s++) {
    gbl[s] = tbl[s] = diff[s] = rel[s] = NAN;
    if (!sgemm) continue;
    int n = ns[s];
    size_t nel = (size_t)n * n;
    float *C = malloc(nel * 4);
    if (!C) return fprintf(stderr, "out of memory\n"), 1;
    sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A[s], n, B[s], n, 0.0f, C, n);
    double m = 0, cmax = 0;
    for (size_t i = 0; i < nel; i++) {
      double d = fabs((double)C[i] - (double)Ccg[s][i]);
      if (!(d <= m)) m = d;
      if (fabs(C[i]) > cmax) cmax = fabs(C[i]);
    }
    diff[s] = m, rel[s] = m / cmax;
    for (int r = 0; r < 3; r++) sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A[s], n, B[s], n, 0.0f, C, n);
    double t[11];
    for (int r = 0; r < 11; r++) {
      double t0 = now();
      sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A[s], n, B[s], n, 0.0f, C, n);
      t[r] = now() - t0;
    }
    tbl[s] = median(t, 11);
    gbl[s] = 2.0 * n * n * (double)n / tbl[s] * 1e-9;
    printf("OpenBLAS N=%5d  %10.2f ms  %8.2f GFLOP/s  (median of 11 runs)  max|cgrad - OpenBLAS| %.3g (%.2g of max|C|)%s\n", n,
           1e3 * tbl[s], gbl[s], m, rel[s], rel[s] > 1e-4 ? "  <-- MISMATCH" : "");
    free(C);
  }
  printf("\n  %6s %12s %12s %12s %12s %12s %10s\n", "N", "cgrad ms", "cgrad GF/s", "BLAS ms", "BLAS GF/s", "cgrad/BLAS", "cg runs");
  for (int s = 0; s < nn; s++)
    printf("  %6d %12.2f %12.2f %12.3f %12.2f %12.4f %10d\n", ns[s], 1e3 * tcg[s], gcg[s], 1e3 * tbl[s], gbl[s], gcg[s] / gbl[s],
           runs_cg[s]);
  for (int s = 0; s < nn; s++) free(A[s]), free(B[s]), free(Ccg[s]);
  return 0;
}
