/* Elementwise ops: broadcasting, type promotion, and the composite math built from the
 * small ALU set (exp = exp2(x/ln2), sigmoid = 1/(1+exp(-x)), ...). */
#include "tensor.h"
#include <math.h>

/* ---- dtypes ------------------------------------------------------------------------- */

static int kind_rank(dtype d) { return dt_is_bool(d) ? 0 : dt_is_int(d) ? 1 : 2; }

dtype promote(dtype a, dtype b) {
  if (dt_eq(a, b)) return a;
  if (kind_rank(a) != kind_rank(b)) return kind_rank(a) > kind_rank(b) ? a : b;
  int sa = dt_scalar_size(a), sb = dt_scalar_size(b);
  if (dt_is_float(a)) {
    bool fa = a.scalar == CG_FP8E4M3 || a.scalar == CG_FP8E5M2, fb = b.scalar == CG_FP8E4M3 || b.scalar == CG_FP8E5M2;
    if (fa && fb) return dt_of(CG_FLOAT16);
    if (sa == 2 && sb == 2) return DT_F32; /* float16 with bfloat16 */
    return sa > sb ? a : b;
  }
  bool ua = dt_is_unsigned(a), ub = dt_is_unsigned(b);
  if (ua == ub) return sa > sb ? a : b;
  dtype s = ua ? b : a, u = ua ? a : b;
  if (dt_scalar_size(s) > dt_scalar_size(u)) return s;
  int want = dt_scalar_size(u) * 2;
  return want >= 8 ? DT_I64 : want == 4 ? DT_I32 : dt_of(CG_INT16);
}

uop *cast_to(uop *u, dtype dt) {
  if (!u) return NULL;
  if (dt_eq(u->dt, dt)) return u;
  if (u->op == OP_CONST) { /* folded as CAST means it (uop/alu.c) */
    if (dt_is_float(u->dt)) return uop_const_float(dt, u->arg.f);
    return dt_is_float(dt) ? uop_const_float(dt, alu_int_to_float(dt, u->dt, u->arg.i)) : uop_const_int(dt, u->arg.i);
  }
  return uop_new(OP_CAST, dt, &u, 1, arg_none());
}

/* ---- building blocks ------------------------------------------------------------- */

uop *ew2(int op, uop *a, uop *b) { return uop_alu(op, a, b); }
uop *ew1(int op, uop *a) { return uop_alu1(op, a); }
uop *ew_const(uop *like, double v) { return !like ? NULL : const_full(like->dt, v, like->shape, like->ndim); }
static uop *ewc(uop *like, double v) { return ew_const(like, v); }
static uop *mul_c(uop *a, double v) { return ew2(OP_MUL, a, ewc(a, v)); }
static uop *add_c(uop *a, double v) { return ew2(OP_ADD, a, ewc(a, v)); }
static uop *sub(uop *a, uop *b) { return ew2(OP_ADD, a, ew1(OP_NEG, b)); }
static uop *lnot(uop *a) { return ew1(OP_NEG, a); }
static uop *where3(uop *c, uop *a, uop *b) { return uop_where(c, a, b); }

/* Broadcast shapes a and b; false + error naming both. */
static bool broadcast_dims(const char *who, const int64_t *as, int an, const int64_t *bs, int bn, int64_t *out, int *nd) {
  int n = an > bn ? an : bn;
  for (int i = 0; i < n; i++) {
    int ia = i - (n - an), ib = i - (n - bn);
    int64_t da = ia >= 0 ? as[ia] : 1, db = ib >= 0 ? bs[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      cg_fail(CG_ERR_INVALID, "%s: cannot broadcast shapes %s and %s", who, shape_str(as, an), shape_str(bs, bn));
      return false;
    }
    out[i] = da == 1 ? db : da;
  }
  *nd = n;
  return shape_fits(who, out, n, DT_F64); /* (1<<40, 1) + (1, 1<<40) */
}
static bool broadcast_shape(const char *who, const uop *a, const uop *b, int64_t *out, int *nd) {
  return broadcast_dims(who, a->shape, a->ndim, b->shape, b->ndim, out, nd);
}

/* The dtype of a binary op's operands after promotion, honoring weak scalars. */
static dtype binary_dtype(const cg_tensor *a, const cg_tensor *b) {
  if (a->weak && !b->weak) {
    if (dt_is_float(a->u->dt) && !dt_is_float(b->u->dt)) return DT_F32;
    if (dt_is_int(a->u->dt) && dt_is_bool(b->u->dt)) return DT_I32;
    return b->u->dt;
  }
  if (b->weak && !a->weak) return binary_dtype(b, a);
  return promote(a->u->dt, b->u->dt);
}

