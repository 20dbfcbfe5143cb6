/* fp32 matmul: cgrad against OpenBLAS cblas_sgemm in the same process, same thread count,
 * and against the FMA peak measured in the same run.
 *
 * Shapes: N (an N x N x N product) or MxKxN (A is M x K, B is K x N, C = A @ B row-major).
 * Default: 512 1024 2048 4096 512x576x10 8192x384x1536 8192x1536x384.
 * Threads: CG_BENCH_THREADS, a list (default "1,2"); each count runs in its own child
 * process (cgrad's thread pool is sized once per process), one after the other.
 *
 * cgrad: cg_matmul of two realized float32 tensors, realized; each timed run builds the
 * graph again inside a scope, so it includes scheduling, the compiled-kernel lookup, the
 * layout step (B packed into 32-column panels, its own copy kernel, when the heuristic
 * asks for it) and the GEMM kernel. The packing copy alone is timed too ("pack ms": the
 * same view realized by itself), and with CG_BENCH_NOPACK=1 the product once more with
 * PACK=0 (what packing gains).
 * OpenBLAS: loaded at run time (dlopen "libopenblas.so.0", no link-time dependency), row-
 * major C = A @ B with alpha 1, beta 0, threads set to the same count. All cgrad runs come
 * first and OpenBLAS is loaded and run after them, so OpenBLAS's spinning worker threads
 * (they spin ~70 ms after loading and after each call) never compete with cgrad's pool or
 * the FMA peak. Before OpenBLAS is timed at a shape its result is compared
 * with cgrad's (max abs difference, and that over max |C|).
 * Workers: the share of the process's CPU time over cgrad's timed runs that the pool's
 * worker threads used (about half on 2 threads when both took part; ~0 when the caller ran
 * every chunk itself). Both CPU-time figures come from the kernel's accounting, which lags
 * by up to a scheduler tick per thread: for a shape whose timed runs take a few ms they
 * can read 50% / 0% while the wall time says both threads ran.
 * Peak: every thread runs 12 independent chains of 16-lane FMAs (GCC vector types, this
 * file builds with -march=native); "peak" is the measured rate, "% peak" each figure's
 * share of it. Under load the measured peak drops with everything else.
 *
 * BEAM: with CG_BENCH_BEAM=n, each thread count first runs a search process (BEAM=n, one
 * product per shape: every kernel searched, BEAM_BUDGET_S each, the choices stored in the
 * kernel cache directory; the search's wall time per shape is printed), then the timed
 * process with BEAM=n, which takes the stored choices with no search: cgrad's figures are
 * BEAM's cached choice. Use an empty CG_CACHE_DIR for a fresh search.
 *
 * GFLOP/s = 2 M K N / median seconds. Both get the same treatment: after the first product
 * (cgrad's compiles its kernels), 3 warm-up runs, then as many timed runs as fit in about
 * CG_BENCH_BUDGET seconds per shape (default 60), at least 3 and at most 11. (cgrad had
 * one warm-up and at most 7 runs: on 2 threads at 512^3, ~0.5 ms a run, its runs came
 * while the cores were still getting up to speed, 22-25 us per row block against the
 * steady 16 us (per-chunk timeline of the pool, 2 threads, both busy throughout), and
 * the median of 7 fell in that ramp; OpenBLAS ran after them, warm.) The process's
 * CPU time over cgrad's timed runs, as a share of wall time x threads, is printed too:
 * well under 100% means other processes took the cores and the figure is not to be
 * trusted.
 *
 *   CG_BENCH_THREADS=1,2 [CG_BENCH_BEAM=2] build/release/bench_matmul [N | MxKxN ...]
 * Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the baseline (PERF-NOTES.md). */
#define _GNU_SOURCE
#include "bench_util.h"
#include "peaks.h"
#include "cgrad.h"
#include "runtime/threadpool.h" /* the pool workers' thread ids */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* CPU time (schedstat, ns) of the default device's pool workers: their share of the
 * process's CPU time over cgrad's timed runs says whether the workers took part (about
 * half on 2 threads) or the caller ran the chunks alone. */
static double pool_workers_cpu(void) {
  int tids[256], n = rt_pool_worker_tids(rt_pool_of(0), tids, 256);
  double sum = 0;
  for (int i = 0; i < n; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", tids[i]);
    long long run = 0;
    FILE *f = fopen(path, "r");
    if (f) {
      if (fscanf(f, "%lld", &run) != 1) run = 0;
      fclose(f);
    }
    sum += (double)run * 1e-9;
  }
  return sum;
}

/* cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) */
typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
enum { CblasRowMajor = 101, CblasNoTrans = 111 };

enum { MAXS = 16 };
typedef struct {
  int m, k, n;
} shape;

