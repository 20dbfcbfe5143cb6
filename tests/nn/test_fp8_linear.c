/* fp8 linear (delayed scaling) against float64 references in plain C, on fresh random
 * inputs, over 7 steps with history 4, of which step 1 has inputs 15x larger than the
 * scale was set for (they saturate at 448 / scale, as Transformer Engine's do) and drops
 * out of the history three steps later:
 *   - exact quantized math: y = Σ q4(x sx) q4(w sw) / (sx sw) + b, dx = Σ q5(g sg) q4(w sw)
 *     / (sg sw), dw = Σ q5(g sg) q4(x sx) / (sg sx) with q4, q5 the library's reference
 *     roundings (core/fpconv.c) of the float32 products x * sx (g * sg clamped to
 *     ±57344), in float64: the kernels differ only by float32 sums and the float32
 *     reciprocals of the scales, bound (K + 8) 2^-24 (Σ |terms| + |b|) per output;
 *   - the true float64 product of the (saturated) inputs: within the rounding bound of
 *     e4m3 (|q(v) - v| <= 2^-4 |v| + 2^-10 / scale per operand, propagated), the
 *     gradients within a Frobenius relative error of 0.15 (e5m2: 2^-3 per value);
 *   - the bias gradient exact (1e-6);
 *   - the scales on the device equal a host recomputation in float32 over the history
 *     window (fmax * (1 / max of the last 4 steps' amaxes): cg_div multiplies by the
 *     reciprocal), bit for bit;
 *   - margin 1 halves the scales; an all-zero input keeps scale 1; an inf in the gradient
 *     is not recorded (that scale stays) while the other two are;
 *   - a training loop (SGD, the fp8 update realized with it) under cg_jit equals the same
 *     steps run eagerly, bit for bit (weights, losses, scales);
 *   - bad input. */
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

enum { N = 6, K = 40, M = 5, H = 4, STEPS = 7 };

static double frob_rel(const float *got, const double *want, int n) {
  double e = 0, w = 0;
  for (int i = 0; i < n; i++) e += (got[i] - want[i]) * (got[i] - want[i]), w += want[i] * want[i];
  return sqrt(e / (w > 0 ? w : 1));
}
static double q4(float v, float s) { return cg_fp8e4m3_to_f32(cg_f32_to_fp8e4m3(v * s)); }
static double q5(float v, float s) {
  float t = v * s;
  t = t > 57344.0f ? 57344.0f : t < -57344.0f ? -57344.0f : t;
  return cg_fp8e5m2_to_f32(cg_f32_to_fp8e5m2(t));
}
static float amax(const float *v, int n) {
  float a = 0;
  for (int i = 0; i < n; i++) a = fmaxf(a, fabsf(v[i]));
  return a;
}

/* ---- the JIT check: a step of SGD on fp8 linears, its fp8 update in the same realize ---- */
typedef struct {
  cg_fp8_scaling *s;
  cg_tensor *w;
  cg_optimizer *opt;
} jctx;
static cg_status jit_step(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  jctx *c = user;
  (void)n_in, (void)n_out;
  cg_tensor *y = cg_linear_fp8(c->s, in[0], c->w, NULL);
  cg_tensor *loss = cg_mean(cg_mul(cg_sub(y, in[1]), cg_sub(y, in[1])), NULL, 0, false);
  cg_status st = loss ? cg_backward(loss) : cg_last_status();
  cg_tensor *const *po = NULL, *const *pf = NULL;
  int no = 0, nf = 0;
  if (st == CG_OK) st = cg_optimizer_step_lazy(c->opt, &po, &no);
  if (st == CG_OK) st = cg_fp8_scaling_update_lazy(c->s, &pf, &nf);
  cg_tensor *run[8];
  int nr = 0;
  run[nr++] = loss;
  for (int i = 0; st == CG_OK && i < no; i++) run[nr++] = po[i];
  for (int i = 0; st == CG_OK && i < nf; i++) run[nr++] = pf[i];
  if (st == CG_OK) st = cg_realize_many(run, nr);
  cg_optimizer_zero_grad(c->opt);
  out[0] = loss;
  return st;
}

