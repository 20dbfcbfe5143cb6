/* What the attention tests share: seeded uniform inputs, reading a tensor as float64, and
 * one run of scaled_dot_product_attention with its backward (the knob CG_FLASH_ATTN set). */
#ifndef CG_TEST_ATTENTION_CHECK_H
#define CG_TEST_ATTENTION_CHECK_H
#include "check.h"
#include "cgrad.h"
#include <stdint.h>
#include <stdlib.h>

static uint64_t rs = 88172645463325252ull; /* a test seeds it from the time (printed) */
static double unif(double lo, double hi) {
  rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
  return lo + (hi - lo) * (double)(rs >> 11) * 0x1p-53;
}

/* U(-amp, amp) drawn in float64, rounded to dt, realized */
static cg_tensor *rnd(cg_dtype dt, const int64_t *s, int nd, double amp) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= s[i];
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = unif(-amp, amp);
  cg_tensor *t = cg_cast(cg_from_data(v, CG_FLOAT64, s, nd), dt);
  free(v);
  cg_realize(t);
  return t;
}

/* t's values as float64 (caller frees), NULL on failure */
static double *readd(cg_tensor *t) {
  int64_t n = cg_numel(t);
  double *d = malloc(sizeof(double) * (size_t)(n ? n : 1));
  if (!t || cg_read(cg_cast(t, CG_FLOAT64), CG_FLOAT64, d, sizeof(double) * (size_t)n) != CG_OK) {
    free(d);
    return NULL;
  }
  return d;
}

/* a boolean padding mask (B, 1, T, S) for B = 2: batch 0 sees keys below S/2; batch 1's
 * odd rows i see keys 0..i, its even rows nothing (fully masked rows) */
static cg_tensor *pad_mask(int64_t B, int64_t T, int64_t S) {
  uint8_t *m = malloc((size_t)(B * T * S));
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < T; i++)
      for (int64_t j = 0; j < S; j++) m[(b * T + i) * S + j] = b == 0 ? j < (S + 1) / 2 : (i % 2 == 1 && j <= i);
  cg_tensor *mask = cg_from_data(m, CG_BOOL, (int64_t[]){B, 1, T, S}, 4);
  free(m);
  return mask;
}

/* out and d(sum(out * w))/d{q,k,v} (4 arrays, caller frees) with CG_FLASH_ATTN = fused, the
 * inputs cast to dt; the sum in float64, so dO is w exactly in any dt */
static bool run(const char *fused, cg_dtype dt, cg_tensor *q0, cg_tensor *k0, cg_tensor *v0, cg_tensor *mask, bool causal, double scale,
                cg_tensor *w, double **res) {
  cg_set_config("CG_FLASH_ATTN", fused);
  cg_scope_begin();
  cg_tensor *q = cg_contiguous(cg_cast(q0, dt)), *k = cg_contiguous(cg_cast(k0, dt)), *v = cg_contiguous(cg_cast(v0, dt));
  cg_set_requires_grad(q, true), cg_set_requires_grad(k, true), cg_set_requires_grad(v, true);
  cg_tensor *o = cg_scaled_dot_product_attention(q, k, v, mask, 0, causal, scale);
  bool ok = o && cg_dtype_of(o) == dt && cg_backward(cg_sum(cg_mul(cg_cast(o, CG_FLOAT64), cg_cast(w, CG_FLOAT64)), NULL, 0, false)) == CG_OK;
  CHECK(ok, "%s attention (CG_FLASH_ATTN=%s): %s", cg_dtype_name(dt), fused, cg_last_error());
  if (ok) res[0] = readd(o), res[1] = readd(cg_grad(q)), res[2] = readd(cg_grad(k)), res[3] = readd(cg_grad(v));
  cg_scope_end();
  return ok && res[0] && res[1] && res[2] && res[3];
}
#endif