/* Operands broadcast to one shape and cast to dt (or the promoted dtype if dt is void). */
static bool prep2(const char *who, cg_tensor *ta, cg_tensor *tb, dtype dt, uop **a, uop **b) {
  if (!ta || !tb) {
    cg_fail(CG_NULL_INPUT, "%s: an operand is NULL", who);
    return false;
  }
  int64_t shp[UOP_MAX_DIMS];
  int nd;
  if (!broadcast_shape(who, ta->u, tb->u, shp, &nd) || !tensor_check_devices(who, (cg_tensor *[]){ta, tb}, 2)) return false;
  if (dt_is_void(dt)) dt = binary_dtype(ta, tb);
  *a = view_broadcast(cast_to(ta->u, dt), shp, nd);
  *b = view_broadcast(cast_to(tb->u, dt), shp, nd);
  return true;
}

static cg_tensor *result(uop *u, bool weak) {
  cg_tensor *t = op_end(u);
  if (t) t->weak = weak;
  return t;
}

/* ---- binary ops ------------------------------------------------------------------ */

typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_IDIV, B_POW, B_MAX, B_MIN, B_LT, B_LE, B_GT, B_GE, B_EQ, B_NE, B_AND, B_OR, B_XOR } bop;
static const char *bop_name[] = {"add", "sub", "mul", "div", "idiv", "pow", "maximum", "minimum", "lt", "le", "gt", "ge", "eq", "ne", "logical_and", "logical_or", "logical_xor"};

static uop *pow_f(uop *a, uop *b) {
  /* |a| with 0 replaced by 1 inside the log, so the hidden branch has no 0*inf (NaN) for
   * the gradient to pick up */
  uop *absa = where3(ew2(OP_CMPLT, a, ewc(a, 0)), ew1(OP_NEG, a), a);
  uop *safe = where3(ew2(OP_CMPEQ, a, ewc(a, 0)), ewc(a, 1), absa);
  uop *mag = ew1(OP_EXP2, ew2(OP_MUL, b, ew1(OP_LOG2, safe)));
  /* negative base: integral exponents give a sign, others NaN (as PyTorch) */
  uop *bi = ew1(OP_TRUNC, b);
  uop *is_int = ew2(OP_CMPEQ, bi, b);
  uop *half = mul_c(bi, 0.5);
  uop *odd = ew2(OP_CMPNE, ew1(OP_TRUNC, half), half);
  uop *neg = where3(is_int, where3(odd, ew1(OP_NEG, mag), mag), ewc(a, NAN));
  uop *r = where3(ew2(OP_CMPLT, a, ewc(a, 0)), neg, mag);
  /* zero base: 0^0 = 1, 0^+ = 0, 0^- = inf */
  uop *zero = where3(ew2(OP_CMPEQ, b, ewc(b, 0)), ewc(a, 1), where3(ew2(OP_CMPLT, ewc(b, 0), b), ewc(a, 0), ewc(a, INFINITY)));
  return where3(ew2(OP_CMPEQ, a, ewc(a, 0)), zero, r);
}

