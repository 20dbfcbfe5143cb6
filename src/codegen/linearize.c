/* The linearizer: an optimized kernel graph becomes an ordered, block-structured list of
 * instructions (codegen.h). Decided here, once, for every backend:
 *   - loop order: cache-tile ranges outermost, then the THREAD range, then the other
 *     output ranges by axis;
 *   - placement: a value is computed in the innermost loop it depends on; what does not
 *     depend on a reduction's ranges is computed before its loop (hoisted);
 *   - accumulators: every pending REDUCE over the same ranges (the lanes of an upcast
 *     tile) shares one set of loops, one DEFINE_ACC each.
 * A value defined inside a loop goes out of scope at its END; a later use recomputes it
 * where it is needed. */
#include "codegen.h"
#include "core/config.h"
#include "uop/uopset.h"
#include <inttypes.h>
#include <math.h>
#include <string.h>

typedef struct {
  linear *l;
  uopset live;       /* original node -> its instruction, while in scope */
  uop **defined;     /* originals defined, in order, for scope unwinding */
  int *depth_of;
  size_t ndef, capdef;
  int depth;
  uint64_t open;     /* ranges whose loops are open */
  uop **openr;       /* open ranges, innermost last */
  int nopen;
  uopset ranges;     /* RANGE -> bit index + 1 */
  int nranges;       /* bits used (at most 64) */
  uopset dep_memo;   /* node -> mask of ranges + 1 */
  uop **reduces;     /* every REDUCE, sources first */
  int nreduces, nacc;
  bool ok;
  uint64_t nomem0;   /* uop_nomem_events() at the start */
} lctx;

/* Out of memory (an ir_* allocation or a node, in a realize's checked pool): from then on
 * nothing more is built and linearize() fails as a whole. */
static bool failed(const lctx *c) { return uop_nomem_events() != c->nomem0; }

static void emit(lctx *c, uop *u) {
  linear *l = c->l;
  if (!u || failed(c)) return;
  if (l->n == l->cap) {
    uop **ins = ir_realloc(l->ins, sizeof(uop *) * (size_t)(l->cap ? 2 * l->cap : 256));
    if (!ins) return;
    l->ins = ins, l->cap = l->cap ? 2 * l->cap : 256;
  }
  l->ins[l->n++] = uop_retain(u);
}

static uint64_t range_bit(lctx *c, uop *r) { return 1ull << ((uintptr_t)uopset_get(&c->ranges, r) - 1); }

static uint64_t deps(lctx *c, uop *u) {
  uintptr_t m = (uintptr_t)uopset_get(&c->dep_memo, u);
  if (m) return (uint64_t)(m - 1);
  uint64_t d = 0;
  if (u->op == OP_RANGE) d = range_bit(c, u);
  else if (u->op != OP_DEFINE_GLOBAL)
    for (uint32_t i = 0; i < u->nsrc; i++) d |= deps(c, u->src[i]);
  if (u->op == OP_REDUCE)
    for (uint32_t i = 1; i < u->nsrc; i++) d &= ~range_bit(c, u->src[i]);
  uopset_put(&c->dep_memo, u, (void *)(uintptr_t)(d + 1));
  return d;
}

static void find_ranges(lctx *c, uop *u, uopset *seen, uop **out, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  for (uint32_t i = 0; i < u->nsrc; i++) find_ranges(c, u->src[i], seen, out, n);
  if (u->op == OP_REDUCE) {
    uop **r = ir_realloc(c->reduces, sizeof(uop *) * (size_t)(c->nreduces + 1));
    if (!r) return;
    c->reduces = r;
    c->reduces[c->nreduces++] = u;
  }
  if (u->op == OP_RANGE) {
    if (*n == 64) {
      c->ok = false;
      return;
    }
    out[(*n)++] = u;
    uopset_put(&c->ranges, u, (void *)(uintptr_t)*n);
  }
}

static uop *define(lctx *c, uop *u, uop *ins) {
  uopset_put(&c->live, u, ins);
  if (c->ndef == c->capdef) {
    size_t cap = c->capdef ? 2 * c->capdef : 64;
    uop **d = ir_realloc(c->defined, cap * sizeof(uop *));
    if (d) c->defined = d;
    int *dep = d ? ir_realloc(c->depth_of, cap * sizeof(int)) : NULL;
    if (!dep) return ins;
    c->depth_of = dep, c->capdef = cap;
  }
  c->defined[c->ndef] = u;
  c->depth_of[c->ndef++] = c->depth;
  return ins;
}

