/* Attention with bfloat16 inputs (autocast's attention: cgrad train gpt --amp bf16), fused
 * (src/tensor/flash.c, blocks of 32 keys) and unfused, against float64 attention of the
 * same bf16-rounded inputs: outputs and the gradients of q, k, v, causal and with a padding
 * mask that leaves whole rows masked (the reference: plain C in float64). The products take bf16 operands with float32 sums
 * and the softmax statistics stay float32; the output and the gradients are bf16 (a
 * relative step of 2^-8), p is rounded to bf16 (p v, the row sum and ds read the rounded
 * p) and so is ds. Tolerance per element: 2e-2 * max|ref| + 2e-2 * |ref| (a wrong operand
 * layout or a bf16 softmax is off by far more), and for dq and dk also 2^-8 of the size of
 * the terms ds = p (dP - D) cancels (sum over keys of p (|dP| + sum |dO| |out|) |k or q| *
 * scale): D comes from the bf16 output, so where a near one-hot row makes dP - D a small
 * difference of O(1) values, its error is a bf16 step of those values, not of the result
 * (torch's bf16 attention alike). Fully masked rows give zeros and zero gradients, nothing
 * is NaN, also with scores of ~1e4 (near one-hot rows). */
#include "attention_check.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* float64 attention and its backward with dO = w; valid(b, i, j) from the mask (B, 1, T, S)
 * or causal (mk NULL); a row with nothing valid: p = 0 */
static void ref(int64_t B, int64_t H, int64_t T, int64_t S, int64_t E, int64_t Ev, const double *q, const double *k, const double *v,
                const double *w, const uint8_t *mk, double **u) {
  double scale = 1 / sqrt((double)E), *p = malloc(sizeof(double) * (size_t)S), *dp = malloc(sizeof(double) * (size_t)S);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++) {
      int64_t bh = b * H + h;
      for (int64_t i = 0; i < T; i++) {
        const double *qi = q + (bh * T + i) * E, *wi = w + (bh * T + i) * Ev;
        double mx = -INFINITY, z = 0, pd = 0;
        for (int64_t j = 0; j < S; j++) {
          bool ok = mk ? mk[(b * T + i) * S + j] != 0 : j <= i;
          double s = 0;
          for (int64_t e = 0; e < E; e++) s += qi[e] * k[(bh * S + j) * E + e];
          p[j] = ok ? s * scale : -INFINITY;
          mx = fmax(mx, p[j]);
        }
        for (int64_t j = 0; j < S; j++) z += p[j] = mx == -INFINITY ? 0 : exp(p[j] - mx);
        for (int64_t j = 0; j < S; j++) {
          p[j] = z > 0 ? p[j] / z : 0, dp[j] = 0;
          for (int64_t e = 0; e < Ev; e++) {
            u[0][(bh * T + i) * Ev + e] += p[j] * v[(bh * S + j) * Ev + e];
            u[3][(bh * S + j) * Ev + e] += p[j] * wi[e];
            dp[j] += wi[e] * v[(bh * S + j) * Ev + e];
          }
          pd += p[j] * dp[j];
        }
        /* the size of D's terms (D is computed from the bf16 output: its error scales with
         * them, not with D) */
        double dm = 0;
        for (int64_t e = 0; e < Ev; e++) dm += fabs(wi[e] * u[0][(bh * T + i) * Ev + e]);
        for (int64_t j = 0; j < S; j++) {
          double ds = p[j] * (dp[j] - pd) * scale, dsm = p[j] * (fabs(dp[j]) + dm) * scale;
          for (int64_t e = 0; e < E; e++) {
            u[1][(bh * T + i) * E + e] += ds * k[(bh * S + j) * E + e];
            u[2][(bh * S + j) * E + e] += ds * qi[e];
            u[4][(bh * T + i) * E + e] += dsm * fabs(k[(bh * S + j) * E + e]);
            u[5][(bh * S + j) * E + e] += dsm * fabs(qi[e]);
          }
        }
      }
    }
  free(p), free(dp);
}

