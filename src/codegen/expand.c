/* Expanding upcast lanes (the pass after opt). UPCAST(axis, n) left each upcast dim as
 * r = r'*n + u with u a RANGE_UPCAST of n lanes. Here every such u goes away:
 *
 *   - one of them, whose lanes are contiguous in every STORE (the last dim of a row-major
 *     output), becomes the lanes of VECTORS: loads at contiguous addresses become one
 *     vector load, ALU ops vector ops (GCC vector types in C), reductions vector
 *     accumulators, and what has no vector form (float64 transcendentals, integer
 *     division, a gather) is computed lane by lane (GEP, then VECTORIZE);
 *   - the others are unrolled: the kernel body is made once per lane (substitution), and
 *     hash-consing shares what lanes have in common (the register tile of a matmul).
 *
 * Vectors are made only where every lane-dependent value is float32, int32 or a bool
 * from comparing them (a mask), or bf16 / f16 bits loaded, stored or cast to and from
 * float32 (a float32 rounded to bf16 / f16 and back too):
 * other dtypes keep every lane unrolled. A load contiguous along another upcast lane of
 * the vector's width instead of along the vector (a transposed copy) becomes vector loads
 * along that lane and the columns of their transpose (unroll_transposed). */
#include "codegen.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include <math.h>
#include <string.h>

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }

static uop *with_lane(uop *u, uop *lane, int64_t k) { return uop_simplify(subst_range(u, lane, ci(k))); }

static void collect_lanes(uop *u, uopset *seen, uop **out, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE && u->arg.v[1] == RANGE_UPCAST) {
    if (*n < UOP_MAX_DIMS) out[(*n)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) collect_lanes(u->src[i], seen, out, n);
}

/* Whether off is base + lane for every lane (k = 1 .. n-1). */
static bool contiguous(uop *off, uop *lane, int64_t n) {
  uop *base = with_lane(off, lane, 0);
  for (int64_t k = 1; k < n; k++) {
    uop *d = uop_simplify(uop_alu(OP_ADD, with_lane(off, lane, k), uop_alu1(OP_NEG, base)));
    if (!d || d->op != OP_CONST || d->arg.i != k) return false; /* !d: out of memory, the pass fails */
  }
  return true;
}

static bool vec_dtype(dtype d) { return d.count <= 1 && (d.scalar == CG_FLOAT32 || d.scalar == CG_INT32); }
/* The 16-bit floats (bfloat16, float16): a vector of them is a vector of bits (loaded,
 * stored, moved, transposed as they are), converted to and from float32 vectors by one op
 * (bf16: a shift and a rounding; float16: vcvtph2ps / vcvtps2ph); their arithmetic stays
 * lane by lane. */
/* bfloat16 vectors: a load contiguous along the lane, ungated or gated with +0 where the
 * gate is off (PADTO's column tail: a masked load), and its cast to float32 (bf16
 * arithmetic stays lane by lane) */
static bool bf16_vec_load(uop *u, uop *lane) {
  uop *ix = u->src[0];
  bool zero_alt = ix->nsrc == 3 && u->nsrc > 1 && u->src[1]->op == OP_CONST && u->src[1]->arg.f == 0 && !signbit(u->src[1]->arg.f);
  return u->op == OP_LOAD && dt_is_half(u->dt) && u->dt.count <= 1 && (ix->nsrc == 2 || zero_alt) &&
         contiguous(ix->src[1], lane, lane->src[0]->arg.i);
}

static bool transposed_load(uop *u, uop *ul, uop *vl, int64_t w);

static bool is_fp8(dtype d) { return d.count <= 1 && (d.scalar == CG_FP8E4M3 || d.scalar == CG_FP8E5M2); }
/* a float32 rounded to fp8 (a vector of float32 lanes, rounded), or that value as float32
 * again: the fp8 linears' quantization (tensor/fp8.c); fp8 loads and stores stay lane by lane */
