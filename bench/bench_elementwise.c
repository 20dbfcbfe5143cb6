/* Fused elementwise throughput: cgrad against plain C loops in the same process.
 *
 *   E1:    out = a*b + c
 *   E2:    out = relu(a*b + c)*0.5 - a
 *   triad: a[i] = b[i] + s*c[i]        (STREAM triad, plain C only: the memory reference)
 *
 * Bytes are counted once per array touched: E1 and E2 read a, b, c and write out (16 B per
 * element), the triad reads b, c and writes a (12 B per element); write-allocate traffic
 * is not counted. Each figure is the median of the timed runs after warm-up runs.
 *
 * cgrad: each timed run builds the lazy graph again from the same three realized input
 * tensors, inside a scope, and realizes it (so it includes graph building, the schedule,
 * the compiled-kernel lookup and the launch over the thread pool; the kernel is compiled
 * once, in warm-up). A 1K-element case measures that per-call overhead, split into graph
 * building and cg_realize.
 *
 * Plain C: the same expressions and the triad as loops compiled at -O2 (cgrad's own kernel
 * flags are -O2 -march=native) and at -O3 (function attributes; the target is built with
 * -march=native), on 1 thread and on CG_THREADS threads (the caller plus spinning
 * pthreads, started for the baseline phase only so they do not compete with cgrad's pool
 * while cgrad is timed). Results are checked against the -O2 loop before timing.
 *
 *   CG_THREADS=2 build/bench_elementwise [sizes...]     (default sizes 1M 16M; CG_THREADS default 2;
 *                                                        a size may end in K or M) */
#define _GNU_SOURCE
#include "bench_util.h"
#include "cgrad.h"
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static void *xmalloc(size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 64, n ? n : 1)) {
    fprintf(stderr, "out of memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

/* ---- plain C kernels (-O2) ----------------------------------------------------------- */

/* Each loop twice: at -O2 (cgrad's kernel flags: GCC 12 leaves these loops scalar, and
 * compiles relu's select to a branch) and at -O3 (vectorized). */
#define LOOPS(SUF, OPT)                                                                                      \
  __attribute__((optimize(OPT), noinline)) static void c_e1##SUF(float *restrict o, const float *restrict a,   \
                                                                 const float *restrict b,                    \
                                                                 const float *restrict c, long lo, long hi) { \
    for (long i = lo; i < hi; i++) o[i] = a[i] * b[i] + c[i];                                                 \
  }                                                                                                          \
  __attribute__((optimize(OPT), noinline)) static void c_e2##SUF(float *restrict o, const float *restrict a,   \
                                                                 const float *restrict b,                    \
                                                                 const float *restrict c, long lo, long hi) { \
    for (long i = lo; i < hi; i++) {                                                                         \
      float x = a[i] * b[i] + c[i];                                                                          \
      o[i] = (x > 0.0f ? x : 0.0f) * 0.5f - a[i];                                                            \
    }                                                                                                        \
  }                                                                                                          \
  __attribute__((optimize(OPT), noinline)) static void c_triad##SUF(float *restrict a, const float *restrict b, \
                                                                    const float *restrict c, float s, long lo, \
                                                                    long hi) {                               \
    for (long i = lo; i < hi; i++) a[i] = b[i] + s * c[i];                                                   \
  }
LOOPS(_o2, "O2")
LOOPS(_o3, "O3")

enum { K_E1, K_E2, K_TRIAD };
typedef struct {
  int kind, o3;
  float *o;
  const float *a, *b, *c;
  long n;
} job;

static void run_part(const job *j, int part, int parts) {
  long lo = j->n * part / parts, hi = j->n * (part + 1) / parts;
  switch (j->kind * 2 + j->o3) {
  case 0: c_e1_o2(j->o, j->a, j->b, j->c, lo, hi); break;
  case 1: c_e1_o3(j->o, j->a, j->b, j->c, lo, hi); break;
  case 2: c_e2_o2(j->o, j->a, j->b, j->c, lo, hi); break;
  case 3: c_e2_o3(j->o, j->a, j->b, j->c, lo, hi); break;
  case 4: c_triad_o2(j->o, j->b, j->c, 3.0f, lo, hi); break;
  default: c_triad_o3(j->o, j->b, j->c, 3.0f, lo, hi); break;
  }
}

