/* Reductions, ArgMax/ArgMin and the softmax family.
 *
 * Reduce*: axes are an attribute up to opset 17 (ReduceSum: 12) and an input after; no
 * axes means all, unless noop_with_empty_axes makes it the identity. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include <math.h>

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQUARE } red_kind;

static cg_status reduce(onnx_ctx *c, red_kind k, int64_t input_since) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  int64_t ax64[CG_MAX_DIMS];
  int nax = -1;
  if (c->opset >= input_since) {
    if (c->nin > 1 && c->in[1]) nax = onnx_in_ints(c, 1, ax64, CG_MAX_DIMS);
    if (nax < -1 || (c->nin > 1 && c->in[1] && nax < 0)) return cg_last_status();
  } else {
    nax = onnx_attr_ints(c, "axes", ax64, CG_MAX_DIMS);
    if (nax < -1) return cg_last_status();
  }
  bool keep = onnx_attr_i(c, "keepdims", 1);
  if (nax <= 0 && onnx_attr_i(c, "noop_with_empty_axes", 0)) return onnx_set(c, 0, cg_reshape(x, cg_shape(x), nd));
  int axes[CG_MAX_DIMS];
  if (nax <= 0) {
    nax = nd;
    for (int i = 0; i < nd; i++) axes[i] = i;
  } else
    for (int i = 0; i < nax; i++)
      if ((axes[i] = onnx_axis(c, ax64[i], nd)) < 0) return cg_last_status();
  if (nd == 0) return onnx_set(c, 0, cg_reshape(x, cg_shape(x), 0));
  cg_dtype dt = cg_dtype_of(x);
  cg_tensor *r;
  switch (k) {
  case R_SUM: r = cg_sum(x, axes, nax, keep); break;
  case R_MEAN: r = cg_mean(x, axes, nax, keep); break;
  case R_MAX: r = cg_max(x, axes, nax, keep); break;
  case R_MIN: r = cg_min(x, axes, nax, keep); break;
  case R_PROD: r = cg_prod(x, axes, nax, keep); break;
  case R_L1: r = cg_sum(cg_abs(x), axes, nax, keep); break;
  case R_L2: r = cg_sqrt(cg_sum(cg_mul(x, x), axes, nax, keep)); break;
  case R_LOGSUM: r = cg_log(cg_sum(x, axes, nax, keep)); break;
  case R_LOGSUMEXP: r = cg_logsumexp(x, axes, nax, keep); break;
  default: r = cg_sum(cg_mul(x, x), axes, nax, keep); break;
  }
  return onnx_set(c, 0, r && cg_dtype_of(r) != dt ? cg_cast(r, dt) : r);
}
static cg_status op_ReduceSum(onnx_ctx *c) { return reduce(c, R_SUM, 13); }
static cg_status op_ReduceMean(onnx_ctx *c) { return reduce(c, R_MEAN, 18); }
static cg_status op_ReduceMax(onnx_ctx *c) { return reduce(c, R_MAX, 18); }
static cg_status op_ReduceMin(onnx_ctx *c) { return reduce(c, R_MIN, 18); }
static cg_status op_ReduceProd(onnx_ctx *c) { return reduce(c, R_PROD, 18); }
static cg_status op_ReduceL1(onnx_ctx *c) { return reduce(c, R_L1, 18); }
static cg_status op_ReduceL2(onnx_ctx *c) { return reduce(c, R_L2, 18); }
static cg_status op_ReduceLogSum(onnx_ctx *c) { return reduce(c, R_LOGSUM, 18); }
static cg_status op_ReduceLogSumExp(onnx_ctx *c) { return reduce(c, R_LOGSUMEXP, 18); }
static cg_status op_ReduceSumSquare(onnx_ctx *c) { return reduce(c, R_SUMSQUARE, 18); }

static cg_status arg(onnx_ctx *c, bool is_max) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x), ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  bool keep = onnx_attr_i(c, "keepdims", 1), last = onnx_attr_i(c, "select_last_index", 0);
  cg_tensor *src = last ? cg_flip(x, &ax, 1) : x;
  cg_tensor *i = cg_cast(is_max ? cg_argmax(src, ax, keep) : cg_argmin(src, ax, keep), CG_INT64);
  if (last) i = cg_sub(onnx_const((double)cg_shape(x)[ax] - 1, CG_INT64), i);
  return onnx_set(c, 0, i);
}
static cg_status op_ArgMax(onnx_ctx *c) { return arg(c, true); }
static cg_status op_ArgMin(onnx_ctx *c) { return arg(c, false); }

typedef enum { S_SOFTMAX, S_LOGSOFTMAX, S_HARDMAX } sm_kind;

static cg_tensor *hardmax(cg_tensor *x, int ax) {
  cg_tensor *i = cg_argmax(x, ax, true);
  int64_t n = cg_shape(x)[ax], shape[CG_MAX_DIMS];
  int nd = cg_ndim(x);
  for (int d = 0; d < nd; d++) shape[d] = d == ax ? n : 1;
  cg_tensor *r = cg_reshape(cg_arange(0, (double)n, 1, CG_INT32), shape, nd);
  return cg_cast(cg_eq(r, i), cg_dtype_of(x));
}

static cg_status softmax(onnx_ctx *c, sm_kind k) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", c->opset >= 13 ? -1 : 1), nd);
  if (ax < 0) return cg_last_status();
  cg_tensor *src = x;
  int a = ax;
  if (c->opset < 13) { /* the input is coerced to 2-D at axis */
    int64_t s2[2] = {1, 1};
    for (int d = 0; d < nd; d++) s2[d >= ax] *= cg_shape(x)[d];
    src = cg_reshape(x, s2, 2);
    a = 1;
  }
  cg_tensor *r = k == S_SOFTMAX ? cg_softmax(src, a) : k == S_LOGSOFTMAX ? cg_log_softmax(src, a) : hardmax(src, a);
  if (c->opset < 13) r = cg_reshape(r, cg_shape(x), nd);
  return onnx_set(c, 0, r);
}
static cg_status op_Softmax(onnx_ctx *c) { return softmax(c, S_SOFTMAX); }
static cg_status op_LogSoftmax(onnx_ctx *c) { return softmax(c, S_LOGSOFTMAX); }
static cg_status op_Hardmax(onnx_ctx *c) { return softmax(c, S_HARDMAX); }

