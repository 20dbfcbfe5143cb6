/* Time to first result: one process that builds a 10-op expression on small tensors,
 * realizes it and prints the value, plus the kernel counters. bench/bench_startup.sh runs
 * it with a cold (fresh, empty CG_CACHE_DIR) and a warm (same dir again) kernel cache.
 *
 *   a, b, c, d: 16 x 16 float32 (fixed values)
 *   x = (a + b) * c - d                   ops 1-3   add, mul, sub
 *   e = exp(x)                            op 4
 *   p = e / sum(e, axis 1, keepdim)       ops 5-6   sum, div      (a softmax)
 *   q = relu(p - 0.05)                    ops 7-8   sub, relu
 *   y = sum(max(q, axis 0))               ops 9-10  max, sum
 *
 * Prints one line:
 *   result=<y> ref=<double-precision reference> ok=<0|1> kernels_run=.. kernels_compiled=..
 *   kernels_cached=.. compile_s=<seconds in the C compiler> first_result_ms=<main() to result>
 * Exits 1 when the result is wrong (relative difference over 1e-4) or cgrad failed.
 *
 *   build/bench_startup            (honours CG_CACHE_DIR, CG_THREADS, DEBUG, ...) */
#include "cgrad.h"
#include "runtime/device.h" /* rt_get_stats: seconds spent in the compiler */
#include <math.h>
#include <stdio.h>
#include <time.h>

enum { R = 16, C = 16 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
  double t0 = now();
  static float a[R * C], b[R * C], c[R * C], d[R * C];
  for (int i = 0; i < R * C; i++) {
    a[i] = (float)(i % 7) * 0.1f;
    b[i] = (float)(i % 5) * -0.05f;
    c[i] = 1.0f + (float)(i % 3) * 0.25f;
    d[i] = (float)(i % 11) * 0.02f;
  }
  /* the reference, in double */
  double e[R * C], ref = 0;
  for (int i = 0; i < R * C; i++) e[i] = exp(((double)a[i] + b[i]) * c[i] - d[i]);
  double colmax[C];
  for (int j = 0; j < C; j++) colmax[j] = -INFINITY;
  for (int i = 0; i < R; i++) {
    double s = 0;
    for (int j = 0; j < C; j++) s += e[i * C + j];
    for (int j = 0; j < C; j++) {
      double q = e[i * C + j] / s - 0.05;
      q = q > 0 ? q : 0;
      if (q > colmax[j]) colmax[j] = q;
    }
  }
  for (int j = 0; j < C; j++) ref += colmax[j];

  int64_t shp[2] = {R, C};
  cg_tensor *ta = cg_from_data(a, CG_FLOAT32, shp, 2), *tb = cg_from_data(b, CG_FLOAT32, shp, 2),
            *tc = cg_from_data(c, CG_FLOAT32, shp, 2), *td = cg_from_data(d, CG_FLOAT32, shp, 2);
  int ax1 = 1, ax0 = 0;
  cg_tensor *x = cg_sub(cg_mul(cg_add(ta, tb), tc), td);
  cg_tensor *ex = cg_exp(x);
  cg_tensor *p = cg_div(ex, cg_sum(ex, &ax1, 1, true));
  cg_tensor *q = cg_relu(cg_sub(p, cg_scalar(0.05)));
  cg_tensor *y = cg_sum(cg_max(q, &ax0, 1, false), NULL, 0, false);
  double v = y ? cg_item(y) : NAN;
  double t1 = now();
  if (!y || isnan(v)) {
    fprintf(stderr, "cgrad failed: %s\n", cg_last_error());
    return 1;
  }
  cg_stats st = cg_get_stats();
  int ok = fabs(v - ref) <= 1e-4 * fabs(ref);
  printf("result=%.7g ref=%.7g ok=%d kernels_run=%llu kernels_compiled=%llu kernels_cached=%llu compile_s=%.4f "
         "first_result_ms=%.3f\n",
         v, ref, ok, (unsigned long long)st.kernels_run, (unsigned long long)st.kernels_compiled,
         (unsigned long long)st.kernels_cached, rt_get_stats()->compile_seconds, 1e3 * (t1 - t0));
  return ok ? 0 : 1;
}
