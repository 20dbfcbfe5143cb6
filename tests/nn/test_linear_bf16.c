/* bf16 autocast linear (cg_linear_bf16) against float64 references in plain C, on fresh
 * random inputs (seed printed; CG_TEST_SEED replays one):
 *   y  = bf16(x) @ bf16(w)^T + b
 *   dx = bf16(g) @ bf16(w),  dw = bf16(g)^T @ bf16(x),  db = sum of g over rows
 * bf16() rounds to nearest even (the library's cg_f32_to_bf16); products of two bf16 are
 * exact in float32, so the only error is float32 summation: each element within
 *   1e-5 * sum |terms| (+ 1e-6 for y's bias add)
 * (K <= 80 terms: the worst case K * 2^-24 is 5e-6). A wrong layout or a missed rounding
 * is off by O(2^-8) of the terms. Runs on the CPU's bf16 unit where CPUID has one (the TC
 * opt) and on float32 FMAs with CG_CPU_FEATURES=-avx512bf16: both are checked. Bad input:
 * a message, no tensor. */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static uint64_t rs;
static double unif(double lo, double hi) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return lo + (hi - lo) * (double)(rs >> 11) * 0x1p-53;
}
static double r16(float x) { return cg_bf16_to_f32(cg_f32_to_bf16(x)); }

enum { B = 2, T = 9, N = B * T, KM = 80 }; /* K (in) and M (out) up to KM: out < in and out > in (dw's two layouts) */

static bool within(const char *what, const float *got, const double *ref, const double *mag, int n, double extra) {
  for (int i = 0; i < n; i++)
    if (!(fabs(got[i] - ref[i]) <= 1e-5 * mag[i] + extra)) {
      CHECK(0, "%s[%d] = %.9g, float64 reference %.9g (sum of |terms| %.4g)", what, i, got[i], ref[i], mag[i]);
      return false;
    }
  CHECK(1, "");
  return true;
}

/* given: through cg_linear_bf16_x16 with x's bf16 copy realized by the caller (the same
 * values, and x's gradient through x's graph) */