static bool fp8_round_trip(uop *u) {
  if (u->op != OP_CAST) return false;
  if (is_fp8(u->dt)) return u->src[0]->dt.scalar == CG_FLOAT32 && u->src[0]->dt.count <= 1;
  return u->dt.scalar == CG_FLOAT32 && is_fp8(u->src[0]->dt) && fp8_round_trip(u->src[0]);
}

/* Whether every value that depends on the lane can be a vector (or a mask); others: the
 * other upcast lanes (a bf16 load transposed along one of them is a vector too). */
static bool vectorizable(uop *u, uop *lane, uop *const *others, int nothers, uopset *dep, uopset *seen) {
  int fresh = uopset_add(seen, u);
  if (fresh < 0) return false; /* out of memory: not a vector (the pass fails on it anyway) */
  if (fresh == 0 || !uop_depends(u, lane, dep)) return true;
  if (u->op == OP_GEP || u->op == OP_VECTORIZE || u->dt.count > 1) return false; /* vectors already */
  if (u->op == OP_TILE_AT) return false;                                           /* an AMX tile's lanes are read one by one */
  if (u->op == OP_INDEX || u->op == OP_RANGE || u->op == OP_STORE || u->op == OP_SINK) {
  } else if (dt_is_half(u->dt) && u->op == OP_LOAD) {
    bool tr = false;
    for (int i = 0; i < nothers && !tr; i++) tr = others[i] != lane && (lane->src[0]->arg.i == 8 || lane->src[0]->arg.i == 16) && transposed_load(u, others[i], lane, lane->src[0]->arg.i);
    if (!bf16_vec_load(u, lane) && !tr) return false;
  } else if (fp8_round_trip(u)) {
    /* float32 lanes rounded to fp8 (and back): render_c's e4m3 / e5m2 vector forms */
  } else if (u->op == OP_CAST && u->dt.scalar == CG_FLOAT32 && dt_is_half(u->src[0]->dt)) {
    /* a bf16 / f16 load's value, or a float32 rounded to bf16 / f16 and back (autocast's operands) */
    uop *s0 = u->src[0];
    if (s0->op != OP_LOAD && !(s0->op == OP_CAST && s0->src[0]->dt.scalar == CG_FLOAT32)) return false;
  } else if (u->op == OP_CAST && dt_is_half(u->dt) && u->src[0]->dt.scalar == CG_FLOAT32 && u->src[0]->dt.count <= 1) {
    /* rounding for a bf16 / f16 store (vectorize_stores checks it is one) */
  } else if (op_has(u->op, F_CMP)) {
    if (!vec_dtype(u->src[0]->dt)) return false;
  } else if (u->op == OP_CAST) {
    if (!vec_dtype(u->dt) || !(vec_dtype(u->src[0]->dt) || dt_is_bool(u->src[0]->dt))) return false;
  } else if (dt_is_bool(u->dt)) {
    if (u->op != OP_AND && u->op != OP_OR && u->op != OP_XOR && u->op != OP_NEG && u->op != OP_ADD && u->op != OP_MUL && u->op != OP_MAX &&
        u->op != OP_WHERE)
      return false;
  } else if (!vec_dtype(u->dt)) {
    return false;
  }
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (!vectorizable(u->src[i], lane, others, nothers, dep, seen)) return false;
  return true;
}

typedef struct {
  uop *lane;
  int64_t w;
  uopset dep, memo;
} vctx;

static uop *broadcast(vctx *c, uop *x) {
  if (!x) return NULL;
  uop *s[16];
  for (int64_t k = 0; k < c->w; k++) s[k] = x;
  return uop_new(OP_VECTORIZE, dt_vec(x->dt, (int)c->w), s, (int)c->w, arg_none());
}

static uop *vec(vctx *c, uop *x);
static uop *vec_or_broadcast(vctx *c, uop *x) {
  uop *v = vec(c, x);
  return v && v->dt.count == 1 ? broadcast(c, v) : v;
}

