/* Lowering a scheduled kernel (tensor-level AST over DEFINE_GLOBAL slots) to loops: one
 * RANGE per output dim (axis id = dim) and per reduced dim (ids from 100), movement ops
 * turned into index expressions with validity for PAD, loads from the slots, then the
 * symbolic rules. Memoized per (node, index) so shared subgraphs are lowered once; the
 * STOREs of a merged kernel share their output ranges, so a value one store computes and
 * another reads at the same index is computed once. */
#include "codegen.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include "uop/shape.h"

typedef struct {
  uopset memo;      /* NOOP(node, idx..., valid) -> lowered value */
  int next_axis;    /* ids for reduce ranges */
} lower_ctx;

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }
static uop *add(uop *a, uop *b) { return uop_alu(OP_ADD, a, b); }
static uop *mul(uop *a, int64_t c) { return c == 1 ? a : uop_alu(OP_MUL, a, ci(c)); }
static uop *range_of(int64_t size, int64_t axis, int64_t kind) {
  int64_t arg[2] = {axis, kind};
  return uop_new1(OP_RANGE, DT_I32, ci(size), arg_ints(arg, 2));
}
static uop *band(uop *a, uop *b) {
  if (!a) return NULL;
  if (a->op == OP_CONST) return a->arg.i ? b : a;
  return uop_alu(OP_AND, a, b);
}

/* Row-major offset of idx in shape. */
static uop *flat_index(uop *const *idx, const int64_t *shape, int nd) {
  uop *off = ci(0);
  int64_t stride = 1;
  for (int i = nd - 1; i >= 0; i--) {
    if (shape[i] != 1) off = add(off, mul(idx[i], stride));
    stride *= shape[i];
  }
  return off;
}

static uop *lower(lower_ctx *c, uop *n, uop *const *idx, uop *valid);
/* mult * var of a SHRINK/PAD at a var offset (arg [..., dim, mult], src[1] the var), as an
 * index */
static uop *var_offset(uop *n, int64_t sign) {
  uop *v = n->src[1];
  if (v->dt.scalar != DT_I32.scalar) v = uop_new1(OP_CAST, DT_I32, v, arg_none());
  return mul(v, sign * n->arg.v[2 * n->ndim + 1]);
}
/* A reshape's source index from its output index, group by group: runs of output dims
 * and source dims with equal products (dims of size 1 join any group) map through their
 * own row-major offset, so a reshape that only adds or drops 1s, or splits and merges
 * aligned dims, costs no division. Flattening the whole index instead would divide by
 * every source dim, and where a PAD (or a window view) shifted the index below zero on
 * some lanes the symbolic rules cannot remove those divisions (the lanes are gated off,
 * but the bounds include them): a padded convolution then divides in its inner loop.
 * The same as the flat form wherever every index is in range, i.e. on every lane that
 * is not gated off. */
static void reshape_index(uop *const *idx, const int64_t *oshape, int ond, const int64_t *sshape, int snd, uop **sidx) {
  int i = 0, j = 0;
  while (i < ond || j < snd) {
    int i0 = i, j0 = j;
    int64_t po = 1, ps = 1;
    /* one group: at least one dim that is not 1 on each side, until the products meet */
    do {
      if (po <= ps && i < ond) po *= oshape[i++];
      else if (j < snd) ps *= sshape[j++];
      else {
        CG_ASSERT(i < ond, "reshape of %d dims to %d: the element counts differ", snd, ond);
        po *= oshape[i++];
      }
    } while (po != ps);
    while (i < ond && oshape[i] == 1) i++; /* trailing 1s join it */
    while (j < snd && sshape[j] == 1) j++;
    uop *lin = flat_index(idx + i0, oshape + i0, i - i0);
    int64_t stride = 1;
    int first = j0;
    while (first < j - 1 && sshape[first] == 1) first++; /* the outermost dim that is not 1 needs no mod */
    for (int k = j - 1; k >= j0; k--) {
      if (sshape[k] == 1) {
        sidx[k] = ci(0);
        continue;
      }
      uop *v = stride == 1 ? lin : uop_alu(OP_IDIV, lin, ci(stride));
      sidx[k] = k == first ? v : uop_alu(OP_MOD, v, ci(sshape[k]));
      stride *= sshape[k];
    }
  }
}


