/* Normalization, embedding, dropout and linear: compositions of public tensor ops (so
 * autograd covers them), each in a scope of its own that keeps only the result. */
#include "core/error.h"
#include "tensor/composite.h"
#include "tensor/tensor.h"
#include "uop/shape.h"
#include "cgrad.h"
#include <math.h>
#include <string.h>

static cg_tensor *finish(cg_tensor *r) {
  r = cg_keep(r);
  cg_scope_end();
  return r;
}

static const char *shp(const cg_tensor *t) { return shape_str(cg_shape(t), cg_ndim(t)); }

/* t is NULL or a 1-d tensor of n elements. */
static bool vec_ok(const char *who, const char *what, cg_tensor *t, int64_t n) {
  if (!t || (cg_ndim(t) == 1 && cg_shape(t)[0] == n)) return true;
  cg_fail(CG_ERR_INVALID, "%s: expected %s of shape (%lld,), got %s", who, what, (long long)n, shp(t));
  return false;
}

/* (C,) -> (1, C, 1, ...) for an nd-dim input. */
static cg_tensor *per_channel(cg_tensor *v, int nd) {
  int64_t s[CG_MAX_DIMS];
  for (int i = 0; i < nd; i++) s[i] = 1;
  s[1] = cg_shape(v)[0];
  return cg_reshape(v, s, nd);
}

/* BatchNorm's gradient in training mode, in closed form (as torch's batch_norm_backward):
 *   xhat = (x - mean) * rstd,  S1 = sum(g),  S2 = sum(g * xhat)  over (N, spatial...)
 *   dx = w * rstd * (g - S1/M - xhat * S2/M),  dw = S2,  db = S1
 * Two reductions of the output gradient. Autograd through the per-op graph made six,
 * each over a body of its own realized first (the CNN's first BatchNorm: twelve passes
 * over a 26 MB tensor). xhat, mean and rstd are built as the forward built them, so they
 * are the forward's nodes (hash-consing). p: has weight, has bias, eps (a double's bits). */
static uop *grad_node(cg_tensor *t, dtype dt) { return t ? uop_pool_keep(uop_retain(cast_to(t->u, dt))) : NULL; }
static void bn_grad(const composite *c, uop *g, uop **d) {
  bool has_w = c->p[0] != 0, has_b = c->p[1] != 0;
  double eps;
  memcpy(&eps, &c->p[2], sizeof eps);
  cg_scope_begin();
  cg_tensor *x = tensor_new(c->in[0]), *gt = tensor_new(g), *w = has_w ? tensor_new(c->in[1]) : NULL;
  int nd = cg_ndim(x), axes[CG_MAX_DIMS], na = 0;
  for (int i = 0; i < nd; i++)
    if (i != 1) axes[na++] = i;
  int64_t C = cg_shape(x)[1], M = cg_numel(x) / (C ? C : 1), cs[1] = {C};
  cg_tensor *mean = cg_mean(x, axes, na, true), *var = cg_var(x, axes, na, 0, true);
  cg_tensor *rstd = cg_rsqrt(cg_add(var, cg_scalar(eps)));
  cg_tensor *xhat = cg_mul(cg_sub(x, mean), rstd);
  cg_tensor *s1 = cg_sum(gt, axes, na, true), *s2 = cg_sum(cg_mul(gt, xhat), axes, na, true);
  cg_tensor *k = w ? cg_mul(rstd, per_channel(w, nd)) : rstd;
  cg_tensor *inner = cg_sub(cg_sub(gt, cg_mul(s1, cg_scalar(1.0 / (double)M))), cg_mul(xhat, cg_mul(s2, cg_scalar(1.0 / (double)M))));
  d[0] = grad_node(cg_mul(k, inner), c->in[0]->dt);
  int at = 1;
  if (has_w) d[at] = grad_node(cg_reshape(s2, cs, 1), c->in[at]->dt), at++;
  if (has_b) d[at] = grad_node(cg_reshape(s1, cs, 1), c->in[at]->dt);
  cg_scope_end();
}