/* lane by lane: op on lane k of each vector operand, then the vector of the results */
static uop *per_lane(vctx *c, uop *x, uop *const *src) {
  uop *lanes[16];
  for (int64_t k = 0; k < c->w; k++) {
    uop *s[4];
    for (uint32_t i = 0; i < x->nsrc; i++)
      if (!src[i]) return NULL;
    for (uint32_t i = 0; i < x->nsrc; i++) s[i] = src[i]->dt.count > 1 ? uop_new1(OP_GEP, dt_scalar_of(src[i]->dt), src[i], arg_int(k)) : src[i];
    lanes[k] = uop_new(x->op, dt_scalar_of(x->dt), s, (int)x->nsrc, x->arg);
  }
  return uop_new(OP_VECTORIZE, dt_vec(x->dt, (int)c->w), lanes, (int)c->w, arg_none());
}

static bool native(int op, dtype d, dtype sd) {
  if (op == OP_CAST && ((is_fp8(d) && sd.scalar == CG_FLOAT32) || (d.scalar == CG_FLOAT32 && is_fp8(sd)))) return true; /* fp8_round_trip */
  switch (op) {
  case OP_ADD: case OP_MUL: case OP_NEG: case OP_MAX: case OP_WHERE: return true;
  case OP_CMPLT: case OP_CMPNE: case OP_CMPEQ: return true;
  case OP_AND: case OP_OR: case OP_XOR: return dt_is_int(d) || dt_is_bool(d);
  case OP_RECIPROCAL: return true;
  case OP_BITCAST: return vec_dtype(d) && vec_dtype(sd); /* float32 <-> int32 bits: a vector's type */
  case OP_EXP2: case OP_LOG2: case OP_SIN: return d.scalar == CG_FLOAT32; /* polynomials (renderer/vmath.h) */
  case OP_CAST:
    if (d.scalar == CG_FLOAT32 && dt_is_half(sd)) return true; /* a bf16 / f16 vector load's value */
    if (dt_is_half(d) && sd.scalar == CG_FLOAT32) return true; /* float32 rounded to bf16 / f16 bits */
    return vec_dtype(d) && vec_dtype(sd) && !(dt_is_int(d) && dt_is_float(sd)); /* float->int saturates: per lane */
  default: return false;
  }
}

