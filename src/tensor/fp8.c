/* fp8 linear layers with delayed scaling (NVIDIA Transformer Engine's recipe): forward in
 * float8 e4m3 (max 448), the output's gradient in e5m2 (max 57344), each tensor scaled by
 * fmax / amax / 2^margin before rounding, amax being the largest |value| that tensor had
 * over the last `history` steps (delayed: a step uses the previous steps' amaxes, so no
 * step waits for its own maximum).
 *
 *   xq = q4(x * sx), wq = q4(w * sw), gq = q5(clamp(g * sg, +-57344))    q4, q5: round
 *   y  = (xq @ wq^T) * (1 / sx * 1 / sw) + b                              to e4m3, e5m2
 *   dx = (gq @ wq) * (1 / sg * 1 / sw),  dw = (gq^T @ xq) * (1 / sg * 1 / sx)
 *
 * Every e4m3 and e5m2 value is a bfloat16 value, so the quantized operands are stored as
 * bf16 copies laid out for the bf16 unit (as cg_linear_bf16's: the TC opt, vdpbf16ps): the
 * products of two 8-bit values are exact in float32 and summed in float32, and the
 * unscaling is one multiply of each float32 sum in the matmul's epilogue. (Multiplying
 * dequantized values, Σ (q/s)(q'/s'), would round q/s and each product once more: the
 * two differ by a few float32 ulps of each sum, far under the 2^-4 of e4m3 rounding.)
 * e4m3 saturates by itself (the OCP e4m3fn cast: beyond 448 and inf become 448); e5m2
 * overflows to inf, so the gradient is clamped to +-57344 before its cast, as Transformer
 * Engine's saturating casts do.
 *
 * The state lives on the device: the amax history (3, history) and the scales (3,) are
 * float32 buffers; a layer's amaxes are lazy reductions recorded by its backward (an
 * evaluation forward records nothing), and cg_fp8_scaling_update_lazy makes the new
 * history and scales as cg_assigns the caller realizes with the step. So a training step
 * is one realize (and a cg_jit replays it): nothing is read on the host. */
#include "custom.h"
#include "linear_args.h"
#include "tensor.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FP8_E4M3_MAX 448.0
#define FP8_E5M2_MAX 57344.0

struct cg_fp8_scaling {
  int history;
  double margin;
  cg_tensor *hist;  /* (3, history) float32: amaxes of x, w, grad, newest first */
  cg_tensor *scale; /* (3,) float32: the scales the next quantizations use */
  cg_tensor *fmax;  /* (3,) float32: fmax / 2^margin per row */
  uop *pending[3];  /* this step's amaxes (0-d float32, retained), NULL: none yet */
  cg_tensor *out[2];
};

void cg_fp8_scaling_free(cg_fp8_scaling *s) {
  if (!s) return;
  for (int i = 0; i < 3; i++)
    if (s->pending[i]) uop_release(s->pending[i]);
  cg_free(s->hist), cg_free(s->scale), cg_free(s->fmax);
  free(s);
}

cg_fp8_scaling *cg_fp8_scaling_new(int history, double margin) {
  if (history < 1 || history > 1024 || !(margin >= 0 && margin < 64))
    return cg_fail_null(CG_ERR_INVALID, "fp8_scaling_new: expected history in [1, 1024] and margin in [0, 64), got %d and %g", history, margin);
  cg_fp8_scaling *s = calloc(1, sizeof *s);
  float *h = calloc((size_t)history * 3, sizeof(float));
  if (!s || !h) {
    free(s), free(h);
    return cg_fail_null(CG_ERR_NOMEM, "fp8_scaling_new: out of memory");
  }
  s->history = history, s->margin = margin;
  float one[3] = {1, 1, 1}, fm[3] = {(float)(FP8_E4M3_MAX / exp2(margin)), (float)(FP8_E4M3_MAX / exp2(margin)), (float)(FP8_E5M2_MAX / exp2(margin))};
  /* from host data: each its own buffer (equal lazy constants would be one node) */
  s->hist = tensor_own(cg_from_data(h, CG_FLOAT32, (int64_t[]){3, history}, 2));
  s->scale = tensor_own(cg_from_data(one, CG_FLOAT32, (int64_t[]){3}, 1));
  s->fmax = tensor_own(cg_from_data(fm, CG_FLOAT32, (int64_t[]){3, 1}, 2));
  free(h);
  if (!s->hist || !s->scale || !s->fmax) { /* the error is cg_from_data's */
    cg_fp8_scaling_free(s);
    return NULL;
  }
  return s;
}

