/* Optimizing a kernel's loops through recorded opts (ARCHITECTURE §6): {kind, axis,
 * amount} records applied by a pure function of (kernel, opts).
 *
 *   UPCAST(axis, n): the output range r of that axis becomes r' (size/n) and the kernel
 *   body is made for r = r'*n + lane, lane = 0..n-1, together. Hash-consing shares what
 *   the lanes have in common (a row of A across the columns of a matmul tile); the
 *   linearizer runs reductions over the same ranges in one loop, so a 4x16 upcast gives a
 *   register tile of 64 accumulators.
 *   UNROLL(axis, n): a reduce range r becomes r' (size/n); each trip adds n values.
 *   THREAD(axis): the output range split across threads.
 *
 * The heuristic: upcast the last output dim by 16, 8 or 4 (the lanes of an elementwise
 * kernel become one vector op each); kernels with a reduction get a register tile of up
 * to ~20 vector accumulators: the vector dim twice (2 x 16 lanes) or the rest of a short
 * row, times 8, 4 or 2 of the dim that shares the most loads (a GEMM: 8 rows x 32
 * columns); thread the outermost output range left.
 * NOOPT=1 turns it off. */
#include "codegen.h"
#include "core/config.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include "core/error.h"
#include <stdio.h>
#include <string.h>

/* One range replaced by an expression everywhere below (opts and the expand pass). */
typedef struct {
  uop *from, *to;
} subst;
static uop *subst_one(rw_match *m) {
  subst *s = m->ctx;
  return m->root == s->from ? s->to : NULL;
}
static const rw_rule subst_rules[] = {RULE("RANGE", subst_one)};
static RULESET(rs_subst_range, "subst_range", subst_rules);
uop *subst_range(uop *u, uop *from, uop *to) {
  subst s = {from, to};
  return graph_rewrite(u, &rs_subst_range, &s);
}

static void collect(uop *u, uopset *seen, uop **rng, int *nr, bool *has_reduce) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_REDUCE) *has_reduce = true;
  if (u->op == OP_RANGE && (u->arg.v[1] == RANGE_LOOP || u->arg.v[1] == RANGE_THREAD)) {
    if (*nr < UOP_MAX_DIMS) rng[(*nr)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) collect(u->src[i], seen, rng, nr, has_reduce);
}

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }

/* The reduce range with the largest axis id (the innermost reduced dim). */
static void collect_reduce_ranges(uop *u, uopset *seen, uop **inner) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE && u->arg.v[1] == RANGE_REDUCE && (!*inner || u->arg.v[0] > (*inner)->arg.v[0])) *inner = u;
  for (uint32_t i = 0; i < u->nsrc; i++) collect_reduce_ranges(u->src[i], seen, inner);
}

static void collect_index(uop *u, uopset *seen, uop **out, int *n, int max) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_INDEX && *n < max) out[(*n)++] = u;
  for (uint32_t i = 0; i < u->nsrc; i++) collect_index(u->src[i], seen, out, n, max);
}
static bool depends_on(uop *u, uop *r, uopset *memo) {
  if (u == r) return true;
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool d = false;
  for (uint32_t i = 0; i < u->nsrc && !d; i++) d = u->src[i]->op != OP_DEFINE_GLOBAL && depends_on(u->src[i], r, memo);
  uopset_put(memo, u, (void *)(uintptr_t)(d ? 2 : 1));
  return d;
}
/* How many loads an upcast of (a, b) shares between lanes: those that read the same
 * element for every lane of one of the two dims. */
static int shared_loads(uop **ix, int nix, uop *a, uop *b) {
  uopset ma = {0}, mb = {0};
  int score = 0;
  for (int i = 0; i < nix; i++) {
    bool da = depends_on(ix[i]->src[1], a, &ma), db = depends_on(ix[i]->src[1], b, &mb);
    score += da != db;
  }
  uopset_free(&ma);
  uopset_free(&mb);
  return score;
}

