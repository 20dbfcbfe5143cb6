/* The TC opt (ARCHITECTURE §6): a reduction that is a sum of products of two bfloat16
 * operands runs on the CPU's bf16 matrix unit.
 *
 *   TC(axis, unit): the reduce range k of that axis becomes j over ceil(K/2) pairs, and
 *   REDUCE(ADD, a(k) * b(k), k) becomes REDUCE(ADD, WMMA(a(2j), a(2j+1), b(2j), b(2j+1),
 *   0), j): one WMMA per pair of k, which the renderer spells as the unit's instruction
 *   (unit 1: vdpbf16ps, 16 float32 lanes of pairs; unit 2: AMX). The linearizer folds the
 *   reduction's add into the WMMA (its last source is the accumulator), and the expand
 *   pass makes it a vector op along the upcast output lane like any other ALU op: a GEMM's
 *   A pair is broadcast, its B pairs are 16 columns.
 *
 * An operand is "bf16" when it is the float32 of a bfloat16 value: CAST(f32, x) with x
 * bfloat16 (a bf16 buffer's load, as autocast's realized copies give), or
 * CAST(f32, CAST(bf16, v)) with v float32 (rounding fused into the kernel: WMMA rounds
 * its inputs itself, so v is passed as it is). An odd K pads the last pair with a zero
 * (the second element reads index K-1 and is selected away).
 *
 * The heuristic adds TC when the CPU has a unit (runtime/cpu_features.h: CPUID, less
 * CG_CPU_FEATURES) and the kernel's vector lane is the output's last dim with the B
 * operand contiguous along it; elsewhere the kernel keeps float32 FMAs. */
#include "codegen.h"
#include "core/config.h"
#include "core/error.h"
#include "runtime/cpu_features.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include <stdio.h>
#include <string.h>

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }

/* The value WMMA takes for operand x (see above), or NULL when x is not bf16. */
static uop *bf16_operand(uop *x) {
  if (x->op != OP_CAST || x->dt.scalar != CG_FLOAT32 || x->dt.count > 1) return NULL;
  uop *s = x->src[0];
  if (s->dt.scalar != CG_BFLOAT16 || s->dt.count > 1) return NULL;
  if (s->op == OP_CAST && s->src[0]->dt.scalar == CG_FLOAT32 && s->src[0]->dt.count <= 1) return s->src[0];
  return x;
}

/* Whether REDUCE u is a bf16 sum of products over range r (r NULL: over any range). */
static bool tc_reduce(uop *u, uop *r) {
  if (u->op != OP_REDUCE || u->arg.v[0] != OP_ADD || u->dt.scalar != CG_FLOAT32 || u->dt.count > 1) return false;
  uop *m = u->src[0];
  if (m->op != OP_MUL || !bf16_operand(m->src[0]) || !bf16_operand(m->src[1])) return false;
  bool has = r == NULL;
  for (uint32_t i = 1; i < u->nsrc; i++) has |= u->src[i] == r;
  return has;
}

static void find_tc(uop *u, uopset *seen, uop **out) {
  if (*out || !uopset_add(seen, u) || u->op == OP_DEFINE_GLOBAL) return;
  if (tc_reduce(u, NULL)) {
    *out = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) find_tc(u->src[i], seen, out);
}

uop *tc_find(uop *sink) {
  uop *r = NULL;
  uopset seen = {0};
  find_tc(sink, &seen, &r);
  uopset_free(&seen);
  return r;
}

int tc_unit(void) {
  unsigned f = rt_cpu_features();
  /* AMX kernels are not generated yet (see tc_supported): the AVX512-BF16 path serves
   * Sapphire Rapids too, which has both */
  return (f & RT_CPU_AVX512BF16) ? TC_AVX512BF16 : 0;
}

const char *tc_unit_name(int unit) {
  return unit == TC_AVX512BF16 ? "AVX512-BF16 (vdpbf16ps)" : unit == TC_AMX ? "AMX (tdpbf16ps)" : "float32 FMAs";
}