static void jit_vs_eager(void) {
  enum { JN = 32, JK = 48, JM = 16, JSTEPS = 6 };
  static float w0[JM * JK], xs[JSTEPS][JN * JK], ts[JSTEPS][JN * JM];
  for (int i = 0; i < JM * JK; i++) w0[i] = (float)unif(-0.2, 0.2);
  for (int s = 0; s < JSTEPS; s++) {
    for (int i = 0; i < JN * JK; i++) xs[s][i] = (float)unif(-1, 1) * (s == 2 ? 8 : 1);
    for (int i = 0; i < JN * JM; i++) ts[s][i] = (float)unif(-1, 1);
  }
  float wf[2][JM * JK], loss[2][JSTEPS], sc[2][3];
  for (int mode = 0; mode < 2; mode++) { /* 0: eager, 1: cg_jit */
    jctx c = {cg_fp8_scaling_new(3, 0), cg_from_data(w0, CG_FLOAT32, (int64_t[]){JM, JK}, 2), NULL};
    cg_set_requires_grad(c.w, true);
    c.opt = cg_sgd(&c.w, 1, 0.05, 0, 0, 0, false);
    cg_jit *j = mode ? cg_jit_new(jit_step, 1, &c) : NULL;
    bool ok = c.s && c.opt && (!mode || j);
    for (int s = 0; ok && s < JSTEPS; s++) {
      cg_scope_begin();
      cg_tensor *in[2] = {cg_from_data(xs[s], CG_FLOAT32, (int64_t[]){JN, JK}, 2), cg_from_data(ts[s], CG_FLOAT32, (int64_t[]){JN, JM}, 2)}, *out[1] = {NULL};
      cg_status st = mode ? cg_jit_call(j, in, 2, out) : jit_step(in, 2, out, 1, &c);
      ok = st == CG_OK && cg_read(out[0], CG_FLOAT32, &loss[mode][s], sizeof(float)) == CG_OK;
      cg_scope_end();
    }
    ok = ok && cg_read(c.w, CG_FLOAT32, wf[mode], sizeof wf[mode]) == CG_OK;
    for (int i = 0; i < 3; i++) sc[mode][i] = (float)cg_fp8_scale(c.s, i);
    CHECK(ok, "%s fp8 training steps: %s", mode ? "jit" : "eager", cg_last_error());
    cg_jit_free(j), cg_optimizer_free(c.opt), cg_free(c.w), cg_fp8_scaling_free(c.s);
  }
  CHECK(!memcmp(loss[0], loss[1], sizeof loss[0]) && !memcmp(wf[0], wf[1], sizeof wf[0]) && !memcmp(sc[0], sc[1], sizeof sc[0]),
        "cg_jit and eager fp8 steps differ: last loss %.9g vs %.9g, scales %g %g %g vs %g %g %g", loss[0][JSTEPS - 1], loss[1][JSTEPS - 1], sc[0][0],
        sc[0][1], sc[0][2], sc[1][0], sc[1][1], sc[1][2]);
  CHECK(sc[0][0] != 1 && sc[0][2] != 1, "the JIT check's scales moved (%g, %g)", sc[0][0], sc[0][2]);
}