static uop *vec_uncached(vctx *c, uop *x) {
  if (!x) return NULL;
  if (!uop_depends(x, c->lane, &c->dep)) return x;
  if (x == c->lane) {
    uop *s[16];
    for (int64_t k = 0; k < c->w; k++) s[k] = ci(k);
    return uop_new(OP_VECTORIZE, dt_vec(DT_I32, (int)c->w), s, (int)c->w, arg_none());
  }
  if (x->op == OP_LOAD) {
    uop *ix = x->src[0];
    if (contiguous(ix->src[1], c->lane, c->w)) { /* a gate that varies by lane: a masked load */
      uop *s[3] = {ix->src[0], with_lane(ix->src[1], c->lane, 0), ix->nsrc > 2 ? vec(c, ix->src[2]) : NULL};
      uop *vix = uop_new(OP_INDEX, dt_ptr(dt_vec(ix->src[0]->dt, (int)c->w), ADDR_GLOBAL), s, (int)ix->nsrc, arg_none());
      uop *ls[2] = {vix, x->nsrc > 1 ? broadcast(c, x->src[1]) : NULL};
      return uop_new(OP_LOAD, dt_vec(x->dt, (int)c->w), ls, (int)x->nsrc, arg_none());
    }
    if (ix->nsrc <= 2 && ix->src[0]->dt.scalar == x->dt.scalar) { /* a gather at a vector of offsets */
      uop *vix = uop_new2(OP_INDEX, dt_ptr(dt_vec(ix->src[0]->dt, (int)c->w), ADDR_GLOBAL), ix->src[0], vec_or_broadcast(c, ix->src[1]));
      return uop_new1(OP_LOAD, dt_vec(x->dt, (int)c->w), vix, arg_none());
    }
    uop *lanes[16]; /* a gated gather: one scalar load per lane */
    for (int64_t k = 0; k < c->w; k++) lanes[k] = with_lane(x, c->lane, k);
    return uop_new(OP_VECTORIZE, dt_vec(x->dt, (int)c->w), lanes, (int)c->w, arg_none());
  }
  if (x->op == OP_GEP && x->src[0]->op == OP_LOAD && x->src[0]->dt.count > 1) { /* a transposed load's column (unroll_transposed) */
    uop *lanes[16];
    for (int64_t k = 0; k < c->w; k++) lanes[k] = uop_new1(OP_GEP, x->dt, with_lane(x->src[0], c->lane, k), x->arg);
    return uop_new(OP_VECTORIZE, dt_vec(x->dt, (int)c->w), lanes, (int)c->w, arg_none());
  }
  if (x->op == OP_REDUCE) {
    uop *src[UOP_MAX_DIMS + 1];
    for (uint32_t i = 0; i < x->nsrc; i++) src[i] = x->src[i];
    src[0] = vec_or_broadcast(c, x->src[0]);
    return uop_new(OP_REDUCE, dt_vec(x->dt, (int)c->w), src, (int)x->nsrc, x->arg);
  }
  if (x->op == OP_WMMA) { /* a TC step: lane by lane, so one vector op (tc.c) */
    uop *src[5];
    for (int i = 0; i < 5; i++) src[i] = vec_or_broadcast(c, x->src[i]);
    return uop_new(OP_WMMA, dt_vec(x->dt, (int)c->w), src, 5, x->arg);
  }
  CG_ASSERT(op_is_alu(x->op), "expand: cannot vectorize a %s", op_name(x->op));
  uop *src[4];
  bool vector = native(x->op, x->dt, x->src[0]->dt);
  for (uint32_t i = 0; i < x->nsrc; i++) src[i] = vector ? vec_or_broadcast(c, x->src[i]) : vec(c, x->src[i]);
  if (!vector) return per_lane(c, x, src);
  return uop_new(x->op, dt_vec(x->dt, (int)c->w), src, (int)x->nsrc, x->arg);
}

static uop *vec(vctx *c, uop *x) {
  uop *r = uopset_get(&c->memo, x);
  if (!r) uopset_put(&c->memo, x, r = vec_uncached(c, x));
  return r;
}

/* a bf16 / f16 buffer's store of a rounded float32: a vector of rounded bits */
static bool bf16_store(uop *st) {
  uop *v = st->src[1];
  return dt_is_half(st->src[0]->src[0]->dt) && v->op == OP_CAST && v->dt.scalar == st->src[0]->src[0]->dt.scalar && v->src[0]->dt.scalar == CG_FLOAT32 &&
         v->src[0]->dt.count <= 1;
}

/* a bf16 (f16) buffer's ungated store of a bf16 (f16) load (a copy or a re-layout, as a
 * GEMM's panel pack): the loaded bits stored as they are, no round trip through float32 */
static bool bf16_copy(uop *st) {
  uop *ix = st->src[0], *v = st->src[1];
  return dt_is_half(ix->src[0]->dt) && ix->nsrc == 2 && v->op == OP_LOAD && v->dt.scalar == ix->src[0]->dt.scalar && v->dt.count <= 1;
}

