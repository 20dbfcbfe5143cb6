/* Transcendental-heavy elementwise kernels: cgrad's generated kernels (float32 EXP2 / LOG2
 * / SIN as the vector polynomials of renderer/vmath.c) against plain C loops over libm's
 * expf / logf / sinf / erff (-O2 -march=native, 1 thread) in the same process. Each case runs
 * on one 2048 x 1536 float32 tensor (a GPT MLP's activations) realized beforehand; the
 * figure is the median process CPU time of one realize (graph, schedule, lookup, launch,
 * kernel) over the timed runs, so a loaded machine changes it little. Run with
 * CG_THREADS=1 to compare one core with one core.
 *   usage: bench_vmath [runs]   (default 9) */
#include "bench_util.h"
#include <math.h>
#include <string.h>

#define N0 2048
#define N1 1536
#define NE (N0 * N1)

typedef cg_tensor *(*op_fn)(cg_tensor *);
static cg_tensor *gelu(cg_tensor *x) { return cg_gelu(x); }
static cg_tensor *sm(cg_tensor *x) { return cg_softmax(x, 1); }
static cg_tensor *ex(cg_tensor *x) { return cg_exp(x); }
static cg_tensor *lg(cg_tensor *x) { return cg_log(cg_abs(x)); }
static cg_tensor *sn(cg_tensor *x) { return cg_sin(cg_mul(x, cg_scalar(10))); }

/* the same in plain C: libm */
static void c_gelu(const float *x, float *y) {
  for (int i = 0; i < NE; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678f));
}
static void c_sm(const float *x, float *y) {
  for (int r = 0; r < N0; r++) {
    const float *a = x + (size_t)r * N1;
    float *b = y + (size_t)r * N1, m = -INFINITY, s = 0;
    for (int j = 0; j < N1; j++) m = a[j] > m ? a[j] : m;
    for (int j = 0; j < N1; j++) s += b[j] = expf(a[j] - m);
    for (int j = 0; j < N1; j++) b[j] /= s;
  }
}
static void c_ex(const float *x, float *y) {
  for (int i = 0; i < NE; i++) y[i] = expf(x[i]);
}
static void c_lg(const float *x, float *y) {
  for (int i = 0; i < NE; i++) y[i] = logf(fabsf(x[i]));
}
static void c_sn(const float *x, float *y) {
  for (int i = 0; i < NE; i++) y[i] = sinf(x[i] * 10);
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 9;
  if (runs < 1 || runs > 99) runs = 9;
  cg_manual_seed(1);
  int64_t sh[2] = {N0, N1};
  cg_tensor *x = cg_randn(CG_FLOAT32, sh, 2);
  if (!x || cg_realize(x)) die_cg("input");
  float *xs = malloc(sizeof(float) * NE), *ys = malloc(sizeof(float) * NE);
  if (!xs || !ys || cg_read(x, CG_FLOAT32, xs, sizeof(float) * NE)) die_cg("read");
  const struct {
    const char *name;
    op_fn f;
    void (*c)(const float *, float *);
  } cases[] = {{"gelu (erf)", gelu, c_gelu}, {"softmax rows", sm, c_sm}, {"exp", ex, c_ex}, {"log |x|", lg, c_lg}, {"sin 10x", sn, c_sn}};
  printf("load average: %s", "");
  FILE *la = fopen("/proc/loadavg", "r");
  char buf[128] = "?\n";
  if (la && fgets(buf, sizeof buf, la)) fputs(buf, stdout);
  else puts("?");
  if (la) fclose(la);
  printf("%-14s %12s %12s %8s   (median process CPU ms of %d runs, %d x %d float32, CG_THREADS=%s)\n", "case", "cgrad", "libm loop", "ratio", runs,
         N0, N1, getenv("CG_THREADS") ? getenv("CG_THREADS") : "default");
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double tc[99], tl[99];
    for (int r = -2; r < runs; r++) { /* two warm-up runs (compile, allocator) */
      cg_scope_begin();
      double t0 = cpu_now();
      cg_tensor *y = cases[c].f(x);
      if (!y || cg_realize(y)) die_cg(cases[c].name);
      double t1 = cpu_now();
      cg_scope_end();
      if (r >= 0) tc[r] = (t1 - t0) * 1e3;
    }
    for (int r = -1; r < runs; r++) {
      double t0 = cpu_now();
      cases[c].c(xs, ys);
      double t1 = cpu_now();
      if (r >= 0) tl[r] = (t1 - t0) * 1e3;
    }
    qsort(tc, (size_t)runs, sizeof(double), cmp_double);
    qsort(tl, (size_t)runs, sizeof(double), cmp_double);
    printf("%-14s %9.2f ms %9.2f ms %7.2fx\n", cases[c].name, tc[runs / 2], tl[runs / 2], tl[runs / 2] / tc[runs / 2]);
  }
  volatile float sink = ys[NE / 2];
  (void)sink;
  free(xs), free(ys);
  cg_free(x);
  return 0;
}
