/* Loop bounds from gates (a part of the linearizer).
 *
 * A sum over a padded view reads zeros at the padding: a convolution's input gradient (the
 * output gradient padded by k-1 on each side) spends 36-44% of its multiply-adds on them
 * at the CNN's 10x10 and 8x8 layers, 31% at the 24x24 one, and every padded forward
 * convolution some. The loads there are gated by comparisons of the index with the edges,
 * `0 <= y + ky - p < H`; a reduce range r on which such a comparison is affine with step 1
 * (r + f < c, or r + f >= c, f computed outside r's loop) bounds the trips where the gate
 * can hold: lo <= r < hi. When every summed value is zero wherever that comparison is
 * false (the gated load is a factor, or the value a select with 0 on the other side), the
 * trips outside [lo, hi) add nothing: the loop runs r' over max(hi - lo, 0) trips with
 * r = r' + lo, and the comparison is true for each of them, so it is dropped from the gates
 * (the loads become plain loads).
 *
 * Only sums (identity 0) and scalar comparisons (gates that are the same for every lane
 * of a vector, as a convolution's are when it vectorizes along channels or the batch); a
 * product with a padded zero is skipped even where the other factor is infinite or NaN,
 * as PyTorch's convolutions skip padding (the all-trip loop gave NaN there). */
#include "codegen.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"

#define MAX_TERMS 16

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }

static bool is_scalar_bool(const uop *u) { return dt_is_bool(u->dt) && u->dt.count <= 1; }

/* The conjuncts of a scalar gate (an AND tree), added to t once each. */
static void conjuncts(uop *g, uop **t, int *n) {
  if (!is_scalar_bool(g)) return;
  if (g->op == OP_AND) {
    conjuncts(g->src[0], t, n), conjuncts(g->src[1], t, n);
    return;
  }
  for (int i = 0; i < *n; i++)
    if (t[i] == g) return;
  if (*n < MAX_TERMS) t[(*n)++] = g;
}

static void collect_gates(uop *u, uopset *seen, uop **t, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL || u->op == OP_RANGE) return;
  if (u->op == OP_INDEX && u->nsrc > 2) conjuncts(u->src[2], t, n);
  if (u->op == OP_WHERE) conjuncts(u->src[0], t, n);
  for (uint32_t i = 0; i < u->nsrc; i++) collect_gates(u->src[i], seen, t, n);
}

/* Whether gate g is false wherever term t is (t is one of its conjuncts). */
static bool false_with(const uop *g, const uop *t) {
  if (g == t) return true;
  return g->op == OP_AND && is_scalar_bool(g) && (false_with(g->src[0], t) || false_with(g->src[1], t));
}

static bool is_zero(const uop *u) {
  if (u->op == OP_VECTORIZE) {
    for (uint32_t i = 0; i < u->nsrc; i++)
      if (!is_zero(u->src[i])) return false;
    return u->nsrc > 0;
  }
  return u->op == OP_CONST && (dt_is_float(u->dt) ? u->arg.f == 0 : u->arg.i == 0);
}

/* Whether u is zero wherever term t is false (memo: node -> 1 no, 2 yes). */
static bool zero_without(uop *u, uop *t, uopset *memo) {
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool z = false;
  switch (u->op) {
  case OP_CONST: z = is_zero(u); break;
  case OP_VECTORIZE:
    z = u->nsrc > 0;
    for (uint32_t i = 0; i < u->nsrc && z; i++) z = zero_without(u->src[i], t, memo);
    break;
  case OP_WHERE: z = (false_with(u->src[0], t) || zero_without(u->src[1], t, memo)) && zero_without(u->src[2], t, memo); break;
  case OP_MUL: z = zero_without(u->src[0], t, memo) || zero_without(u->src[1], t, memo); break;
  case OP_ADD: z = zero_without(u->src[0], t, memo) && zero_without(u->src[1], t, memo); break;
  case OP_NEG: case OP_CAST: case OP_GEP: z = zero_without(u->src[0], t, memo); break;
  case OP_LOAD: /* gated off by t, and 0 in its place */
    z = u->src[0]->nsrc > 2 && false_with(u->src[0]->src[2], t) && (u->nsrc < 2 || is_zero(u->src[1]));
    break;
  default: break;
  }
  uopset_put(memo, u, (void *)(uintptr_t)(1 + z));
  return z;
}

static bool depends_on_any(uop *u, uop *const *r, int nr, uopset *memo) {
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool d = false;
  for (int i = 0; i < nr && !d; i++) d = u == r[i];
  for (uint32_t i = 0; i < u->nsrc && !d; i++) d = u->src[i]->op != OP_DEFINE_GLOBAL && depends_on_any(u->src[i], r, nr, memo);
  uopset_put(memo, u, (void *)(uintptr_t)(1 + d));
  return d;
}

/* Term t as a bound on r: *lo <= r (is_lo) or r < *hi, with the bound computed outside r's
 * loop (it does not depend on r or the loops inside it: inner). false when t is not an
 * affine comparison of step +-1 in r. */
