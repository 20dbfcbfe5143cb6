/* A graph whose nodes are shared many times over is scheduled in time linear in its size:
 * x doubled 60 times (y = y + y) has 2^60 paths from the output to x. The scheduler's
 * walk once went down every path (found by the API fuzz harness: a 24-op input took over a
 * minute), so this test would hang, and CTest's timeout fail it, if that came back. The
 * value is checked exactly (float64: powers of two), and so is the kernel count (one). Also
 * a shared subgraph feeding a reduction both directly and through a broadcast. */
#include "cgrad.h"
#include "check.h"
#include <math.h>

int main(void) {
  uint64_t seed = (uint64_t)test_env_long("SEED", 12345);
  double base = 1.0 + (double)(seed % 7); /* a small integer: every doubling exact */
  float x0[3] = {(float)base, (float)-base, 0.5f};
  int64_t n = 3;
  cg_scope_begin();
  cg_tensor *y = cg_from_data(x0, CG_FLOAT32, &n, 1);
  for (int i = 0; i < 60; i++) y = cg_add(y, y);
  uint64_t k0 = cg_get_stats().kernels_run;
  float out[3];
  CHECK(cg_read(y, CG_FLOAT32, out, sizeof out) == CG_OK, "%s", cg_last_error());
  CHECK(cg_get_stats().kernels_run - k0 == 1, "%llu kernels", (unsigned long long)(cg_get_stats().kernels_run - k0));
  for (int i = 0; i < 3; i++) CHECK((double)out[i] == ldexp((double)x0[i], 60), "y[%d] = %g, want %g", i, out[i], ldexp((double)x0[i], 60));

  /* z = sum over axis 0 of (s (4,3) + broadcast of s's column sums), s = doubled 40 times */
  float a[12];
  for (int i = 0; i < 12; i++) a[i] = (float)(i % 5) - 2;
  int64_t sh[2] = {4, 3};
  cg_tensor *s = cg_from_data(a, CG_FLOAT32, sh, 2);
  for (int i = 0; i < 40; i++) s = cg_add(s, s);
  int ax = 0;
  cg_tensor *z = cg_sum(cg_add(s, cg_sum(s, &ax, 1, true)), &ax, 1, false);
  float zo[3];
  CHECK(cg_read(z, CG_FLOAT32, zo, sizeof zo) == CG_OK, "%s", cg_last_error());
  for (int j = 0; j < 3; j++) {
    double col = 0;
    for (int i = 0; i < 4; i++) col += ldexp((double)a[i * 3 + j], 40);
    CHECK((double)zo[j] == 5 * col, "z[%d] = %g, want %g", j, zo[j], 5 * col);
  }
  cg_scope_end();
  return test_summary();
}
