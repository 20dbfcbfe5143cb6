/* The 16-bit autocast linears' tests (test_linear_bf16, test_linear_f16) share this: fresh
 * random inputs (x in [-2, 2], w in [-0.5, 0.5], b and the output gradient g in [-1, 1]),
 * running a layer and its backward, and the float64 reference in plain C of
 *   y = r(x) @ r(w)^T + b,  dx = r(g) @ r(w),  dw = r(g)^T @ r(x),  db = sum of g over rows
 * for the layer's rounding r, with each element's sum of |terms| (the scale of float32
 * summation's error). Arrays are static: N rows up to L16_N, in and out up to L16_KM. */
#ifndef CG_TEST_LINEAR16_CHECK_H
#define CG_TEST_LINEAR16_CHECK_H
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { L16_N = 80, L16_KM = 80 };

static uint64_t rs;
/* a fresh seed each run, printed; CG_TEST_SEED replays one */
static void l16_seed(void) {
  const char *seed = getenv("CG_TEST_SEED");
  rs = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  printf("seed %llu (CG_TEST_SEED replays it)\n", (unsigned long long)rs);
  rs = rs * 2654435761ull + 1;
}
static double unif(double lo, double hi) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return lo + (hi - lo) * (double)(rs >> 11) * 0x1p-53;
}

static float lx[L16_N * L16_KM], lw[L16_KM * L16_KM], lb[L16_KM], lg[L16_N * L16_KM]; /* inputs */
static float yo[L16_N * L16_KM], dx[L16_N * L16_KM], dw[L16_KM * L16_KM], db[L16_KM]; /* the layer's results */
static double ry[L16_N * L16_KM], my[L16_N * L16_KM], rdx[L16_N * L16_KM], mdx[L16_N * L16_KM], rdw[L16_KM * L16_KM], mdw[L16_KM * L16_KM],
    rdb[L16_KM], mdb[L16_KM]; /* the reference and its sums of |terms| */

/* x (B, T, K) with B = 2, T = N / 2, w (M, K), b (M,), g (B, T, M): the layer's y and the
 * gradients of x, w and b read into yo, dx, dw, db; false (and a failed check) if any step
 * failed. */
static bool l16_run(cg_tensor *(*layer)(cg_tensor *x, cg_tensor *w, cg_tensor *b), int N, int K, int M) {
  for (int i = 0; i < N * K; i++) lx[i] = (float)unif(-2, 2);
  for (int i = 0; i < M * K; i++) lw[i] = (float)unif(-0.5, 0.5);
  for (int i = 0; i < M; i++) lb[i] = (float)unif(-1, 1);
  for (int i = 0; i < N * M; i++) lg[i] = (float)unif(-1, 1);
  int64_t B = 2, T = N / 2;
  cg_scope_begin();
  cg_tensor *tx = cg_from_data(lx, CG_FLOAT32, (int64_t[]){B, T, K}, 3), *tw = cg_from_data(lw, CG_FLOAT32, (int64_t[]){M, K}, 2);
  cg_tensor *tb = cg_from_data(lb, CG_FLOAT32, (int64_t[]){M}, 1);
  cg_set_requires_grad(tx, true), cg_set_requires_grad(tw, true), cg_set_requires_grad(tb, true);
  cg_tensor *y = layer(tx, tw, tb);
  CHECK(y && cg_ndim(y) == 3 && cg_shape(y)[0] == B && cg_shape(y)[1] == T && cg_shape(y)[2] == M && cg_dtype_of(y) == CG_FLOAT32, "the layer: %s",
        cg_last_error());
  cg_tensor *gt = cg_from_data(lg, CG_FLOAT32, (int64_t[]){B, T, M}, 3);
  CHECK(y && cg_backward_with(y, gt) == CG_OK, "backward: %s", cg_last_error());
  size_t f = sizeof(float);
  bool rd = y && cg_read(y, CG_FLOAT32, yo, f * N * M) == CG_OK && cg_read(cg_grad(tx), CG_FLOAT32, dx, f * N * K) == CG_OK &&
            cg_read(cg_grad(tw), CG_FLOAT32, dw, f * M * K) == CG_OK && cg_read(cg_grad(tb), CG_FLOAT32, db, f * M) == CG_OK;
  CHECK(rd, "reading: %s", cg_last_error());
  cg_scope_end();
  return rd;
}

/* the float64 reference of the last l16_run's inputs, r rounding to the 16-bit type */
static void l16_reference(double (*r)(double), int N, int K, int M) {
  memset(rdx, 0, sizeof rdx), memset(mdx, 0, sizeof mdx), memset(rdw, 0, sizeof rdw), memset(mdw, 0, sizeof mdw);
  memset(rdb, 0, sizeof rdb), memset(mdb, 0, sizeof mdb);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < M; j++) {
      double s = 0, m = 0, gg = r(lg[i * M + j]);
      for (int k = 0; k < K; k++) {
        double p = r(lx[i * K + k]) * r(lw[j * K + k]);
        s += p, m += fabs(p);
        double gx = gg * r(lw[j * K + k]), gw = gg * r(lx[i * K + k]);
        rdx[i * K + k] += gx, mdx[i * K + k] += fabs(gx), rdw[j * K + k] += gw, mdw[j * K + k] += fabs(gw);
      }
      ry[i * M + j] = s + lb[j], my[i * M + j] = m;
      rdb[j] += lg[i * M + j], mdb[j] += fabs(lg[i * M + j]);
    }
}

/* got within 1e-5 of each element's sum of |terms| (+ extra) of the reference */
static bool within(const char *what, const float *got, const double *ref, const double *mag, int n, double extra) {
  for (int i = 0; i < n; i++)
    if (!(fabs(got[i] - ref[i]) <= 1e-5 * mag[i] + extra)) {
      CHECK(0, "%s[%d] = %.9g, float64 reference %.9g (sum of |terms| %.4g)", what, i, got[i], ref[i], mag[i]);
      return false;
    }
  CHECK(1, "");
  return true;
}
#endif