/* Of the addresses ix (INDEX nodes), how many step by one element along r (vector loads
 * if r were a vector) and how many by more (gathers). */
static void strides_along(uop *sink, uop **ix, int nix, uop *r, int *unit, int *other) {
  *unit = *other = 0;
  /* off(r2 + 1) - off(r2), with r2 a stand-in range (substituting r by r + 1 would never
   * reach a fixpoint) */
  int64_t arg[2] = {r->arg.v[0], 99};
  uop *r2 = uop_new1(OP_RANGE, DT_I32, r->src[0], arg_ints(arg, 2));
  for (int i = 0; i < nix; i++) {
    bool store = false;
    for (uint32_t k = 0; k < sink->nsrc; k++) store |= sink->src[k]->src[0] == ix[i];
    if (store) continue; /* loads only */
    uop *off = ix[i]->src[1];
    uop *d = uop_simplify(uop_alu(OP_ADD, subst_range(off, r, uop_alu(OP_ADD, r2, ci(1))), uop_alu1(OP_NEG, subst_range(off, r, r2))));
    if (!d || (d->op == OP_CONST && d->arg.i == 0)) continue; /* does not move along r (!d: out of memory, the pass fails) */
    if (d->op == OP_CONST && d->arg.i == 1) (*unit)++;
    else (*other)++;
  }
}

static const char *const opt_names[] = {
#define OPT_NAME_(n) #n,
    OPT_KINDS(OPT_NAME_)
#undef OPT_NAME_
};
const char *opt_name(int kind) { return kind >= 0 && kind < OPT_NKINDS ? opt_names[kind] : "?"; }

void opts_str(const opt *o, int n, char *buf, size_t nbuf) {
  size_t w = 0;
  buf[0] = 0;
  if (!n) snprintf(buf, nbuf, "none");
  for (int i = 0; i < n && w < nbuf; i++)
    w += (size_t)snprintf(buf + w, nbuf - w, o[i].kind == OPT_THREAD ? "%s%s(%d)" : "%s%s(%d,%d)", i ? " " : "", opt_name(o[i].kind),
                          o[i].axis, o[i].amount);
}

