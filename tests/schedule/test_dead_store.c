/* A realize point whose only reader computes it inside its own kernel (schedule.c's
 * merging) and that no one asked for is not stored: y = contiguous(exp(a)), z = y * 2 - a.
 *   - z alone: one kernel, one STORE (y computed inline, never written);
 *   - y and z asked for: one kernel, two STOREs;
 *   - z and sum(y): y is read by a second kernel, so it is stored.
 * Values against plain C (float64) each time; fresh random inputs. */
#include "cgrad.h"
#include "check.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include <math.h>
#include <stdlib.h>
#include <time.h>

enum { R = 37, C = 53 };
static uint64_t rs;
static float frand(void) {
  rs = rs * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rs >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

/* STOREs in each kernel of the schedule of outs: stores[k], the count returned */
static int schedule_stores(cg_tensor **outs, int n, int *stores) {
  uop *u[4];
  for (int i = 0; i < n; i++) u[i] = outs[i]->u;
  uop_pool_push();
  schedule s;
  int nk = -1;
  if (sched_build(u, n, &s)) {
    nk = s.n;
    for (int k = 0; k < s.n && k < 8; k++) stores[k] = (int)s.k[k].ast->nsrc; /* SINK of STOREs */
    sched_free(&s);
  }
  uop_pool_pop();
  return nk;
}

static bool near_t(cg_tensor *t, const double *want, int64_t n, const char *what) {
  float *got = malloc(sizeof(float) * (size_t)n);
  bool ok = got && cg_read(t, CG_FLOAT32, got, sizeof(float) * (size_t)n) == CG_OK;
  CHECK(ok, "%s: read: %s", what, cg_last_error());
  int64_t bad = -1;
  for (int64_t i = 0; ok && i < n && bad < 0; i++)
    if (!(fabs(got[i] - want[i]) <= 1e-5 * (1 + fabs(want[i])))) bad = i;
  CHECK(ok && bad < 0, "%s: element %lld is %g, expected %g", what, (long long)bad, bad < 0 || !got ? 0.0 : got[bad], bad < 0 ? 0.0 : want[bad]);
  free(got);
  return ok && bad < 0;
}

int main(void) {
  uint64_t seed = (uint64_t)time(NULL);
  if (getenv("CG_TEST_SEED")) seed = strtoull(getenv("CG_TEST_SEED"), NULL, 10);
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)seed);
  rs = seed;
  static float a[R * C];
  static double ry[R * C], rz[R * C], rsum[1];
  for (int i = 0; i < R * C; i++) a[i] = frand();
  rsum[0] = 0;
  for (int i = 0; i < R * C; i++) ry[i] = exp((double)a[i]), rz[i] = ry[i] * 2 - a[i], rsum[0] += ry[i];
  for (int c = 0; c < 3; c++) {
    cg_scope_begin();
    cg_tensor *ta = cg_from_data(a, CG_FLOAT32, (int64_t[]){R, C}, 2);
    cg_tensor *y = cg_contiguous(cg_exp(ta)), *z = cg_sub(cg_mul(y, cg_scalar(2)), ta);
    cg_tensor *sum = cg_sum(y, NULL, 0, false);
    cg_tensor *outs[2] = {z, c == 0 ? NULL : c == 1 ? y : sum};
    int n = c == 0 ? 1 : 2, st[8] = {0};
    int nk = schedule_stores(outs, n, st);
    const char *what = c == 0 ? "z alone" : c == 1 ? "y and z" : "z and sum(y)";
    if (c == 0) CHECK(nk == 1 && st[0] == 1, "%s: %d kernels, the first with %d stores (expected 1 kernel, 1 store: y not written)", what, nk, st[0]);
    if (c == 1) CHECK(nk == 1 && st[0] == 2, "%s: %d kernels, the first with %d stores (expected 1 kernel storing both)", what, nk, st[0]);
    if (c == 2) {
      int total = 0;
      for (int k = 0; k < nk && k < 8; k++) total += st[k];
      CHECK(nk >= 2 && total == 3, "%s: %d kernels, %d stores in all (expected y stored for the sum: 3)", what, nk, total);
    }
    CHECK(cg_realize_many(outs, n) == CG_OK, "%s: realize: %s", what, cg_last_error());
    near_t(z, rz, R * C, what);
    if (c == 1) near_t(y, ry, R * C, "y, asked for");
    if (c == 2) near_t(sum, rsum, 1, "sum(y)");
    cg_scope_end();
  }
  return test_summary();
}
