/* fp8 linear (delayed scaling) against a float64 reference in plain C, on fresh random
 * inputs, over three steps of which the second has inputs 15x larger than the scale was set
 * for (they saturate at 448 / scale, as Transformer Engine's do): the output within the
 * rounding bound of e4m3 against the reference of the saturated inputs (|q(v) - v| <= 2^-4 |v| + 2^-10 /
 * scale per operand, propagated through the dot products), the gradients within their
 * stated bound (e5m2 on the output gradient: 2^-3 relative; Frobenius relative error
 * <= 0.15), the bias gradient exact; the delayed scales equal fmax / amax of the previous
 * steps' history; bad input. */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

static uint64_t rs = 0x243F6A8885A308D3ull;
static double unif(double lo, double hi) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return lo + (hi - lo) * (double)(rs >> 11) * 0x1p-53;
}

enum { N = 6, K = 40, M = 5 };

static double frob_rel(const float *got, const double *want, int n) {
  double e = 0, w = 0;
  for (int i = 0; i < n; i++) e += (got[i] - want[i]) * (got[i] - want[i]), w += want[i] * want[i];
  return sqrt(e / (w > 0 ? w : 1));
}

int main(void) {
  const char *seed = getenv("CG_TEST_SEED");
  if (seed && *seed) rs = strtoull(seed, NULL, 10) * 2654435761ull + 1;
  cg_fp8_scaling *s = cg_fp8_scaling_new(4, 0);
  CHECK(s && cg_fp8_scale(s, 0) == 1 && cg_fp8_scale(s, 2) == 1, "new scaling: scales 1");
  float x[N * K], w[M * K], b[M], gw[N * M];
  double amax_hist[3] = {0, 0, 0};
  for (int step = 0; step < 3; step++) {
    double xr = step == 1 ? 30 : 2; /* step 1: larger inputs, so the history matters */
    for (int i = 0; i < N * K; i++) x[i] = (float)unif(-xr, xr);
    for (int i = 0; i < M * K; i++) w[i] = (float)unif(-0.3, 0.3);
    for (int i = 0; i < M; i++) b[i] = (float)unif(-1, 1);
    for (int i = 0; i < N * M; i++) gw[i] = (float)unif(-1e-3, 1e-3); /* small gradients: the scale must lift them */
    double sx = cg_fp8_scale(s, 0), sw = cg_fp8_scale(s, 1);
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){2, N / 2, K}, 3), *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){M, K}, 2);
    cg_tensor *tb = cg_from_data(b, CG_FLOAT32, (int64_t[]){M}, 1);
    cg_set_requires_grad(tx, true), cg_set_requires_grad(tw, true), cg_set_requires_grad(tb, true);
    cg_tensor *y = cg_linear_fp8(s, tx, tw, tb);
    CHECK(y && cg_ndim(y) == 3 && cg_shape(y)[2] == M, "linear_fp8: %s", cg_last_error());
    cg_tensor *gt = cg_from_data(gw, CG_FLOAT32, (int64_t[]){2, N / 2, M}, 3);
    CHECK(y && cg_backward_with(y, gt) == CG_OK, "backward: %s", cg_last_error());
    float yo[N * M], dx[N * K], dw[M * K], db[M];
    bool rd = y && cg_read(y, CG_FLOAT32, yo, sizeof yo) == CG_OK && cg_read(cg_grad(tx), CG_FLOAT32, dx, sizeof dx) == CG_OK &&
              cg_read(cg_grad(tw), CG_FLOAT32, dw, sizeof dw) == CG_OK && cg_read(cg_grad(tb), CG_FLOAT32, db, sizeof db) == CG_OK;
    CHECK(rd, "reading: %s", cg_last_error());
    cg_scope_end();
    if (!rd) break;
    /* the output: within the propagated rounding bound of both operands */
    int bad = 0;
    double ex_abs = 1.0 / 1024 / sx, ew_abs = 1.0 / 1024 / sw, worst = 0;
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) {
        double ref = b[j], bound = 0;
        for (int k = 0; k < K; k++) {
          double xv = fmax(-448 / sx, fmin(448 / sx, x[i * K + k])), wv = fmax(-448 / sw, fmin(448 / sw, w[j * K + k]));
          double ex = fabs(xv) / 16 + ex_abs, ew = fabs(wv) / 16 + ew_abs;
          ref += xv * wv, bound += ex * fabs(wv) + fabs(xv) * ew + ex * ew;
        }
        bound += 1e-5 * (fabs(ref) + 1); /* float32 accumulation */
        double e = fabs(yo[i * M + j] - ref);
        bad += e > bound;
        if (e / bound > worst) worst = e / bound;
      }
    printf("step %d: scales x %g, w %g, grad %g; output error at most %.2f of its bound\n", step, sx, sw, cg_fp8_scale(s, 2), worst);
    CHECK(bad == 0, "step %d: %d outputs outside the e4m3 bound", step, bad);
    /* gradients against the exact float64 ones */
    double rdx[N * K] = {0}, rdw[M * K] = {0};
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++)
        for (int k = 0; k < K; k++) { /* against the saturated operands, as the output */
          double xv = fmax(-448 / sx, fmin(448 / sx, x[i * K + k])), wv = fmax(-448 / sw, fmin(448 / sw, w[j * K + k]));
          rdx[i * K + k] += gw[i * M + j] * wv, rdw[j * K + k] += gw[i * M + j] * xv;
        }
    double ex = frob_rel(dx, rdx, N * K), ew = frob_rel(dw, rdw, M * K);
    printf("step %d: gradient relative errors dx %.4f, dw %.4f\n", step, ex, ew);
    CHECK(ex <= 0.15 && ew <= 0.15, "step %d: gradient errors dx %.3f dw %.3f (bound 0.15)", step, ex, ew);
    bool bias_ok = true;
    for (int j = 0; j < M; j++) {
      double r = 0;
      for (int i = 0; i < N; i++) r += gw[i * M + j];
      bias_ok &= fabs(db[j] - r) <= 1e-6;
    }
    CHECK(bias_ok, "step %d: the bias gradient is exact", step);
    /* delayed scaling: the next scales come from the amaxes of the history so far */
    double ax = 0, aw = 0, ag = 0;
    for (int i = 0; i < N * K; i++) ax = fmax(ax, fabs(x[i]));
    for (int i = 0; i < M * K; i++) aw = fmax(aw, fabs(w[i]));
    for (int i = 0; i < N * M; i++) ag = fmax(ag, fabs(gw[i]));
    amax_hist[0] = fmax(amax_hist[0], ax), amax_hist[1] = fmax(amax_hist[1], aw), amax_hist[2] = fmax(amax_hist[2], ag);
    CHECK(cg_fp8_scaling_update(s) == CG_OK, "update");
    CHECK(fabs(cg_fp8_scale(s, 0) - 448 / amax_hist[0]) <= 1e-6 * cg_fp8_scale(s, 0) &&
              fabs(cg_fp8_scale(s, 1) - 448 / amax_hist[1]) <= 1e-6 * cg_fp8_scale(s, 1) &&
              fabs(cg_fp8_scale(s, 2) - 57344 / amax_hist[2]) <= 1e-6 * cg_fp8_scale(s, 2),
          "step %d: scales %g %g %g, want %g %g %g", step, cg_fp8_scale(s, 0), cg_fp8_scale(s, 1), cg_fp8_scale(s, 2), 448 / amax_hist[0],
          448 / amax_hist[1], 57344 / amax_hist[2]);
  }
  cg_scope_begin();
  cg_tensor *a = cg_zeros(CG_FLOAT32, (int64_t[]){2, 3}, 2), *bw = cg_zeros(CG_FLOAT32, (int64_t[]){4, 5}, 2);
  CHECK(!cg_linear_fp8(s, a, bw, NULL) && strstr(cg_last_error(), "w (out, in)"), "shape mismatch: %s", cg_last_error());
  CHECK(!cg_linear_fp8(NULL, a, bw, NULL) && strstr(cg_last_error(), "scaling is NULL"), "NULL scaling");
  CHECK(!cg_fp8_scaling_new(0, 0), "history 0 must fail");
  cg_scope_end();
  cg_fp8_scaling_free(s);
  return test_summary();
}