/* A minimal spinning fork-join pool: the caller runs part 0, helpers parts 1.. */
enum { MAXT = 64 };
static struct {
  int nthreads;
  pthread_t tid[MAXT];
  const job *cur;
  int parts;
  _Atomic unsigned long gen;
  _Atomic int pending;
  _Atomic int quit;
} P;

static void *helper(void *arg) {
  int me = (int)(long)arg;
  unsigned long seen = 0;
  for (;;) {
    unsigned long g;
    while ((g = atomic_load(&P.gen)) == seen && !atomic_load(&P.quit)) __builtin_ia32_pause();
    if (atomic_load(&P.quit)) return NULL;
    seen = g;
    run_part(P.cur, me, P.parts);
    atomic_fetch_sub(&P.pending, 1);
  }
}
static void pool_start(int nthreads) {
  P.nthreads = nthreads;
  atomic_store(&P.quit, 0);
  for (int i = 1; i < nthreads; i++) pthread_create(&P.tid[i], NULL, helper, (void *)(long)i);
}
static void pool_stop(void) {
  atomic_store(&P.quit, 1);
  for (int i = 1; i < P.nthreads; i++) pthread_join(P.tid[i], NULL);
  P.nthreads = 0;
}
static void run_job(const job *j, int nthreads) {
  if (nthreads <= 1) {
    run_part(j, 0, 1);
    return;
  }
  P.cur = j, P.parts = nthreads;
  atomic_store(&P.pending, nthreads - 1);
  atomic_fetch_add(&P.gen, 1);
  run_part(j, 0, nthreads);
  while (atomic_load(&P.pending)) __builtin_ia32_pause();
}

/* Median seconds of job j on nthreads. */
static double time_c(const job *j, int nthreads, int warm, int runs) {
  double *t = xmalloc((size_t)runs * sizeof *t);
  for (int i = 0; i < warm; i++) run_job(j, nthreads);
  for (int i = 0; i < runs; i++) {
    double t0 = now();
    run_job(j, nthreads);
    t[i] = now() - t0;
  }
  double m = median(t, runs);
  free(t);
  return m;
}

/* ---- cgrad --------------------------------------------------------------------------- */

static cg_tensor *build(int kind, cg_tensor *a, cg_tensor *b, cg_tensor *c) {
  cg_tensor *x = cg_add(cg_mul(a, b), c);
  if (kind == K_E2) x = cg_sub(cg_mul(cg_relu(x), cg_scalar(0.5)), a);
  if (!x) die_cg("building the graph");
  return x;
}

/* Median seconds per (build + realize); *t_build gets the median of the build part. */
static double time_cg(int kind, cg_tensor *a, cg_tensor *b, cg_tensor *c, int warm, int runs, double *t_build) {
  double *t = xmalloc((size_t)runs * sizeof *t), *tb = xmalloc((size_t)runs * sizeof *tb);
  for (int i = 0; i < warm + runs; i++) {
    cg_scope_begin();
    double t0 = now();
    cg_tensor *x = build(kind, a, b, c);
    double t1 = now();
    if (cg_realize(x) != CG_OK) die_cg("cg_realize");
    double t2 = now();
    cg_scope_end();
    if (i >= warm) t[i - warm] = t2 - t0, tb[i - warm] = t1 - t0;
  }
  if (t_build) *t_build = median(tb, runs);
  double m = median(t, runs);
  free(t), free(tb);
  return m;
}

