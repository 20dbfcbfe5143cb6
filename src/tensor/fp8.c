/* fp8 linear layers with delayed scaling (as NVIDIA's Transformer Engine): forward in
 * float8 e4m3 (max 448), the output's gradient in e5m2 (max 57344), each tensor scaled by
 * fmax / amax before rounding, where amax is the largest |value| that tensor had over the
 * last `history` steps (delayed: the current step uses the previous steps' amaxes, so no
 * step waits for its own maximum). The 8-bit values are multiplied exactly in float32 and
 * the result unscaled (values beyond fmax / scale saturate): these are the numerics of an fp8 matrix unit with float32
 * accumulation, run on the float32 units (the fp8 instructions are not used here).
 *
 *   y = (q4(x * sx) / sx) @ (q4(w * sw) / sw)^T + b           q4: round to e4m3
 *   g' = q5(g * sg) / sg;  dx = g' @ w8,  dw = g'^T @ x8      q5: round to e5m2
 *
 * The layer is a custom-gradient node (custom.h): its value reads realized copies of x, w
 * and the backward realizes g, so each amax is taken once from stored values, and the
 * gradient still flows to x's and w's graphs through the node's sources. */
#include "custom.h"
#include "tensor.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FP8_E4M3_MAX 448.0
#define FP8_E5M2_MAX 57344.0

struct cg_fp8_scaling {
  int history, len[3], at[3];
  double margin, scale[3];
  double *hist[3];     /* ring buffers of amaxes: x, w, grad */
  double pending[3];   /* amaxes recorded this step (NAN: none) */
};

cg_fp8_scaling *cg_fp8_scaling_new(int history, double margin) {
  if (history < 1 || history > 1024 || !(margin >= 0 && margin < 64))
    return cg_fail_null(CG_ERR_INVALID, "fp8_scaling_new: expected history in [1, 1024] and margin in [0, 64), got %d and %g", history, margin);
  cg_fp8_scaling *s = calloc(1, sizeof *s);
  if (!s) return cg_fail_null(CG_ERR_NOMEM, "fp8_scaling_new: out of memory");
  s->history = history, s->margin = margin;
  for (int i = 0; i < 3; i++) {
    s->hist[i] = calloc((size_t)history, sizeof(double));
    s->scale[i] = 1, s->pending[i] = NAN;
    if (!s->hist[i]) {
      cg_fp8_scaling_free(s);
      return cg_fail_null(CG_ERR_NOMEM, "fp8_scaling_new: out of memory");
    }
  }
  return s;
}

void cg_fp8_scaling_free(cg_fp8_scaling *s) {
  if (!s) return;
  for (int i = 0; i < 3; i++) free(s->hist[i]);
  free(s);
}

double cg_fp8_scale(const cg_fp8_scaling *s, int which) { return s && which >= 0 && which < 3 ? s->scale[which] : NAN; }

/* Record an amax (keeps the largest of a step's, for a layer used more than once). */
static void record(cg_fp8_scaling *s, int which, double amax) {
  if (isnan(s->pending[which]) || amax > s->pending[which]) s->pending[which] = amax;
}

cg_status cg_fp8_scaling_update(cg_fp8_scaling *s) {
  if (!s) return cg_fail(CG_ERR_INVALID, "fp8_scaling_update: scaling is NULL");
  static const double FMAX[3] = {FP8_E4M3_MAX, FP8_E4M3_MAX, FP8_E5M2_MAX};
  for (int i = 0; i < 3; i++) {
    if (isnan(s->pending[i])) continue;
    s->hist[i][s->at[i]] = s->pending[i];
    s->at[i] = (s->at[i] + 1) % s->history;
    if (s->len[i] < s->history) s->len[i]++;
    s->pending[i] = NAN;
    double amax = 0;
    for (int j = 0; j < s->len[i]; j++) amax = fmax(amax, s->hist[i][j]);
    /* a tensor of zeros (or inf/NaN) keeps the scale it had */
    if (amax > 0 && isfinite(amax)) s->scale[i] = FMAX[i] / amax / exp2(s->margin);
  }
  return CG_OK;
}

/* q(clamp(x * scale, +-fmax)) / scale, q the rounding to dt: values beyond the delayed
 * amax saturate (as Transformer Engine's casts do) rather than become inf. The scale is
 * read from a 0-d buffer, so a new scale compiles nothing. */
static cg_tensor *fake_quant(cg_tensor *x, double scale, cg_dtype dt) {
  float sf = (float)scale, inv = (float)(1.0 / scale);
  double fmax = dt == CG_FP8E4M3 ? FP8_E4M3_MAX : FP8_E5M2_MAX;
  cg_tensor *s = cg_from_data(&sf, CG_FLOAT32, NULL, 0), *is = cg_from_data(&inv, CG_FLOAT32, NULL, 0);
  return cg_mul(cg_cast(cg_cast(cg_clamp(cg_mul(x, s), -fmax, fmax), dt), CG_FLOAT32), is);
}