double cg_fp8_scale(const cg_fp8_scaling *s, int which) {
  float v[3];
  if (!s || which < 0 || which > 2 || cg_read(s->scale, CG_FLOAT32, v, sizeof v) != CG_OK) return NAN;
  return v[which];
}

/* Record this step's amax of x (0), w (1) or the gradient (2): the largest of a step's,
 * for a layer used more than once. */
static void record(cg_fp8_scaling *s, int which, cg_tensor *amax) {
  if (!amax) return;
  cg_tensor *a = s->pending[which] ? cg_maximum(tensor_new(s->pending[which]), amax) : amax;
  if (!a) return;
  if (s->pending[which]) uop_release(s->pending[which]);
  s->pending[which] = uop_retain(a->u);
}

cg_status cg_fp8_scaling_update_lazy(cg_fp8_scaling *s, cg_tensor *const **pending, int *npending) {
  if (!s || !pending || !npending) return cg_fail(CG_NULL_INPUT, "fp8_scaling_update_lazy: %s is NULL", !s ? "the scaling" : "an output pointer");
  *pending = NULL, *npending = 0;
  if (!s->pending[0] && !s->pending[1] && !s->pending[2]) return CG_OK; /* no backward since the last update */
  cg_status st = CG_OK;
  cg_scope_begin();
  int64_t H = s->history;
  cg_tensor *a[3];
  for (int i = 0; i < 3; i++) /* a slot not recorded this step (NaN) changes nothing */
    a[i] = cg_reshape(s->pending[i] ? cg_cast(tensor_new(s->pending[i]), CG_FLOAT32) : cg_full(NAN, CG_FLOAT32, NULL, 0), (int64_t[]){1, 1}, 2);
  cg_tensor *am = cg_cat(a, 3, 0);                                                 /* (3, 1) */
  cg_tensor *ok = cg_logical_and(cg_eq(am, am), cg_lt(cg_abs(am), cg_scalar(INFINITY))); /* finite: recorded */
  cg_tensor *shifted = H > 1 ? cg_cat((cg_tensor *[]){am, cg_slice(s->hist, 1, 0, H - 1, 1)}, 2, 1) : am;
  cg_tensor *nh = cg_where(ok, shifted, s->hist);                                  /* (3, H) */
  cg_tensor *m = cg_max(nh, (int[]){1}, 1, true);                                  /* (3, 1) */
  cg_tensor *cand = cg_div(s->fmax, m);
  /* no amax yet (0) or a scale past float32 keeps the scale it had */
  cg_tensor *good = cg_logical_and(cg_gt(m, cg_scalar(0)), cg_lt(cand, cg_scalar(INFINITY)));
  cg_tensor *ns = cg_reshape(cg_where(good, cand, cg_reshape(s->scale, (int64_t[]){3, 1}, 2)), (int64_t[]){3}, 1);
  if (!nh || !ns) st = cg_last_status();
  if (st == CG_OK) st = cg_assign(s->hist, nh);
  if (st == CG_OK) st = cg_assign(s->scale, ns);
  cg_scope_end();
  if (st != CG_OK) return st;
  for (int i = 0; i < 3; i++)
    if (s->pending[i]) uop_release(s->pending[i]), s->pending[i] = NULL;
  s->out[0] = s->hist, s->out[1] = s->scale;
  *pending = s->out, *npending = 2;
  return CG_OK;
}

cg_status cg_fp8_scaling_update(cg_fp8_scaling *s) {
  cg_tensor *const *p;
  int n;
  cg_status st = cg_fp8_scaling_update_lazy(s, &p, &n);
  return st == CG_OK && n ? cg_realize_many(p, n) : st;
}

/* element i of a (3,) tensor as a 0-d one */
static cg_tensor *at(cg_tensor *v, int i) { return cg_reshape(cg_slice(v, 0, i, i + 1, 1), NULL, 0); }
static cg_tensor *amax(cg_tensor *t) { return cg_max(cg_abs(t), NULL, 0, false); }

/* v * scale rounded to dt, stored as bfloat16 (exact: every fp8 value is a bf16 value) */
static cg_tensor *quant(cg_tensor *v, cg_tensor *scale, cg_dtype dt) {
  cg_tensor *t = cg_mul(v, scale);
  if (dt == CG_FP8E5M2) t = cg_clamp(t, -FP8_E5M2_MAX, FP8_E5M2_MAX);
  return cg_contiguous(cg_cast(f32(cg_cast(t, dt)), CG_BFLOAT16));
}

/* node sources: x, w, xq (N, in), wq (out, in), inv (3,) = 1 / the scales the forward
 * used, ax, aw (the forward's amaxes, realized with the copies) */
