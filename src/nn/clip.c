/* Gradient norms and clipping (torch.nn.utils.clip_grad_norm_), lazily: the norm is a 0-d
 * tensor and the clipped gradients are graphs over it, so a training step with clipping is
 * still one realize (no host round trip for the norm, as torch needs one for .item()). */
#include "core/error.h"
#include "tensor/tensor.h"
#include <math.h>

cg_tensor *cg_grad_norm(cg_tensor *const *params, int n) {
  if (!params || n < 0) return cg_fail_null(CG_NULL_INPUT, "grad_norm: expected an array of %d parameters, got %s", n, params ? "a negative count" : "NULL");
  cg_tensor *sq = NULL;
  for (int i = 0; i < n; i++) {
    cg_tensor *g = params[i] ? cg_grad(params[i]) : NULL;
    if (!g) continue; /* no gradient: not counted, as torch skips grad None */
    cg_tensor *s = cg_sum(cg_mul(g, g), NULL, 0, false);
    if (cg_dtype_of(s) != CG_FLOAT32) s = cg_cast(s, CG_FLOAT32);
    sq = sq ? cg_add(sq, s) : s;
    if (!sq) return NULL;
  }
  return sq ? cg_sqrt(sq) : cg_scalar(0);
}

cg_status cg_scale_grads(cg_tensor *const *params, int n, cg_tensor *factor) {
  if (!params || !factor) return cg_fail(CG_NULL_INPUT, "scale_grads: %s is NULL", !params ? "the parameter array" : "the factor");
  if (cg_ndim(factor) != 0) return cg_fail(CG_ERR_INVALID, "scale_grads: expected a 0-d factor, got %d dimensions", cg_ndim(factor));
  for (int i = 0; i < n; i++) {
    cg_tensor *g = params[i] ? cg_grad(params[i]) : NULL;
    if (!g) continue;
    cg_tensor *s = cg_cast(cg_mul(g, cg_cast(factor, cg_dtype_of(g))), cg_dtype_of(g));
    if (!s) return cg_last_status();
    uop *old = g->u; /* the handle stays; its value becomes the scaled graph */
    g->u = uop_retain(s->u);
    uop_release(old);
  }
  return CG_OK;
}

cg_tensor *cg_clip_grad_norm(cg_tensor *const *params, int n, double max_norm) {
  if (!(max_norm > 0) || !isfinite(max_norm)) return cg_fail_null(CG_ERR_INVALID, "clip_grad_norm: expected a finite max_norm > 0, got %g", max_norm);
  cg_tensor *norm = cg_grad_norm(params, n);
  if (!norm) return NULL;
  /* torch: coef = max_norm / (norm + 1e-6), clamped to 1 */
  cg_tensor *coef = cg_minimum(cg_div(cg_scalar(max_norm), cg_add(norm, cg_scalar(1e-6))), cg_scalar(1));
  if (!coef || cg_scale_grads(params, n, coef) != CG_OK) return NULL;
  return norm;
}