static double amax_of(cg_tensor *t) { return cg_item(cg_max(cg_abs(t), NULL, 0, false)); }

/* x8 (..., in) flattened to (N, in). */
static cg_tensor *rows(cg_tensor *t) {
  int nd = cg_ndim(t);
  return cg_reshape(t, (int64_t[]){-1, cg_shape(t)[nd - 1]}, 2);
}

static void fp8_backward(uop *node, uop *g, uop **d) {
  cg_fp8_scaling *s;
  int64_t p = custom_param(node, 0);
  memcpy(&s, &p, sizeof s);
  cg_scope_begin();
  cg_tensor *gt = cg_cast(tensor_new(g), CG_FLOAT32), *x8 = tensor_new(node->src[3]), *w8 = tensor_new(node->src[4]);
  cg_tensor *x = tensor_new(node->src[1]), *w = tensor_new(node->src[2]);
  cg_status st = cg_realize(gt);
  double ag = st == CG_OK ? amax_of(gt) : NAN;
  if (st == CG_OK && isfinite(ag)) {
    record(s, 2, ag);
    cg_tensor *gq = fake_quant(gt, s->scale[2], CG_FP8E5M2);
    cg_tensor *dx = cg_matmul(gq, w8);                                        /* (..., in) */
    cg_tensor *dw = cg_matmul(cg_transpose(rows(gq), 0, 1), rows(x8));        /* (out, in) */
    cg_tensor *r[2] = {cg_cast(dx, cg_dtype_of(x)), cg_cast(dw, cg_dtype_of(w))};
    for (int i = 0; i < 2; i++) d[1 + i] = r[i] ? uop_pool_keep(uop_retain(r[i]->u)) : NULL;
  } else {
    custom_fail(st != CG_OK ? st : cg_fail(CG_ERR_RUNTIME, "linear_fp8: the output gradient is not finite (amax %g)", ag));
  }
  cg_scope_end();
}
static const custom_kind FP8 = {"linear_fp8", fp8_backward, true};

cg_tensor *cg_linear_fp8(cg_fp8_scaling *s, cg_tensor *x, cg_tensor *w, cg_tensor *b) {
  const char *who = "linear_fp8";
  if (!s || !x || !w) return cg_fail_null(CG_ERR_INVALID, "%s: %s is NULL", who, !s ? "scaling" : !x ? "x" : "w");
  int nx = cg_ndim(x);
  if (nx < 1 || cg_ndim(w) != 2 || cg_shape(w)[1] != cg_shape(x)[nx - 1] || !dt_is_float(x->u->dt) || !dt_is_float(w->u->dt))
    return cg_fail_null(CG_ERR_INVALID, "%s: expected float x (..., in) and w (out, in), got x %s %s and w %s %s", who, dt_name(x->u->dt),
                        shape_str(x->u->shape, x->u->ndim), dt_name(w->u->dt), shape_str(w->u->shape, w->u->ndim));
  if (b && (cg_ndim(b) != 1 || cg_shape(b)[0] != cg_shape(w)[0]))
    return cg_fail_null(CG_ERR_INVALID, "%s: expected b of shape (%lld,), got %s", who, (long long)cg_shape(w)[0], shape_str(b->u->shape, b->u->ndim));
  cg_scope_begin();
  /* realized copies: the amaxes are read from them, and they are what the backward reuses */
  cg_tensor *xs = cg_contiguous(cg_cast(cg_detach(x), CG_FLOAT32)), *ws = cg_contiguous(cg_cast(cg_detach(w), CG_FLOAT32));
  cg_tensor *both[2] = {xs, ws};
  cg_tensor *res = NULL;
  if (xs && ws && cg_realize_many(both, 2) == CG_OK) {
    record(s, 0, amax_of(xs)), record(s, 1, amax_of(ws));
    cg_tensor *q[2] = {fake_quant(xs, s->scale[0], CG_FP8E4M3), fake_quant(ws, s->scale[1], CG_FP8E4M3)};
    if (q[0] && q[1] && cg_realize_many(q, 2) == CG_OK) {
      cg_tensor *y = cg_cast(cg_matmul(q[0], cg_transpose(q[1], 0, 1)), cg_dtype_of(x));
      if (y && cg_realize(y) == CG_OK) {
        int64_t par;
        memcpy(&par, &s, sizeof s);
        uop *srcs[4] = {x->u, w->u, q[0]->u, q[1]->u};
        op_begin();
        res = op_end(custom_node(&FP8, y->u, srcs, 4, &par, 1));
        if (res && b) res = cg_add(res, b);
      }
    }
  }
  res = cg_keep(res);
  cg_scope_end();
  return res;
}
