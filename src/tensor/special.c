/* Special functions built from the small ALU set: erf, exact and tanh GELU, softplus,
 * log1p, expm1. They are elementwise UOp graphs (no new IR op), so they fuse into their
 * neighbours and autograd differentiates them like any composite.
 *
 * erf: float32 (and float16/bfloat16, computed in float32) uses a two-piece minimax
 * approximation (N. Juffa's erff: an odd polynomial below 0.9277 and 1 - exp(poly) above),
 * max error 1.04 ulp measured over 60000 points here (tests/nn/test_special.c).
 * float64 uses the Maclaurin series below 2 and the continued fraction of erfc above
 * (relative error < 2e-15). log1p, expm1 and softplus, differentiated through their
 * branches, read a clamped copy of x in each so that the branch `where` discards never
 * computes an inf or NaN: its gradient is multiplied by zero, and 0 * inf would be NaN. */
#include "custom.h"
#include "tensor.h"
#include <math.h>

static uop *C(uop *like, double v) { return ew_const(like, v); }
static uop *add(uop *a, uop *b) { return ew2(OP_ADD, a, b); }
static uop *sub(uop *a, uop *b) { return ew2(OP_ADD, a, ew1(OP_NEG, b)); }
static uop *mul(uop *a, uop *b) { return ew2(OP_MUL, a, b); }
static uop *divi(uop *a, uop *b) { return ew2(OP_MUL, a, ew1(OP_RECIPROCAL, b)); }
static uop *addc(uop *a, double v) { return add(a, C(a, v)); }
static uop *mulc(uop *a, double v) { return mul(a, C(a, v)); }
static uop *lt(uop *a, uop *b) { return ew2(OP_CMPLT, a, b); }
static uop *sel(uop *c, uop *a, uop *b) { return uop_where(c, a, b); }
static uop *absu(uop *x) { return sel(lt(x, C(x, 0)), ew1(OP_NEG, x), x); }
static uop *clampc(uop *x, double lo, double hi) {
  x = sel(lt(x, C(x, lo)), C(x, lo), x);
  return sel(lt(C(x, hi), x), C(x, hi), x);
}
static uop *expu(uop *x) { return ew1(OP_EXP2, mulc(x, 1.0 / M_LN2)); }
static uop *logu(uop *x) { return mulc(ew1(OP_LOG2, x), M_LN2); }
/* sign(a) * r, with +1 for a >= 0 */
static uop *copysgn(uop *r, uop *a) { return sel(lt(a, C(a, 0)), ew1(OP_NEG, r), r); }

/* c[0] + x*(c[1] + x*(... c[n-1])) */
static uop *horner(uop *x, const double *c, int n) {
  uop *r = C(x, c[n - 1]);
  for (int i = n - 2; i >= 0; i--) r = addc(mul(r, x), c[i]);
  return r;
}

/* Bits of a float32: |x| and the sign as one AND each (a compare, a negation and a select
 * were three ops and a mask), the sign put on by one XOR. No gradient flows through them:
 * erf has its own rule. */
static uop *bits(uop *x, dtype d) { return uop_new(OP_BITCAST, d, &x, 1, arg_none()); }
static uop *andc(uop *x, double m) { return ew2(OP_AND, x, C(x, m)); }
static uop *absbits(uop *x) { return bits(andc(bits(x, DT_I32), 0x7fffffff), DT_F32); }

/* erf's gradient is its own rule (erf_backward), so its branches need no clamps for the
 * gradient's sake: only the exp's argument is clamped (to 4, where erf is 1 in float32: an
 * inf there would be inf - inf); the polynomial of the other branch may overflow in lanes
 * the select discards. Nine fewer ops an element than clamping both branches. The clamp
 * where(4 < t, 4, t) is min(4, t) exactly (NaN kept): the C renderer spells it vminps. */
static uop *erf_f32(uop *a) {
  uop *t = absbits(a), *sign = andc(bits(a, DT_I32), -2147483648.0);
  /* |a| > 0.927734375: 1 - exp(p(t)), p(t) = t*(c0 + t*(c1 + ...)) - t */
  uop *th = sel(lt(C(t, 4), t), C(t, 4), t), *s = mul(th, th);
  uop *r = addc(mulc(th, -1.72853470e-5), 3.83197126e-4);
  uop *u = addc(mulc(th, -3.88396438e-3), 2.42546219e-2);
  r = add(mul(r, s), u);
  r = addc(mul(r, th), -1.06777877e-1);
  r = addc(mul(r, th), -6.34846687e-1);
  r = addc(mul(r, th), -1.28717512e-1);
  r = sub(mul(r, th), th);
  uop *hi = bits(ew2(OP_XOR, bits(sub(C(r, 1), expu(r)), DT_I32), sign), DT_F32);
  /* below: a + a*q(a^2) */
  static const double Q[6] = {1.28379166e-1, -3.76125336e-1, 1.12819925e-1, -2.67681349e-2, 4.99119423e-3, -5.96761703e-4};
  uop *lo = add(mul(horner(mul(a, a), Q, 6), a), a);
  return sel(lt(C(t, 0.927734375), t), hi, lo);
}