static void run(const char *features, int K, int M, bool given) {
  cg_set_config("CG_CPU_FEATURES", features);
  static float x[N * KM], w[KM * KM], b[KM], g[N * KM];
  for (int i = 0; i < N * K; i++) x[i] = (float)unif(-2, 2);
  for (int i = 0; i < M * K; i++) w[i] = (float)unif(-0.5, 0.5);
  for (int i = 0; i < M; i++) b[i] = (float)unif(-1, 1);
  for (int i = 0; i < N * M; i++) g[i] = (float)unif(-1, 1);
  cg_scope_begin();
  cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){B, T, K}, 3), *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){M, K}, 2);
  cg_tensor *tb = cg_from_data(b, CG_FLOAT32, (int64_t[]){M}, 1);
  cg_set_requires_grad(tx, true), cg_set_requires_grad(tw, true), cg_set_requires_grad(tb, true);
  cg_tensor *x16 = given ? cg_cast(tx, CG_BFLOAT16) : NULL;
  CHECK(!given || (x16 && cg_realize(x16) == CG_OK), "x16: %s", cg_last_error());
  cg_tensor *y = given ? cg_linear_bf16_x16(tx, x16, tw, tb) : cg_linear_bf16(tx, tw, tb);
  CHECK(y && cg_ndim(y) == 3 && cg_shape(y)[0] == B && cg_shape(y)[1] == T && cg_shape(y)[2] == M, "linear_bf16: %s", cg_last_error());
  cg_tensor *gt = cg_from_data(g, CG_FLOAT32, (int64_t[]){B, T, M}, 3);
  CHECK(y && cg_backward_with(y, gt) == CG_OK, "backward: %s", cg_last_error());
  static float yo[N * KM], dx[N * KM], dw[KM * KM], db[KM];
  size_t f = sizeof(float);
  bool rd = y && cg_read(y, CG_FLOAT32, yo, f * N * M) == CG_OK && cg_read(cg_grad(tx), CG_FLOAT32, dx, f * N * K) == CG_OK &&
            cg_read(cg_grad(tw), CG_FLOAT32, dw, f * M * K) == CG_OK && cg_read(cg_grad(tb), CG_FLOAT32, db, f * M) == CG_OK;
  CHECK(rd, "reading: %s", cg_last_error());
  cg_scope_end();
  if (!rd) return;
  static double ry[N * KM], my[N * KM], rdx[N * KM], mdx[N * KM], rdw[KM * KM], mdw[KM * KM], rdb[KM], mdb[KM];
  memset(rdx, 0, sizeof rdx), memset(mdx, 0, sizeof mdx), memset(rdw, 0, sizeof rdw), memset(mdw, 0, sizeof mdw);
  memset(rdb, 0, sizeof rdb), memset(mdb, 0, sizeof mdb);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < M; j++) {
      double s = 0, m = 0;
      for (int k = 0; k < K; k++) {
        double p = r16(x[i * K + k]) * r16(w[j * K + k]);
        s += p, m += fabs(p);
        double gx = r16(g[i * M + j]) * r16(w[j * K + k]), gw = r16(g[i * M + j]) * r16(x[i * K + k]);
        rdx[i * K + k] += gx, mdx[i * K + k] += fabs(gx), rdw[j * K + k] += gw, mdw[j * K + k] += fabs(gw);
      }
      ry[i * M + j] = s + b[j], my[i * M + j] = m;
      rdb[j] += g[i * M + j], mdb[j] += fabs(g[i * M + j]);
    }
  char what[64];
  const char *unit = features[0] ? features : "bf16 unit if any";
  snprintf(what, sizeof what, "y (%s, in %d, out %d%s)", unit, K, M, given ? ", x16 given" : "");
  within(what, yo, ry, my, N * M, 1e-6);
  snprintf(what, sizeof what, "dx (%s, in %d, out %d)", unit, K, M);
  within(what, dx, rdx, mdx, N * K, 0);
  snprintf(what, sizeof what, "dw (%s, in %d, out %d)", unit, K, M);
  within(what, dw, rdw, mdw, M * K, 0);
  within("db", db, rdb, mdb, M, 0);
}

int main(void) {
  const char *seed = getenv("CG_TEST_SEED");
  rs = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  printf("seed %llu (CG_TEST_SEED replays it)\n", (unsigned long long)rs);
  rs = rs * 2654435761ull + 1;
  run("", 80, 48, false);
  run("-avx512bf16,-amx", 80, 48, false);
  run("", 48, 80, false); /* out > in */
  run("-avx512bf16,-amx", 48, 80, false);
  run("", 80, 48, true);
  cg_set_config("CG_CPU_FEATURES", "");
  cg_scope_begin();
  cg_tensor *a = cg_zeros(CG_FLOAT32, (int64_t[]){2, 3}, 2), *bw = cg_zeros(CG_FLOAT32, (int64_t[]){4, 5}, 2);
  CHECK(!cg_linear_bf16(a, bw, NULL) && strstr(cg_last_error(), "w (out, in)"), "shape mismatch: %s", cg_last_error());
  CHECK(!cg_linear_bf16(NULL, bw, NULL) && strstr(cg_last_error(), "x is NULL"), "NULL x: %s", cg_last_error());
  cg_tensor *w5 = cg_zeros(CG_FLOAT32, (int64_t[]){4, 3}, 2);
  CHECK(!cg_linear_bf16_x16(a, a, w5, NULL) && strstr(cg_last_error(), "x16 of bfloat16"), "x16 float32: %s", cg_last_error());
  CHECK(!cg_linear_bf16_x16(a, cg_zeros(CG_BFLOAT16, (int64_t[]){3, 2}, 2), w5, NULL) && strstr(cg_last_error(), "x's shape"),
        "x16 of another shape: %s", cg_last_error());
  CHECK(!cg_linear_bf16_x16(a, NULL, w5, NULL) && strstr(cg_last_error(), "x16 is NULL"), "NULL x16: %s", cg_last_error());
  cg_scope_end();
  return test_summary();
}
