/* Elementwise ONNX ops: unary math and activations, binary arithmetic and comparisons
 * (multidirectional broadcasting, as NumPy), variadic Max/Min/Sum/Mean, Where, Clip, Cast.
 * ONNX gives both operands of a binary op one type, so cgrad's promotion never widens;
 * constants are made in the input's dtype for the same reason. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include <math.h>
#include <string.h>

#define X0()                         \
  cg_tensor *x = onnx_in(c, 0);      \
  if (!x) return cg_last_status();   \
  cg_dtype dt = cg_dtype_of(x);      \
  (void)dt
#define K(v) onnx_const((v), dt)

#define UNARY(name, expr)                 \
  static cg_status op_##name(onnx_ctx *c) { \
    X0();                                  \
    return onnx_set(c, 0, (expr));         \
  }

/* atan by range reduction to [0, 1] and a minimax polynomial (|error| < 1e-7 on [0, 1]). */
static cg_tensor *atan_t(cg_tensor *x) {
  cg_dtype dt = cg_dtype_of(x);
  cg_tensor *ax = cg_abs(x), *big = cg_gt(ax, K(1));
  cg_tensor *r = cg_where(big, cg_reciprocal(ax), ax); /* in [0, 1] */
  cg_tensor *r2 = cg_mul(r, r);
  static const double co[] = {-0.0040540580, 0.0218612288, -0.0559098861, 0.0964200441, -0.1390853351,
                              0.1994653599,  -0.3332985605, 0.9999993329};
  cg_tensor *p = K(co[0]);
  for (int i = 1; i < 8; i++) p = cg_add(cg_mul(p, r2), K(co[i]));
  cg_tensor *a = cg_mul(p, r);
  a = cg_where(big, cg_sub(K(M_PI / 2), a), a);
  return cg_mul(cg_sign(x), a);
}
static cg_tensor *asin_t(cg_tensor *x) {
  cg_dtype dt = cg_dtype_of(x);
  cg_tensor *s = cg_sqrt(cg_sub(K(1), cg_mul(x, x)));
  /* at |x| = 1, x/0 = ±inf and atan(±inf) = ±pi/2 */
  return atan_t(cg_div(x, s));
}

UNARY(Abs, cg_abs(x))
UNARY(Neg, cg_neg(x))
UNARY(Exp, cg_exp(x))
UNARY(Log, cg_log(x))
UNARY(Sqrt, cg_sqrt(x))
UNARY(Reciprocal, cg_reciprocal(x))
UNARY(Sin, cg_sin(x))
UNARY(Cos, cg_cos(x))
UNARY(Tan, cg_tan(x))
UNARY(Tanh, cg_tanh(x))
UNARY(Sigmoid, cg_sigmoid(x))
UNARY(Relu, cg_relu(x))
UNARY(Floor, cg_floor(x))
UNARY(Ceil, cg_ceil(x))
UNARY(Round, cg_round(x))
UNARY(Sign, cg_sign(x))
UNARY(Not, cg_logical_not(x))
UNARY(Sinh, cg_mul(cg_sub(cg_exp(x), cg_exp(cg_neg(x))), K(0.5)))
UNARY(Cosh, cg_mul(cg_add(cg_exp(x), cg_exp(cg_neg(x))), K(0.5)))
UNARY(Asinh, cg_log(cg_add(x, cg_sqrt(cg_add(cg_mul(x, x), K(1))))))
UNARY(Acosh, cg_log(cg_add(x, cg_sqrt(cg_sub(cg_mul(x, x), K(1))))))
UNARY(Atanh, cg_mul(cg_log(cg_div(cg_add(K(1), x), cg_sub(K(1), x))), K(0.5)))
UNARY(Atan, atan_t(x))
UNARY(Asin, asin_t(x))
UNARY(Acos, cg_sub(K(M_PI / 2), asin_t(x)))
UNARY(Softsign, cg_div(x, cg_add(K(1), cg_abs(x))))
/* log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), without overflow */
UNARY(Softplus, cg_add(cg_relu(x), cg_log(cg_add(K(1), cg_exp(cg_neg(cg_abs(x)))))))
UNARY(Mish, cg_mul(x, cg_tanh(cg_add(cg_relu(x), cg_log(cg_add(K(1), cg_exp(cg_neg(cg_abs(x)))))))))
UNARY(IsNaN, cg_ne(x, x))
UNARY(HardSwish, cg_mul(x, cg_clamp(cg_add(cg_mul(x, K(1.0 / 6)), K(0.5)), 0, 1)))

