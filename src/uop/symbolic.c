/* Symbolic arithmetic (see symbolic.h). The rule table at the bottom is the whole rule
 * set; the functions above it build replacements.
 *
 * Linear forms: many integer rules look at an expression as  sum(k_i * atom_i) + K,
 * reading through ADD, NEG and MUL by a constant. Integers wrap modulo 2^bits, so
 * regrouping a linear form is exact whatever the values; only rules that move terms
 * across IDIV/MOD need the values themselves not to wrap, and check uop_fits on every
 * node of the form. The rule set is RULESET_NO_GROW: the engine refuses any rewrite whose
 * result is larger than what it replaces, so simplification never grows an expression. */
#include "symbolic.h"
#include "uopset.h"
#include <math.h>
#include <string.h>

typedef __int128 i128;

/* ---- helpers ---------------------------------------------------------------------- */

static bool is_int(const uop *u) { return dt_is_int(u->dt) && !u->dt.addr && u->dt.count == 1; }
static int64_t cval(const uop *u) { return uop_const_ivalue(u); }
static uop *iconst(const uop *like, int64_t v) { return uop_const_int(like->dt, v); }

static uop *ret_x(rw_match *m) { return B(x); }
static uop *ret_a(rw_match *m) { return B(a); }
static uop *ret_b(rw_match *m) { return B(b); }
static uop *ret_c(rw_match *m) { return B(c); }
static uop *ret_zero(rw_match *m) { return uop_const_like(m->root, 0); }
static uop *ret_true(rw_match *m) { return uop_const_int(m->root->dt, 1); }
static uop *ret_false(rw_match *m) { return uop_const_int(m->root->dt, 0); }
static uop *ret_zero_int(rw_match *m) { return is_int(m->root) ? ret_zero(m) : NULL; }
static uop *ret_x_int(rw_match *m) { return is_int(B(x)) || dt_is_bool(B(x)->dt) ? B(x) : NULL; }
static uop *ret_true_int(rw_match *m) { return is_int(B(x)) ? ret_true(m) : NULL; }
static uop *ret_false_int(rw_match *m) { return is_int(B(x)) ? ret_false(m) : NULL; }

/* ---- constant folding --------------------------------------------------------------- */

static uop *fold_const(rw_match *m) {
  uop *u = m->root;
  if (u->dt.count != 1 || u->op == OP_BITCAST) return NULL;
  dtype in = u->src[u->op == OP_WHERE ? 1 : 0]->dt;
  if (u->op == OP_CAST) {
    uop *s = u->src[0];
    if (dt_is_float(in)) return dt_is_float(u->dt) ? uop_const_float(u->dt, alu_round(u->dt, s->arg.f)) : uop_const_int(u->dt, alu_float_to_int(u->dt, s->arg.f));
    return dt_is_float(u->dt) ? uop_const_float(u->dt, alu_int_to_float(u->dt, in, s->arg.i)) : uop_const_int(u->dt, s->arg.i);
  }
  if (dt_is_float(in)) {
    double x[3], r;
    for (uint32_t i = 0; i < u->nsrc; i++) x[i] = uop_const_value(u->src[i]);
    if (!alu_eval_float(u->op, in, x, (int)u->nsrc, &r)) return NULL;
    return dt_is_float(u->dt) ? uop_const_float(u->dt, r) : uop_const_int(u->dt, (int64_t)r);
  }
  int64_t x[3], r;
  for (uint32_t i = 0; i < u->nsrc; i++) x[i] = cval(u->src[i]);
  if (!alu_eval_int(u->op, in, x, (int)u->nsrc, &r)) return NULL;
  return uop_const_int(u->dt, r);
}

/* An int/bool node whose bounds pin one value is that value. */
static uop *fold_by_bounds(rw_match *m) {
  uop *u = m->root;
  if (u->op == OP_CONST || u->dt.count != 1 || u->dt.addr) return NULL;
  if (!(is_int(u) || dt_is_bool(u->dt)) || u->vmin != u->vmax) return NULL;
  return uop_const_int(u->dt, u->vmin);
}

/* ---- canonical order and reassociation ---------------------------------------------- */