/* Whether x is a bf16 buffer's load whose k and k+1 are adjacent elements for every pair
 * (then the renderer reads the pair as one 32-bit word). */
static bool pair_adjacent(uop *x, uop *r, uop *k0, uop *k1) {
  if (x->op != OP_CAST || x->src[0]->op != OP_LOAD || x->src[0]->src[0]->nsrc != 2) return false;
  uop *off = x->src[0]->src[0]->src[1];
  uop *d = uop_simplify(uop_alu(OP_ADD, subst_range(off, r, k1), uop_alu1(OP_NEG, subst_range(off, r, k0))));
  return d->op == OP_CONST && d->arg.i == 1;
}

typedef struct {
  uop *r, *j;
  int64_t K;
  int unit;
  int applied;
} tc_ctx;

static uop *tc_rewrite(rw_match *m) {
  tc_ctx *c = m->ctx;
  uop *u = m->root;
  if (!tc_reduce(u, c->r)) return NULL;
  uop *x[2] = {bf16_operand(u->src[0]->src[0]), bf16_operand(u->src[0]->src[1])}, *w[5];
  uop *k0 = uop_alu(OP_MUL, c->j, ci(2)), *k1 = uop_alu(OP_ADD, k0, ci(1));
  bool odd = c->K % 2;
  uop *valid = odd ? uop_alu(OP_CMPLT, k1, ci(c->K)) : NULL;
  int flags = 0;
  for (int o = 0; o < 2; o++) {
    flags |= !odd && pair_adjacent(x[o], c->r, k0, k1) ? TC_PAIR_ADJACENT << o : 0;
    w[2 * o] = uop_simplify(subst_range(x[o], c->r, k0));
    if (!odd) w[2 * o + 1] = uop_simplify(subst_range(x[o], c->r, k1));
    else /* the pad: index K-1 is read (in bounds) and a zero taken instead */
      w[2 * o + 1] = uop_simplify(uop_where(valid, subst_range(x[o], c->r, uop_where(valid, k1, ci(c->K - 1))), uop_const_float(DT_F32, 0)));
  }
  /* WMMA order: a0, a1, b0, b1, acc */
  uop *src[5] = {w[0], w[1], w[2], w[3], uop_const_float(DT_F32, 0)};
  uop *mma = uop_new(OP_WMMA, DT_F32, src, 5, arg_int(c->unit | flags));
  uop *rs[UOP_MAX_DIMS + 2];
  rs[0] = mma;
  for (uint32_t i = 1; i < u->nsrc; i++) rs[i] = u->src[i] == c->r ? c->j : u->src[i];
  c->applied++;
  return uop_new(OP_REDUCE, u->dt, rs, (int)u->nsrc, u->arg);
}
static const rw_rule tc_rules[] = {RULE("REDUCE", tc_rewrite)};
static RULESET(rs_tc, "opt_tc", tc_rules);

uop *tc_apply(uop *sink, uop *r, int unit) {
  if (unit != TC_AVX512BF16 && unit != TC_AMX)
    return cg_fail_null(CG_ERR_INVALID, "opt TC(%d,%d): unit %d is not a bf16 matrix unit (1 AVX512-BF16, 2 AMX)", (int)r->arg.v[0], unit, unit);
  if (unit == TC_AMX)
    return cg_fail_null(CG_ERR_INVALID, "opt TC(%d,%d): AMX kernels are not generated by this renderer yet", (int)r->arg.v[0], unit);
  int64_t K = r->src[0]->arg.i;
  tc_ctx c = {r, uop_new1(OP_RANGE, DT_I32, ci((K + 1) / 2), r->arg), K, unit, 0};
  uop *out = graph_rewrite(sink, &rs_tc, &c);
  if (!c.applied)
    return cg_fail_null(CG_ERR_INVALID, "opt TC(%d,%d): the kernel has no sum of products of two bfloat16 operands over axis %d", (int)r->arg.v[0], unit,
                        (int)r->arg.v[0]);
  return out;
}
