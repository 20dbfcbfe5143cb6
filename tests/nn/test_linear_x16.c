/* The fp16 autocast linear with its input's stored copy given (cg_linear_f16_x16: x's f16
 * rounding as float32 or float16) equals its plain form bit for bit: y and the gradients of x's producer's input, w and b, on
 * fresh random inputs (seed printed; CG_TEST_SEED replays one). x is gelu(u), as in the
 * GPT's MLP, so x's gradient goes through x's graph while the forward reads the copy.
 * Bad input: a message, no tensor. The values themselves are checked against float64 by
 * test_linear_f16. (An fp8 form, the quantized copy written by x's producer, was measured
 * slower in the GPT step and removed: bench/RESULTS.md "x16".) */
#include "check.h"
#include "cgrad.h"
#include <stdint.h>
#include <string.h>
#include <time.h>

enum { B = 2, T = 9, K = 48, M = 40, N = B * T };
enum { F16, F16_AS_F16 }; /* the given copy: float32 of f16(x), or f16(x) as float16 */

static uint64_t rs;
static double unif(double lo, double hi) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return lo + (hi - lo) * (double)(rs >> 11) * 0x1p-53;
}

static float lu[N * K], lw[M * K], lb[M], lg[N * M];
/* a run's results, one after the other: y (N, M), du (N, K), dw (M, K), db (M) */
enum { NOUT = N * M + N * K + M * K + M };
static float got[2][NOUT];

static void inputs(void) {
  for (int i = 0; i < N * K; i++) lu[i] = (float)unif(-3, 3);
  for (int i = 0; i < M * K; i++) lw[i] = (float)unif(-0.5, 0.5);
  for (int i = 0; i < M; i++) lb[i] = (float)unif(-1, 1);
  for (int i = 0; i < N * M; i++) lg[i] = (float)unif(-1, 1);
}

/* y = linear(gelu(u), w, b), plain or with the copy given; its backward with lg */
static bool run(int kind, bool given, float *out) {
  cg_scope_begin();
  cg_tensor *u = cg_from_data(lu, CG_FLOAT32, (int64_t[]){B, T, K}, 3), *w = cg_from_data(lw, CG_FLOAT32, (int64_t[]){M, K}, 2);
  cg_tensor *b = cg_from_data(lb, CG_FLOAT32, (int64_t[]){M}, 1);
  cg_set_requires_grad(u, true), cg_set_requires_grad(w, true), cg_set_requires_grad(b, true);
  cg_tensor *x = cg_gelu(u), *y = NULL;
  if (!given) y = cg_linear_f16(x, w, b);
  else {
    cg_tensor *c = cg_cast(cg_gelu(cg_detach(u)), CG_FLOAT16);
    if (kind == F16) c = cg_cast(c, CG_FLOAT32);
    CHECK(c && cg_realize(c) == CG_OK, "the copy: %s", cg_last_error());
    y = cg_linear_f16_x16(x, c, w, b);
  }
  cg_tensor *gt = cg_from_data(lg, CG_FLOAT32, (int64_t[]){B, T, M}, 3);
  bool ok = y && cg_backward_with(y, gt) == CG_OK;
  size_t f = sizeof(float);
  ok = ok && cg_read(y, CG_FLOAT32, out, f * N * M) == CG_OK && cg_read(cg_grad(u), CG_FLOAT32, out + N * M, f * N * K) == CG_OK &&
       cg_read(cg_grad(w), CG_FLOAT32, out + N * M + N * K, f * M * K) == CG_OK &&
       cg_read(cg_grad(b), CG_FLOAT32, out + N * M + N * K + M * K, f * M) == CG_OK;
  CHECK(ok, "run (kind %d, given %d): %s", kind, given, cg_last_error());
  cg_scope_end();
  return ok;
}

static void same(const char *what) {
  static const char *part[4] = {"y", "du", "dw", "db"};
  int start[5] = {0, N * M, N * M + N * K, N * M + N * K + M * K, NOUT};
  for (int p = 0; p < 4; p++) {
    int diff = -1;
    for (int i = start[p]; i < start[p + 1] && diff < 0; i++)
      if (f32_bits(got[0][i]) != f32_bits(got[1][i])) diff = i - start[p];
    CHECK(diff < 0, "%s: %s[%d] = %.9g plain, %.9g given", what, part[p], diff, diff < 0 ? 0 : got[0][start[p] + diff], diff < 0 ? 0 : got[1][start[p] + diff]);
  }
}

int main(void) {
  const char *seed = getenv("CG_TEST_SEED");
  rs = seed && *seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
  printf("seed %llu (CG_TEST_SEED replays it)\n", (unsigned long long)rs);
  rs = rs * 2654435761ull + 1;

  inputs();
  if (run(F16, false, got[0]) && run(F16, true, got[1])) same("linear_f16_x16, x16 float32");
  if (run(F16_AS_F16, true, got[1])) same("linear_f16_x16, x16 float16");

  cg_scope_begin();
  cg_tensor *a = cg_zeros(CG_FLOAT32, (int64_t[]){2, 3}, 2), *w = cg_zeros(CG_FLOAT32, (int64_t[]){4, 3}, 2);
  CHECK(!cg_linear_f16_x16(a, cg_zeros(CG_BFLOAT16, (int64_t[]){2, 3}, 2), w, NULL) && strstr(cg_last_error(), "x16 of float16 (or float32)"),
        "x16 bfloat16: %s", cg_last_error());
  CHECK(!cg_linear_f16_x16(a, cg_zeros(CG_FLOAT32, (int64_t[]){3, 2}, 2), w, NULL) && strstr(cg_last_error(), "x's shape"), "x16 of another shape: %s",
        cg_last_error());
  CHECK(!cg_linear_f16_x16(a, NULL, w, NULL) && strstr(cg_last_error(), "x16 is NULL"), "NULL x16: %s", cg_last_error());
  cg_scope_end();
  return test_summary();
}
