/* Attention building blocks: scaled dot-product attention (the unfused reference: scores,
 * masked softmax, weighted sum) and rotary position embeddings. Compositions of public
 * tensor ops, so autograd covers them.
 *
 * Masked rows: a query whose every key is masked gets an output of zeros and a zero
 * gradient, never NaN (torch 1.13's math path gives NaN there; flash kernels give 0). The
 * softmax shifts by a detached row max that is replaced by 0 where it is -inf, and divides
 * by a denominator replaced by 1 where it is 0, so no hidden branch computes inf - inf or
 * 0/0 for the gradient to pick up. */
#include "core/config.h"
#include "core/error.h"
#include "tensor/flash.h"
#include "uop/shape.h"
#include "cgrad.h"
#include <math.h>
#include <stdlib.h>

static cg_tensor *finish(cg_tensor *r) {
  r = cg_keep(r);
  cg_scope_end();
  return r;
}
static const char *shp(const cg_tensor *t) { return shape_str(cg_shape(t), cg_ndim(t)); }

/* softmax over the last dim where `valid` (bool, broadcastable; NULL: all), zeros in rows
 * with nothing valid. */
static cg_tensor *masked_softmax(cg_tensor *s, cg_tensor *valid) {
  int last = -1;
  cg_tensor *x = valid ? cg_where(valid, s, cg_scalar(-INFINITY)) : s;
  cg_tensor *m = cg_detach(cg_max(x, &last, 1, true));
  m = cg_where(cg_eq(m, cg_scalar(-INFINITY)), cg_scalar(0), m);
  cg_tensor *e = cg_exp(cg_sub(x, m));
  cg_tensor *z = cg_sum(e, &last, 1, true);
  return cg_div(e, cg_where(cg_eq(z, cg_scalar(0)), cg_scalar(1), z));
}

cg_tensor *cg_scaled_dot_product_attention(cg_tensor *q, cg_tensor *k, cg_tensor *v, cg_tensor *attn_mask, double dropout_p,
                                           bool is_causal, double scale) {
  const char *who = "scaled_dot_product_attention";
  if (!q || !k || !v) return cg_fail_null(CG_ERR_INVALID, "%s: %s is NULL", who, !q ? "q" : !k ? "k" : "v");
  int nq = cg_ndim(q), nk = cg_ndim(k), nv = cg_ndim(v);
  if (nq < 2 || nk < 2 || nv < 2)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected q, k, v of at least 2 dims (..., L|S, E), got %s, %s, %s", who, shp(q), shp(k), shp(v));
  int64_t L = cg_shape(q)[nq - 2], E = cg_shape(q)[nq - 1], S = cg_shape(k)[nk - 2];
  if (cg_shape(k)[nk - 1] != E || cg_shape(v)[nv - 2] != S)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected k (..., S, %lld) and v (..., S, Ev) with the same S, got q %s, k %s, v %s", who,
                        (long long)E, shp(q), shp(k), shp(v));
  if (!(dropout_p >= 0 && dropout_p < 1)) return cg_fail_null(CG_ERR_INVALID, "%s: expected dropout_p in [0, 1), got %g", who, dropout_p);
  if (!(scale >= 0) || !isfinite(scale)) return cg_fail_null(CG_ERR_INVALID, "%s: expected a finite scale >= 0 (0: 1/sqrt(E)), got %g", who, scale);
  if (is_causal && attn_mask) return cg_fail_null(CG_ERR_INVALID, "%s: give either is_causal or attn_mask, not both (as torch)", who);
  if (attn_mask) {
    int nm = cg_ndim(attn_mask);
    const int64_t *ms = cg_shape(attn_mask);
    bool ok = nm >= 1 && (ms[nm - 1] == S || ms[nm - 1] == 1) && (nm < 2 || ms[nm - 2] == L || ms[nm - 2] == 1);
    if (!ok) return cg_fail_null(CG_ERR_INVALID, "%s: expected attn_mask broadcastable to (..., %lld, %lld), got %s", who, (long long)L, (long long)S, shp(attn_mask));
  }
  if (scale == 0) scale = E > 0 ? 1.0 / sqrt((double)E) : 1.0;
  /* fused (flash.c) from S >= 256 keys, or as the knob CG_FLASH_ATTN says (1 always, 0
   * never); not with dropout, which needs the weights */
  long fl = cfg_int("CG_FLASH_ATTN", -1), block = cfg_int("CG_FLASH_BLOCK", 128), groups = cfg_int("CG_FLASH_ROW_GROUPS", 4);
  cg_dtype dq = cg_dtype_of(q);
  bool fdt = dq == CG_FLOAT32 || dq == CG_FLOAT64 || dq == CG_FLOAT16 || dq == CG_BFLOAT16;
  if (dropout_p == 0 && fdt && (fl == 1 || (fl < 0 && S >= 256)))
    return flash_attention(q, k, v, attn_mask, !attn_mask ? FLASH_MASK_NONE : cg_dtype_of(attn_mask) == CG_BOOL ? FLASH_MASK_BOOL : FLASH_MASK_ADD,
                           is_causal, scale, block > 0 ? block : 128, groups > 0 ? groups : 4);
  cg_scope_begin();
  /* 16-bit inputs (autocast's attention) at the unfused lengths: computed in float32 and
   * the result rounded back (bf16 operands would need their rounded p stored apart: slower
   * than float32 at these sizes, flash6's measure); the fused path takes bf16 products */
  cg_dtype half = dq == CG_BFLOAT16 || dq == CG_FLOAT16 ? dq : CG_FLOAT32;
  if (half != CG_FLOAT32) q = cg_cast(q, CG_FLOAT32), k = cg_cast(k, CG_FLOAT32), v = cg_cast(v, CG_FLOAT32);
  /* the scale on q, not on the scores: the softmax then reads the scores as the matmul
   * stored them. Scaled in its kernels, each recomputed s*scale - max(s*scale) where the
   * C compiler's contraction (-ffp-contract=fast) made an FMA of one and not the other: a
   * residual of half an ulp of the scores (NaN at a scale of 1e30, p off by 1e-5 at 1e4) */
  cg_tensor *s = cg_matmul(cg_mul(q, cg_scalar(scale)), cg_transpose(k, -2, -1));
  cg_tensor *valid = NULL;
  if (is_causal) valid = cg_cast(cg_tril(cg_ones(CG_BOOL, (int64_t[]){L, S}, 2), 0), CG_BOOL);
  else if (attn_mask && cg_dtype_of(attn_mask) == CG_BOOL) valid = attn_mask;
  else if (attn_mask) s = cg_add(s, attn_mask);
  cg_tensor *p = masked_softmax(s, valid);
  if (dropout_p > 0) p = cg_dropout_fn(p, dropout_p, true);
  cg_tensor *o = cg_matmul(p, v);
  return finish(half != CG_FLOAT32 ? cg_cast(o, half) : o);
}