cg_tensor *cg_batch_norm(cg_tensor *x, cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *weight, cg_tensor *bias, bool training,
                         double momentum, double eps) {
  const char *who = "batch_norm";
  if (!x) return cg_fail_null(CG_NULL_INPUT, "%s: input is NULL", who);
  int nd = cg_ndim(x);
  if (nd < 2) return cg_fail_null(CG_ERR_INVALID, "%s: expected an input of at least 2 dims (N, C, ...), got shape %s", who, shp(x));
  int64_t C = cg_shape(x)[1];
  if (!vec_ok(who, "running_mean", running_mean, C) || !vec_ok(who, "running_var", running_var, C) || !vec_ok(who, "weight", weight, C) ||
      !vec_ok(who, "bias", bias, C))
    return NULL;
  if (!training && (!running_mean || !running_var))
    return cg_fail_null(CG_ERR_INVALID, "%s: evaluation mode needs running_mean and running_var", who);
  int axes[CG_MAX_DIMS], na = 0;
  for (int i = 0; i < nd; i++)
    if (i != 1) axes[na++] = i;
  int64_t count = cg_numel(x) / (C ? C : 1);
  if (training && count <= 1)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected more than 1 value per channel when training, got input of shape %s", who, shp(x));
  cg_scope_begin();
  cg_tensor *mean, *var;
  if (training) {
    mean = cg_mean(x, axes, na, true);
    var = cg_var(x, axes, na, 0, true);
    int64_t cs[1] = {C};
    if (running_mean) {
      cg_tensor *bm = cg_reshape(cg_detach(mean), cs, 1);
      cg_tensor *nm = cg_add(cg_mul(running_mean, cg_scalar(1 - momentum)), cg_mul(bm, cg_scalar(momentum)));
      if (cg_assign(running_mean, nm) != CG_OK) return finish(NULL);
    }
    /* The running stats are pending assigns: they are written by the realize that runs
     * the step (loss, gradients, statistics in one schedule), so the batch statistics are
     * computed once, fused with the forward. (Realizing them here ran the forward
     * convolutions below them a second time.) A loop that does not realize them with its
     * step gets them realized by the next step's assign: right, but that runs the part of
     * the previous forward below them again. */
    if (running_var) {
      cg_tensor *bv = cg_reshape(cg_detach(var), cs, 1);
      bv = cg_mul(bv, cg_scalar((double)count / (double)(count - 1)));
      cg_tensor *nv = cg_add(cg_mul(running_var, cg_scalar(1 - momentum)), cg_mul(bv, cg_scalar(momentum)));
      if (cg_assign(running_var, nv) != CG_OK) return finish(NULL);
    }
  } else {
    mean = per_channel(running_mean, nd);
    var = per_channel(running_var, nd);
  }
  cg_tensor *y = cg_mul(cg_sub(x, mean), cg_rsqrt(cg_add(var, cg_scalar(eps))));
  if (weight) y = cg_mul(y, per_channel(weight, nd));
  if (bias) y = cg_add(y, per_channel(bias, nd));
  if (training && y && dt_is_float(x->u->dt) && y->u->op != OP_RESHAPE) {
    uop *in[3] = {x->u};
    int nin = 1;
    if (weight) in[nin++] = weight->u;
    if (bias) in[nin++] = bias->u;
    int64_t p[3] = {weight != NULL, bias != NULL};
    memcpy(&p[2], &eps, sizeof eps);
    composite_record(y->u, in, nin, bn_grad, p, 3);
  }
  return finish(y);
}