static uop *erf_f64(uop *a) {
  uop *t = absu(a);
  /* |a| < 2: 2/sqrt(pi) * sum_n (-1)^n a^(2n+1) / (n! (2n+1)), 30 terms */
  uop *al = clampc(a, -2, 2), *x2 = mul(al, al), *term = al, *sum = al;
  for (int n = 1; n < 30; n++) {
    term = mul(term, mulc(x2, -1.0 / n));
    sum = add(sum, mulc(term, 1.0 / (2 * n + 1)));
  }
  uop *lo = mulc(sum, M_2_SQRTPI);
  /* |a| >= 2: erfc(t) = exp(-t^2)/sqrt(pi) / (t + (1/2)/(t + 1/(t + (3/2)/(t + ...)))) */
  uop *th = clampc(t, 2, 6), *d = th;
  for (int k = 45; k >= 1; k--) d = add(th, divi(C(th, k / 2.0), d));
  uop *erfc = divi(mulc(expu(ew1(OP_NEG, mul(th, th))), M_2_SQRTPI / 2), d);
  uop *hi = copysgn(sub(C(erfc, 1), erfc), a);
  return sel(lt(t, C(t, 2)), lo, hi);
}

/* erf's gradient is its exact derivative, 2/sqrt(pi) exp(-x^2): five ops where the
 * derivative of the approximation would be a hundred (the GELU backward of a transformer's
 * MLP runs it on every activation), and exact rather than approximately so. */
static void erf_backward(uop *u, uop *g, uop **d) {
  uop *x = u->src[1];
  d[1] = mul(g, mulc(expu(ew1(OP_NEG, mul(x, x))), M_2_SQRTPI));
}
static const custom_kind ERF = {"erf", erf_backward, false};

static uop *erf_u(uop *x) {
  uop *v;
  if (x->dt.scalar == CG_FLOAT64) v = erf_f64(x);
  else if (x->dt.scalar == CG_FLOAT32) v = erf_f32(x);
  else v = cast_to(erf_f32(cast_to(x, DT_F32)), x->dt);
  return custom_node(&ERF, v, &x, 1, NULL, 0);
}

static uop *gelu_u(uop *x) { return mul(mulc(x, 0.5), addc(erf_u(mulc(x, M_SQRT1_2)), 1)); }

static uop *tanh_u(uop *x) { /* 2*sigmoid(2x) - 1, as cg_tanh */
  uop *sig = ew1(OP_RECIPROCAL, addc(expu(mulc(x, -2)), 1));
  return addc(mulc(sig, 2), -1);
}
static uop *gelu_tanh_u(uop *x) {
  uop *inner = mulc(add(x, mulc(mul(x, mul(x, x)), 0.044715)), sqrt(2.0 / M_PI));
  return mul(mulc(x, 0.5), addc(tanh_u(inner), 1));
}

/* log1p: |x| < 0.5 by Goldberg's trick log(u) * x / (u - 1), u = 1 + x (exact where u
 * rounds to 1); elsewhere log(1 + x). */
static uop *log1p_u(uop *x) {
  uop *xs = clampc(x, -0.5, 0.5), *u = addc(xs, 1), *um1 = addc(u, -1);
  uop *one = ew2(OP_CMPEQ, um1, C(um1, 0));
  uop *small = sel(one, xs, mul(logu(u), divi(xs, sel(one, C(um1, 1), um1))));
  uop *big = logu(addc(x, 1));
  return sel(lt(absu(x), C(x, 0.5)), small, big);
}

/* expm1: |x| < 0.5 by Kahan's trick (u - 1) * x / log(u), u = exp(x); elsewhere exp(x) - 1. */
static uop *expm1_u(uop *x) {
  uop *xs = clampc(x, -0.5, 0.5), *u = expu(xs), *um1 = addc(u, -1);
  uop *one = ew2(OP_CMPEQ, um1, C(um1, 0));
  uop *lg = logu(sel(one, C(u, M_E), u));
  uop *small = sel(one, xs, mul(um1, divi(xs, lg)));
  uop *big = addc(expu(x), -1);
  return sel(lt(absu(x), C(x, 0.5)), small, big);
}

/* ---- the public ops ------------------------------------------------------------------ */

typedef uop *(*ufn)(uop *);

static cg_tensor *special(const char *who, cg_tensor *t, ufn f) {
  if (!t) return cg_fail_null(CG_ERR_INVALID, "%s: tensor is NULL", who);
  op_begin();
  uop *x = dt_is_float(t->u->dt) ? t->u : cast_to(t->u, DT_F32);
  cg_tensor *r = op_end(f(x));
  if (r) r->weak = t->weak;
  return r;
}

cg_tensor *cg_erf(cg_tensor *a) { return special("erf", a, erf_u); }
cg_tensor *cg_gelu(cg_tensor *a) { return special("gelu", a, gelu_u); }
cg_tensor *cg_gelu_tanh(cg_tensor *a) { return special("gelu_tanh", a, gelu_tanh_u); }
cg_tensor *cg_log1p(cg_tensor *a) { return special("log1p", a, log1p_u); }
cg_tensor *cg_expm1(cg_tensor *a) { return special("expm1", a, expm1_u); }

cg_tensor *cg_softplus(cg_tensor *a, double beta, double threshold) {
  if (!a) return cg_fail_null(CG_ERR_INVALID, "softplus: tensor is NULL");
  if (!isfinite(beta) || beta == 0 || isnan(threshold))
    return cg_fail_null(CG_ERR_INVALID, "softplus: expected a finite nonzero beta and a threshold, got beta %g, threshold %g", beta,
                        threshold);
  op_begin();
  uop *x = dt_is_float(a->u->dt) ? a->u : cast_to(a->u, DT_F32);
  /* torch: x where beta*x > threshold, else log1p(exp(beta*x)) / beta; the exp reads a
   * clamped copy so the discarded branch stays finite */
  uop *bx = mulc(x, beta);
  uop *safe = isinf(threshold) ? bx : clampc(bx, -INFINITY, threshold);
  uop *soft = mulc(log1p_u(expu(safe)), 1.0 / beta);
  cg_tensor *r = op_end(sel(lt(C(bx, threshold), bx), x, soft));
  if (r) r->weak = a->weak;
  return r;
}