static uop *vectorize_stores(uop *sink, uop *lane) {
  vctx c = {.lane = lane, .w = lane->src[0]->arg.i};
  uop **st = ir_malloc(sizeof(uop *) * sink->nsrc * (size_t)c.w);
  if (!st) return NULL;
  int ns = 0;
  for (uint32_t i = 0; i < sink->nsrc; i++) {
    uop *ix = sink->src[i]->src[0], *v = sink->src[i]->src[1];
    if (!contiguous(ix->src[1], lane, c.w) && ix->nsrc <= 2 && ix->src[0]->dt.scalar == v->dt.scalar) {
      /* a strided output (see vector_lane): a scatter at a vector of offsets */
      uop *vix = uop_new2(OP_INDEX, dt_ptr(dt_vec(ix->src[0]->dt, (int)c.w), ADDR_GLOBAL), ix->src[0], vec_or_broadcast(&c, ix->src[1]));
      st[ns++] = uop_new2(OP_STORE, dt_void(), vix, vec_or_broadcast(&c, v));
      continue;
    }
    if (!contiguous(ix->src[1], lane, c.w)) { /* a gated strided output: lane by lane */
      uop *vv = vec_or_broadcast(&c, v);
      for (int64_t k = 0; k < c.w && vv; k++) { /* !vv: out of memory, the pass fails */
        uop *six = uop_new2(OP_INDEX, ix->dt, ix->src[0], with_lane(ix->src[1], lane, k));
        st[ns++] = uop_new2(OP_STORE, dt_void(), six, uop_new1(OP_GEP, dt_scalar_of(vv->dt), vv, arg_int(k)));
      }
      continue;
    }
    uop *s[3] = {ix->src[0], with_lane(ix->src[1], lane, 0), ix->nsrc > 2 ? vec(&c, ix->src[2]) : NULL};
    uop *vix = uop_new(OP_INDEX, dt_ptr(dt_vec(ix->src[0]->dt, (int)c.w), ADDR_GLOBAL), s, (int)ix->nsrc, arg_none());
    /* a bf16 store: the rounded bits of the float32 vector */
    uop *val = bf16_store(sink->src[i]) ? uop_new1(OP_CAST, dt_vec(v->dt, (int)c.w), vec_or_broadcast(&c, v->src[0]), arg_none()) : vec_or_broadcast(&c, v);
    st[ns++] = uop_new2(OP_STORE, dt_void(), vix, val);
  }
  uop *out = uop_new(OP_SINK, dt_void(), st, ns, arg_none());
  free(st);
  uopset_free(&c.dep);
  uopset_free(&c.memo);
  return out;
}

static bool transposed_load(uop *u, uop *ul, uop *vl, int64_t w) {
  return u->op == OP_LOAD && (u->dt.scalar == CG_FLOAT32 || dt_is_half(u->dt)) && u->dt.count <= 1 && u->src[0]->nsrc == 2 && u->nsrc == 1 &&
         ul->src[0]->arg.i == w && !contiguous(u->src[0]->src[1], vl, w) && contiguous(u->src[0]->src[1], ul, w);
}

/* A transposed load: a float32 or bf16 load, ungated, that moves along the vector lane v but is
 * contiguous along the unrolled lane u of the same width instead (a transposed copy or
 * cast: the loads are contiguous along one lane, the stores along the other). Vectorized
 * as it is, it is a gather per lane of u (whole cache lines touched 16 times). Instead, one
 * load of u's lanes per lane of v, and u's lane k of the result is the vector of their
 * k-th elements: GEP(LV, k) here, VECTORIZE(GEP(LV_0, k), .., GEP(LV_w-1, k)) once v is
 * vectorized -- the columns of a w x w block, which the C renderer spells as an
 * in-register transpose (render_c.c) and other backends lane by lane. (A bf16 load so
 * transposed is a vector of bits, as a contiguous one is.) */
static void transposed_loads(uop *u, uop *ul, uop *vl, int64_t w, uopset *dep_v, uopset *seen, uop **out, int *n, int max) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (transposed_load(u, ul, vl, w) && uop_depends(u, vl, dep_v)) {
    if (*n < max) out[(*n)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) transposed_loads(u->src[i], ul, vl, w, dep_v, seen, out, n, max);
}