static uop *load_buffer(uop *buf, uop *n, uop *const *idx, uop *valid) {
  if (!valid) return NULL;
  uop *off = flat_index(idx, n->shape, n->ndim);
  uop *src[3] = {buf, off, valid};
  bool gated = !(valid->op == OP_CONST && valid->arg.i);
  uop *ix = uop_new(OP_INDEX, dt_ptr(buf->dt, ADDR_GLOBAL), src, gated ? 3 : 2, arg_none());
  if (!gated) return uop_new1(OP_LOAD, buf->dt, ix, arg_none());
  uop *ls[2] = {ix, uop_const_like(buf, 0)};
  return uop_new(OP_LOAD, buf->dt, ls, 2, arg_none());
}

static uop *lower_uncached(lower_ctx *c, uop *n, uop *const *idx, uop *valid) {
  int nd = n->ndim;
  uop *sidx[UOP_MAX_DIMS + 1];
  uop *s = n->nsrc ? n->src[0] : NULL;
  switch (n->op) {
  case OP_DEFINE_GLOBAL: return load_buffer(n, n, idx, valid);
  case OP_CONST: case OP_DEFINE_VAR: return n;
  case OP_DETACH: case OP_CONTIGUOUS: return lower(c, s, idx, valid);
  case OP_RESHAPE: {
    if (shape_numel(s->shape, s->ndim) == 0) { /* nothing there: only gated-off loads reach it */
      for (int i = 0; i < s->ndim; i++) sidx[i] = ci(0);
      return lower(c, s, sidx, valid);
    }
    reshape_index(idx, n->shape, nd, s->shape, s->ndim, sidx);
    return lower(c, s, sidx, valid);
  }
  case OP_PERMUTE:
    for (int i = 0; i < nd; i++) sidx[n->arg.v[i]] = idx[i];
    return lower(c, s, sidx, valid);
  case OP_EXPAND:
    for (int i = 0; i < nd; i++) sidx[i] = s->shape[i] == 1 && n->shape[i] != 1 ? ci(0) : idx[i];
    return lower(c, s, sidx, valid);
  case OP_SHRINK:
    for (int i = 0; i < nd; i++) sidx[i] = n->arg.v[2 * i] ? add(idx[i], ci(n->arg.v[2 * i])) : idx[i];
    if (n->nsrc == 2) { /* at a var offset: the box moves by mult * var (view.h) */
      int d = (int)n->arg.v[2 * nd];
      sidx[d] = add(sidx[d], var_offset(n, 1));
    }
    return lower(c, s, sidx, valid);
  case OP_FLIP:
    for (int i = 0; i < nd; i++) sidx[i] = n->arg.v[i] ? add(ci(n->shape[i] - 1), uop_alu1(OP_NEG, idx[i])) : idx[i];
    return lower(c, s, sidx, valid);
  case OP_PAD: {
    uop *ok = uop_const_int(DT_BOOL, 1);
    int vd = n->nsrc == 2 ? (int)n->arg.v[2 * nd] : -1; /* at a var offset: before + mult * var */
    for (int i = 0; i < nd; i++) {
      int64_t before = n->arg.v[2 * i], after = n->arg.v[2 * i + 1];
      if (i == vd) {
        /* idx in [before + mult * var, ... + size) reads the source */
        sidx[i] = add(add(idx[i], ci(-before)), var_offset(n, -1));
        ok = band(ok, uop_alu1(OP_NEG, uop_alu(OP_CMPLT, sidx[i], ci(0))));
        ok = band(ok, uop_alu(OP_CMPLT, sidx[i], ci(s->shape[i])));
        continue;
      }
      sidx[i] = before ? add(idx[i], ci(-before)) : idx[i];
      if (before) ok = band(ok, uop_alu1(OP_NEG, uop_alu(OP_CMPLT, idx[i], ci(before))));
      if (after) ok = band(ok, uop_alu(OP_CMPLT, idx[i], ci(before + s->shape[i])));
    }
    uop *v = lower(c, s, sidx, band(valid, ok));
    return uop_where(ok, v, uop_const_like(v, 0));
  }
  case OP_REDUCE: {
    uop *srcs[UOP_MAX_DIMS + 1];
    int nr = 1;
    for (int i = 0; i < nd; i++) sidx[i] = idx[i];
    for (int k = 1; k < n->arg.n; k++) {
      int ax = (int)n->arg.v[k];
      sidx[ax] = srcs[nr++] = range_of(s->shape[ax], c->next_axis++, RANGE_REDUCE);
    }
    srcs[0] = lower(c, s, sidx, valid);
    int64_t op = n->arg.v[0];
    return !srcs[0] ? NULL : uop_new(OP_REDUCE, srcs[0]->dt, srcs, nr, arg_ints(&op, 1));
  }
  default: break;
  }
  CG_ASSERT(op_is_alu(n->op), "cannot lower a %s node", op_name(n->op));
  uop *vals[3];
  for (uint32_t i = 0; i < n->nsrc; i++) vals[i] = lower(c, n->src[i], idx, valid);
  return uop_new(n->op, n->dt, vals, (int)n->nsrc, n->arg);
}