/* The last n dims of x must equal shape; fills axes with them. */
static bool trailing(const char *who, cg_tensor *x, const int64_t *shape, int n, int *axes) {
  int nd = cg_ndim(x);
  if (n >= 1 && !shape) {
    cg_fail(CG_ERR_INVALID, "%s: normalized_shape is NULL (with n = %d)", who, n);
    return false;
  }
  bool ok = n >= 1 && n <= nd && shape;
  for (int i = 0; ok && i < n; i++) ok = cg_shape(x)[nd - n + i] == shape[i];
  if (!ok) {
    cg_fail(CG_ERR_INVALID, "%s: normalized shape %s must match the last dims of input %s", who, shape && n > 0 ? shape_str(shape, n) : "()",
            shp(x));
    return false;
  }
  for (int i = 0; i < n; i++) axes[i] = nd - n + i;
  return true;
}

static bool affine_ok(const char *who, const char *what, cg_tensor *t, const int64_t *shape, int n) {
  if (!t || shape_eq(cg_shape(t), cg_ndim(t), shape, n)) return true;
  cg_fail(CG_ERR_INVALID, "%s: expected %s of shape %s, got %s", who, what, shape_str(shape, n), shp(t));
  return false;
}

cg_tensor *cg_layer_norm(cg_tensor *x, const int64_t *normalized_shape, int n, cg_tensor *weight, cg_tensor *bias, double eps) {
  const char *who = "layer_norm";
  if (!x) return cg_fail_null(CG_NULL_INPUT, "%s: input is NULL", who);
  int axes[CG_MAX_DIMS];
  if (!trailing(who, x, normalized_shape, n, axes) || !affine_ok(who, "weight", weight, normalized_shape, n) ||
      !affine_ok(who, "bias", bias, normalized_shape, n))
    return NULL;
  cg_scope_begin();
  cg_tensor *mean = cg_mean(x, axes, n, true), *var = cg_var(x, axes, n, 0, true);
  cg_tensor *y = cg_mul(cg_sub(x, mean), cg_rsqrt(cg_add(var, cg_scalar(eps))));
  if (weight) y = cg_mul(y, weight);
  if (bias) y = cg_add(y, bias);
  return finish(y);
}

cg_tensor *cg_rms_norm(cg_tensor *x, const int64_t *normalized_shape, int n, cg_tensor *weight, double eps) {
  const char *who = "rms_norm";
  if (!x) return cg_fail_null(CG_NULL_INPUT, "%s: input is NULL", who);
  int axes[CG_MAX_DIMS];
  if (!trailing(who, x, normalized_shape, n, axes) || !affine_ok(who, "weight", weight, normalized_shape, n)) return NULL;
  cg_scope_begin();
  cg_tensor *ms = cg_mean(cg_mul(x, x), axes, n, true);
  cg_tensor *y = cg_mul(x, cg_rsqrt(cg_add(ms, cg_scalar(eps))));
  if (weight) y = cg_mul(y, weight);
  return finish(y);
}

cg_tensor *cg_group_norm(cg_tensor *x, int64_t groups, cg_tensor *weight, cg_tensor *bias, double eps) {
  const char *who = "group_norm";
  if (!x) return cg_fail_null(CG_NULL_INPUT, "%s: input is NULL", who);
  int nd = cg_ndim(x);
  if (nd < 2) return cg_fail_null(CG_ERR_INVALID, "%s: expected an input of at least 2 dims (N, C, ...), got shape %s", who, shp(x));
  int64_t N = cg_shape(x)[0], C = cg_shape(x)[1];
  if (groups < 1 || C % groups)
    return cg_fail_null(CG_ERR_INVALID, "%s: %lld channels of input %s are not divisible into %lld groups", who, (long long)C, shp(x),
                        (long long)groups);
  if (!vec_ok(who, "weight", weight, C) || !vec_ok(who, "bias", bias, C)) return NULL;
  cg_scope_begin();
  int64_t s3[3] = {N, groups, -1};
  cg_tensor *g = cg_reshape(x, s3, 3);
  int ax[1] = {2};
  cg_tensor *mean = cg_mean(g, ax, 1, true), *var = cg_var(g, ax, 1, 0, true);
  cg_tensor *y = cg_mul(cg_sub(g, mean), cg_rsqrt(cg_add(var, cg_scalar(eps))));
  y = cg_reshape(y, cg_shape(x), nd);
  if (weight) y = cg_mul(y, per_channel(weight, nd));
  if (bias) y = cg_add(y, per_channel(bias, nd));
  return finish(y);
}