int main(void) {
  const char *seed = getenv("CG_TEST_SEED"); /* fresh inputs each run, the seed printed */
  uint64_t sd = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  printf("seed %llu (CG_TEST_SEED replays it)\n", (unsigned long long)sd);
  rs = sd * 2654435761ull + 1;
  cg_fp8_scaling *s = cg_fp8_scaling_new(H, 0), *s1 = cg_fp8_scaling_new(H, 1);
  CHECK(s && s1 && cg_fp8_scale(s, 0) == 1 && cg_fp8_scale(s, 2) == 1, "new scaling: scales 1");
  static float x[N * K], w[M * K], b[M], gw[N * M];
  float hist[3][STEPS] = {{0}};
  for (int step = 0; step < STEPS; step++) {
    double xr = step == 1 ? 30 : 2; /* step 1: larger inputs, so the history matters */
    for (int i = 0; i < N * K; i++) x[i] = (float)unif(-xr, xr);
    for (int i = 0; i < M * K; i++) w[i] = (float)unif(-0.3, 0.3);
    for (int i = 0; i < M; i++) b[i] = (float)unif(-1, 1);
    for (int i = 0; i < N * M; i++) gw[i] = (float)unif(-1e-3, 1e-3); /* small gradients: the scale must lift them */
    float sx = (float)cg_fp8_scale(s, 0), sw = (float)cg_fp8_scale(s, 1), sg = (float)cg_fp8_scale(s, 2);
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
    /* exact quantized math, in float64 */
    double ix = 1.0 / sx, iw = 1.0 / sw, ig = 1.0 / sg, worst = 0;
    int bad = 0;
    for (int i = 0; i < N; i++)
      for (int j = 0; j < M; j++) {
        double ref = 0, mag = 0;
        for (int k = 0; k < K; k++) {
          double t = q4(x[i * K + k], sx) * q4(w[j * K + k], sw);
          ref += t, mag += fabs(t);
        }
        ref = ref * ix * iw + b[j], mag = mag * ix * iw + fabs(b[j]);
        double e = fabs(yo[i * M + j] - ref), tol = (K + 8) * 0x1p-24 * mag;
        bad += !(e <= tol), worst = fmax(worst, e / tol);
      }
    for (int i = 0; i < N; i++)
      for (int k = 0; k < K; k++) {
        double ref = 0, mag = 0;
        for (int j = 0; j < M; j++) {
          double t = q5(gw[i * M + j], sg) * q4(w[j * K + k], sw);
          ref += t, mag += fabs(t);
        }
        double e = fabs(dx[i * K + k] - ref * ig * iw), tol = (M + 8) * 0x1p-24 * mag * ig * iw;
        bad += !(e <= tol), worst = fmax(worst, e / tol);
      }
    for (int j = 0; j < M; j++)
      for (int k = 0; k < K; k++) {
        double ref = 0, mag = 0;
        for (int i = 0; i < N; i++) {
          double t = q5(gw[i * M + j], sg) * q4(x[i * K + k], sx);
          ref += t, mag += fabs(t);
        }
        double e = fabs(dw[j * K + k] - ref * ig * ix), tol = (N + 8) * 0x1p-24 * mag * ig * ix;
        bad += !(e <= tol), worst = fmax(worst, e / tol);
      }
    printf("step %d: scales x %g, w %g, grad %g; against the quantized math: worst error %.3f of its bound\n", step, sx, sw, sg, worst);
    CHECK(bad == 0, "step %d: %d values of y, dx, dw off the exact quantized math", step, bad);
    /* the true products: the e4m3 bound */
    double ex_abs = 1.0 / 1024 / sx, ew_abs = 1.0 / 1024 / sw;
    bad = 0, worst = 0;
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
    printf("step %d: output error at most %.2f of the e4m3 bound\n", step, worst);
    CHECK(bad == 0, "step %d: %d outputs outside the e4m3 bound", step, bad);
    static double rdx[N * K], rdw[M * K];
    memset(rdx, 0, sizeof rdx), memset(rdw, 0, sizeof rdw);
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
    /* delayed scaling: the next scales from the last H steps' amaxes, in float32 */
    hist[0][step] = amax(x, N * K), hist[1][step] = amax(w, M * K), hist[2][step] = amax(gw, N * M);
    CHECK(cg_fp8_scaling_update(s) == CG_OK, "update: %s", cg_last_error());
    static const float fm[3] = {448, 448, 57344};
    for (int r = 0; r < 3; r++) {
      float m = 0;
      for (int t = step - H + 1 < 0 ? 0 : step - H + 1; t <= step; t++) m = fmaxf(m, hist[r][t]);
      float want = fm[r] * (1.0f / m), got = (float)cg_fp8_scale(s, r); /* a division is a multiply by the reciprocal */
      CHECK(got == want, "step %d: scale %d is %.9g, want fmax / %.9g = %.9g", step, r, got, m, want);
    }
  }
  CHECK(cg_fp8_scale(s, 0) > 448 / 30.0f * 2, "the large step left the window: scale x %g", cg_fp8_scale(s, 0));

  /* margin 1: half the scale; zeros keep scale 1; an inf gradient is not recorded */
  cg_scope_begin();
  cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){N, K}, 2), *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){M, K}, 2);
  cg_tensor *z = cg_contiguous(cg_mul(tx, cg_scalar(0)));
  cg_set_requires_grad(tx, true), cg_set_requires_grad(tw, true), cg_set_requires_grad(z, true);
  cg_tensor *y1 = cg_linear_fp8(s1, tx, tw, NULL);
  CHECK(y1 && cg_backward(cg_sum(y1, NULL, 0, false)) == CG_OK && cg_fp8_scaling_update(s1) == CG_OK, "margin 1: %s", cg_last_error());
  CHECK(cg_fp8_scale(s1, 0) == 224 * (1.0f / amax(x, N * K)) && cg_fp8_scale(s1, 2) == 57344 / 2, "margin 1: scales %g %g", cg_fp8_scale(s1, 0),
        cg_fp8_scale(s1, 2));
  cg_fp8_scaling *s2 = cg_fp8_scaling_new(2, 0);
  cg_tensor *y2 = cg_linear_fp8(s2, z, tw, NULL);
  float inf_g[N * M];
  for (int i = 0; i < N * M; i++) inf_g[i] = i == 7 ? INFINITY : 1;
  CHECK(y2 && cg_backward_with(y2, cg_from_data(inf_g, CG_FLOAT32, (int64_t[]){N, M}, 2)) == CG_OK && cg_fp8_scaling_update(s2) == CG_OK, "zeros: %s",
        cg_last_error());
  CHECK(cg_fp8_scale(s2, 0) == 1 && cg_fp8_scale(s2, 2) == 1 && cg_fp8_scale(s2, 1) == 448 * (1.0f / amax(w, M * K)),
        "all-zero x and an inf gradient keep their scales (1, 1), w's moves: %g %g %g", cg_fp8_scale(s2, 0), cg_fp8_scale(s2, 2), cg_fp8_scale(s2, 1));
  cg_fp8_scaling_free(s2);
  cg_scope_end();

  jit_vs_eager();

  cg_scope_begin();
  cg_tensor *a = cg_zeros(CG_FLOAT32, (int64_t[]){2, 3}, 2), *bw = cg_zeros(CG_FLOAT32, (int64_t[]){4, 5}, 2);
  CHECK(!cg_linear_fp8(s, a, bw, NULL) && strstr(cg_last_error(), "w (out, in)"), "shape mismatch: %s", cg_last_error());
  CHECK(!cg_linear_fp8(NULL, a, bw, NULL) && strstr(cg_last_error(), "scaling is NULL"), "NULL scaling");
  CHECK(!cg_fp8_scaling_new(0, 0), "history 0 must fail");
  CHECK(cg_fp8_scaling_update_lazy(NULL, NULL, NULL) != CG_OK && isnan(cg_fp8_scale(NULL, 0)) && isnan(cg_fp8_scale(s, 3)), "NULL / bad arguments");
  cg_scope_end();
  cg_fp8_scaling_free(s), cg_fp8_scaling_free(s1);
  return test_summary();
}
