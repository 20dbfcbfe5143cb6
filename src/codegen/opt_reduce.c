/* The heuristic's vector accumulators for a reduction with no vector along its output
 * (opt_reduce_unrolls): every reduce loop that runs innermost gets lanes, not only the one
 * with the largest axis id. A layernorm's backward sums two terms over each row of 384 in
 * two loops (ranges 100 and 101): only 101 had lanes, and 100's scalar chain of 384
 * dependent adds held the kernel at 10 GB/s. A loop whose trips no 16, 8 or 4 divides (a
 * vocabulary of 114 logits: the loss's max, exp-sum and pick; the softmax's statistics)
 * is padded to 16 first (the extra trips add the reduce's identity; their loads masked)
 * when the kernel reads only float32 and int32 (masked vector loads exist for those).
 * A loop other than the innermost whose loads would be gathers (a column walk) keeps
 * its trips too. A loop with another REDUCE inside it that depends on it (the loss's loop over rows,
 * holding the per-row reductions) keeps its trips: lanes there would copy the inner
 * loops 16 times. */
#include "codegen.h"
#include "uop/uopset.h"

#define MAX_REDUCES 32

static void collect_reduces(uop *u, uopset *seen, uop **out, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_REDUCE && *n < MAX_REDUCES) out[(*n)++] = u;
  for (uint32_t i = 0; i < u->nsrc; i++) collect_reduces(u->src[i], seen, out, n);
}
static bool reduces_over(uop *red, uop *r);
/* Whether u needs r's loop (a REDUCE over r is complete after it: not through that). */
static bool depends(uop *u, uop *r, uopset *memo) {
  if (u == r) return true;
  if (u->op == OP_REDUCE && reduces_over(u, r)) return false;
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool d = false;
  for (uint32_t i = 0; i < u->nsrc && !d; i++) d = u->src[i]->op != OP_DEFINE_GLOBAL && depends(u->src[i], r, memo);
  uopset_put(memo, u, (void *)(uintptr_t)(d ? 2 : 1));
  return d;
}
static bool reduces_over(uop *red, uop *r) {
  for (uint32_t i = 1; i < red->nsrc; i++)
    if (red->src[i] == r) return true;
  return false;
}

int opt_reduce_unrolls(uop *sink, uop **ix, int nix, bool words, opt *out, int n, int max, uop **first) {
  uop *red[MAX_REDUCES], *cand[MAX_REDUCES];
  int nred = 0, nc = 0;
  uopset seen = {0};
  collect_reduces(sink, &seen, red, &nred);
  uopset_free(&seen);
  *first = NULL;
  for (int i = 0; i < nred; i++) { /* each REDUCE's innermost range (its largest axis id) */
    uop *r = NULL;
    for (uint32_t j = 1; j < red[i]->nsrc; j++)
      if (red[i]->src[j]->op == OP_RANGE && (!r || red[i]->src[j]->arg.v[0] > r->arg.v[0])) r = red[i]->src[j];
    bool dup = !r;
    for (int c = 0; c < nc && !dup; c++) dup = cand[c] == r;
    if (!dup) cand[nc++] = r;
  }
  /* the largest axis id first (the order the heuristic always used for it) */
  for (int i = 1; i < nc; i++)
    for (int j = i; j > 0 && cand[j]->arg.v[0] > cand[j - 1]->arg.v[0]; j--) {
      uop *t = cand[j];
      cand[j] = cand[j - 1], cand[j - 1] = t;
    }
  for (int c = 0; c < nc && n + 2 <= max; c++) {
    uop *r = cand[c];
    bool outer = false; /* another reduction runs inside r's loop */
    uopset memo = {0};
    for (int i = 0; i < nred && !outer; i++) outer = !reduces_over(red[i], r) && depends(red[i]->src[0], r, &memo);
    uopset_free(&memo);
    if (outer) continue;
    int64_t sz = r->src[0]->arg.i, amount = 0;
    static const int64_t tries[] = {16, 8, 4};
    for (int t = 0; t < 3 && !amount; t++)
      if (sz % tries[t] == 0 && sz >= tries[t]) amount = tries[t];
    if (!amount && words && sz > 8) amount = 16; /* padded to 16 */
    if (!amount) continue;
    if (c > 0) { /* another loop than the innermost: only where its loads are rows, not gathers */
      int unit, other;
      strides_along(sink, ix, nix, r, sz % amount ? 1 : amount, &unit, &other);
      if (other > unit) continue;
    }
    if (sz % amount) out[n++] = (opt){OPT_PADTO, (int16_t)r->arg.v[0], 16};
    out[n++] = (opt){OPT_UNROLL, (int16_t)r->arg.v[0], (int32_t)amount};
    if (c == 0) *first = r;
  }
  return n;
}