/* Constants go right: c OP x -> x OP c, so both spellings intern to one node. */
static uop *const_right(rw_match *m) {
  uop *u = m->root;
  if (u->src[0] != B(c) || uop_is_const(B(x))) return NULL;
  uop *s[2] = {B(x), B(c)};
  return uop_replace_src(u, s, 2);
}

/* (x op c1) op c2 -> x op (c1 op c2) for ADD/MUL on ints. */
static uop *fold_const_chain(rw_match *m) {
  uop *u = m->root;
  if (!is_int(u)) return NULL;
  int64_t x[2] = {cval(B(c1)), cval(B(c2))}, r;
  alu_eval_int(u->op, u->dt, x, 2, &r);
  return uop_alu(u->op, B(x), iconst(u, r));
}

/* (x op c) op y -> (x op y) op c: constants float to the top of a chain. */
static uop *const_outward(rw_match *m) {
  uop *u = m->root, *inner = u->src[0] == B(y) ? u->src[1] : u->src[0];
  if (!is_int(u) || uop_is_const(B(y)) || inner->op != u->op) return NULL;
  return uop_alu(u->op, uop_alu(u->op, B(x), B(y)), B(c));
}

/* ---- linear forms ---------------------------------------------------------------------- */

#define LIN_MAX 32
typedef struct {
  uop *atom[LIN_MAX];
  int64_t k[LIN_MAX]; /* coefficients, wrapped to the dtype */
  int n, occurrences;
  int64_t K;
  int nconst;         /* constant terms read (more than one can fold) */
  bool fits, ok;
  dtype dt;
} linform;

static int64_t wrap_mul(dtype dt, int64_t a, int64_t b) { return alu_wrap(dt, (int64_t)((uint64_t)a * (uint64_t)b)); }
static int64_t wrap_add(dtype dt, int64_t a, int64_t b) { return alu_wrap(dt, (int64_t)((uint64_t)a + (uint64_t)b)); }

static void lin_read(linform *L, uop *u, int64_t k) {
  if (!L->ok) return;
  if (u->op == OP_CONST) {
    L->nconst++;
    L->K = wrap_add(L->dt, L->K, wrap_mul(L->dt, k, cval(u)));
    return;
  }
  if (u->op == OP_ADD || u->op == OP_NEG || (u->op == OP_MUL && (uop_is_const(u->src[1]) || uop_is_const(u->src[0])))) {
    L->fits &= uop_fits(u);
    if (u->op == OP_ADD) {
      lin_read(L, u->src[0], k);
      lin_read(L, u->src[1], k);
    } else if (u->op == OP_NEG) {
      lin_read(L, u->src[0], wrap_mul(L->dt, k, -1));
    } else {
      int c = uop_is_const(u->src[1]) ? 1 : 0;
      lin_read(L, u->src[1 - c], wrap_mul(L->dt, k, cval(u->src[c])));
    }
    return;
  }
  L->occurrences++;
  for (int i = 0; i < L->n; i++)
    if (L->atom[i] == u) {
      L->k[i] = wrap_add(L->dt, L->k[i], k);
      return;
    }
  if (L->n == LIN_MAX) {
    L->ok = false;
    return;
  }
  L->fits &= uop_fits(u);
  L->atom[L->n] = u;
  L->k[L->n++] = k;
}

static linform lin_of(uop *u) {
  linform L = {.fits = true, .ok = true, .dt = u->dt};
  lin_read(&L, u, 1);
  return L;
}

static void lin_drop_zeros(linform *L) {
  int j = 0;
  for (int i = 0; i < L->n; i++)
    if (L->k[i]) L->atom[j] = L->atom[i], L->k[j++] = L->k[i];
  L->n = j;
}

static uop *lin_build(const linform *L, uop *like) {
  uop *sum = NULL;
  for (int i = 0; i < L->n; i++) {
    uop *t = L->k[i] == 1 ? L->atom[i] : L->k[i] == -1 ? uop_alu1(OP_NEG, L->atom[i]) : uop_alu(OP_MUL, L->atom[i], iconst(like, L->k[i]));
    sum = sum ? uop_alu(OP_ADD, sum, t) : t;
  }
  if (!sum) return iconst(like, L->K);
  return L->K ? uop_alu(OP_ADD, sum, iconst(like, L->K)) : sum;
}