typedef struct {
  uop **from, **to;
  int n;
} subst_set;
static uop *subst_load(rw_match *m) {
  subst_set *s = m->ctx;
  for (int i = 0; i < s->n; i++)
    if (m->root == s->from[i]) return s->to[i];
  return NULL;
}
static const rw_rule subst_load_rules[] = {RULE("LOAD", subst_load)};
static RULESET(rs_subst_load, "expand_transposed_loads", subst_load_rules);

enum { MAX_TLOADS = 8 };
/* sink once per lane k of `lane` (its copies side by side); with transposed loads ld (nl of
 * them, above), lane k of each is lane k of its vector load lv */
static uop *unroll_with(uop *sink, uop *lane, uop *const *ld, uop *const *lv, int nl) {
  int64_t n = lane->src[0]->arg.i;
  uop **st = ir_malloc(sizeof(uop *) * (size_t)n * sink->nsrc), *from[MAX_TLOADS], *to[MAX_TLOADS];
  if (!st) return NULL;
  int ns = 0;
  for (int64_t k = 0; k < n; k++) {
    uop *body = with_lane(sink, lane, k);
    if (body && nl) {
      /* lane k of each transposed load (as the whole sink simplified it: hash-consing makes
       * it the same node; one not found stays a gather, still right) */
      for (int i = 0; i < nl; i++) from[i] = with_lane(ld[i], lane, k), to[i] = uop_new1(OP_GEP, ld[i]->dt, lv[i], arg_int(k));
      subst_set ss = {from, to, nl};
      body = graph_rewrite(body, &rs_subst_load, &ss);
    }
    if (!body) return free(st), NULL; /* out of memory */
    for (uint32_t i = 0; i < body->nsrc; i++) st[ns++] = body->src[i];
  }
  uop *out = uop_new(OP_SINK, dt_void(), st, ns, arg_none());
  free(st);
  return out;
}
static uop *unroll(uop *sink, uop *lane) { return unroll_with(sink, lane, NULL, NULL, 0); }

/* unroll u with its transposed loads (above) as columns of vector loads along u */
static uop *unroll_transposed(uop *sink, uop *u, uop *v) {
  int64_t w = u->src[0]->arg.i;
  uop *ld[MAX_TLOADS], *lv[MAX_TLOADS];
  int nl = 0;
  uopset dep = {0}, seen = {0};
  transposed_loads(sink, u, v, w, &dep, &seen, ld, &nl, MAX_TLOADS);
  uopset_free(&dep), uopset_free(&seen);
  for (int i = 0; i < nl; i++) {
    uop *ix = ld[i]->src[0];
    uop *vix = uop_new2(OP_INDEX, dt_ptr(dt_vec(ix->src[0]->dt, (int)w), ADDR_GLOBAL), ix->src[0], with_lane(ix->src[1], u, 0));
    lv[i] = uop_new1(OP_LOAD, dt_vec(ld[i]->dt, (int)w), vix, arg_none());
  }
  return unroll_with(sink, u, ld, lv, nl);
}

static bool in_reduction(uop *u, uopset *memo) {
  if (u->op == OP_RANGE) return u->arg.v[1] == RANGE_REDUCE;
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool r = false;
  if (u->op != OP_DEFINE_GLOBAL)
    for (uint32_t i = 0; i < u->nsrc && !r; i++) r = in_reduction(u->src[i], memo);
  uopset_put(memo, u, (void *)(uintptr_t)(1 + r));
  return r;
}

/* Whether every load inside the reduction that moves along the lane reads contiguous
 * addresses (no gathers; one per output outside it is cheap), and whether the kernel
 * reduces. */