static cg_status op_Identity(onnx_ctx *c) {
  if (c->nin > 0 && c->sin[0]) { /* a sequence passes through */
    c->sout[0] = c->sin[0];
    return CG_OK;
  }
  X0();
  return onnx_set(c, 0, cg_reshape(x, cg_shape(x), cg_ndim(x)));
}

static cg_status op_Elu(onnx_ctx *c) {
  X0();
  double a = onnx_attr_f(c, "alpha", 1.0);
  return onnx_set(c, 0, cg_where(cg_gt(x, K(0)), x, cg_mul(K(a), cg_sub(cg_exp(x), K(1)))));
}
static cg_status op_Selu(onnx_ctx *c) {
  X0();
  double a = onnx_attr_f(c, "alpha", 1.67326319217681884765625), g = onnx_attr_f(c, "gamma", 1.05070102214813232421875);
  return onnx_set(c, 0, cg_mul(K(g), cg_where(cg_gt(x, K(0)), x, cg_mul(K(a), cg_sub(cg_exp(x), K(1))))));
}
static cg_status op_Celu(onnx_ctx *c) {
  X0();
  double a = onnx_attr_f(c, "alpha", 1.0);
  return onnx_set(c, 0, cg_add(cg_relu(x), cg_minimum(K(0), cg_mul(K(a), cg_sub(cg_exp(cg_div(x, K(a))), K(1))))));
}
static cg_status op_LeakyRelu(onnx_ctx *c) {
  X0();
  double a = onnx_attr_f(c, "alpha", 0.01);
  return onnx_set(c, 0, cg_where(cg_lt(x, K(0)), cg_mul(x, K(a)), x));
}
static cg_status op_ThresholdedRelu(onnx_ctx *c) {
  X0();
  double a = onnx_attr_f(c, "alpha", 1.0);
  return onnx_set(c, 0, cg_where(cg_gt(x, K(a)), x, K(0)));
}
static cg_status op_HardSigmoid(onnx_ctx *c) {
  X0();
  double a = onnx_attr_f(c, "alpha", 0.2), b = onnx_attr_f(c, "beta", 0.5);
  return onnx_set(c, 0, cg_maximum(K(0), cg_minimum(K(1), cg_add(cg_mul(x, K(a)), K(b)))));
}
static cg_status op_Shrink(onnx_ctx *c) {
  X0();
  double b = onnx_attr_f(c, "bias", 0), l = onnx_attr_f(c, "lambd", 0.5);
  return onnx_set(c, 0, cg_where(cg_lt(x, K(-l)), cg_add(x, K(b)), cg_where(cg_gt(x, K(l)), cg_sub(x, K(b)), K(0))));
}
static cg_status op_PRelu(onnx_ctx *c) {
  X0();
  cg_tensor *s = onnx_in(c, 1);
  if (!s) return cg_last_status();
  int nd = cg_ndim(x);
  if (c->opset < 7 && cg_ndim(s) == 1 && nd > 2 && cg_numel(s) == cg_shape(x)[1]) { /* one slope per channel */
    int64_t sh[CG_MAX_DIMS];
    for (int d = 0; d < nd; d++) sh[d] = d == 1 ? cg_numel(s) : 1;
    s = cg_reshape(s, sh, nd);
  }
  return onnx_set(c, 0, cg_where(cg_lt(x, K(0)), cg_mul(x, s), x));
}
static cg_status op_IsInf(onnx_ctx *c) {
  X0();
  bool neg = onnx_attr_i(c, "detect_negative", 1), pos = onnx_attr_i(c, "detect_positive", 1);
  cg_tensor *r = cg_zeros(CG_BOOL, cg_shape(x), cg_ndim(x));
  if (pos) r = cg_logical_or(r, cg_eq(x, K(INFINITY)));
  if (neg) r = cg_logical_or(r, cg_eq(x, K(-INFINITY)));
  return onnx_set(c, 0, r);
}
static cg_status op_Erf(onnx_ctx *c) {
  X0();
  return onnx_set(c, 0, cg_erf(x));
}