static cg_tensor *binary(bop op, cg_tensor *ta, cg_tensor *tb) {
  const char *who = bop_name[op];
  op_begin();
  uop *a, *b;
  dtype want = dt_void();
  if (op >= B_AND) want = DT_BOOL;
  if (!prep2(who, ta, tb, want, &a, &b) || !a || !b) return op_end(NULL);
  dtype dt = a->dt;
  bool weak = ta->weak && tb->weak;
  if ((op == B_DIV || op == B_POW) && !dt_is_float(dt)) {
    dtype f = DT_F32;
    if (op == B_POW) { /* integer power stays integer: computed in float64, rounded */
      uop *r = pow_f(cast_to(a, DT_F64), cast_to(b, DT_F64));
      r = ew1(OP_TRUNC, add_c(r, 0.0));
      return result(cast_to(r, dt), weak);
    }
    a = cast_to(a, f), b = cast_to(b, f);
  }
  if (op == B_SUB && dt_is_bool(dt)) return cg_fail(CG_ERR_INVALID, "sub: subtracting bool tensors is not supported, use logical_xor"), op_end(NULL);
  if (op == B_IDIV && !(dt_is_int(dt) || dt_is_bool(dt)))
    return cg_fail(CG_ERR_INVALID, "idiv: expected integer tensors, got %s", dt_name(dt)), op_end(NULL);
  uop *r;
  switch (op) {
  case B_ADD: r = ew2(OP_ADD, a, b); break;
  case B_SUB: r = sub(a, b); break;
  case B_MUL: r = ew2(OP_MUL, a, b); break;
  case B_DIV: r = ew2(OP_MUL, a, ew1(OP_RECIPROCAL, b)); break;
  case B_IDIV: r = ew2(OP_IDIV, a, b); break;
  case B_POW: r = pow_f(a, b); break;
  case B_MAX: r = ew2(OP_MAX, a, b); break;
  case B_MIN: /* floats as -max(-a, -b): ties split the gradient like torch.minimum */
    r = dt_is_float(dt) ? ew1(OP_NEG, ew2(OP_MAX, ew1(OP_NEG, a), ew1(OP_NEG, b))) : where3(ew2(OP_CMPLT, b, a), b, a);
    break;
  case B_LT: r = ew2(OP_CMPLT, a, b); break;
  case B_GT: r = ew2(OP_CMPLT, b, a); break;
  case B_LE: r = lnot(ew2(OP_CMPLT, b, a)); break;
  case B_GE: r = lnot(ew2(OP_CMPLT, a, b)); break;
  case B_EQ: r = ew2(OP_CMPEQ, a, b); break;
  case B_NE: r = ew2(OP_CMPNE, a, b); break;
  case B_AND: r = ew2(OP_AND, a, b); break;
  case B_OR: r = ew2(OP_OR, a, b); break;
  default: r = ew2(OP_XOR, a, b); break;
  }
  return result(r, weak && op < B_LT);
}

cg_tensor *cg_add(cg_tensor *a, cg_tensor *b) { return binary(B_ADD, a, b); }
cg_tensor *cg_sub(cg_tensor *a, cg_tensor *b) { return binary(B_SUB, a, b); }
cg_tensor *cg_mul(cg_tensor *a, cg_tensor *b) { return binary(B_MUL, a, b); }
cg_tensor *cg_div(cg_tensor *a, cg_tensor *b) { return binary(B_DIV, a, b); }
cg_tensor *cg_idiv(cg_tensor *a, cg_tensor *b) { return binary(B_IDIV, a, b); }
cg_tensor *cg_pow(cg_tensor *a, cg_tensor *b) { return binary(B_POW, a, b); }
cg_tensor *cg_maximum(cg_tensor *a, cg_tensor *b) { return binary(B_MAX, a, b); }
cg_tensor *cg_minimum(cg_tensor *a, cg_tensor *b) { return binary(B_MIN, a, b); }
cg_tensor *cg_lt(cg_tensor *a, cg_tensor *b) { return binary(B_LT, a, b); }
cg_tensor *cg_le(cg_tensor *a, cg_tensor *b) { return binary(B_LE, a, b); }
cg_tensor *cg_gt(cg_tensor *a, cg_tensor *b) { return binary(B_GT, a, b); }
cg_tensor *cg_ge(cg_tensor *a, cg_tensor *b) { return binary(B_GE, a, b); }
cg_tensor *cg_eq(cg_tensor *a, cg_tensor *b) { return binary(B_EQ, a, b); }
cg_tensor *cg_ne(cg_tensor *a, cg_tensor *b) { return binary(B_NE, a, b); }
cg_tensor *cg_logical_and(cg_tensor *a, cg_tensor *b) { return binary(B_AND, a, b); }
cg_tensor *cg_logical_or(cg_tensor *a, cg_tensor *b) { return binary(B_OR, a, b); }
cg_tensor *cg_logical_xor(cg_tensor *a, cg_tensor *b) { return binary(B_XOR, a, b); }

cg_tensor *cg_where(cg_tensor *c, cg_tensor *a, cg_tensor *b) {
  if (!c || !a || !b) return cg_fail_null(CG_NULL_INPUT, "where: an operand is NULL");
  op_begin();
  int64_t s1[UOP_MAX_DIMS], s2[UOP_MAX_DIMS];
  int n1, n2;
  if (!broadcast_shape("where", a->u, b->u, s1, &n1) || !broadcast_dims("where", c->u->shape, c->u->ndim, s1, n1, s2, &n2) ||
      !tensor_check_devices("where", (cg_tensor *[]){c, a, b}, 3))
    return op_end(NULL);
  dtype dt = binary_dtype(a, b);
  uop *cu = view_broadcast(cast_to(c->u, DT_BOOL), s2, n2);
  uop *au = view_broadcast(cast_to(a->u, dt), s2, n2), *bu = view_broadcast(cast_to(b->u, dt), s2, n2);
  return result(uop_where(cu, au, bu), a->weak && b->weak);
}