static void loads_along(uop *u, uop *lane, int64_t w, uopset *dep, uopset *seen, uopset *red, bool *contig, bool *reduce) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_REDUCE) *reduce = true;
  if (u->op == OP_LOAD && uop_depends(u, lane, dep) && in_reduction(u->src[0], red)) {
    uop *ix = u->src[0];
    if ((ix->nsrc > 2 && uop_depends(ix->src[2], lane, dep)) || !contiguous(ix->src[1], lane, w)) *contig = false;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) loads_along(u->src[i], lane, w, dep, seen, red, contig, reduce);
}

/* The lane to make vectors of: a vector width, every value along it of a vector dtype,
 * and contiguous in every store -- or, in a reduction whose loads along it are all
 * contiguous or lane-invariant (a convolution vectorized along its output channels over
 * a re-laid-out weight), stored lane by lane once the reduction is done. The widest such,
 * contiguous stores first among equals. */
static uop *vector_lane(uop *sink, uop **lanes, int n) {
  uop *best = NULL;
  int64_t best_score = 0;
  for (int i = 0; i < n; i++) {
    int64_t w = lanes[i]->src[0]->arg.i;
    if (w != 2 && w != 4 && w != 8 && w != 16) continue;
    bool ok = true, cstore = true;
    uopset dep = {0}, seen = {0};
    for (uint32_t s = 0; s < sink->nsrc && ok; s++) {
      uop *ix = sink->src[s]->src[0];
      /* a bf16 copy only of a value that moves along the lane (a vector load of bits; a
       * lane-invariant one would be a broadcast of its float value) */
      bool cont = contiguous(ix->src[1], lanes[i], w),
           bst = bf16_store(sink->src[s]) || (bf16_copy(sink->src[s]) && uop_depends(sink->src[s]->src[1], lanes[i], &dep));
      /* a gated store (PADTO's tail) is a vector only where it is contiguous; a bf16 one
       * (rounded or copied bits) only contiguous */
      ok = (vec_dtype(ix->src[0]->dt) || bst) && (cont || (ix->nsrc <= 2 && !bst));
      cstore = cstore && cont;
    }
    ok = ok && vectorizable(sink, lanes[i], lanes, n, &dep, &seen);
    if (ok && !cstore) {
      bool contig = true, reduce = false;
      uopset s2 = {0}, red = {0};
      loads_along(sink, lanes[i], w, &dep, &s2, &red, &contig, &reduce);
      uopset_free(&s2), uopset_free(&red);
      ok = contig && reduce;
    }
    uopset_free(&dep);
    uopset_free(&seen);
    int64_t score = 2 * w + cstore;
    if (ok && score > best_score) best = lanes[i], best_score = score;
  }
  return best;
}

/* A REDUCE with an UNROLL lane among its ranges: a vector accumulator over the lanes and
 * one combine of them after the loop, or (no vector form) the lanes' values combined in
 * each trip. */