static void open_loop(lctx *c, uop *r) {
  uop **o = ir_realloc(c->openr, sizeof(uop *) * (size_t)(c->nopen + 1));
  if (!o) return;
  emit(c, r);
  c->depth++;
  c->openr = o;
  c->openr[c->nopen++] = r;
  c->open |= range_bit(c, r);
  define(c, r, r);
}

static void close_loop(lctx *c) {
  if (!c->nopen) return; /* its open_loop ran out of memory */
  uop *r = c->openr[--c->nopen];
  while (c->ndef && c->depth_of[c->ndef - 1] == c->depth) uopset_del(&c->live, c->defined[--c->ndef]);
  c->depth--;
  c->open &= ~range_bit(c, r);
  emit(c, uop_new1(OP_END, dt_void(), r, arg_none()));
}

static uop *value(lctx *c, uop *u);

/* Compute now whatever in src depends only on loops already open (not addresses: those
 * are cheap and stay beside their load). */
static void hoist(lctx *c, uop *src) {
  uop **stack = ir_malloc(sizeof(uop *) * 4096);
  if (!stack) return;
  int n = 0;
  uopset seen = {0};
  stack[n++] = src;
  while (n) {
    uop *x = stack[--n];
    if (uopset_add(&seen, x) <= 0 || x->op == OP_DEFINE_GLOBAL || x->op == OP_CONST || x->op == OP_RANGE || x->op == OP_DEFINE_VAR) continue;
    if (!(deps(c, x) & ~c->open) && x->op != OP_INDEX) {
      value(c, x);
      continue;
    }
    for (uint32_t i = 0; i < x->nsrc && n < 4096; i++) stack[n++] = x->src[i];
  }
  uopset_free(&seen);
  free(stack);
}

static bool same_ranges(const uop *a, const uop *b) {
  if (a->nsrc != b->nsrc || a->arg.v[0] != b->arg.v[0]) return false;
  for (uint32_t i = 1; i < a->nsrc; i++)
    if (a->src[i] != b->src[i]) return false;
  return true;
}

static uop *identity(int op, dtype d) {
  if (d.count > 1) {
    uop *s[64], *x = identity(op, dt_scalar_of(d));
    for (int i = 0; i < d.count && i < 64; i++) s[i] = x;
    return uop_new(OP_VECTORIZE, d, s, d.count, arg_none());
  }
  if (op == OP_ADD) return dt_is_float(d) ? uop_const_float(d, 0) : uop_const_int(d, 0);
  if (op == OP_MUL) return dt_is_float(d) ? uop_const_float(d, 1) : uop_const_int(d, 1);
  if (dt_is_float(d)) return uop_const_float(d, -INFINITY);
  if (dt_is_bool(d) || dt_is_unsigned(d)) return uop_const_int(d, 0);
  return uop_const_int(d, d.scalar == CG_INT64 ? INT64_MIN : d.scalar == CG_INT32 ? INT32_MIN : d.scalar == CG_INT16 ? INT16_MIN : INT8_MIN);
}

static bool zero_acc(const uop *u) { /* 0.0, or a vector of them */
  if (u->op == OP_VECTORIZE) {
    for (uint32_t i = 0; i < u->nsrc; i++)
      if (!zero_acc(u->src[i])) return false;
    return true;
  }
  return u->op == OP_CONST && u->arg.f == 0;
}