/* One cgrad product: median seconds of the timed runs (graph built each time). */
static double time_cgrad(cg_tensor *ta, cg_tensor *tb, int runs, double *share, double *workers, int threads) {
  double t[11], wall0 = now(), cpu0 = cpu_now(), pool0 = pool_workers_cpu();
  for (int r = 0; r < runs; r++) {
    cg_scope_begin();
    double t0 = now();
    cg_tensor *c = cg_matmul(ta, tb);
    if (!c || cg_realize(c)) die_cg("matmul");
    t[r] = now() - t0;
    cg_scope_end();
  }
  double cpu = cpu_now() - cpu0;
  *share = cpu / ((now() - wall0) * threads);
  *workers = (pool_workers_cpu() - pool0) / (cpu > 0 ? cpu : 1);
  return median(t, runs);
}

/* The layout step alone: B (k, n) padded to 32 columns, viewed as panels, realized. */
static double time_pack(cg_tensor *tb, int k, int n, int runs) {
  int np = (n + 31) / 32 * 32;
  double t[11];
  for (int r = 0; r < runs + 1; r++) {
    cg_scope_begin();
    double t0 = now();
    cg_tensor *p = cg_pad(tb, (int64_t[]){0, 0, 0, np - n}, 0.0);
    p = cg_contiguous(cg_permute(cg_reshape(p, (int64_t[]){k, np / 32, 32}, 3), (int[]){1, 0, 2}, 3));
    if (!p || cg_realize(p)) die_cg("pack");
    if (r) t[r - 1] = now() - t0;
    cg_scope_end();
  }
  return median(t, runs);
}

/* The search process of CG_BENCH_BEAM: one product per shape with BEAM on. */
static void search(const shape *sh, int ns, int threads, const char *beam) {
  char tn[16];
  snprintf(tn, sizeof tn, "%d", threads);
  cg_set_config("CG_THREADS", tn);
  cg_set_config("BEAM", beam);
  printf("BEAM=%s search, %d thread%s (choices stored in the kernel cache directory):\n", beam, threads, threads == 1 ? "" : "s");
  for (int s = 0; s < ns; s++) {
    int m = sh[s].m, k = sh[s].k, n = sh[s].n;
    cg_tensor *ta = cg_rand(CG_FLOAT32, (int64_t[]){m, k}, 2), *tb = cg_rand(CG_FLOAT32, (int64_t[]){k, n}, 2);
    if (!ta || !tb || cg_realize(ta) || cg_realize(tb)) die_cg("creating inputs");
    cg_scope_begin();
    double t0 = now();
    cg_tensor *c = cg_matmul(ta, tb);
    if (!c || cg_realize(c)) die_cg("matmul");
    cg_scope_end();
    time_pack(tb, k, n, 1); /* the packing copy timed alone ("pack ms") is a kernel too */
    printf("  %dx%dx%d: %.2f s (search, compiles and one run)\n", m, k, n, now() - t0);
    fflush(stdout);
    cg_free(ta), cg_free(tb);
  }
  printf("\n");
}