/* Exact (unwrapped) range of sum(k_i * atom_i) + K, in 128 bits. */
static void lin_range(const linform *L, i128 *lo, i128 *hi) {
  *lo = *hi = L->K;
  for (int i = 0; i < L->n; i++) {
    i128 a = (i128)L->k[i] * L->atom[i]->vmin, b = (i128)L->k[i] * L->atom[i]->vmax;
    *lo += a < b ? a : b;
    *hi += a < b ? b : a;
  }
}

/* x = g*B + s with s in [0, g) for a g > 1 that divides c (x >= 0, no wrap): then
 * x/c = B/(c/g) and x%c = (B%(c/g))*g + s. The largest such g of the coefficients' gcds
 * with c; B's and s's forms into *B, *S. (An index through a reshape of a padded or
 * channel-broadcast view: ((n*C + c)*HW + p)/(C*HW) with p < HW is n.) */
static int64_t gcd64(int64_t a, int64_t b) {
  if (a < 0) a = -a;
  while (b) {
    int64_t t = a % b;
    a = b, b = t;
  }
  return a;
}
static int64_t lin_split_gcd(const linform *L, int64_t c, linform *B, linform *S) {
  int64_t best = 0;
  for (int i = 0; i < L->n; i++) {
    int64_t g = gcd64(L->k[i], c);
    if (g <= 1 || g <= best) continue;
    linform s = {.dt = L->dt, .ok = true};
    for (int j = 0; j < L->n; j++)
      if (L->k[j] % g) s.atom[s.n] = L->atom[j], s.k[s.n++] = L->k[j];
    s.K = ((L->K % g) + g) % g;
    i128 lo, hi;
    lin_range(&s, &lo, &hi);
    if (lo >= 0 && hi < g) best = g, *S = s;
  }
  if (!best) return 0;
  *B = (linform){.dt = L->dt, .ok = true};
  for (int j = 0; j < L->n; j++)
    if (L->k[j] % best == 0) B->atom[B->n] = L->atom[j], B->k[B->n++] = L->k[j] / best;
  B->K = (L->K - S->K) / best;
  return best;
}

/* Merge divmod pairs inside a sum (any sign unless noted):
 *   k*(x/c)*c + k*(x%c)            -> k*x
 *   k*((x/c1)%c2)*c1 + k*(x%c1)    -> k*(x%(c1*c2))     when x >= 0 */
static bool lin_recombine(linform *L) {
  for (int i = 0; i < L->n; i++) {
    uop *md = L->atom[i];
    if (md->op != OP_MOD || !uop_is_const(md->src[1]) || !L->k[i]) continue;
    uop *x = md->src[0];
    int64_t c = cval(md->src[1]);
    if (c <= 0) continue;
    for (int j = 0; j < L->n; j++) {
      uop *a = L->atom[j];
      if (j == i || !L->k[j] || (i128)L->k[j] != (i128)L->k[i] * c) continue;
      if (a->op == OP_IDIV && a->src[0] == x && a->src[1] == md->src[1]) {
        L->atom[i] = x, L->k[j] = 0;
        return true;
      }
      if (a->op == OP_MOD && uop_is_const(a->src[1]) && a->src[0]->op == OP_IDIV && a->src[0]->src[0] == x &&
          a->src[0]->src[1] == md->src[1] && x->vmin >= 0) {
        i128 c12 = (i128)c * cval(a->src[1]);
        if (cval(a->src[1]) <= 0 || c12 > dt_int_max(x->dt)) continue;
        L->atom[i] = uop_alu(OP_MOD, x, iconst(x, (int64_t)c12));
        L->k[j] = 0;
        return true;
      }
    }
  }
  return false;
}

