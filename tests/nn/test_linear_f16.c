/* fp16 autocast linear (cg_linear_f16) against float64 references in plain C, on fresh
 * random inputs (seed printed; CG_TEST_SEED replays one):
 *   y  = f16(x) @ f16(w)^T + b
 *   dx = f16(f16(g) @ f16(w)),  dw = f16(f16(g)^T @ f16(x)),  db = sum of g over rows
 * f16() rounds to nearest even (IEEE binary16: the library's cg_f32_to_f16); products of
 * two f16 are exact in float32, so the only error before a final rounding is float32
 * summation:
 *   y: each element within 1e-5 * sum |terms| + 1e-6 (K <= 80 terms: K * 2^-24 is 5e-6);
 *   dx, dw: an f16 value (the result is rounded), within one f16 step + 1e-5 * sum |terms|
 *     of r16(ref) (the float32 sum may fall on the other side of a rounding boundary, and
 *     cancellation makes its error more than a step of a small result), and r16(ref) for at
 *     least 90% of the elements (the float32 sum is within ~1e-6 of ref, relative to the sum
 *     of |terms|, where f16's step is 2^-11 relative: only values within that of a tie flip;
 *     a missed rounding of g or of x / w moves every sum by ~2^-12 of its terms and fails
 *     this: 30-50% flip). Measured: under 0.2% flip.
 * Checked with the GEMM's panels packed (PACK=2) and not (PACK=0), and with rows fewer than
 * and more than the pack's threshold. Bad input: a message, no tensor. */
#include "linear16_check.h"

static double r16(double x) { return cg_f16_to_f32(cg_f32_to_f16((float)x)); } /* (float)x: x is exact or a sum far from a float32 tie */
/* the spacing of f16 values at |v| (normal: 2^(e-10); denormal: 2^-24) */
static double step16(double v) {
  int e;
  frexp(fabs(v), &e);
  return ldexp(1.0, (e - 1 < -14 ? -14 : e - 1) - 10);
}

/* a gradient rounded to f16: got is an f16 value within one f16 step (plus the float32
 * sum's error, which cancellation makes larger than a step of a small result) of r16(ref),
 * and r16(ref) itself for >= 90% */
static void rounded(const char *what, const float *got, const double *ref, const double *mag, int n) {
  int off = 0, flips = 0;
  for (int i = 0; i < n; i++) {
    double want = r16(ref[i]);
    bool is16 = r16(got[i]) == got[i], near = fabs(got[i] - want) <= step16(want) + 1e-5 * mag[i];
    if (!is16 || !near) {
      if (!off++) CHECK(0, "%s[%d] = %.9g, want the f16 %.9g of the float64 reference %.9g%s", what, i, got[i], want, ref[i], is16 ? "" : " (not an f16 value)");
    }
    flips += got[i] != want;
  }
  printf("%s: %d of %d elements the f16 next to the reference's\n", what, flips, n);
  CHECK(off == 0, "%s: %d of %d elements off", what, off, n);
  CHECK(flips * 10 <= n, "%s: %d of %d elements not the f16 of the reference (at most 10%% may flip at a tie)", what, flips, n);
}

static void run(const char *pack, int N, int K, int M) {
  cg_set_config("PACK", pack);
  if (!l16_run(cg_linear_f16, N, K, M)) return;
  l16_reference(r16, N, K, M);
  char what[64];
  snprintf(what, sizeof what, "y (PACK=%s, N %d, in %d, out %d)", pack, N, K, M);
  within(what, yo, ry, my, N * M, 1e-6);
  snprintf(what, sizeof what, "dx (PACK=%s, N %d, in %d, out %d)", pack, N, K, M);
  rounded(what, dx, rdx, mdx, N * K);
  snprintf(what, sizeof what, "dw (PACK=%s, N %d, in %d, out %d)", pack, N, K, M);
  rounded(what, dw, rdw, mdw, M * K);
  within("db", db, rdb, mdb, M, 0);
}

int main(void) {
  l16_seed();
  const char *pack0 = getenv("PACK") ? getenv("PACK") : "1";
  run("1", 18, 80, 48);
  run("1", 18, 48, 80); /* out > in */
  run("1", 80, 80, 48); /* 80 rows: the forward's transposed w is packed */
  run("2", 18, 48, 80);
  run("0", 80, 80, 48);
  cg_set_config("PACK", pack0);
  cg_scope_begin();
  cg_tensor *a = cg_zeros(CG_FLOAT32, (int64_t[]){2, 3}, 2), *bw = cg_zeros(CG_FLOAT32, (int64_t[]){4, 5}, 2);
  CHECK(!cg_linear_f16(a, bw, NULL) && strstr(cg_last_error(), "w (out, in)"), "shape mismatch: %s", cg_last_error());
  CHECK(!cg_linear_f16(NULL, bw, NULL) && strstr(cg_last_error(), "x is NULL"), "NULL x: %s", cg_last_error());
  CHECK(!cg_linear_f16(a, cg_zeros(CG_FLOAT32, (int64_t[]){4, 3}, 2), cg_zeros(CG_FLOAT32, (int64_t[]){5}, 1)) && strstr(cg_last_error(), "b of shape (4,)"),
        "bias mismatch: %s", cg_last_error());
  cg_scope_end();
  return test_summary();
}