static void run(const shape *sh, int ns, int threads, double budget) {
  char tn[16];
  snprintf(tn, sizeof tn, "%d", threads);
  cg_set_config("CG_THREADS", tn);
  setenv("OPENBLAS_NUM_THREADS", tn, 1);
  double peak = fma_peak(threads);
  const char *beam = cg_get_config("BEAM");
  printf("cgrad fp32 matmul, %d thread%s, measured FMA peak %.1f GFLOP/s, cgrad budget %.0f s per shape, opts: %s%s\n\n", threads,
         threads == 1 ? "" : "s", peak, budget, beam && atoi(beam) > 0 ? "BEAM=" : "the heuristic", beam && atoi(beam) > 0 ? beam : "");
  fflush(stdout);
  bool nopack = getenv("CG_BENCH_NOPACK") && atoi(getenv("CG_BENCH_NOPACK"));
  float *A[MAXS], *B[MAXS], *Ccg[MAXS];
  double gcg[MAXS], tcg[MAXS], tpk[MAXS], gnp[MAXS];
  int runs_cg[MAXS];
  /* ---- phase 1: cgrad ---- */
  for (int s = 0; s < ns; s++) {
    int m = sh[s].m, k = sh[s].k, n = sh[s].n;
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    A[s] = malloc(na * 4), B[s] = malloc(nb * 4), Ccg[s] = malloc(nc * 4);
    if (!A[s] || !B[s] || !Ccg[s]) fprintf(stderr, "out of memory\n"), exit(1);
    srand(1000 + m + 7 * k + 13 * n);
    for (size_t i = 0; i < na; i++) A[s][i] = (float)rand() / RAND_MAX * 2 - 1;
    for (size_t i = 0; i < nb; i++) B[s][i] = (float)rand() / RAND_MAX * 2 - 1;
    cg_tensor *ta = cg_from_data(A[s], CG_FLOAT32, (int64_t[]){m, k}, 2), *tb = cg_from_data(B[s], CG_FLOAT32, (int64_t[]){k, n}, 2);
    if (!ta || !tb || cg_realize(ta) || cg_realize(tb)) die_cg("creating inputs");
    cg_scope_begin(); /* warm-up (compiles the kernels), also the result to check */
    double t0 = now();
    cg_tensor *c = cg_matmul(ta, tb);
    if (!c || cg_realize(c)) die_cg("matmul");
    double twarm = now() - t0;
    if (cg_read(c, CG_FLOAT32, Ccg[s], nc * 4)) die_cg("cg_read");
    cg_scope_end();
    t0 = now(); /* 3 warm-up runs, as OpenBLAS gets */
    for (int r = 0; r < 3; r++) {
      cg_scope_begin();
      if (!(c = cg_matmul(ta, tb)) || cg_realize(c)) die_cg("matmul");
      cg_scope_end();
    }
    int runs = (int)(budget / ((now() - t0) / 3 + 1e-9));
    runs = runs < 3 ? 3 : runs > 11 ? 11 : runs;
    double share, workers;
    tcg[s] = time_cgrad(ta, tb, runs, &share, &workers, threads);
    gcg[s] = 2.0 * m * (double)k * n / tcg[s] * 1e-9;
    runs_cg[s] = runs;
    tpk[s] = time_pack(tb, k, n, runs);
    gnp[s] = NAN;
    if (nopack) {
      double sh2, w2;
      cg_set_config("PACK", "0");
      cg_scope_begin();
      cg_tensor *c2 = cg_matmul(ta, tb); /* compiles the unpacked kernel */
      if (!c2 || cg_realize(c2)) die_cg("matmul");
      cg_scope_end();
      gnp[s] = 2.0 * m * (double)k * n / time_cgrad(ta, tb, runs, &sh2, &w2, threads) * 1e-9;
      cg_set_config("PACK", "1");
    }
    char wk[48] = "";
    if (threads > 1) snprintf(wk, sizeof wk, ", the pool's workers %.0f%% of it", 100 * workers);
    printf("cgrad    %5dx%5dx%5d  %10.2f ms  %8.2f GFLOP/s  %5.1f%% peak  (warm-up incl. compile %.2f ms; median of %d run%s; CPU use %.0f%% of %d "
           "threads%s%s)\n",
           m, k, n, 1e3 * tcg[s], gcg[s], 100 * gcg[s] / peak, 1e3 * twarm, runs, runs == 1 ? "" : "s", 100 * share, threads, wk,
           share < 0.9 ? ": CONTENDED, rerun on a quiet machine" : "");
    fflush(stdout);
    cg_free(ta), cg_free(tb);
  }
  /* ---- phase 2: OpenBLAS, loaded only now: its worker threads spin for ~2^28 cycles
   * (~70 ms) after it is loaded and after every call, so loaded before phase 1 they took
   * the second core from the FMA peak and from cgrad's first (short) shape (measured:
   * 40-46 ms of CPU in the 200 ms after dlopen, and again after one 512^3 sgemm) ---- */
  void *blas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  sgemm_fn sgemm = blas ? (sgemm_fn)dlsym(blas, "cblas_sgemm") : NULL;
  if (blas) {
    void (*set_threads)(int) = (void (*)(int))dlsym(blas, "openblas_set_num_threads");
    int (*get_threads)(void) = (int (*)(void))dlsym(blas, "openblas_get_num_threads");
    char *(*get_config)(void) = (char *(*)(void))dlsym(blas, "openblas_get_config");
    char *(*get_core)(void) = (char *(*)(void))dlsym(blas, "openblas_get_corename");
    if (set_threads) set_threads(threads);
    printf("\nOpenBLAS: %s, core %s, %d threads\n", get_config ? get_config() : "?", get_core ? get_core() : "?", get_threads ? get_threads() : -1);
  }
  if (!sgemm) printf("OpenBLAS not available (%s): cgrad only\n", blas ? "no cblas_sgemm" : dlerror());
  double gbl[MAXS], tbl[MAXS], rel[MAXS];
  for (int s = 0; s < ns; s++) {
    gbl[s] = tbl[s] = rel[s] = NAN;
    if (!sgemm) continue;
    int m = sh[s].m, k = sh[s].k, n = sh[s].n;
    size_t nc = (size_t)m * n;
    float *C = malloc(nc * 4);
    if (!C) fprintf(stderr, "out of memory\n"), exit(1);
    sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A[s], k, B[s], n, 0.0f, C, n);
    double d = 0, cmax = 0;
    for (size_t i = 0; i < nc; i++) {
      double e = fabs((double)C[i] - (double)Ccg[s][i]);
      if (!(e <= d)) d = e;
      if (fabs(C[i]) > cmax) cmax = fabs(C[i]);
    }
    rel[s] = d / (cmax > 0 ? cmax : 1);
    double t0 = now();
    for (int r = 0; r < 3; r++) sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A[s], k, B[s], n, 0.0f, C, n);
    int runs = (int)(budget / ((now() - t0) / 3 + 1e-9));
    runs = runs < 3 ? 3 : runs > 11 ? 11 : runs;
    double t[11];
    for (int r = 0; r < runs; r++) {
      t0 = now();
      sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A[s], k, B[s], n, 0.0f, C, n);
      t[r] = now() - t0;
    }
    tbl[s] = median(t, runs);
    gbl[s] = 2.0 * m * (double)k * n / tbl[s] * 1e-9;
    printf("OpenBLAS %5dx%5dx%5d  %10.2f ms  %8.2f GFLOP/s  %5.1f%% peak  (median of %d runs)  max|cgrad - OpenBLAS| %.3g (%.2g of max|C|)%s\n", m, k,
           n, 1e3 * tbl[s], gbl[s], 100 * gbl[s] / peak, runs, d, rel[s], rel[s] > 1e-4 ? "  <-- MISMATCH" : "");
    free(C);
  }
  printf("\n  threads %d, FMA peak %.1f GFLOP/s\n  %-16s %10s %10s %7s %10s %10s %7s %10s %8s%s\n", threads, peak, "MxKxN", "cgrad ms", "cgrad GF/s", "%peak",
         "BLAS ms", "BLAS GF/s", "%peak", "cgrad/BLAS", "pack ms", nopack ? "  no-pack GF/s" : "");

  for (int s = 0; s < ns; s++) {
    char nm[48];
    snprintf(nm, sizeof nm, "%dx%dx%d", sh[s].m, sh[s].k, sh[s].n);
    printf("  %-16s %10.2f %10.2f %7.1f %10.3f %10.2f %7.1f %10.3f %8.3f", nm, 1e3 * tcg[s], gcg[s], 100 * gcg[s] / peak, 1e3 * tbl[s], gbl[s],
           100 * gbl[s] / peak, gcg[s] / gbl[s], 1e3 * tpk[s]);
    if (nopack) printf("  %13.2f", gnp[s]);
    printf("\n");
  }
  printf("  (cgrad runs per shape:");
  for (int s = 0; s < ns; s++) printf(" %d", runs_cg[s]);
  printf(")\n");
  printf("\n");
  fflush(stdout);
  for (int s = 0; s < ns; s++) free(A[s]), free(B[s]), free(Ccg[s]);
}