/* A REDUCE, with every other pending REDUCE over the same ranges: one set of loops. */
static uop *reduce_value(lctx *c, uop *u) {
  int op = (int)u->arg.v[0];
  uop *group[256], *acc[256];
  int ng = 0;
  for (int i = 0; i < c->nreduces && ng < 256; i++) {
    uop *x = c->reduces[i];
    if (x == u || (!uopset_get(&c->live, x) && same_ranges(x, u))) group[ng++] = x;
  }
  for (int g = 0; g < ng; g++) hoist(c, group[g]->src[0]);
  for (int g = 0; g < ng; g++) {
    uop *init = value(c, identity(op, group[g]->dt));
    acc[g] = uop_new(OP_DEFINE_ACC, group[g]->dt, &init, 1, arg_int(c->nacc++));
    emit(c, acc[g]);
  }
  /* each reduce loop runs only the trips where the gates of a padded view can hold
   * (gate_bounds.c): r = r' + lo, r' < cnt, both computed here, outside the loop */
  uop *body[256];
  for (int g = 0; g < ng; g++) body[g] = group[g]->src[0];
  for (uint32_t i = 1; i < u->nsrc; i++) {
    uop *r = u->src[i], *lo, *cnt;
    if (op == OP_ADD && c->nranges < 64 && cfg_int("GATE_BOUNDS", 1) && gate_bounds(body, ng, r, u->src + i + 1, (int)u->nsrc - (int)i - 1, &lo, &cnt)) {
      int64_t a[3] = {r->arg.v[0], r->arg.v[1], r->src[0]->arg.i}; /* v[2]: the trips without bounds */
      uop *r2 = uop_new1(OP_RANGE, r->dt, value(c, cnt), arg_ints(a, 3));
      if (r2 && uopset_put(&c->ranges, r2, (void *)(uintptr_t)++c->nranges)) {
        for (int g = 0; g < ng; g++) body[g] = subst_range(body[g], r, uop_alu(OP_ADD, r2, lo));
        r = r2;
      }
    }
    open_loop(c, r);
  }
  /* a TC step (WMMA with a zero accumulator) takes the accumulator as its last source:
   * one vdpbf16ps per step, no separate add */
  uop *v[256];
  for (int g = 0; g < ng; g++) {
    uop *x = body[g];
    if (op == OP_ADD && x && x->op == OP_WMMA && zero_acc(x->src[4])) {
      uop *s[5];
      for (int i = 0; i < 4; i++) s[i] = value(c, x->src[i]);
      s[4] = acc[g];
      v[g] = uop_new(OP_WMMA, x->dt, s, 5, x->arg);
    } else v[g] = value(c, x);
  }
  uop *upd[256];
  for (int g = 0; g < ng; g++) {
    uop *nv = v[g] && v[g]->op == OP_WMMA && v[g]->src[4] == acc[g] ? v[g] : uop_alu(op, acc[g], v[g]); /* NULL: out of memory, the pass fails */
    emit(c, nv);
    emit(c, upd[g] = uop_new2(OP_ASSIGN, group[g]->dt, acc[g], nv));
  }
  for (uint32_t i = 1; i < u->nsrc; i++) close_loop(c);
  uop *mine = NULL;
  for (int g = 0; g < ng; g++) {
    define(c, group[g], upd[g]);
    if (group[g] == u) mine = upd[g];
  }
  return mine;
}

static uop *value(lctx *c, uop *u) {
  uop *r = uopset_get(&c->live, u);
  if (r) return r;
  if (failed(c)) return NULL;
  switch (u->op) {
  case OP_CONST: case OP_DEFINE_GLOBAL: case OP_DEFINE_VAR: return u;
  case OP_RANGE: CG_ASSERT(0, "a RANGE used outside its loop"); return u;
  case OP_REDUCE: return reduce_value(c, u);
  default: break;
  }
  uop *src[UOP_MAX_DIMS + 4];
  CG_ASSERT(u->nsrc <= UOP_MAX_DIMS + 4, "a node with %u sources", u->nsrc);
  for (uint32_t i = 0; i < u->nsrc; i++) src[i] = value(c, u->src[i]);
  r = uop_replace_src(u, src, (int)u->nsrc);
  emit(c, r);
  return define(c, u, r);
}

static int max_slot(uop *u, uopset *seen) {
  if (uopset_add(seen, u) <= 0) return -1;
  if (u->op == OP_DEFINE_GLOBAL) return (int)u->arg.v[0];
  int m = -1;
  for (uint32_t i = 0; i < u->nsrc; i++) {
    int s = max_slot(u->src[i], seen);
    if (s > m) m = s;
  }
  return m;
}

/* Where an output loop goes: tiles outermost, then the thread range, then the others. */
static int loop_rank(const uop *r) { return r->arg.v[1] == RANGE_TILE ? 0 : r->arg.v[1] == RANGE_THREAD ? 1 : 2; }