/* ---- unary ops ------------------------------------------------------------------- */

typedef enum { U_NEG, U_ABS, U_EXP, U_LOG, U_EXP2, U_LOG2, U_SQRT, U_RSQRT, U_RECIP, U_SIN, U_COS, U_TAN, U_TANH, U_SIGMOID,
               U_RELU, U_SILU, U_FLOOR, U_CEIL, U_ROUND, U_SIGN, U_NOT } uopk;
static const char *uop_names[] = {"neg", "abs", "exp", "log", "exp2", "log2", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan", "tanh",
                                  "sigmoid", "relu", "silu", "floor", "ceil", "round", "sign", "logical_not"};

static uop *relu_u(uop *x) { return where3(ew2(OP_CMPLT, ewc(x, 0), x), x, ewc(x, 0)); }
static uop *exp_u(uop *x) { return ew1(OP_EXP2, mul_c(x, 1.0 / M_LN2)); }
static uop *sigmoid_u(uop *x) { return ew1(OP_RECIPROCAL, add_c(exp_u(ew1(OP_NEG, x)), 1)); }
static uop *floor_u(uop *x) {
  uop *t = ew1(OP_TRUNC, x);
  return where3(ew2(OP_CMPLT, x, t), add_c(t, -1), t);
}

static uop *unary_u(uopk k, uop *x) {
  switch (k) {
  case U_NEG: return ew1(OP_NEG, x);
  case U_ABS: return ew2(OP_ADD, relu_u(x), relu_u(ew1(OP_NEG, x)));
  case U_EXP: return exp_u(x);
  case U_LOG: return mul_c(ew1(OP_LOG2, x), M_LN2);
  case U_EXP2: return ew1(OP_EXP2, x);
  case U_LOG2: return ew1(OP_LOG2, x);
  case U_SQRT: return ew1(OP_SQRT, x);
  case U_RSQRT: return ew1(OP_RECIPROCAL, ew1(OP_SQRT, x));
  case U_RECIP: return ew1(OP_RECIPROCAL, x);
  case U_SIN: return ew1(OP_SIN, x);
  case U_COS: return ew1(OP_SIN, ew2(OP_ADD, ew1(OP_NEG, x), ewc(x, M_PI / 2)));
  case U_TAN: return ew2(OP_MUL, ew1(OP_SIN, x), ew1(OP_RECIPROCAL, unary_u(U_COS, x)));
  case U_TANH: return add_c(mul_c(sigmoid_u(mul_c(x, 2)), 2), -1);
  case U_SIGMOID: return sigmoid_u(x);
  case U_RELU: return relu_u(x);
  case U_SILU: return ew2(OP_MUL, x, sigmoid_u(x));
  case U_FLOOR: return floor_u(x);
  case U_CEIL: {
    uop *t = ew1(OP_TRUNC, x);
    return where3(ew2(OP_CMPLT, t, x), add_c(t, 1), t);
  }
  case U_ROUND: { /* half to even */
    uop *r = floor_u(add_c(x, 0.5));
    uop *tie = ew2(OP_CMPEQ, sub(r, x), ewc(x, 0.5));
    uop *h = mul_c(r, 0.5);
    uop *odd = ew2(OP_CMPNE, floor_u(h), h);
    return where3(ew2(OP_AND, tie, odd), add_c(r, -1), r);
  }
  case U_SIGN: return where3(ew2(OP_CMPLT, ewc(x, 0), x), ewc(x, 1), where3(ew2(OP_CMPLT, x, ewc(x, 0)), ewc(x, -1), ewc(x, 0)));
  default: return lnot(x);
  }
}

