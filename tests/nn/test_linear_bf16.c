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
#include "linear16_check.h"

static double r16(double x) { return cg_bf16_to_f32(cg_f32_to_bf16((float)x)); } /* x: a float32 input */

/* through cg_linear_bf16_x16 with x's bf16 copy realized by the caller (the same values,
 * and x's gradient through x's graph) */
static cg_tensor *given_x16(cg_tensor *x, cg_tensor *w, cg_tensor *b) {
  cg_tensor *x16 = cg_cast(x, CG_BFLOAT16);
  CHECK(x16 && cg_realize(x16) == CG_OK, "x16: %s", cg_last_error());
  return cg_linear_bf16_x16(x, x16, w, b);
}

static void run(const char *features, int K, int M, bool given) {
  enum { N = 18 };
  cg_set_config("CG_CPU_FEATURES", features);
  if (!l16_run(given ? given_x16 : cg_linear_bf16, N, K, M)) return;
  l16_reference(r16, N, K, M);
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
  l16_seed();
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