static void compare(int64_t T, bool causal, const char *fused, double qamp) {
  int64_t B = 2, H = 2, E = 16, Ev = 8, S = T;
  cg_scope_begin();
  cg_tensor *q = rnd(CG_BFLOAT16, (int64_t[]){B, H, T, E}, 4, qamp), *k = rnd(CG_BFLOAT16, (int64_t[]){B, H, S, E}, 4, 1.5),
            *v = rnd(CG_BFLOAT16, (int64_t[]){B, H, S, Ev}, 4, 1);
  cg_tensor *w = rnd(CG_BFLOAT16, (int64_t[]){B, H, T, Ev}, 4, 1), *mask = NULL;
  if (!causal) mask = pad_mask(B, T, S);
  double *f[4] = {0}, *u[6] = {0};
  int64_t n[6] = {B * H * T * Ev, B * H * T * E, B * H * S * E, B * H * S * Ev, B * H * T * E, B * H * S * E};
  bool ok = run(fused, CG_BFLOAT16, q, k, v, mask, causal, 0, w, f);
  if (ok) {
    double *x[4] = {readd(q), readd(k), readd(v), readd(w)};
    uint8_t *mk = NULL;
    if (mask) {
      mk = malloc((size_t)(B * T * S));
      ok = cg_read(mask, CG_BOOL, mk, (size_t)(B * T * S)) == CG_OK;
    }
    for (int a = 0; a < 6; a++) u[a] = calloc((size_t)n[a], sizeof(double));
    ref(B, H, T, S, E, Ev, x[0], x[1], x[2], x[3], mk, u);
    for (int a = 0; a < 4; a++) free(x[a]);
    free(mk);
  }
  const char *what[4] = {"out", "dq", "dk", "dv"};
  for (int a = 0; ok && a < 4; a++) {
    double mx = 0, worst = 0, wmag = 0;
    const double *mag = a == 1 ? u[4] : a == 2 ? u[5] : NULL;
    for (int64_t i = 0; i < n[a]; i++) mx = fmax(mx, fabs(u[a][i]));
    int bad = 0, nan = 0;
    for (int64_t i = 0; i < n[a]; i++) {
      nan += isnan(f[a][i]);
      double e = fabs(f[a][i] - u[a][i]);
      double base = 2e-2 * mx + 2e-2 * fabs(u[a][i]);
      if (!(e <= base + (mag ? 0x1p-8 * mag[i] : 0))) bad++;
      worst = fmax(worst, e);
      if (mag && e > base) wmag = fmax(wmag, (e - base) / mag[i]);
    }
    printf("T=%lld %s knob %s bf16 %s: max |diff| %.3g, max |ref| %.3g; past 2e-2 (max|ref| + |ref|): %.3g of the terms' size\n", (long long)T,
           causal ? "causal" : "padding", fused, what[a], worst, mx, wmag);
    CHECK(bad == 0 && nan == 0, "T=%lld %s knob %s bf16 %s: %d of %lld off (max |diff| %.3g, max |ref| %.3g), %d NaN", (long long)T,
          causal ? "causal" : "padding", fused, what[a], bad, (long long)n[a], worst, mx, nan);
  }
  if (ok && !causal) {
    bool zero = true;
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < T; i += 2) {
        for (int64_t e = 0; e < Ev; e++) zero &= f[0][((1 * H + h) * T + i) * Ev + e] == 0;
        for (int64_t e = 0; e < E; e++) zero &= f[1][((1 * H + h) * T + i) * E + e] == 0;
      }
    CHECK(zero, "T=%lld knob %s: fully masked rows give zero output and zero dq in bf16", (long long)T, fused);
  }
  for (int a = 0; a < 4; a++) free(f[a]);
  for (int a = 0; a < 6; a++) free(u[a]);
  cg_scope_end();
}

int main(void) {
  /* fresh inputs every run (CG_TEST_SEED repeats one) */
  const char *seed = getenv("CG_TEST_SEED");
  uint64_t sd = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  rs = sd * 2654435761ull + 1;
  printf("test_attention_bf16: CG_TEST_SEED=%llu\n", (unsigned long long)sd);
  cg_set_config("CG_FLASH_BLOCK", "32");
  compare(77, true, "1", 1.5); /* fused: two blocks and a ragged one */
  compare(77, false, "1", 1.5);
  compare(77, true, "0", 1.5); /* unfused */
  compare(40, false, "1", 1500); /* scores up to ~1e4: near one-hot rows, nothing NaN */
  return test_summary();
}