/* Max abs difference between cgrad's result and the plain loop's. */
static double check(int kind, cg_tensor *ta, cg_tensor *tb, cg_tensor *tc, const job *ref, long n) {
  float *got = xmalloc((size_t)n * sizeof(float));
  cg_scope_begin();
  cg_tensor *x = build(kind, ta, tb, tc);
  if (cg_realize(x) != CG_OK || cg_read(x, CG_FLOAT32, got, (size_t)n * sizeof(float)) != CG_OK) die_cg("check");
  cg_scope_end();
  run_job(ref, 1);
  double m = 0;
  for (long i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)ref->o[i]);
    if (!(d <= m)) m = d; /* NaN-propagating */
  }
  free(got);
  return m;
}

static const char *kname[] = {"E1 a*b+c", "E2 relu(a*b+c)*.5-a", "triad b+s*c"};

int main(int argc, char **argv) {
  long sizes[16];
  int nsizes = 0;
  for (int i = 1; i < argc && nsizes < 16; i++) {
    char *end;
    double v = strtod(argv[i], &end);
    if (*end == 'K' || *end == 'k') v *= 1024;
    if (*end == 'M' || *end == 'm') v *= 1024 * 1024;
    sizes[nsizes++] = (long)v;
  }
  if (!nsizes) sizes[nsizes++] = 1L << 20, sizes[nsizes++] = 16L << 20;
  if (!cg_get_config("CG_THREADS")) cg_set_config("CG_THREADS", "2");
  int nthreads = atoi(cg_get_config("CG_THREADS"));
  if (nthreads < 1 || nthreads > MAXT) {
    fprintf(stderr, "CG_THREADS must be 1..%d for this benchmark\n", MAXT);
    return 1;
  }
  printf("cgrad elementwise benchmark, CG_THREADS=%d (plain C baselines on 1 and %d threads)\n", nthreads, nthreads);

  /* ---- per-call overhead: 1K elements ---- */
  {
    long n = 1024;
    float *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4), *c = xmalloc((size_t)n * 4), *o = xmalloc((size_t)n * 4);
    for (long i = 0; i < n; i++) a[i] = (float)i / n - 0.5f, b[i] = 1.5f - (float)i / n, c[i] = 0.25f;
    int64_t shp[1] = {n};
    cg_tensor *ta = cg_from_data(a, CG_FLOAT32, shp, 1), *tb = cg_from_data(b, CG_FLOAT32, shp, 1),
              *tc = cg_from_data(c, CG_FLOAT32, shp, 1);
    if (!ta || !tb || !tc || cg_realize(ta) || cg_realize(tb) || cg_realize(tc)) die_cg("creating inputs");
    printf("\nper-call overhead, n = 1024 (median of 2001 calls after 50 warm-up)\n");
    printf("  %-20s %12s %12s %12s %14s\n", "expr", "cgrad us", "build us", "realize us", "C -O2 1t us");
    for (int k = K_E1; k <= K_E2; k++) {
      job j = {k, 0, o, a, b, c, n};
      double tbld, t = time_cg(k, ta, tb, tc, 50, 2001, &tbld);
      double tc1 = time_c(&j, 1, 50, 2001);
      printf("  %-20s %12.2f %12.2f %12.2f %14.3f\n", kname[k], 1e6 * t, 1e6 * tbld, 1e6 * (t - tbld), 1e6 * tc1);
    }
    cg_free(ta), cg_free(tb), cg_free(tc);
    free(a), free(b), free(c), free(o);
  }

  /* ---- throughput ---- */
  printf("\nthroughput: GB/s counting bytes read + written once (16 B/elem for E1, E2; 12 B/elem for\n"
         "the triad); median ms of the timed runs after 3 warm-up runs; ratio = cgrad GB/s / this row's\n");
  printf("  %-6s %-20s %-16s %9s %9s %9s\n", "n", "expr", "impl", "ms", "GB/s", "ratio");
  for (int s = 0; s < nsizes; s++) {
    long n = sizes[s];
    int warm = 3, runs = n >= (8L << 20) ? 11 : 31;
    float *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4), *c = xmalloc((size_t)n * 4), *o = xmalloc((size_t)n * 4),
          *tr = xmalloc((size_t)n * 4);
    srand(12345);
    for (long i = 0; i < n; i++) {
      a[i] = (float)rand() / RAND_MAX * 2 - 1;
      b[i] = (float)rand() / RAND_MAX * 2 - 1;
      c[i] = (float)rand() / RAND_MAX * 2 - 1;
    }
    memset(o, 0, (size_t)n * 4), memset(tr, 0, (size_t)n * 4);
    int64_t shp[1] = {n};
    cg_tensor *ta = cg_from_data(a, CG_FLOAT32, shp, 1), *tb = cg_from_data(b, CG_FLOAT32, shp, 1),
              *tc = cg_from_data(c, CG_FLOAT32, shp, 1);
    if (!ta || !tb || !tc || cg_realize(ta) || cg_realize(tb) || cg_realize(tc)) die_cg("creating inputs");
    char nm[32];
    if (n % (1L << 20) == 0) snprintf(nm, sizeof nm, "%ldM", n >> 20);
    else if (n % 1024 == 0) snprintf(nm, sizeof nm, "%ldK", n >> 10);
    else snprintf(nm, sizeof nm, "%ld", n);

    /* correctness first (the -O2 loop on one thread is the reference) */
    double diff[2];
    for (int k = K_E1; k <= K_E2; k++) {
      job j = {k, 0, o, a, b, c, n};
      diff[k] = check(k, ta, tb, tc, &j, n);
    }
    /* cgrad (no baseline threads alive) */
    double tcg[2];
    for (int k = K_E1; k <= K_E2; k++) tcg[k] = time_cg(k, ta, tb, tc, warm, runs, NULL);
    /* plain C: [kind][o3][threads>1] */
    double tc_[3][2][2];
    pool_start(nthreads);
    for (int k = K_E1; k <= K_TRIAD; k++)
      for (int o3 = 0; o3 < 2; o3++) {
        job j = {k, o3, k == K_TRIAD ? tr : o, a, b, c, n};
        tc_[k][o3][0] = time_c(&j, 1, warm, runs);
        tc_[k][o3][1] = time_c(&j, nthreads, warm, runs);
      }
    pool_stop();
    for (int k = K_E1; k <= K_TRIAD; k++) {
      double bytes = (k == K_TRIAD ? 12.0 : 16.0) * n, gcg = k == K_TRIAD ? 0 : bytes / tcg[k] * 1e-9;
      if (k != K_TRIAD) {
        char what[64];
        snprintf(what, sizeof what, "cgrad %dt", nthreads);
        printf("  %-6s %-20s %-16s %9.3f %9.2f %9s   max|diff| vs C %.3g\n", nm, kname[k], what, 1e3 * tcg[k], gcg, "", diff[k]);
      }
      /* the triad rows compare cgrad's E1 GB/s (the same kind of streaming kernel) */
      double gref = k == K_TRIAD ? 16.0 * n / tcg[K_E1] * 1e-9 : gcg;
      for (int o3 = 0; o3 < 2; o3++)
        for (int mt = 0; mt < 2; mt++) {
          char what[64];
          snprintf(what, sizeof what, "C %s %dt", o3 ? "-O3" : "-O2", mt ? nthreads : 1);
          double t = tc_[k][o3][mt], g = bytes / t * 1e-9;
          printf("  %-6s %-20s %-16s %9.3f %9.2f %9.2f\n", nm, kname[k], what, 1e3 * t, g, gref / g);
        }
    }
    cg_free(ta), cg_free(tb), cg_free(tc);
    free(a), free(b), free(c), free(o), free(tr);
  }
  printf("(triad rows: ratio = cgrad a*b+c GB/s / triad GB/s)\n");
  cg_stats st = cg_get_stats();
  printf("\ncgrad stats: kernels_run %llu, compiled %llu, from disk cache %llu, schedules %llu\n",
         (unsigned long long)st.kernels_run, (unsigned long long)st.kernels_compiled,
         (unsigned long long)st.kernels_cached, (unsigned long long)st.schedules);
  return 0;
}