static uop *reduce_lane(rw_match *m) {
  bool vectors_on = *(const bool *)m->ctx;
  uop *u = m->root, *lane = NULL, *rest[UOP_MAX_DIMS + 2];
  int nr = 1;
  for (uint32_t i = 1; i < u->nsrc; i++) {
    if (u->src[i]->op == OP_RANGE && u->src[i]->arg.v[1] == RANGE_UNROLL && !lane) lane = u->src[i];
    else rest[nr++] = u->src[i];
  }
  if (!lane) return NULL;
  int op = (int)u->arg.v[0];
  int64_t w = lane->src[0]->arg.i;
  uopset dep = {0}, seen = {0};
  bool vector = vectors_on && (w == 2 || w == 4 || w == 8 || w == 16) && vec_dtype(u->dt) && vectorizable(u->src[0], lane, NULL, 0, &dep, &seen);
  uopset_free(&dep), uopset_free(&seen);
  if (vector) {
    vctx c = {.lane = lane, .w = w};
    rest[0] = vec_or_broadcast(&c, u->src[0]);
    uopset_free(&c.dep), uopset_free(&c.memo);
    /* no range left (UNROLL took the whole reduction): the lanes combined directly */
    uop *r = nr > 1 ? uop_new(OP_REDUCE, dt_vec(u->dt, (int)w), rest, nr, u->arg) : rest[0], *acc = NULL;
    /* MAX (associative and commutative, NaN and -0 included: ops.def) halves the vector
     * while it is wider than 4 lanes: a vector op per halving instead of a scalar op per
     * lane (a short row's max: attention's 128 keys, where the lane by lane combine cost
     * as much as the loop). ADD keeps its order (float sums are not associative). */
    while (op == OP_MAX && w > 4 && r) {
      uop *lo[8], *hi[8];
      for (int64_t k = 0; k < w / 2; k++) lo[k] = uop_new1(OP_GEP, u->dt, r, arg_int(k)), hi[k] = uop_new1(OP_GEP, u->dt, r, arg_int(k + w / 2));
      w /= 2;
      r = uop_alu(op, uop_new(OP_VECTORIZE, dt_vec(u->dt, (int)w), lo, (int)w, arg_none()), uop_new(OP_VECTORIZE, dt_vec(u->dt, (int)w), hi, (int)w, arg_none()));
    }
    for (int64_t k = 0; k < w; k++) {
      uop *x = uop_new1(OP_GEP, u->dt, r, arg_int(k));
      acc = acc ? uop_alu(op, acc, x) : x;
    }
    return acc;
  }
  uop *acc = NULL;
  for (int64_t k = 0; k < w; k++) {
    uop *x = with_lane(u->src[0], lane, k);
    acc = acc ? uop_alu(op, acc, x) : x;
  }
  rest[0] = acc;
  return nr > 1 ? uop_new(OP_REDUCE, u->dt, rest, nr, u->arg) : acc;
}
static const rw_rule reduce_lane_rules[] = {RULE("REDUCE", reduce_lane)};
static RULESET(rs_reduce_lanes, "expand_reduce_lanes", reduce_lane_rules);

static bool bf16_left(uop *u, uop *v, uopset *seen, uopset *dep) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return false;
  if (u->op == OP_LOAD && dt_is_half(u->dt) && u->dt.count <= 1 && uop_depends(u, v, dep) && !bf16_vec_load(u, v)) return true;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (bf16_left(u->src[i], v, seen, dep)) return true;
  return false;
}

uop *expand_lanes(uop *sink, bool vectors) {
  sink = graph_rewrite(sink, &rs_reduce_lanes, &vectors);
  if (!sink) return NULL;
  uop *lanes[UOP_MAX_DIMS];
  int n = 0;
  uopset seen = {0};
  collect_lanes(sink, &seen, lanes, &n);
  uopset_free(&seen);
  if (!n) return sink;
  uop *v = vectors ? vector_lane(sink, lanes, n) : NULL;
  /* the lanes as wide as the vector lane first, with any loads transposed along them */
  int64_t vw = v ? v->src[0]->arg.i : 0;
  bool done[UOP_MAX_DIMS] = {0};
  for (int i = 0; i < n && sink && v; i++)
    if (lanes[i] != v && lanes[i]->src[0]->arg.i == vw && (vw == 8 || vw == 16)) sink = unroll_transposed(sink, lanes[i], v), done[i] = true;
  for (int i = 0; i < n && sink; i++)
    if (lanes[i] != v && !done[i]) sink = unroll(sink, lanes[i]);
  /* a bf16 load left moving along v but not contiguous (a transposed one not replaced: more
   * than MAX_TLOADS of them) has no vector form: then v is unrolled too */
  uopset seen2 = {0}, dep2 = {0};
  if (v && sink && bf16_left(sink, v, &seen2, &dep2)) sink = unroll(sink, v), v = NULL;
  uopset_free(&seen2), uopset_free(&dep2);
  if (v && sink) sink = vectorize_stores(sink, v);
  return sink;
}
