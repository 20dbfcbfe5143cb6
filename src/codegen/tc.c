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
 * CG_CPU_FEATURES): AMX tiles first where the kernel suits them (below), else the WMMA
 * steps when the kernel's vector lane is the output's last dim with the B operand
 * contiguous along it; elsewhere the kernel keeps float32 FMAs. */
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

static void find_tc(uop *u, uopset *seen, uop **out, int *n, int max) {
  if (*n >= max || uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (tc_reduce(u, NULL)) {
    out[(*n)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) find_tc(u->src[i], seen, out, n, max);
}

int tc_find_all(uop *sink, uop **out, int max) {
  int n = 0;
  uopset seen = {0};
  find_tc(sink, &seen, out, &n, max);
  uopset_free(&seen);
  return n;
}

uop *tc_find(uop *sink) {
  uop *r = NULL;
  return tc_find_all(sink, &r, 1) ? r : NULL;
}

int tc_unit(void) {
  unsigned f = rt_cpu_features();
  /* the WMMA-step unit; AMX tiles are planned apart (tc_amx_opts), and a kernel that does
   * not suit them falls back to this one (Sapphire Rapids has both) */
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

/* ---- AMX (unit 2): a 16x16 output tile per AMX_TILE, its whole reduction inside ----------
 * The REDUCE at output (m, n) becomes TILE_AT(AMX_TILE(A at (m0, 0), B at (0, n0)),
 * (m % 16) * 16 + n % 16) with m0 = m - m % 16: after UPCAST(m, 16) and UPCAST(n, 16)
 * (which the heuristic adds with it) the tile depends only on the outer ranges, so
 * hash-consing makes one tile per 16x16 block and the 256 lanes read it. The renderer
 * calls a prelude helper that runs the k loop on the tiles (A rows loaded in place, B
 * pairs interleaved into the VNNI layout per 32 k). Needs: both operands bf16 buffer loads,
 * A's k adjacent and B's n adjacent in memory, constant row strides, m and n multiples
 * of 16, one reduce range. */
typedef struct {
  uop *ld[2];      /* the LOADs of A, B */
  uop *rm, *rn;    /* A's own output range, B's */
  int64_t lda, ldb;
} amx_plan;

static bool depends_on(uop *u, uop *r) {
  uopset memo = {0};
  bool d = uop_depends(u, r, &memo);
  uopset_free(&memo);
  return d;
}
/* off(r + 1) - off(r) when it is a constant (a stand-in range: r -> r + 1 would not stop) */
static bool step_along(uop *off, uop *r, int64_t *step) {
  int64_t arg[2] = {r->arg.v[0], 99};
  uop *r2 = uop_new1(OP_RANGE, DT_I32, r->src[0], arg_ints(arg, 2));
  uop *d = uop_simplify(uop_alu(OP_ADD, subst_range(off, r, uop_alu(OP_ADD, r2, ci(1))), uop_alu1(OP_NEG, subst_range(off, r, r2))));
  if (d->op != OP_CONST) return false;
  *step = d->arg.i;
  return true;
}
static void out_ranges(uop *u, uopset *seen, uop **out, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE && (u->arg.v[1] == RANGE_LOOP || u->arg.v[1] == RANGE_THREAD)) {
    if (*n < UOP_MAX_DIMS) out[(*n)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) out_ranges(u->src[i], seen, out, n);
}
static const char *amx_plan_of(uop *sink, uop *red, amx_plan *p) {
  if (red->nsrc != 2) return "more than one reduce axis";
  uop *r = red->src[1], *rng[UOP_MAX_DIMS];
  int nr = 0;
  uopset seen = {0};
  out_ranges(sink, &seen, rng, &nr);
  uopset_free(&seen);
  for (int o = 0; o < 2; o++) {
    uop *x = red->src[0]->src[o];
    if (x->op != OP_CAST || x->src[0]->op != OP_LOAD || x->src[0]->src[0]->nsrc != 2) return "an operand is not a bf16 buffer's load";
    p->ld[o] = x->src[0];
  }
  /* A: its k adjacent, and an output range B does not use; B: n adjacent, a range A does not use */
  for (int swap = 0; swap < 2; swap++) {
    uop *a = p->ld[swap]->src[0]->src[1], *b = p->ld[1 - swap]->src[0]->src[1];
    int64_t ka, kb;
    if (!step_along(a, r, &ka) || !step_along(b, r, &kb) || ka != 1) continue;
    p->rm = p->rn = NULL;
    for (int i = 0; i < nr; i++) {
      bool da = depends_on(a, rng[i]), db = depends_on(b, rng[i]);
      int64_t s;
      if (da && !db && !p->rm && step_along(a, rng[i], &s)) p->rm = rng[i], p->lda = s;
      if (db && !da && !p->rn && step_along(b, rng[i], &s) && s == 1) p->rn = rng[i];
    }
    if (!p->rm || !p->rn) continue;
    p->ldb = kb;
    if (swap) {
      uop *t = p->ld[0];
      p->ld[0] = p->ld[1], p->ld[1] = t;
    }
    if (p->rm->src[0]->arg.i % 16 || p->rn->src[0]->arg.i % 16) return "the output's rows or columns are not a multiple of 16";
    return NULL;
  }
  return "no operand pair with A's k and B's columns adjacent in memory";
}

typedef struct {
  uop *r;
  const char *why;
  int applied;
  uop *sink;
} amx_ctx;
static uop *amx_rewrite(rw_match *m) {
  amx_ctx *c = m->ctx;
  uop *u = m->root;
  if (!tc_reduce(u, c->r)) return NULL;
  amx_plan p;
  if ((c->why = amx_plan_of(c->sink, u, &p))) return NULL;
  /* r -> (r / 16) * 16 through a stand-in range (a range replaced by an expression of
   * itself would never stop) */
  int64_t am[2] = {p.rm->arg.v[0], 98}, an[2] = {p.rn->arg.v[0], 98};
  uop *sm = uop_new1(OP_RANGE, DT_I32, p.rm->src[0], arg_ints(am, 2)), *sn = uop_new1(OP_RANGE, DT_I32, p.rn->src[0], arg_ints(an, 2));
  uop *m0 = uop_alu(OP_MUL, uop_alu(OP_IDIV, sm, ci(16)), ci(16)), *n0 = uop_alu(OP_MUL, uop_alu(OP_IDIV, sn, ci(16)), ci(16));
  uop *offa = subst_range(subst_range(subst_range(p.ld[0]->src[0]->src[1], c->r, ci(0)), p.rm, m0), sm, p.rm);
  uop *offb = subst_range(subst_range(subst_range(p.ld[1]->src[0]->src[1], c->r, ci(0)), p.rn, n0), sn, p.rn);
  offa = uop_simplify(offa), offb = uop_simplify(offb);
  uop *src[4] = {p.ld[0]->src[0]->src[0], offa, p.ld[1]->src[0]->src[0], offb};
  int64_t arg[3] = {c->r->src[0]->arg.i, p.lda, p.ldb};
  uop *tile = uop_new(OP_AMX_TILE, dt_vec(DT_F32, 256), src, 4, arg_ints(arg, 3));
  uop *at = uop_alu(OP_ADD, uop_alu(OP_MUL, uop_alu(OP_MOD, p.rm, ci(16)), ci(16)), uop_alu(OP_MOD, p.rn, ci(16)));
  c->applied++;
  return uop_new2(OP_TILE_AT, DT_F32, tile, uop_simplify(at));
}
static const rw_rule amx_rules[] = {RULE("REDUCE", amx_rewrite)};
static RULESET(rs_amx, "opt_tc_amx", amx_rules);

/* The load an operand reads (CAST(f32, LOAD) or a float32 LOAD), or NULL. */
static uop *operand_load(uop *x) {
  if (x->op == OP_CAST) x = x->src[0];
  return x->op == OP_LOAD && x->src[0]->nsrc == 2 ? x : NULL;
}
bool tc_vector_fits(uop *red, uop *lane) {
  uop *x[2] = {operand_load(bf16_operand(red->src[0]->src[0])), operand_load(bf16_operand(red->src[0]->src[1]))};
  if (!x[0] || !x[1] || lane->src[0]->arg.i % 16) return false;
  /* as the heuristic's upcasts will make it: lane = outer*32 + u2*16 + u (or outer*16 + u),
   * so that a packed panel's n % 32 becomes u2*16 + u */
  int64_t n = lane->src[0]->arg.i, w = n % 32 ? 16 : 32, ao[2] = {lane->arg.v[0], 97}, au[2] = {lane->arg.v[0], 96}, a2[2] = {lane->arg.v[0], 95};
  uop *outer = uop_new1(OP_RANGE, DT_I32, ci(n / w), arg_ints(ao, 2)), *u = uop_new1(OP_RANGE, DT_I32, ci(16), arg_ints(au, 2));
  uop *at = uop_alu(OP_ADD, uop_alu(OP_MUL, outer, ci(w)), u);
  if (w == 32) at = uop_alu(OP_ADD, at, uop_alu(OP_MUL, uop_new1(OP_RANGE, DT_I32, ci(2), arg_ints(a2, 2)), ci(16)));
  for (int a = 0; a < 2; a++) { /* A: the same for every lane (a broadcast); B: a vector load */
    uop *oa = uop_simplify(subst_range(x[a]->src[0]->src[1], lane, at)), *ob = uop_simplify(subst_range(x[1 - a]->src[0]->src[1], lane, at));
    int64_t step;
    if (!depends_on(oa, u) && step_along(ob, u, &step) && step == 1) return true;
  }
  return false;
}

/* The float32 GEMM's column blocks (opt.c's heuristic_gemm) for a TC GEMM: the vector
 * axis cols in a TILE of up to 16 panels of `width` columns, at least two blocks, for
 * K >= 512 when B (K x cols bf16) is over 512 KiB, so that each thread sweeps its rows over
 * one block of B that stays in L2 instead of streaming all of B per 8-row tile. Measured
 * (1 thread, thread CPU time, 2 threads' load ~10): 4096^3 220 GFLOP/s without, blocks of
 * 2/4/8/16 panels 442/462/478/476; 2048^3 489 -> 505. 0: no TILE. */
int32_t tc_col_block(uop *red, uop *cols, int64_t width) {
  int64_t nk = 1, nc = cols->src[0]->arg.i;
  for (uint32_t i = 1; i < red->nsrc; i++) nk *= red->src[i]->src[0]->arg.i;
  if (width < 16 || nc % width || nk < 512 || nc * nk * 2 <= 512 * 1024) return 0;
  int64_t trips = nc / width, block = 1;
  while (block < 16 && trips % (block * 2) == 0 && block * 2 < trips) block *= 2;
  return block < trips && block > 1 ? (int32_t)block : 0;
}

/* The GEMM heuristic's list (n opts in out, opt.c's heuristic_gemm: register tile, PADTO,
 * TILE, THREAD) with TC in front when the kernel is a bf16 sum of products this CPU's unit
 * runs along the tile's vector (the columns, cols; PADTO'd columns count as their padded
 * size: the pad's lanes are masked at the store and read packed zeros or masked loads). */
int tc_gemm_opts(uop *sink, uop *cols, opt *out, int n) {
  uop *red = n < MAX_OPTS ? tc_find(sink) : NULL;
  int unit = red ? tc_unit() : 0;
  if (!unit || red->nsrc != 2) return n;
  int64_t nc = cols->src[0]->arg.i, np = (nc + 15) / 16 * 16;
  for (int i = 0; i < n; i++)
    if (out[i].kind == OPT_PADTO && out[i].axis == cols->arg.v[0]) np = (nc + out[i].amount - 1) / out[i].amount * out[i].amount;
  uop *lane = np != nc ? uop_new1(OP_RANGE, DT_I32, ci(np), cols->arg) : cols;
  if (np != nc) red = subst_range(red, cols, lane);
  if (!lane || !red || !tc_vector_fits(red, lane)) return n;
  memmove(out + 1, out, sizeof *out * (size_t)n);
  out[0] = (opt){OPT_TC, (int16_t)red->src[1]->arg.v[0], unit};
  return n + 1;
}

bool tc_amx_ready(void) { return (rt_cpu_features() & RT_CPU_AMX_BF16) && rt_amx_enable(); }

int tc_amx_opts(uop *sink, opt *out) {
  uop *red = tc_find(sink);
  amx_plan p;
  if (!red || amx_plan_of(sink, red, &p)) return 0;
  int n = 0;
  out[n++] = (opt){OPT_TC, (int16_t)red->src[1]->arg.v[0], TC_AMX};
  out[n++] = (opt){OPT_UPCAST, (int16_t)p.rn->arg.v[0], 16};
  out[n++] = (opt){OPT_UPCAST, (int16_t)p.rm->arg.v[0], 16};
  uop *rng[UOP_MAX_DIMS];
  int nr = 0;
  uopset seen = {0};
  out_ranges(sink, &seen, rng, &nr);
  uopset_free(&seen);
  uop *t = NULL; /* threads: the outermost range with more than one step left */
  for (int i = 0; i < nr; i++) {
    int64_t sz = rng[i]->src[0]->arg.i / (rng[i] == p.rm || rng[i] == p.rn ? 16 : 1);
    if (sz > 1 && (!t || rng[i]->arg.v[0] < t->arg.v[0])) t = rng[i];
  }
  if (t) out[n++] = (opt){OPT_THREAD, (int16_t)t->arg.v[0], 0};
  return n;
}

uop *tc_apply(uop *sink, uop *r, int unit) {
  if (unit != TC_AVX512BF16 && unit != TC_AMX)
    return cg_fail_null(CG_ERR_INVALID, "opt TC(%d,%d): unit %d is not a bf16 matrix unit (1 AVX512-BF16, 2 AMX)", (int)r->arg.v[0], unit, unit);
  if (unit == TC_AMX) {
    amx_ctx a = {r, NULL, 0, sink};
    uop *out = graph_rewrite(sink, &rs_amx, &a);
    if (!a.applied)
      return cg_fail_null(CG_ERR_INVALID, "opt TC(%d,2): no AMX tile here: %s", (int)r->arg.v[0],
                          a.why ? a.why : "the kernel has no sum of products of two bfloat16 operands over this axis");
    return out;
  }
  int64_t K = r->src[0]->arg.i;
  tc_ctx c = {r, uop_new1(OP_RANGE, DT_I32, ci((K + 1) / 2), r->arg), K, unit, 0};
  uop *out = graph_rewrite(sink, &rs_tc, &c);
  if (!c.applied)
    return cg_fail_null(CG_ERR_INVALID, "opt TC(%d,%d): the kernel has no sum of products of two bfloat16 operands over axis %d", (int)r->arg.v[0], unit,
                        (int)r->arg.v[0]);
  return out;
}