bool linearize(uop *sink, linear *out) {
  memset(out, 0, sizeof *out);
  lctx c = {.l = out, .ok = true, .nomem0 = uop_nomem_events()};
  uop *rng[64];
  int nr = 0;
  uopset seen = {0};
  find_ranges(&c, sink, &seen, rng, &nr);
  uopset_free(&seen);
  c.nranges = nr;
  if (!c.ok || failed(&c)) {
    free(c.reduces);
    uopset_free(&c.ranges);
    if (!c.ok) cg_fail(CG_ERR_INVALID, "linearize: a kernel with more than 64 loops");
    return false;
  }
  uopset slots = {0};
  out->nbufs = max_slot(sink, &slots) + 1;
  uopset_free(&slots);
  for (uint32_t i = 0; i < sink->nsrc; i++) {
    int s = (int)sink->src[i]->src[0]->src[0]->arg.v[0] + 1;
    if (s > out->nout) out->nout = s;
  }
  /* output loops: cache tiles first (in the order their opts came), then the thread range,
   * then by axis */
  uop *outer[64];
  int no = 0;
  for (int i = 0; i < nr; i++)
    if (rng[i]->arg.v[1] != RANGE_REDUCE) outer[no++] = rng[i];
  for (int i = 1; i < no; i++)
    for (int j = i; j > 0; j--) {
      uop *a = outer[j - 1], *b = outer[j];
      int ka = loop_rank(a), kb = loop_rank(b);
      bool swap = kb < ka || (kb == ka && (ka == 0 ? b->arg.v[2] < a->arg.v[2] : b->arg.v[0] < a->arg.v[0]));
      if (!swap) break;
      outer[j - 1] = b, outer[j] = a;
    }
  out->global = 1;
  for (int i = 0; i < no; i++)
    if (outer[i]->arg.v[1] == RANGE_THREAD) out->global = outer[i]->src[0]->arg.i;
  for (int i = 0; i < no; i++) open_loop(&c, outer[i]);
  for (uint32_t s = 0; s < sink->nsrc; s++) {
    uop *st = sink->src[s];
    uop *v = value(&c, st->src[1]), *ix = value(&c, st->src[0]);
    emit(&c, uop_new2(OP_STORE, dt_void(), ix, v));
  }
  while (c.nopen) close_loop(&c);
  uopset_free(&c.live);
  uopset_free(&c.ranges);
  uopset_free(&c.dep_memo);
  free(c.defined);
  free(c.depth_of);
  free(c.openr);
  free(c.reduces);
  if (failed(&c)) linear_free(out);
  return !failed(&c);
}

void linear_free(linear *l) {
  for (int i = 0; i < l->n; i++) uop_release(l->ins[i]);
  free(l->ins);
  memset(l, 0, sizeof *l);
}

void linear_print(FILE *f, const linear *l) {
  uopset num = {0};
  int depth = 0;
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    if (u->op == OP_END) depth--;
    fprintf(f, "%4d %*s%-11s %-9s", i, 2 * depth, "", op_name(u->op), dt_name(u->dt));
    for (uint32_t s = 0; s < u->nsrc; s++) {
      uop *x = u->src[s];
      uintptr_t k = (uintptr_t)uopset_get(&num, x);
      if (k) fprintf(f, " %%%d", (int)k - 1);
      else if (x->op == OP_CONST) dt_is_float(x->dt) ? fprintf(f, " %g", x->arg.f) : fprintf(f, " %" PRId64, x->arg.i);
      else if (x->op == OP_DEFINE_GLOBAL) fprintf(f, " buf%" PRId64, x->arg.v[0]);
      else if (x->op == OP_DEFINE_VAR) fprintf(f, " var%" PRId64 "(%s)", x->arg.n > 2 ? x->arg.v[2] : 0, x->arg.s);
      else fprintf(f, " %s", op_name(x->op));
    }
    if (u->op == OP_RANGE) fprintf(f, "  axis %" PRId64 "%s", u->arg.v[0], u->arg.v[1] == RANGE_THREAD ? " (threads)" : u->arg.v[1] == RANGE_REDUCE ? " (reduce)" : "");
    if (u->op == OP_RANGE) depth++;
    fprintf(f, "\n");
    uopset_put(&num, u, (void *)(uintptr_t)(i + 1));
  }
  uopset_free(&num);
}

double linear_flops(const linear *l) {
  double trips[65] = {1}, flops = 0;
  int depth = 0;
  for (int i = 0; i < l->n; i++) {
    uop *u = l->ins[i];
    if (u->op == OP_RANGE && depth < 64) { /* a loop bounded by gates: its trips without them */
      trips[depth + 1] = trips[depth] * (double)(u->src[0]->op == OP_CONST ? u->src[0]->arg.i : u->arg.n > 2 ? u->arg.v[2] : 1);
      depth++;
    } else if (u->op == OP_END && depth > 0) {
      depth--;
    } else if (u->op == OP_AMX_TILE) { /* 256 outputs, K products and sums each */
      flops += trips[depth] * 512.0 * (double)u->arg.v[0];
    } else if ((op_is_alu(u->op) || u->op == OP_WMMA) && dt_is_float(u->dt)) { /* a WMMA lane: 2 products, 2 sums */
      flops += trips[depth] * (u->dt.count > 1 ? u->dt.count : 1) * (u->op == OP_WMMA ? 4 : 1);
    }
  }
  return flops;
}