static uop *lower(lower_ctx *c, uop *n, uop *const *idx, uop *valid) {
  for (int i = 0; i < n->ndim; i++)
    if (!idx[i]) return NULL; /* out of memory building it: the pass fails (pipeline.c) */
  uop *key_src[UOP_MAX_DIMS + 2];
  int nk = 0;
  key_src[nk++] = n;
  for (int i = 0; i < n->ndim; i++) key_src[nk++] = idx[i];
  key_src[nk++] = valid;
  uop *key = uop_new(OP_NOOP, dt_void(), key_src, nk, arg_none());
  if (!key) return NULL;
  uop *r = uopset_get(&c->memo, key);
  if (!r) {
    r = lower_uncached(c, n, idx, valid);
    uopset_put(&c->memo, key, r);
  }
  return r;
}

uop *lower_kernel(uop *ast) {
  lower_ctx c = {.next_axis = 100};
  uop **st = ir_malloc(sizeof(uop *) * (ast->nsrc ? ast->nsrc : 1));
  if (!st) return NULL;
  for (uint32_t k = 0; k < ast->nsrc; k++) {
    uop *slot = ast->src[k]->src[0], *v = ast->src[k]->src[1];
    uop *idx[UOP_MAX_DIMS];
    for (int i = 0; i < v->ndim; i++) idx[i] = v->shape[i] == 1 ? ci(0) : range_of(v->shape[i], i, RANGE_LOOP);
    uop *val = lower(&c, v, idx, uop_const_int(DT_BOOL, 1));
    uop *ix;
    if (slot->op == OP_DEFINE_GLOBAL) ix = uop_new2(OP_INDEX, dt_ptr(slot->dt, ADDR_GLOBAL), slot, flat_index(idx, v->shape, v->ndim));
    else { /* an assign into part of a buffer: the address its view reads at idx (one-to-one
            * views only, so no gate: schedule.c, view_store_base) */
      uop *ld = lower(&c, slot, idx, uop_const_int(DT_BOOL, 1));
      CG_ASSERT(!ld || (ld->op == OP_LOAD && ld->nsrc == 1), "a store through a %s view lowered to a %s", op_name(slot->op), op_name(ld->op));
      ix = ld ? ld->src[0] : NULL;
    }
    st[k] = uop_new2(OP_STORE, dt_void(), ix, val);
  }
  uop *sink = uop_new(OP_SINK, dt_void(), st, (int)ast->nsrc, arg_none());
  free(st);
  uopset_free(&c.memo);
  sink = uop_simplify(sink);
  return sink ? merge_output_dims(sink) : NULL;
}