/* ---- binary --------------------------------------------------------------------------------- */

#define BINARY(name, expr)                                   \
  static cg_status op_##name(onnx_ctx *c) {                    \
    cg_tensor *a = onnx_in(c, 0), *b = onnx_in(c, 1);          \
    if (!a || !b) return cg_last_status();                     \
    cg_dtype dt = cg_dtype_of(a);                              \
    (void)dt;                                                  \
    return onnx_set(c, 0, (expr));                             \
  }

BINARY(Add, cg_add(a, b))
BINARY(Sub, cg_sub(a, b))
BINARY(Mul, cg_mul(a, b))
BINARY(Div, onnx_is_int(dt) ? cg_idiv(a, b) : cg_div(a, b))
BINARY(Equal, cg_eq(a, b))
BINARY(Greater, cg_gt(a, b))
BINARY(GreaterOrEqual, cg_ge(a, b))
BINARY(Less, cg_lt(a, b))
BINARY(LessOrEqual, cg_le(a, b))
BINARY(And, cg_logical_and(a, b))
BINARY(Or, cg_logical_or(a, b))
BINARY(Xor, cg_logical_xor(a, b))

static cg_status op_Pow(onnx_ctx *c) {
  cg_tensor *a = onnx_in(c, 0), *b = onnx_in(c, 1);
  if (!a || !b) return cg_last_status();
  cg_dtype dt = cg_dtype_of(a);
  if (!onnx_is_float(dt) || !onnx_is_float(cg_dtype_of(b))) {
    /* integer powers through float64: exact for the magnitudes int32 holds */
    cg_tensor *r = cg_pow(cg_cast(a, CG_FLOAT64), cg_cast(b, CG_FLOAT64));
    if (onnx_is_int(dt)) r = cg_round(r);
    return onnx_set(c, 0, cg_cast(r, dt));
  }
  return onnx_set(c, 0, cg_cast(cg_pow(a, cg_cast(b, dt)), dt));
}

static cg_status op_Mod(onnx_ctx *c) {
  cg_tensor *a = onnx_in(c, 0), *b = onnx_in(c, 1);
  if (!a || !b) return cg_last_status();
  cg_dtype dt = cg_dtype_of(a);
  bool fm = onnx_attr_i(c, "fmod", 0);
  if (onnx_is_float(dt)) {
    if (!fm) return onnx_fail(c, "fmod=0 is only defined for integers");
    cg_tensor *q = cg_div(a, b);
    cg_tensor *tq = cg_where(cg_lt(q, K(0)), cg_ceil(q), cg_floor(q));
    return onnx_set(c, 0, cg_sub(a, cg_mul(b, tq)));
  }
  cg_tensor *r = cg_sub(a, cg_mul(cg_idiv(a, b), b)); /* sign of a (C's %) */
  if (!fm && onnx_is_signed(dt)) {
    cg_tensor *fix = cg_logical_and(cg_ne(r, K(0)), cg_logical_xor(cg_lt(r, K(0)), cg_lt(b, K(0))));
    r = cg_where(fix, cg_add(r, b), r);
  }
  return onnx_set(c, 0, r);
}

static cg_status op_BitShift(onnx_ctx *c) {
  cg_tensor *a = onnx_in(c, 0), *b = onnx_in(c, 1);
  if (!a || !b) return cg_last_status();
  cg_dtype dt = cg_dtype_of(a);
  char buf[16];
  const char *dir = onnx_attr_s(c, "direction", "", buf, sizeof buf);
  cg_tensor *p = cg_cast(cg_exp2(cg_cast(b, CG_FLOAT64)), dt);
  if (!strcmp(dir, "LEFT")) return onnx_set(c, 0, cg_mul(a, p));
  if (!strcmp(dir, "RIGHT")) return onnx_set(c, 0, cg_idiv(a, p));
  return onnx_fail(c, "direction must be LEFT or RIGHT, got '%s'", dir);
}