/* An ADD read as a linear form: merge like terms and divmod pairs, fold constants. */
static uop *combine_sum(rw_match *m) {
  uop *u = m->root;
  if (!is_int(u)) return NULL;
  linform L = lin_of(u);
  if (!L.ok) return NULL;
  bool merged = L.occurrences > L.n || L.nconst > 1;
  while (lin_recombine(&L)) merged = true;
  /* k*((g*B + s) % c) with g | c becomes k*g*(B % (c/g)) + k*s where that lets a divmod
   * pair merge: (n*4 + 1) % 32 * 400 + (n/8) * 12800 is n*1600 + 400 */
  linform E = L;
  bool expanded = false;
  for (int i = 0; i < L.n && E.ok; i++) {
    uop *md = L.atom[i];
    if (md->op != OP_MOD || !uop_is_const(md->src[1]) || cval(md->src[1]) <= 0 || md->src[0]->vmin < 0) continue;
    int64_t c = cval(md->src[1]);
    linform X = lin_of(md->src[0]), Bf, Sf;
    if (!X.ok || !X.fits || X.n == 0) continue;
    int64_t g = lin_split_gcd(&X, c, &Bf, &Sf);
    if (!g) continue;
    int at = -1;
    for (int j = 0; j < E.n; j++)
      if (E.atom[j] == md) at = j;
    if (at < 0) continue;
    int64_t k = E.k[at];
    E.atom[at] = uop_alu(OP_MOD, lin_build(&Bf, md), iconst(md, c / g));
    E.k[at] = wrap_mul(E.dt, k, g);
    for (int j = 0; j < Sf.n; j++) lin_read(&E, uop_alu(OP_MUL, Sf.atom[j], iconst(md, Sf.k[j])), k);
    E.K = wrap_add(E.dt, E.K, wrap_mul(E.dt, k, Sf.K));
    expanded = true;
  }
  if (expanded && E.ok) {
    bool any = false;
    while (lin_recombine(&E)) any = true;
    if (any) L = E, merged = true;
  }
  lin_drop_zeros(&L);
  return merged ? lin_build(&L, u) : NULL; /* the engine refuses it if larger */
}

/* x / c and x % c for a constant c > 0, reading x as a linear form x = c*Q + R. */
static uop *fold_divmod(rw_match *m) {
  uop *u = m->root, *x = B(x);
  int64_t c = cval(B(c));
  if (!is_int(u) || c <= 0) return NULL;
  bool div = u->op == OP_IDIV;
  if (c == 1) return div ? x : iconst(u, 0);
  /* the whole range sits in one bucket */
  if (x->vmin >= 0 || x->vmax <= 0) {
    int64_t q0 = x->vmin / c, q1 = x->vmax / c;
    if (q0 == q1 && (x->vmin >= 0 ? x->vmin >= 0 : x->vmax <= 0)) {
      if (!div) return q0 == 0 ? x : NULL; /* x - q*c would not be smaller */
      return iconst(u, q0);
    }
  }
  linform L = lin_of(x);
  if (!L.ok || !L.fits || L.n == 0) return NULL;
  if (x->vmin >= 0) {
    linform Bf, Sf;
    int64_t g = lin_split_gcd(&L, c, &Bf, &Sf);
    if (g && (Sf.n || Sf.K) && div) return c == g ? lin_build(&Bf, u) : uop_alu(OP_IDIV, lin_build(&Bf, u), iconst(u, c / g));
    /* x % c = (B % (c/g))*g + s: the column of a panel of 32 through a view of 64-wide
     * heads, (32p + 16u + lane) % 64 = (p % 2)*32 + 16u + lane, contiguous along lane
     * (each lane was its own MOD and the load a gather) */
    if (g && Sf.n && !div) {
      uop *b = c == g ? NULL : uop_alu(OP_MUL, uop_alu(OP_MOD, lin_build(&Bf, u), iconst(u, c / g)), iconst(u, g));
      return b ? uop_alu(OP_ADD, b, lin_build(&Sf, u)) : lin_build(&Sf, u);
    }
  }
  linform Q = {.dt = L.dt, .ok = true}, R = {.dt = L.dt, .ok = true};
  /* each coefficient splits as k = q*c + r with r in [0, c): x[i+j] through a window
   * view reads (j*(N+1) + i) % N = j + i */
  for (int i = 0; i < L.n; i++) {
    int64_t k = L.k[i], q = k / c, r = k % c;
    if (r < 0) r += c, q -= 1;
    if (q) Q.atom[Q.n] = L.atom[i], Q.k[Q.n++] = q;
    if (r) R.atom[R.n] = L.atom[i], R.k[R.n++] = r;
  }
  Q.K = L.K / c;
  R.K = L.K % c;
  if (R.K < 0) R.K += c, Q.K -= 1; /* floor split keeps R's constant in [0, c) */
  i128 rlo, rhi;
  lin_range(&R, &rlo, &rhi);
  bool exact = R.n == 0 && R.K == 0;
  if (!exact && (x->vmin < 0 || rlo < 0)) return NULL; /* truncation = floor only for x, R >= 0 */
  if (Q.n == 0 && !(rhi < c) && R.K == L.K) return NULL; /* nothing moves out */
  if (div) {
    uop *q = lin_build(&Q, u);
    return rhi < c ? q : uop_alu(OP_ADD, q, uop_alu(OP_IDIV, lin_build(&R, u), B(c)));
  }
  if (rhi < c) return lin_build(&R, u);
  if (Q.n == 0 && R.K == L.K) return NULL;
  return uop_alu(OP_MOD, lin_build(&R, u), B(c));
}