static void fp8_backward(uop *node, uop *g, uop **d) {
  cg_fp8_scaling *s;
  int64_t p = custom_param(node, 0);
  memcpy(&s, &p, sizeof s);
  cg_scope_begin();
  cg_tensor *x = tensor_new(node->src[1]), *w = tensor_new(node->src[2]), *xq = tensor_new(node->src[3]), *wq = tensor_new(node->src[4]);
  cg_tensor *inv = tensor_new(node->src[5]);
  cg_tensor *g2 = rows(f32(tensor_new(g)));                          /* (N, out) */
  cg_tensor *sg = at(s->scale, 2);
  cg_tensor *gq = quant(g2, sg, CG_FP8E5M2), *gqt = cg_contiguous(cg_transpose(gq, 0, 1)); /* (N, out), (out, N) */
  cg_tensor *ag = amax(g2), *now[3] = {gq, gqt, ag};
  /* realized here (the kind realizes): the amax then reads g's producer with the copies
   * (a lazy one would compute it again, a matmul, in the step's last realize) */
  if (!gq || !gqt || !ag || cg_realize_many(now, 3) != CG_OK) {
    custom_fail(cg_last_status());
    cg_scope_end();
    return;
  }
  cg_tensor *rg = cg_reciprocal(sg);
  cg_tensor *dx = cg_mul(cg_matmul(f32(gq), f32(wq)), cg_mul(rg, at(inv, 1)));   /* (N, in) */
  cg_tensor *dw = cg_mul(cg_matmul(f32(gqt), f32(xq)), cg_mul(rg, at(inv, 0)));  /* (out, in) */
  cg_tensor *r[2] = {cg_cast(cg_reshape(dx, cg_shape(x), cg_ndim(x)), cg_dtype_of(x)), cg_cast(dw, cg_dtype_of(w))};
  if (!r[0] || !r[1]) custom_fail(cg_last_status());
  record(s, 0, tensor_new(node->src[6])), record(s, 1, tensor_new(node->src[7])), record(s, 2, ag);
  for (int i = 0; i < 2; i++) d[1 + i] = r[i] ? uop_pool_keep(uop_retain(r[i]->u)) : NULL;
  cg_scope_end();
}
static const custom_kind FP8 = {"linear_fp8", fp8_backward, true};

cg_tensor *cg_linear_fp8(cg_fp8_scaling *s, cg_tensor *x, cg_tensor *w, cg_tensor *b) {
  const char *who = "linear_fp8";
  if (!s) return cg_fail_null(CG_NULL_INPUT, "%s: scaling is NULL", who);
  if (!linear_args_ok(who, x, w, b)) return NULL;
  int nx = cg_ndim(x);
  cg_scope_begin();
  cg_tensor *res = NULL;
  cg_tensor *xs = rows(f32(cg_detach(x))), *ws = f32(cg_detach(w));
  /* realized here, so that the backward reads them instead of computing x again: the bf16
   * copies, 1 / the scales they used (the backward unscales with those, whenever the
   * scales are updated) and the amaxes the backward records */
  cg_tensor *xq = quant(xs, at(s->scale, 0), CG_FP8E4M3), *wq = quant(ws, at(s->scale, 1), CG_FP8E4M3); /* (N, in), (out, in) */
  cg_tensor *wqt = cg_contiguous(cg_transpose(wq, 0, 1));                                                 /* (in, out) */
  cg_tensor *inv = cg_contiguous(cg_reciprocal(s->scale)), *ax = amax(xs), *aw = amax(ws);
  cg_tensor *all[6] = {xq, wq, wqt, inv, ax, aw};
  if (xq && wq && wqt && inv && ax && aw && cg_realize_many(all, 6) == CG_OK) {
    int64_t shape[8];
    memcpy(shape, cg_shape(x), sizeof(int64_t) * (size_t)nx);
    shape[nx - 1] = cg_shape(w)[0];
    cg_tensor *y = cg_mul(cg_matmul(f32(xq), f32(wqt)), cg_mul(at(inv, 0), at(inv, 1)));
    y = cg_cast(cg_reshape(y, shape, nx), cg_dtype_of(x));
    if (y) {
      int64_t par;
      memcpy(&par, &s, sizeof s);
      uop *srcs[7] = {x->u, w->u, xq->u, wq->u, inv->u, ax->u, aw->u};
      op_begin();
      res = op_end(custom_node(&FP8, y->u, srcs, 7, &par, 1));
      if (res && b) res = cg_add(res, b);
    }
  }
  res = cg_keep(res);
  cg_scope_end();
  return res;
}