static cg_status op_CumSum(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  int64_t a;
  if (!x || onnx_in_ints(c, 1, &a, 1) != 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "axis must be one value");
  int ax = onnx_axis(c, a, cg_ndim(x));
  if (ax < 0) return cg_last_status();
  bool excl = onnx_attr_i(c, "exclusive", 0), rev = onnx_attr_i(c, "reverse", 0);
  cg_tensor *s = rev ? cg_flip(x, &ax, 1) : x;
  cg_tensor *r = cg_cumsum(s, ax);
  if (excl) { /* shift by one along the axis: pad a zero in front, drop the last */
    int64_t pads[2 * CG_MAX_DIMS] = {0};
    pads[2 * ax] = 1;
    r = cg_slice(cg_pad(r, pads, 0), ax, 0, cg_shape(x)[ax], 1);
  }
  if (rev) r = cg_flip(r, &ax, 1);
  return onnx_set(c, 0, r);
}

const onnx_op onnx_ops_reduce[] = {
#define E(n) {#n, op_##n, false},
    E(ReduceSum) E(ReduceMean) E(ReduceMax) E(ReduceMin) E(ReduceProd) E(ReduceL1) E(ReduceL2) E(ReduceLogSum)
    E(ReduceLogSumExp) E(ReduceSumSquare) E(ArgMax) E(ArgMin) E(Softmax) E(LogSoftmax) E(Hardmax) E(CumSum)
#undef E
    {NULL, NULL, false}};
