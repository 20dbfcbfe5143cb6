/* Merging adjacent output dims of a lowered kernel (the end of the lower pass), as
 * tinygrad's shape tracker merges views: output ranges r_i, r_j (j the next output range
 * inward) become one range R of n_i*n_j where every address, gate and value reads them
 * only as r_i*n_j + r_j. An elementwise kernel over (N, C, 20, 20) with a per-channel
 * operand (BatchNorm's scale) then runs over (N, C, 400): 16-wide vectors where the last
 * dim of 20 allowed 4, and no loop of 20 trips inside a loop of 20.
 *
 * Tried by substitution: r_i = R / n_j, r_j = R % n_j, simplified; the merge stands when
 * no IDIV or MOD of R is left (the symbolic rules recombine (R/n)*n*k + (R%n)*k into R*k
 * only where the two dims were read together). Innermost pairs first, so (N, C, H, W)
 * can become (N*C*H*W) when nothing reads a dim alone. The reduce ranges of each REDUCE
 * the same way: BatchNorm's partial sums over a 20x20 map reduce 400 contiguous
 * elements (vectors of 16) instead of 20 rows of 20. */
#include "codegen.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }

static void collect_out(uop *u, uopset *seen, uop **rng, int *nr) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE && u->arg.v[1] == RANGE_LOOP) {
    if (*nr < UOP_MAX_DIMS) rng[(*nr)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) collect_out(u->src[i], seen, rng, nr);
}

/* Whether an IDIV or MOD below u reads r (dep: uop_depends' memo for r). */
static bool divmod_of(uop *u, uop *r, uopset *seen, uopset *dep) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return false;
  if ((u->op == OP_IDIV || u->op == OP_MOD) && uop_depends(u, r, dep)) return true;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (divmod_of(u->src[i], r, seen, dep)) return true;
  return false;
}

/* The reduce ranges of a REDUCE, inner pairs first: r_i, r_j (ids in order, j the next
 * range inward) become one when its body reads them only as r_i*n_j + r_j. */
static uop *merge_reduce(rw_match *m) {
  uop *u = m->root, *rng[UOP_MAX_DIMS];
  int nr = 0;
  for (uint32_t i = 1; i < u->nsrc && nr < UOP_MAX_DIMS; i++)
    if (u->src[i]->op == OP_RANGE && u->src[i]->arg.v[1] == RANGE_REDUCE) rng[nr++] = u->src[i];
  if (nr != (int)u->nsrc - 1 || nr < 2) return NULL;
  for (int i = 1; i < nr; i++)
    for (int j = i; j > 0 && rng[j]->arg.v[0] < rng[j - 1]->arg.v[0]; j--) {
      uop *t = rng[j];
      rng[j] = rng[j - 1], rng[j - 1] = t;
    }
  for (int i = nr - 2; i >= 0; i--) {
    int64_t ni = rng[i]->src[0]->arg.i, nj = rng[i + 1]->src[0]->arg.i;
    if (ni * nj > INT32_MAX) continue;
    uop *R = uop_new1(OP_RANGE, DT_I32, ci(ni * nj), rng[i]->arg);
    uop *b = subst_range(u->src[0], rng[i], uop_alu(OP_IDIV, R, ci(nj)));
    b = b ? uop_simplify(subst_range(b, rng[i + 1], uop_alu(OP_MOD, R, ci(nj)))) : NULL;
    if (!b) return NULL; /* out of memory: left as it is */
    uopset s = {0}, d = {0};
    bool left = divmod_of(b, R, &s, &d);
    uopset_free(&s), uopset_free(&d);
    if (left) continue;
    uop *src[UOP_MAX_DIMS + 1];
    int n = 0;
    src[n++] = b;
    for (int k = 0; k < nr; k++)
      if (k != i && k != i + 1) src[n++] = rng[k];
      else if (k == i) src[n++] = R;
    return uop_new(OP_REDUCE, u->dt, src, n, u->arg); /* the rule runs again on it */
  }
  return NULL;
}
static const rw_rule merge_rules[] = {RULE("REDUCE", merge_reduce)};
static RULESET(rs_merge_reduce, "merge_reduce_dims", merge_rules);

uop *merge_output_dims(uop *sink) {
  uop *rng[UOP_MAX_DIMS];
  int nr = 0;
  uopset seen = {0};
  collect_out(sink, &seen, rng, &nr);
  uopset_free(&seen);
  for (int i = 1; i < nr; i++) /* by axis id: the kernel's dims in order */
    for (int j = i; j > 0 && rng[j]->arg.v[0] < rng[j - 1]->arg.v[0]; j--) {
      uop *t = rng[j];
      rng[j] = rng[j - 1], rng[j - 1] = t;
    }
  uop *inner = nr ? rng[nr - 1] : NULL;
  for (int i = nr - 2; i >= 0 && sink; i--) {
    int64_t ni = rng[i]->src[0]->arg.i, nj = inner->src[0]->arg.i;
    if (ni * nj > INT32_MAX) break;
    /* the merged range keeps the outer dim's axis id */
    uop *R = uop_new1(OP_RANGE, DT_I32, ci(ni * nj), rng[i]->arg);
    uop *t = subst_range(sink, rng[i], uop_alu(OP_IDIV, R, ci(nj)));
    t = t ? uop_simplify(subst_range(t, inner, uop_alu(OP_MOD, R, ci(nj)))) : NULL;
    if (!t) return NULL; /* out of memory: the pass fails */
    uopset s = {0}, d = {0};
    bool left = divmod_of(t, R, &s, &d);
    uopset_free(&s), uopset_free(&d);
    if (left) inner = rng[i];
    else sink = t, inner = R;
  }
  return sink ? graph_rewrite(sink, &rs_merge_reduce, NULL) : NULL;
}