int opt_heuristic(uop *sink, opt *out) {
  if (cfg_int("NOOPT", 0)) return 0;
  uop *rng[UOP_MAX_DIMS];
  int nr = 0, n = 0;
  bool has_reduce = false;
  uopset seen = {0};
  collect(sink, &seen, rng, &nr, &has_reduce);
  uopset_free(&seen);
  if (nr == 0) return 0;
  for (int i = 1; i < nr; i++) /* ranges by axis */
    for (int j = i; j > 0 && rng[j]->arg.v[0] < rng[j - 1]->arg.v[0]; j--) {
      uop *t = rng[j];
      rng[j] = rng[j - 1], rng[j - 1] = t;
    }
  uop *ix[256], *up[2];
  int nix = 0, nup = 0;
  uopset seen_ix = {0};
  collect_index(sink, &seen_ix, ix, &nix, 256);
  uopset_free(&seen_ix);
  /* first: the last output dim by 16, 8 or 4 (contiguous lanes); if it does not divide,
   * the largest dim that divides by 4 (kernels with a reduction only) */
  uop *last = rng[nr - 1];
  int64_t n_last = last->src[0]->arg.i;
  static const int64_t tries[] = {16, 8, 4};
  int64_t first = 0;
  /* a vector along the output's last dim only if its loads are mostly contiguous there
   * (else they would be gathers: a reduction's rows, e.g., are better read as vectors) */
  int unit, other;
  strides_along(sink, ix, nix, last, &unit, &other);
  for (int t = 0; t < 3 && !first && (!has_reduce || other <= unit); t++)
    if (n_last % tries[t] == 0 && n_last > tries[t] / 2) first = tries[t], up[nup++] = last;
  bool vec_out = first != 0;
  if (!first && has_reduce) {
    uop *big = NULL;
    for (int i = 0; i < nr - 1; i++) {
      int64_t sz = rng[i]->src[0]->arg.i;
      if (sz % 4 == 0 && sz >= 8 && (!big || sz > big->src[0]->arg.i)) big = rng[i];
    }
    if (big) first = 4, up[nup++] = big;
  }
  if (first) out[n++] = (opt){OPT_UPCAST, (int16_t)up[0]->arg.v[0], (int32_t)first};
  /* no vector along the output (a convolution's weight gradient: (Cout, Cin, 5, 5)): the
   * innermost reduction's lanes (contiguous, as a row is) make a vector accumulator */
  if (!vec_out && has_reduce) {
    uop *inner = NULL;
    uopset rs = {0};
    collect_reduce_ranges(sink, &rs, &inner);
    uopset_free(&rs);
    int64_t sz = inner ? inner->src[0]->arg.i : 0;
    for (int t = 0; t < 3 && inner; t++)
      if (sz % tries[t] == 0 && sz >= tries[t]) {
        out[n++] = (opt){OPT_UNROLL, (int16_t)inner->arg.v[0], (int32_t)tries[t]};
        break;
      }
  }
  /* reductions hold a register tile: more of the vector dim (a 16-wide vector twice, or
   * the rest of a short row), then another dim, within ~20 vector accumulators of the 32 */
  int64_t nvec = 1, budget = 20;
  if (vec_out && has_reduce) {
    int64_t rem = up[0]->src[0]->arg.i / first;
    if (first == 16 && rem % 2 == 0) nvec = 2;
    else if (first < 16 && rem > 1 && rem <= 8) nvec = rem;
    if (nvec > 1) out[n++] = (opt){OPT_UPCAST, (int16_t)up[0]->arg.v[0], (int32_t)nvec};
  }
  /* second (reductions only): the dim whose lanes share the most loads with the first's
   * (for a convolution, output channels: the input is shared across them, the weights
   * across output columns), then the largest; by 8, 4 or 2 as the budget allows */
  uop *best = NULL;
  int best_score = -1;
  for (int i = 0; nup == 1 && has_reduce && i < nr; i++) {
    int64_t sz = rng[i]->src[0]->arg.i;
    if (rng[i] == up[0] || sz % 2 || sz < 4) continue;
    int score = shared_loads(ix, nix, rng[i], up[0]);
    if (score > best_score || (score == best_score && sz > best->src[0]->arg.i)) best = rng[i], best_score = score;
  }
  if (best) {
    int64_t sz = best->src[0]->arg.i, a = 0;
    if (!vec_out) budget = 16 / (first ? first : 1); /* every lane of the first is an accumulator */
    for (int64_t c = 8; c >= 2 && !a; c /= 2)
      if (sz % c == 0 && sz > c / 2 && nvec * c <= budget) a = c;
    if (!first && a) first = a; /* no vector dim: this one is the tile */
    if (a) out[n++] = (opt){OPT_UPCAST, (int16_t)best->arg.v[0], (int32_t)a}, up[nup++] = best;
  }
  /* threads split the outermost output range that is left (after the upcasts) */
  for (int i = 0; i < nr; i++) {
    int64_t sz = rng[i]->src[0]->arg.i;
    for (int u = 0; u < n; u++)
      if (out[u].kind == OPT_UPCAST && out[u].axis == rng[i]->arg.v[0]) sz /= out[u].amount;
    if (sz > 1) {
      out[n++] = (opt){OPT_THREAD, (int16_t)rng[i]->arg.v[0], 0};
      break;
    }
  }
  return n;
}

static uop *find_range(uop *u, int64_t axis, uopset *seen) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return NULL;
  if (u->op == OP_RANGE) return u->arg.v[0] == axis && u->arg.v[1] != RANGE_UPCAST && u->arg.v[1] != RANGE_UNROLL ? u : NULL;
  for (uint32_t i = 0; i < u->nsrc; i++) {
    uop *r = find_range(u->src[i], axis, seen);
    if (r) return r;
  }
  return NULL;
}