cg_tensor *cg_embedding_fn(cg_tensor *idx, cg_tensor *weight) {
  const char *who = "embedding";
  if (!idx || !weight) return cg_fail_null(CG_NULL_INPUT, "%s: %s is NULL", who, idx ? "weight" : "index");
  if (cg_ndim(weight) != 2) return cg_fail_null(CG_ERR_INVALID, "%s: expected a weight of 2 dims (num, dim), got shape %s", who, shp(weight));
  cg_dtype dt = cg_dtype_of(idx);
  if (dt == CG_BOOL || dt == CG_FLOAT16 || dt == CG_BFLOAT16 || dt == CG_FLOAT32 || dt == CG_FLOAT64 || dt == CG_FP8E4M3 || dt == CG_FP8E5M2)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected an integer index tensor, got %s %s", who, cg_dtype_name(dt), shp(idx));
  int nd = cg_ndim(idx);
  if (nd + 1 > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "%s: index %s has too many dims", who, shp(idx));
  cg_scope_begin();
  int64_t flat[1] = {cg_numel(idx)}, os[CG_MAX_DIMS];
  memcpy(os, cg_shape(idx), sizeof(int64_t) * (size_t)nd);
  os[nd] = cg_shape(weight)[1];
  cg_tensor *rows = cg_index_select(weight, 0, cg_reshape(idx, flat, 1));
  return finish(cg_reshape(rows, os, nd + 1));
}

cg_tensor *cg_dropout_fn(cg_tensor *x, double p, bool training) {
  const char *who = "dropout";
  if (!x) return cg_fail_null(CG_NULL_INPUT, "%s: input is NULL", who);
  if (!(p >= 0 && p <= 1)) return cg_fail_null(CG_ERR_INVALID, "%s: expected a probability in [0, 1], got %g", who, p);
  if (!training || p == 0) return cg_reshape(x, cg_shape(x), cg_ndim(x)); /* a new handle on the same value */
  cg_scope_begin();
  if (p == 1) return finish(cg_mul(x, cg_scalar(0)));
  cg_tensor *keep = cg_ge(cg_rand(CG_FLOAT32, cg_shape(x), cg_ndim(x)), cg_scalar(p));
  cg_tensor *y = cg_mul(cg_mul(x, cg_cast(keep, cg_dtype_of(x))), cg_scalar(1.0 / (1.0 - p)));
  return finish(y);
}

cg_tensor *cg_linear_fn(cg_tensor *x, cg_tensor *w, cg_tensor *b) {
  const char *who = "linear";
  if (!x || !w) return cg_fail_null(CG_NULL_INPUT, "%s: %s is NULL", who, x ? "weight" : "input");
  if (cg_ndim(w) != 2) return cg_fail_null(CG_ERR_INVALID, "%s: expected a weight of 2 dims (out, in), got shape %s", who, shp(w));
  int nd = cg_ndim(x);
  if (nd < 1 || cg_shape(x)[nd - 1] != cg_shape(w)[1])
    return cg_fail_null(CG_ERR_INVALID, "%s: input %s must end in %lld features for weight %s", who, shp(x), (long long)cg_shape(w)[1], shp(w));
  if (!vec_ok(who, "bias", b, cg_shape(w)[0])) return NULL;
  cg_scope_begin();
  cg_tensor *y = cg_matmul(x, cg_transpose(w, 0, 1));
  if (b) y = cg_add(y, b);
  return finish(y);
}