/* The cos/sin tables (T, D/2) for positions offset.. offset+T-1, in float64 on the host. */
static void rope_tables(int64_t T, int64_t half, int64_t D, int64_t offset, double theta, double *c, double *s) {
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < half; i++) {
      double ang = (double)(offset + t) * pow(theta, -2.0 * (double)i / (double)D);
      c[t * half + i] = cos(ang), s[t * half + i] = sin(ang);
    }
}

cg_tensor *cg_rope(cg_tensor *x, int64_t offset, double theta, bool interleaved) {
  const char *who = "rope";
  if (!x) return cg_fail_null(CG_ERR_INVALID, "%s: tensor is NULL", who);
  int nd = cg_ndim(x);
  if (nd < 2 || cg_shape(x)[nd - 1] % 2)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected x of shape (..., T, D) with D even, got %s", who, shp(x));
  if (interleaved && nd >= CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "%s: interleaved needs at most %d dims, got %d", who, CG_MAX_DIMS - 1, nd);
  if (!(theta > 0) || !isfinite(theta)) return cg_fail_null(CG_ERR_INVALID, "%s: expected a finite base theta > 0, got %g", who, theta);
  if (offset < 0) return cg_fail_null(CG_ERR_INVALID, "%s: expected a position offset >= 0, got %lld", who, (long long)offset);
  cg_dtype dt = cg_dtype_of(x);
  if (dt != CG_FLOAT16 && dt != CG_BFLOAT16 && dt != CG_FLOAT32 && dt != CG_FLOAT64)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected a floating-point tensor, got %s", who, cg_dtype_name(dt));
  int64_t T = cg_shape(x)[nd - 2], D = cg_shape(x)[nd - 1], half = D / 2;
  size_t nt = (size_t)(T * half) + 1;
  double *c = malloc(sizeof(double) * nt), *s = malloc(sizeof(double) * nt);
  if (!c || !s) {
    free(c), free(s);
    return cg_fail_null(CG_ERR_NOMEM, "%s: out of memory for the %lld x %lld tables", who, (long long)T, (long long)half);
  }
  rope_tables(T, half, D, offset, theta, c, s);
  cg_scope_begin();
  cg_tensor *ct = cg_cast(cg_from_data(c, CG_FLOAT64, (int64_t[]){T, half}, 2), dt);
  cg_tensor *st = cg_cast(cg_from_data(s, CG_FLOAT64, (int64_t[]){T, half}, 2), dt);
  free(c), free(s);
  cg_tensor *r;
  if (!interleaved) { /* GPT-NeoX / Hugging Face Llama: pairs (i, i + D/2) */
    cg_tensor *x1 = cg_slice(x, -1, 0, half, 1), *x2 = cg_slice(x, -1, half, D, 1);
    cg_tensor *parts[2] = {cg_sub(cg_mul(x1, ct), cg_mul(x2, st)), cg_add(cg_mul(x2, ct), cg_mul(x1, st))};
    r = cg_cat(parts, 2, -1);
  } else { /* the paper's and Meta Llama's: pairs (2i, 2i + 1) */
    int64_t sh[CG_MAX_DIMS + 1];
    for (int i = 0; i < nd - 1; i++) sh[i] = cg_shape(x)[i];
    sh[nd - 1] = half, sh[nd] = 2;
    cg_tensor *xp = cg_reshape(x, sh, nd + 1);
    cg_tensor *xe = cg_squeeze(cg_slice(xp, -1, 0, 1, 1), -1), *xo = cg_squeeze(cg_slice(xp, -1, 1, 2, 1), -1);
    cg_tensor *parts[2] = {cg_sub(cg_mul(xe, ct), cg_mul(xo, st)), cg_add(cg_mul(xo, ct), cg_mul(xe, st))};
    r = cg_reshape(cg_stack(parts, 2, -1), cg_shape(x), nd);
  }
  return finish(r);
}