/* UPCAST: r = r'*n + u, u a RANGE_UPCAST of the n lanes (the expand pass makes them
 * vectors or copies). */
static uop *upcast(uop *sink, uop *r, int64_t amount, int nth) {
  uop *shorter = uop_new1(OP_RANGE, DT_I32, ci(r->src[0]->arg.i / amount), r->arg);
  int64_t arg[3] = {r->arg.v[0], RANGE_UPCAST, nth}; /* nth: upcasts of one axis stay apart */
  uop *lane = uop_new1(OP_RANGE, DT_I32, ci(amount), arg_ints(arg, 3));
  return subst_range(sink, r, uop_alu(OP_ADD, uop_alu(OP_MUL, shorter, ci(amount)), lane));
}

/* UNROLL: each REDUCE over r becomes a REDUCE over r' and a lane range u of `amount`
 * (RANGE_UNROLL) with r = r'*amount + u; the expand pass makes the lanes a vector
 * accumulator (one horizontal combine after the loop) or unrolled combined values. */
typedef struct { uop *r, *shorter, *lane; int64_t amount; } unroll_ctx;
static uop *unroll_reduce(rw_match *m) {
  unroll_ctx *c = m->ctx;
  uop *u = m->root;
  int at = -1;
  for (uint32_t i = 1; i < u->nsrc; i++)
    if (u->src[i] == c->r) at = (int)i;
  if (at < 0 || u->nsrc > UOP_MAX_DIMS) return NULL;
  uop *src[UOP_MAX_DIMS + 2];
  for (uint32_t i = 0; i < u->nsrc; i++) src[i] = u->src[i];
  src[0] = subst_range(u->src[0], c->r, uop_alu(OP_ADD, uop_alu(OP_MUL, c->shorter, ci(c->amount)), c->lane));
  src[at] = c->shorter, src[u->nsrc] = c->lane;
  return uop_new(OP_REDUCE, u->dt, src, (int)u->nsrc + 1, u->arg);
}
static const rw_rule unroll_rules[] = {RULE("REDUCE", unroll_reduce)};
static RULESET(rs_unroll, "opt_unroll", unroll_rules);

uop *opt_apply(uop *sink, const opt *o, int n) {
  for (int i = 0; i < n && sink; i++) {
    uopset seen = {0};
    uop *r = find_range(sink, o[i].axis, &seen);
    uopset_free(&seen);
    char d[48];
    opts_str(&o[i], 1, d, sizeof d);
    bool reduce = r && r->arg.v[1] == RANGE_REDUCE;
    if (!r || reduce != (o[i].kind == OPT_UNROLL))
      return cg_fail_null(CG_ERR_INVALID, "opt %s: the kernel has no %s range with axis id %d", d, o[i].kind == OPT_UNROLL ? "reduce" : "output",
                          o[i].axis);
    int64_t size = r->src[0]->arg.i;
    if (o[i].kind == OPT_THREAD) {
      int64_t arg[2] = {r->arg.v[0], RANGE_THREAD};
      sink = subst_range(sink, r, uop_new1(OP_RANGE, DT_I32, r->src[0], arg_ints(arg, 2)));
      continue;
    }
    if (o[i].amount < 1 || size % o[i].amount)
      return cg_fail_null(CG_ERR_INVALID, "opt %s: amount %d does not divide the axis's size %lld", d, o[i].amount, (long long)size);
    if (o[i].amount == 1) continue;
    if (o[i].kind == OPT_UPCAST) sink = upcast(sink, r, o[i].amount, i);
    else {
      int64_t arg[3] = {r->arg.v[0], RANGE_UNROLL, i};
      unroll_ctx c = {r, uop_new1(OP_RANGE, DT_I32, ci(size / o[i].amount), r->arg), uop_new1(OP_RANGE, DT_I32, ci(o[i].amount), arg_ints(arg, 3)), o[i].amount};
      sink = graph_rewrite(sink, &rs_unroll, &c);
    }
    sink = uop_simplify(sink);
  }
  return sink;
}