static cg_status variadic(onnx_ctx *c, cg_tensor *(*f)(cg_tensor *, cg_tensor *), bool mean) {
  cg_tensor *r = onnx_in(c, 0);
  if (!r) return cg_last_status();
  for (int i = 1; i < c->nin; i++) {
    cg_tensor *b = onnx_in(c, i);
    if (!b) return cg_last_status();
    r = f(r, b);
  }
  if (mean) r = cg_div(r, onnx_const(c->nin, cg_dtype_of(r)));
  if (c->nin == 1) r = cg_reshape(r, cg_shape(r), cg_ndim(r));
  return onnx_set(c, 0, r);
}
static cg_status op_Max(onnx_ctx *c) { return variadic(c, cg_maximum, false); }
static cg_status op_Min(onnx_ctx *c) { return variadic(c, cg_minimum, false); }
static cg_status op_Sum(onnx_ctx *c) { return variadic(c, cg_add, false); }
static cg_status op_Mean(onnx_ctx *c) { return variadic(c, cg_add, true); }

static cg_status op_Where(onnx_ctx *c) {
  cg_tensor *w = onnx_in(c, 0), *a = onnx_in(c, 1), *b = onnx_in(c, 2);
  if (!w || !a || !b) return cg_last_status();
  return onnx_set(c, 0, cg_where(cg_cast(w, CG_BOOL), a, b));
}

static cg_status op_Clip(onnx_ctx *c) {
  X0();
  cg_tensor *r = x;
  if (c->opset < 11) {
    r = cg_maximum(r, K(onnx_attr_f(c, "min", -INFINITY)));
    r = cg_minimum(r, K(onnx_attr_f(c, "max", INFINITY)));
  } else {
    if (c->nin > 1 && c->in[1]) r = cg_maximum(r, c->in[1]);
    if (c->nin > 2 && c->in[2]) r = cg_minimum(r, c->in[2]);
    if (r == x) r = cg_reshape(x, cg_shape(x), cg_ndim(x));
  }
  return onnx_set(c, 0, r);
}

static cg_status op_Cast(onnx_ctx *c) {
  X0();
  int64_t to = onnx_attr_i(c, "to", 0);
  int d = onnx_dtype((int32_t)to);
  if (d < 0) return onnx_fail(c, "cast to %s is not supported", onnx_dtype_name((int32_t)to));
  return onnx_set(c, 0, cg_cast(x, (cg_dtype)d));
}
static cg_status op_CastLike(onnx_ctx *c) {
  X0();
  cg_tensor *t = onnx_in(c, 1);
  if (!t) return cg_last_status();
  return onnx_set(c, 0, cg_cast(x, cg_dtype_of(t)));
}

const onnx_op onnx_ops_elementwise[] = {
{"Identity", op_Identity, true},
#define E(n) {#n, op_##n, false},
    E(Abs) E(Neg) E(Exp) E(Log) E(Sqrt) E(Reciprocal) E(Sin) E(Cos) E(Tan) E(Tanh) E(Sigmoid) E(Relu) E(Floor)
    E(Ceil) E(Round) E(Sign) E(Not) E(Sinh) E(Cosh) E(Asinh) E(Acosh) E(Atanh) E(Atan) E(Asin) E(Acos)
    E(Softsign) E(Softplus) E(Mish) E(IsNaN) E(HardSwish) E(Elu) E(Selu) E(Celu) E(LeakyRelu)
    E(ThresholdedRelu) E(HardSigmoid) E(Shrink) E(PRelu) E(IsInf) E(Erf) E(Add) E(Sub) E(Mul) E(Div) E(Equal)
    E(Greater) E(GreaterOrEqual) E(Less) E(LessOrEqual) E(And) E(Or) E(Xor) E(Pow) E(Mod) E(BitShift) E(Max)
    E(Min) E(Sum) E(Mean) E(Where) E(Clip) E(Cast) E(CastLike)
#undef E
    {NULL, NULL, false}};
