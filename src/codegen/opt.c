/* Optimizing a kernel's loops through recorded opts (ARCHITECTURE §6). Implemented now:
 *
 *   UPCAST(axis, n): the output range r of that axis becomes r' (size/n) and n copies of
 *   the kernel body are made with r = r'*n + lane for lane = 0..n-1. Hash-consing shares
 *   what the copies have in common (a row of A across the columns of a matmul tile); the
 *   C renderer runs reductions over the same ranges in one loop, so a 4x16 upcast gives a
 *   register tile of 64 accumulators that the C compiler's SLP vectorizer turns into
 *   vector FMAs.
 *
 * The heuristic: upcast the last output dim by 16, 8 or 4 (the lanes of an elementwise
 * kernel become one vector op each); for kernels with a reduction also one other output
 * dim by 4 (at most 64 lanes).
 * NOOPT=1 turns it off. */
#include "opt.h"
#include "core/config.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include <stdio.h>
#include <string.h>

typedef struct {
  uop *from[2], *to[2];
  int n;
} subst;

static uop *subst_range(rw_match *m) {
  subst *s = m->ctx;
  for (int i = 0; i < s->n; i++)
    if (m->root == s->from[i]) return s->to[i];
  return NULL;
}
static const rw_rule subst_rules[] = {RULE("RANGE", subst_range)};
static RULESET(rs_subst_range, "upcast", subst_rules);

static void collect(uop *u, uopset *seen, uop **rng, int *nr, bool *has_reduce) {
  if (!uopset_add(seen, u) || u->op == OP_BUFFER) return;
  if (u->op == OP_REDUCE) *has_reduce = true;
  if (u->op == OP_RANGE && u->arg.v[1] == 0) {
    if (*nr < UOP_MAX_DIMS) rng[(*nr)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) collect(u->src[i], seen, rng, nr, has_reduce);
}

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }

static void collect_index(uop *u, uopset *seen, uop **out, int *n, int max) {
  if (!uopset_add(seen, u) || u->op == OP_BUFFER) return;
  if (u->op == OP_INDEX && *n < max) out[(*n)++] = u;
  for (uint32_t i = 0; i < u->nsrc; i++) collect_index(u->src[i], seen, out, n, max);
}
static bool depends_on(uop *u, uop *r, uopset *memo) {
  if (u == r) return true;
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool d = false;
  for (uint32_t i = 0; i < u->nsrc && !d; i++) d = u->src[i]->op != OP_BUFFER && depends_on(u->src[i], r, memo);
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

uop *opt_apply(uop *sink, int64_t *global, char *desc, size_t ndesc) {
  snprintf(desc, ndesc, "none");
  if (cfg_int("NOOPT", 0)) return sink;
  uop *rng[UOP_MAX_DIMS];
  int nr = 0;
  bool has_reduce = false;
  uopset seen = {0};
  collect(sink, &seen, rng, &nr, &has_reduce);
  uopset_free(&seen);
  if (nr == 0) return sink;
  /* ranges by axis */
  for (int i = 1; i < nr; i++)
    for (int j = i; j > 0 && rng[j]->arg.v[0] < rng[j - 1]->arg.v[0]; j--) {
      uop *t = rng[j];
      rng[j] = rng[j - 1], rng[j - 1] = t;
    }
  subst s = {.n = 0};
  int64_t amount[2] = {1, 1};
  uop *ix[256];
  int nix = 0;
  uopset seen_ix = {0};
  collect_index(sink, &seen_ix, ix, &nix, 256);
  uopset_free(&seen_ix);
  /* first: the last output dim by 16, 8 or 4 (contiguous lanes); if it does not divide,
   * the largest dim that divides by 4 (kernels with a reduction only) */
  uop *last = rng[nr - 1];
  int64_t n_last = last->src[0]->arg.i;
  static const int64_t tries[] = {16, 8, 4};
  for (int t = 0; t < 3 && s.n == 0; t++)
    if (n_last % tries[t] == 0 && n_last > tries[t] / 2) amount[s.n] = tries[t], s.from[s.n++] = last;
  if (s.n == 0 && has_reduce) {
    uop *big = NULL;
    for (int i = 0; i < nr - 1; i++) {
      int64_t n = rng[i]->src[0]->arg.i;
      if (n % 4 == 0 && n >= 8 && (!big || n > big->src[0]->arg.i)) big = rng[i];
    }
    if (big) amount[s.n] = 4, s.from[s.n++] = big;
  }
  /* second (reductions only): by 4, the dim whose lanes share the most loads with the
   * first's (for a convolution, output channels: the input is shared across them, the
   * weights across output columns), then the largest */
  uop *best = NULL;
  int best_score = -1;
  for (int i = 0; s.n == 1 && has_reduce && i < nr; i++) {
    int64_t n = rng[i]->src[0]->arg.i;
    if (rng[i] == s.from[0] || n % 4 || n < 8) continue;
    int score = shared_loads(ix, nix, rng[i], s.from[0]);
    if (score > best_score || (score == best_score && n > best->src[0]->arg.i)) best = rng[i], best_score = score;
  }
  if (best && amount[0] * 4 <= 64) amount[s.n] = 4, s.from[s.n++] = best;
  if (s.n == 0) return sink;
  /* the new, shorter ranges */
  uop *shorter[2];
  for (int i = 0; i < s.n; i++) {
    int64_t n = s.from[i]->src[0]->arg.i / amount[i];
    shorter[i] = uop_new1(OP_RANGE, DT_I32, ci(n), s.from[i]->arg);
  }
  int64_t lanes = amount[0] * (s.n > 1 ? amount[1] : 1);
  uop **stores = malloc(sizeof(uop *) * (size_t)(lanes * sink->nsrc));
  CG_ASSERT(stores, "out of memory");
  int ns = 0;
  for (int64_t l = 0; l < lanes; l++) {
    int64_t lane[2] = {l % amount[0], s.n > 1 ? l / amount[0] : 0};
    for (int i = 0; i < s.n; i++) s.to[i] = uop_alu(OP_ADD, uop_alu(OP_MUL, shorter[i], ci(amount[i])), ci(lane[i]));
    uop *body = graph_rewrite(sink, &rs_subst_range, &s);
    for (uint32_t k = 0; k < body->nsrc; k++) stores[ns++] = body->src[k];
  }
  uop *out = uop_simplify(uop_new(OP_SINK, dt_void(), stores, ns, arg_none()));
  free(stores);
  /* the parallel range is the first output range left */
  for (int i = 0; i < s.n; i++)
    if (s.from[i] == rng[0]) *global = shorter[i]->src[0]->arg.i;
  int w = 0;
  for (int i = 0; i < s.n; i++)
    w += snprintf(desc + w, ndesc - (size_t)w, "%sUPCAST(axis %lld, %lld)", i ? " " : "", (long long)s.from[i]->arg.v[0], (long long)amount[i]);
  return out;
}
