/* What the autocast linears (linear_bf16.c: bf16 and fp16; fp8.c) share: the check of
 * their arguments, x (..., in) float, w (out, in) float, b (out,) or NULL, and views of a
 * tensor's rows. */
#ifndef CG_TENSOR_LINEAR_ARGS_H
#define CG_TENSOR_LINEAR_ARGS_H
#include "core/error.h"
#include "tensor.h"

/* true, or false with an error naming who and what was found */
static inline bool linear_args_ok(const char *who, cg_tensor *x, cg_tensor *w, cg_tensor *b) {
  if (!x || !w) return cg_fail(CG_NULL_INPUT, "%s: %s is NULL", who, !x ? "x" : "w"), false;
  int nx = cg_ndim(x);
  if (nx < 1 || nx > 8 || cg_ndim(w) != 2 || cg_shape(w)[1] != cg_shape(x)[nx - 1] || !dt_is_float(x->u->dt) || !dt_is_float(w->u->dt))
    return cg_fail(CG_ERR_INVALID, "%s: expected float x (..., in) and w (out, in), got x %s %s and w %s %s", who, dt_name(x->u->dt),
                   shape_str(x->u->shape, x->u->ndim), dt_name(w->u->dt), shape_str(w->u->shape, w->u->ndim)),
           false;
  if (b && (cg_ndim(b) != 1 || cg_shape(b)[0] != cg_shape(w)[0]))
    return cg_fail(CG_ERR_INVALID, "%s: expected b of shape (%lld,), got %s", who, (long long)cg_shape(w)[0], shape_str(b->u->shape, b->u->ndim)), false;
  return true;
}

/* t (..., in) flattened to (N, in) */
static inline cg_tensor *rows(cg_tensor *t) { return cg_reshape(t, (int64_t[]){-1, cg_shape(t)[cg_ndim(t) - 1]}, 2); }
static inline cg_tensor *f32(cg_tensor *t) { return cg_cast(t, CG_FLOAT32); }
#endif