static cg_tensor *unary(uopk k, cg_tensor *t) {
  if (!t) return cg_fail_null(CG_NULL_INPUT, "%s: tensor is NULL", uop_names[k]);
  op_begin();
  uop *x = t->u;
  bool is_float_op = k == U_EXP || k == U_LOG || k == U_EXP2 || k == U_LOG2 || k == U_SQRT || k == U_RSQRT || k == U_RECIP ||
                     k == U_SIN || k == U_COS || k == U_TAN || k == U_TANH || k == U_SIGMOID || k == U_SILU;
  if (k == U_NOT) x = cast_to(x, DT_BOOL);
  else if (is_float_op && !dt_is_float(x->dt)) x = cast_to(x, DT_F32);
  else if ((k == U_FLOOR || k == U_CEIL || k == U_ROUND) && !dt_is_float(x->dt)) return result(x, t->weak);
  if (dt_is_bool(x->dt) && k != U_NOT) {
    if (k == U_NEG) return cg_fail(CG_ERR_INVALID, "neg: negating a bool tensor is not supported, use logical_not"), op_end(NULL);
    x = cast_to(x, DT_I32);
  }
  return result(unary_u(k, x), t->weak);
}

cg_tensor *cg_neg(cg_tensor *a) { return unary(U_NEG, a); }
cg_tensor *cg_abs(cg_tensor *a) { return unary(U_ABS, a); }
cg_tensor *cg_exp(cg_tensor *a) { return unary(U_EXP, a); }
cg_tensor *cg_log(cg_tensor *a) { return unary(U_LOG, a); }
cg_tensor *cg_exp2(cg_tensor *a) { return unary(U_EXP2, a); }
cg_tensor *cg_log2(cg_tensor *a) { return unary(U_LOG2, a); }
cg_tensor *cg_sqrt(cg_tensor *a) { return unary(U_SQRT, a); }
cg_tensor *cg_rsqrt(cg_tensor *a) { return unary(U_RSQRT, a); }
cg_tensor *cg_reciprocal(cg_tensor *a) { return unary(U_RECIP, a); }
cg_tensor *cg_sin(cg_tensor *a) { return unary(U_SIN, a); }
cg_tensor *cg_cos(cg_tensor *a) { return unary(U_COS, a); }
cg_tensor *cg_tan(cg_tensor *a) { return unary(U_TAN, a); }
cg_tensor *cg_tanh(cg_tensor *a) { return unary(U_TANH, a); }
cg_tensor *cg_sigmoid(cg_tensor *a) { return unary(U_SIGMOID, a); }
cg_tensor *cg_relu(cg_tensor *a) { return unary(U_RELU, a); }
cg_tensor *cg_silu(cg_tensor *a) { return unary(U_SILU, a); }
cg_tensor *cg_floor(cg_tensor *a) { return unary(U_FLOOR, a); }
cg_tensor *cg_ceil(cg_tensor *a) { return unary(U_CEIL, a); }
cg_tensor *cg_round(cg_tensor *a) { return unary(U_ROUND, a); }
cg_tensor *cg_sign(cg_tensor *a) { return unary(U_SIGN, a); }
cg_tensor *cg_logical_not(cg_tensor *a) { return unary(U_NOT, a); }

cg_tensor *cg_clamp(cg_tensor *a, double lo, double hi) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "clamp: tensor is NULL");
  if (lo > hi) return cg_fail_null(CG_ERR_INVALID, "clamp: expected lo <= hi, got %g > %g", lo, hi);
  op_begin();
  uop *x = a->u;
  /* where-based so that the gradient flows at the bounds, as PyTorch's clamp */
  uop *r = where3(ew2(OP_CMPLT, x, ewc(x, lo)), ewc(x, lo), x);
  r = where3(ew2(OP_CMPLT, ewc(x, hi), r), ewc(x, hi), r);
  return result(r, a->weak);
}

cg_tensor *cg_cast(cg_tensor *a, cg_dtype dt) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "cast: tensor is NULL");
  if ((int)dt < 0 || dt >= CG_NUM_DTYPES) return cg_fail_null(CG_ERR_INVALID, "cast: invalid dtype %d", (int)dt);
  op_begin();
  return result(cast_to(a->u, dt_of(dt)), false);
}

cg_tensor *cg_bitcast(cg_tensor *a, cg_dtype dt) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "bitcast: tensor is NULL");
  if ((int)dt < 0 || dt >= CG_NUM_DTYPES || cg_dtype_size(dt) != (size_t)dt_scalar_size(a->u->dt))
    return cg_fail_null(CG_ERR_INVALID, "bitcast: expected a dtype of %d bytes like %s, got %s", dt_scalar_size(a->u->dt),
                        dt_name(a->u->dt), cg_dtype_name(dt));
  op_begin();
  uop *x = a->u;
  return result(dt_eq(x->dt, dt_of(dt)) ? x : uop_new(OP_BITCAST, dt_of(dt), &x, 1, arg_none()), false);
}