static bool term_bound(uop *t, uop *r, uop *const *inner, int ninner, bool *is_lo, uop **bound) {
  bool neg = t->op == OP_NEG;
  uop *cmp = neg ? t->src[0] : t;
  if (cmp->op != OP_CMPLT || !dt_is_int(cmp->src[0]->dt) || cmp->src[0]->dt.count > 1) return false;
  /* cmp: e < 0 with e = a - b */
  uop *e = uop_simplify(uop_alu(OP_ADD, cmp->src[0], uop_alu1(OP_NEG, cmp->src[1])));
  int64_t sarg[3] = {r->arg.v[0], RANGE_UPCAST, 95}; /* a stand-in s: r -> r + 1 would never reach a fixpoint */
  uop *s = uop_new1(OP_RANGE, DT_I32, r->src[0], arg_ints(sarg, 3));
  uop *d = e ? uop_simplify(uop_alu(OP_ADD, subst_range(e, r, uop_alu(OP_ADD, s, ci(1))), uop_alu1(OP_NEG, subst_range(e, r, s)))) : NULL;
  if (!d || d->op != OP_CONST || (d->arg.i != 1 && d->arg.i != -1)) return false;
  uop *e0 = uop_simplify(subst_range(e, r, ci(0)));
  uop *fix[UOP_MAX_DIMS + 2];
  int nf = 0;
  fix[nf++] = r;
  for (int i = 0; i < ninner && nf < UOP_MAX_DIMS + 2; i++) fix[nf++] = inner[i];
  uopset memo = {0};
  bool moves = !e0 || depends_on_any(e0, fix, nf, &memo);
  uopset_free(&memo);
  if (moves) return false;
  /* step +1: r + e0 < 0 <=> r < -e0; >= 0 <=> r >= -e0.  step -1: -r + e0 < 0 <=> r >= e0 + 1;
   * >= 0 <=> r < e0 + 1 */
  bool up = d->arg.i == 1;
  *is_lo = up == neg;
  *bound = up ? uop_alu1(OP_NEG, e0) : uop_alu(OP_ADD, e0, ci(1));
  return *bound != NULL;
}

/* The terms bounded, made true; the gates that become true dropped. */
typedef struct {
  uop **terms;
  int n;
} term_ctx;
static uop *term_true(rw_match *m) {
  term_ctx *c = m->ctx;
  for (int i = 0; i < c->n; i++)
    if (m->root == c->terms[i]) return uop_const_int(DT_BOOL, 1);
  return NULL;
}
static uop *and_true(rw_match *m) {
  uop *a = m->root->src[0], *b = m->root->src[1];
  if (!is_scalar_bool(m->root)) return NULL;
  return a->op == OP_CONST && a->arg.i ? b : b->op == OP_CONST && b->arg.i ? a : NULL;
}
static uop *where_true(rw_match *m) {
  uop *c = m->root->src[0];
  return c->op == OP_CONST && is_scalar_bool(c) && c->arg.i ? m->root->src[1] : NULL;
}
static uop *index_true(rw_match *m) {
  uop *u = m->root;
  if (u->nsrc < 3 || u->src[2]->op != OP_CONST || !u->src[2]->arg.i) return NULL;
  return uop_new(OP_INDEX, u->dt, u->src, 2, u->arg);
}
static uop *load_ungated(rw_match *m) { /* its INDEX lost its gate: the value in its place goes */
  uop *u = m->root;
  return u->nsrc == 2 && u->src[0]->op == OP_INDEX && u->src[0]->nsrc == 2 ? uop_new(OP_LOAD, u->dt, u->src, 1, u->arg) : NULL;
}
static const rw_rule term_rules[] = {
    RULE("CMPLT|NEG", term_true), RULE("AND", and_true), RULE("WHERE", where_true), RULE("INDEX", index_true), RULE("LOAD", load_ungated),
};
static RULESET(rs_terms, "gate_bounds", term_rules);

static uop *min_of(uop *a, uop *b) { return uop_alu1(OP_NEG, uop_alu(OP_MAX, uop_alu1(OP_NEG, a), uop_alu1(OP_NEG, b))); }

bool gate_bounds(uop **body, int nb, uop *r, uop *const *inner, int ninner, uop **lo, uop **cnt) {
  if (nb < 1 || r->src[0]->op != OP_CONST) return false;
  uop *t[MAX_TERMS], *used[MAX_TERMS];
  int nt = 0, nu = 0;
  uopset seen = {0};
  collect_gates(body[0], &seen, t, &nt);
  uopset_free(&seen);
  uop *l = ci(0), *h = r->src[0];
  for (int i = 0; i < nt; i++) {
    bool is_lo;
    uop *b;
    if (!term_bound(t[i], r, inner, ninner, &is_lo, &b)) continue;
    bool zero = true;
    for (int k = 0; k < nb && zero; k++) {
      uopset memo = {0};
      zero = zero_without(body[k], t[i], &memo);
      uopset_free(&memo);
    }
    if (!zero) continue;
    if (is_lo) l = uop_alu(OP_MAX, l, b);
    else h = min_of(h, b);
    used[nu++] = t[i];
  }
  if (!nu) return false;
  *lo = uop_simplify(l);
  *cnt = uop_simplify(uop_alu(OP_MAX, uop_alu(OP_ADD, h, uop_alu1(OP_NEG, l)), ci(0)));
  term_ctx c = {used, nu};
  for (int k = 0; k < nb; k++) body[k] = graph_rewrite(body[k], &rs_terms, &c);
  return *lo && *cnt;
}