int main(int argc, char **argv) {
  shape sh[MAXS];
  int ns = 0;
  for (int i = 1; i < argc && ns < MAXS; i++) {
    int m, k, n;
    if (sscanf(argv[i], "%dx%dx%d", &m, &k, &n) == 3) sh[ns++] = (shape){m, k, n};
    else if ((m = atoi(argv[i])) > 0) sh[ns++] = (shape){m, m, m};
    else return fprintf(stderr, "bench_matmul: expected N or MxKxN, got '%s'\n", argv[i]), 2;
  }
  if (!ns) {
    static const shape def[] = {{512, 512, 512}, {1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 4096, 4096},
                                {512, 576, 10},  {8192, 384, 1536}, {8192, 1536, 384}};
    for (size_t i = 0; i < sizeof def / sizeof def[0]; i++) sh[ns++] = def[i];
  }
  const char *be = getenv("CG_BENCH_BUDGET");
  double budget = be ? atof(be) : 60.0;
  const char *tl = getenv("CG_BENCH_THREADS");
  char list[64];
  snprintf(list, sizeof list, "%s", tl ? tl : "1,2");
  for (char *save = NULL, *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
    int threads = atoi(w);
    if (threads < 1) continue;
    fflush(stdout);
    const char *bb = getenv("CG_BENCH_BEAM");
    if (bb && atoi(bb) > 0) { /* the search in a process of its own, then the timed one takes its choices */
      pid_t sp = fork();
      if (sp == 0) {
        search(sh, ns, threads, bb);
        fflush(stdout);
        _exit(0);
      }
      int sst = 0;
      if (sp < 0 || waitpid(sp, &sst, 0) < 0 || !WIFEXITED(sst) || WEXITSTATUS(sst)) return fprintf(stderr, "bench_matmul: the %d-thread search failed\n", threads), 1;
      cg_set_config("BEAM", bb);
    }
    pid_t pid = fork(); /* a fresh process per thread count: the pool is sized once */
    if (pid == 0) {
      run(sh, ns, threads, budget);
      fflush(stdout);
      _exit(0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) return fprintf(stderr, "bench_matmul: the %d-thread run failed\n", threads), 1;
  }
  return 0;
}