/* (x*c1)/c2 -> x/(c2/c1) and (x*c1)%c2 -> (x%(c2/c1))*c1 when c1 divides c2: exact for
 * either sign as long as x*c1 does not wrap. */
static uop *divmod_of_mul(rw_match *m) {
  uop *u = m->root, *x = B(x);
  int64_t c1 = cval(B(c1)), c2 = cval(B(c2));
  if (!is_int(u) || c1 <= 0 || c2 <= 0 || c2 % c1 || !uop_fits(u->src[0])) return NULL;
  uop *d = iconst(u, c2 / c1);
  return u->op == OP_IDIV ? uop_alu(OP_IDIV, x, d) : uop_alu(OP_MUL, uop_alu(OP_MOD, x, d), B(c1));
}

/* (x/a)/b -> x/(a*b) for a, b > 0. */
static uop *div_div(rw_match *m) {
  int64_t a = cval(B(a)), b = cval(B(b));
  i128 ab = (i128)a * b;
  if (!is_int(m->root) || a <= 0 || b <= 0 || ab > dt_int_max(m->root->dt)) return NULL;
  return uop_alu(OP_IDIV, B(x), iconst(m->root, (int64_t)ab));
}

/* (x%a)%b -> x%b when b divides a (a, b > 0). */
static uop *mod_mod(rw_match *m) {
  int64_t a = cval(B(a)), b = cval(B(b));
  if (!is_int(m->root) || a <= 0 || b <= 0 || a % b) return NULL;
  return uop_alu(OP_MOD, B(x), B(b));
}

/* ---- comparisons, MAX, WHERE ------------------------------------------------------------ */

/* (x + c1) < c2 -> x < c2 - c1, when the ADD cannot wrap. */
static uop *lt_add_const(rw_match *m) {
  uop *a = m->root->src[0];
  if (!is_int(a) || !uop_fits(a)) return NULL;
  i128 v = (i128)cval(B(c2)) - cval(B(c1));
  if (v < dt_int_min(a->dt) || v > dt_int_max(a->dt)) return NULL;
  return uop_alu(OP_CMPLT, B(x), iconst(a, (int64_t)v));
}

/* x*c1 < c2 -> x < ceil(c2/c1) for c1 > 0, when the MUL cannot wrap. */
static uop *lt_mul_const(rw_match *m) {
  uop *a = m->root->src[0];
  int64_t c1 = cval(B(c1)), c2 = cval(B(c2));
  if (!is_int(a) || !uop_fits(a) || c1 <= 0) return NULL;
  int64_t q = c2 / c1 + (c2 % c1 > 0);
  return uop_alu(OP_CMPLT, B(x), iconst(a, q));
}

/* x/c1 < c2 -> x < c1*c2 for x >= 0, c1 > 0. */
static uop *lt_div_const(rw_match *m) {
  uop *x = B(x);
  int64_t c1 = cval(B(c1)), c2 = cval(B(c2));
  i128 p = (i128)c1 * c2;
  if (!is_int(x) || x->vmin < 0 || c1 <= 0 || p > dt_int_max(x->dt) || p < dt_int_min(x->dt)) return NULL;
  return uop_alu(OP_CMPLT, x, iconst(x, (int64_t)p));
}

