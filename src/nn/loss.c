/* Losses, mean-reduced as PyTorch's defaults, built from public tensor ops. */
#include "core/error.h"
#include "uop/shape.h"
#include "cgrad.h"
#include <math.h>

static cg_tensor *finish(cg_tensor *r) {
  r = cg_keep(r);
  cg_scope_end();
  return r;
}

static const char *shp(const cg_tensor *t) { return shape_str(cg_shape(t), cg_ndim(t)); }

static bool is_int(cg_dtype dt) {
  return dt == CG_INT8 || dt == CG_INT16 || dt == CG_INT32 || dt == CG_INT64 || dt == CG_UINT8 || dt == CG_UINT16 || dt == CG_UINT32 ||
         dt == CG_UINT64;
}
static bool is_float(cg_dtype dt) {
  return dt == CG_FLOAT16 || dt == CG_BFLOAT16 || dt == CG_FLOAT32 || dt == CG_FLOAT64 || dt == CG_FP8E4M3 || dt == CG_FP8E5M2;
}

/* logits (..., C) and integer targets (...): the mean over targets != ignore_index of
 * (1 - ls) * -log_softmax[target] + ls * mean_c(-log_softmax[c]). */
static cg_tensor *sparse_ce(const char *who, cg_tensor *logits, cg_tensor *y, int64_t ignore_index, double ls) {
  if (!logits || !y) return cg_fail_null(CG_NULL_INPUT, "%s: %s is NULL", who, logits ? "targets" : "logits");
  if (!is_float(cg_dtype_of(logits))) return cg_fail_null(CG_ERR_INVALID, "%s: expected floating-point logits, got %s %s", who, cg_dtype_name(cg_dtype_of(logits)), shp(logits));
  if (!is_int(cg_dtype_of(y))) return cg_fail_null(CG_ERR_INVALID, "%s: expected integer class targets, got %s %s", who, cg_dtype_name(cg_dtype_of(y)), shp(y));
  if (!(ls >= 0 && ls <= 1)) return cg_fail_null(CG_ERR_INVALID, "%s: label_smoothing must be in [0, 1], got %g", who, ls);
  int nd = cg_ndim(logits);
  if (nd < 1 || !shape_eq(cg_shape(logits), nd - 1, cg_shape(y), cg_ndim(y)))
    return cg_fail_null(CG_ERR_INVALID, "%s: logits %s need targets of shape %s, got %s", who, shp(logits), nd >= 1 ? shape_str(cg_shape(logits), nd - 1) : "()", shp(y));
  int64_t C = cg_shape(logits)[nd - 1], M = cg_numel(y);
  cg_scope_begin();
  int64_t s2[2] = {M, C}, s1[2] = {M, 1}, sc[2] = {1, C};
  cg_tensor *lp = cg_reshape(cg_log_softmax(logits, -1), s2, 2);
  cg_tensor *yy = cg_reshape(y, s1, 2);
  cg_tensor *classes = cg_reshape(cg_arange(0, (double)C, 1, cg_dtype_of(y)), sc, 2);
  cg_tensor *hot = cg_eq(classes, yy);
  cg_tensor *mask = cg_cast(cg_ne(yy, cg_full((double)ignore_index, cg_dtype_of(y), NULL, 0)), cg_dtype_of(logits));
  cg_tensor *count = cg_sum(mask, NULL, 0, false);
  int ax[1] = {1};
  cg_tensor *picked = cg_sum(cg_where(hot, lp, cg_scalar(0)), ax, 1, true); /* (M, 1) */
  cg_tensor *nll = cg_div(cg_neg(cg_sum(cg_mul(picked, mask), NULL, 0, false)), count);
  cg_tensor *loss = nll;
  if (ls > 0) {
    cg_tensor *smooth = cg_div(cg_neg(cg_sum(cg_mul(cg_mean(lp, ax, 1, true), mask), NULL, 0, false)), count);
    loss = cg_add(cg_mul(nll, cg_scalar(1 - ls)), cg_mul(smooth, cg_scalar(ls)));
  }
  return finish(loss);
}

cg_tensor *cg_sparse_categorical_crossentropy(cg_tensor *logits, cg_tensor *targets, int64_t ignore_index, double label_smoothing) {
  return sparse_ce("sparse_categorical_crossentropy", logits, targets, ignore_index, label_smoothing);
}

cg_tensor *cg_cross_entropy(cg_tensor *logits, cg_tensor *targets, double label_smoothing) {
  const char *who = "cross_entropy";
  if (!logits || !targets) return cg_fail_null(CG_NULL_INPUT, "%s: %s is NULL", who, logits ? "targets" : "logits");
  int nd = cg_ndim(logits);
  if (nd < 1) return cg_fail_null(CG_ERR_INVALID, "%s: expected logits (N, C) or (C,), got shape %s", who, shp(logits));
  if (nd <= 2) return sparse_ce(who, logits, targets, -100, label_smoothing);
  /* (N, C, d1, ...): classes along dim 1 -> move them last */
  int perm[CG_MAX_DIMS];
  for (int i = 0, j = 0; i < nd; i++)
    if (i != 1) perm[j++] = i;
  perm[nd - 1] = 1;
  cg_scope_begin();
  return finish(sparse_ce(who, cg_permute(logits, perm, nd), targets, -100, label_smoothing));
}

static bool same_shape(const char *who, cg_tensor *a, cg_tensor *b) {
  if (!a || !b) {
    cg_fail(CG_NULL_INPUT, "%s: %s is NULL", who, a ? "target" : "input");
    return false;
  }
  if (shape_eq(cg_shape(a), cg_ndim(a), cg_shape(b), cg_ndim(b))) return true;
  cg_fail(CG_ERR_INVALID, "%s: input %s and target %s must have the same shape", who, shp(a), shp(b));
  return false;
}

cg_tensor *cg_mse_loss(cg_tensor *input, cg_tensor *target) {
  if (!same_shape("mse_loss", input, target)) return NULL;
  cg_scope_begin();
  cg_tensor *d = cg_sub(input, target);
  return finish(cg_mean(cg_mul(d, d), NULL, 0, false));
}

cg_tensor *cg_binary_cross_entropy(cg_tensor *p, cg_tensor *target) {
  if (!same_shape("binary_cross_entropy", p, target)) return NULL;
  cg_scope_begin();
  /* torch clamps the logs at -100 so that p = 0 or 1 gives a finite loss */
  cg_tensor *lo = cg_scalar(-100);
  cg_tensor *lp = cg_maximum(cg_log(p), lo), *lq = cg_maximum(cg_log(cg_sub(cg_scalar(1), p)), lo);
  cg_tensor *l = cg_add(cg_mul(target, lp), cg_mul(cg_sub(cg_scalar(1), target), lq));
  return finish(cg_neg(cg_mean(l, NULL, 0, false)));
}

cg_tensor *cg_binary_cross_entropy_with_logits(cg_tensor *x, cg_tensor *target) {
  if (!same_shape("binary_cross_entropy_with_logits", x, target)) return NULL;
  cg_scope_begin();
  /* max(x, 0) - x*y + log(1 + exp(-|x|)): stable for large |x| */
  cg_tensor *sp = cg_log(cg_add(cg_scalar(1), cg_exp(cg_neg(cg_abs(x)))));
  cg_tensor *l = cg_add(cg_sub(cg_relu(x), cg_mul(x, target)), sp);
  return finish(cg_mean(l, NULL, 0, false));
}