/* MAX decided by bounds. */
static uop *max_bounds(rw_match *m) {
  uop *x = B(x), *y = B(y);
  if (!is_int(x)) return NULL;
  if (x->vmin >= y->vmax) return x;
  if (y->vmin >= x->vmax) return y;
  return NULL;
}

static uop *cast_noop(rw_match *m) { return dt_eq(m->root->dt, B(x)->dt) ? B(x) : NULL; }
static uop *idiv_self(rw_match *m) { return is_int(B(x)) && (B(x)->vmin > 0 || B(x)->vmax < 0) ? iconst(B(x), 1) : NULL; }
static uop *neg_idiv(rw_match *m) { return is_int(B(x)) ? uop_alu1(OP_NEG, B(x)) : NULL; }

/* ---- the rule set ------------------------------------------------------------------------ */

static const rw_rule symbolic_rules[] = {
    /* constant folding, and values pinned by bounds */
    RULE("(@ALU CONST)", fold_const),
    RULE("(@ALU CONST CONST)", fold_const),
    RULE("(@ALU CONST CONST CONST)", fold_const),
    RULE("@ALU", fold_by_bounds),
    RULE("(CAST x)", cast_noop),
    /* identities */
    RULE("(ADD x 0)", ret_x),
    RULE("(MUL x 1)", ret_x),
    RULE("(MUL x 0)", ret_zero_int),
    RULE("(IDIV x 1)", ret_x),
    RULE("(IDIV x -1)", neg_idiv),
    RULE("(IDIV x x)", idiv_self),
    RULE("(MOD x 1)", ret_zero_int),
    RULE("(MOD x -1)", ret_zero_int),
    RULE("(MAX x x)", ret_x),
    RULE("(AND x x)", ret_x),
    RULE("(OR x x)", ret_x),
    RULE("(XOR x x)", ret_zero_int),
    RULE("(AND x 0)", ret_zero_int),
    RULE("(OR x 0)", ret_x),
    RULE("(XOR x 0)", ret_x),
    RULE("(AND.bool x true)", ret_x),
    RULE("(OR.bool x false)", ret_x),
    RULE("(AND.bool x false)", ret_false),
    RULE("(OR.bool x true)", ret_true),
    RULE("(NEG (NEG x))", ret_x_int),
    RULE("(CMPLT x x)", ret_false_int),
    RULE("(CMPNE x x)", ret_false_int),
    RULE("(CMPEQ x x)", ret_true_int),
    RULE("(WHERE true a b)", ret_a),
    RULE("(WHERE false a b)", ret_b),
    RULE("(WHERE c a a)", ret_a),
    RULE("(WHERE.bool c true false)", ret_c),
    /* constants go right, then gather */
    RULE("(ADD|MUL|MAX|AND|OR|XOR|CMPNE|CMPEQ c:CONST x)", const_right),
    RULE("(ADD (ADD x c1:CONST) c2:CONST)", fold_const_chain),
    RULE("(MUL (MUL x c1:CONST) c2:CONST)", fold_const_chain),
    RULE("(ADD (ADD x c:CONST) y)", const_outward),
    RULE("(MUL (MUL x c:CONST) y)", const_outward),
    /* sums: like terms and divmod pairs */
    RULE("(ADD x y)", combine_sum),
    /* division and modulo */
    RULE("(IDIV (IDIV x a:CONST) b:CONST)", div_div),
    RULE("(MOD (MOD x a:CONST) b:CONST)", mod_mod),
    RULE("(IDIV|MOD (MUL x c1:CONST) c2:CONST)", divmod_of_mul),
    RULE("(IDIV|MOD x c:CONST)", fold_divmod),
    /* comparisons and MAX */
    RULE("(CMPLT (ADD x c1:CONST) c2:CONST)", lt_add_const),
    RULE("(CMPLT (MUL x c1:CONST) c2:CONST)", lt_mul_const),
    RULE("(CMPLT (IDIV x c1:CONST) c2:CONST)", lt_div_const),
    RULE("(MAX x y)", max_bounds),
};
RULESET_NO_GROW(rs_symbolic, "symbolic", symbolic_rules);

uop *uop_simplify(uop *u) { return graph_rewrite(u, &rs_symbolic, NULL); }
