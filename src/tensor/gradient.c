/* Autograd: gradient rules for the IR ops, the backward pass over the tensor-level graph,
 * and the public API (cg_set_requires_grad, cg_backward, cg_grad, ...).
 *
 *   loss ──► topological order (sources first; nothing below a DETACH)
 *        ──► on_path: a node carries gradient if it is a target, or is floating-point and
 *            one of its sources carries gradient
 *        ──► walk the order backwards: grad[node] → RULES[node->op] → grad[src] += ...
 *        ──► each target's grad is added (lazily) to its tensor's ->grad
 *
 * Every composite op of the public API (sub, exp, softmax, matmul, gather, ...) is built
 * from the IR ops, so these rules differentiate all of it. The exception are the ops that
 * record a backward of their own (composite.h: convolutions and pools): a recorded node
 * counts as one node whose sources are its recorded inputs, and its function gives them
 * their gradients; the graph inside it is not walked. Semantics at kinks therefore
 * follow from how each composite is built (relu = where(0 < x, x, 0) gives 0 at 0, etc.);
 * the rules themselves choose PyTorch's conventions where an IR op has a kink:
 *   - MAX (elementwise): ties give half the gradient to each side (torch.maximum).
 *   - REDUCE MAX: the gradient is split equally among all positions equal to the max
 *     (torch.amax / torch.max() without dim; torch.max(x, dim) would pick one index).
 *   - REDUCE MUL: exact with zeros, as torch.prod (one zero: only it gets the product of
 *     the others; two or more: all zero).
 *   - TRUNC: zero gradient (torch.trunc).
 */
#include "gradient.h"
#include "composite.h"
#include "custom.h"
#include "tensor.h"
#include "core/config.h"
#include "engine/realize.h"
#include "uop/uopset.h"
#include <math.h>
#include <string.h>

/* ---- small builders (g and its operands share shape and dtype) ------------------------ */

static uop *C(uop *like, double v) { return ew_const(like, v); }
static uop *mul(uop *a, uop *b) { return ew2(OP_MUL, a, b); }
static uop *neg(uop *a) { return ew1(OP_NEG, a); }
static uop *recip(uop *a) { return ew1(OP_RECIPROCAL, a); }
static uop *where(uop *c, uop *a, uop *b) { return uop_where(c, a, b); }
static uop *cmplt(uop *a, uop *b) { return ew2(OP_CMPLT, a, b); }
static uop *cmpeq(uop *a, uop *b) { return ew2(OP_CMPEQ, a, b); }

/* A sum over axes (keepdim), accumulated in float32 for the 8/16-bit floats. */
static uop *sum_axes(uop *g, const int *axes, int n) {
  if (!g) return NULL;
  dtype dt = g->dt;
  bool up = dt_scalar_size(dt) < 4;
  uop *r = reduce_uop(up ? cast_to(g, DT_F32) : g, OP_ADD, axes, n);
  return up ? cast_to(r, dt) : r;
}

/* The REDUCE's axes (arg = [op, axes...]). */
static int reduce_axes(const uop *u, int *axes) {
  for (int i = 1; i < u->arg.n; i++) axes[i - 1] = (int)u->arg.v[i];
  return u->arg.n - 1;
}

/* ---- the rules ------------------------------------------------------------------------
 * A rule gets the node u and g = d(loss)/d(u) (u's shape and dtype) and writes the
 * gradient for each source into d[i] (left NULL: no gradient to that source). */

typedef void (*grad_rule)(uop *u, uop *g, uop **d);
#define X0 (u->src[0])
#define X1 (u->src[1])
#define X2 (u->src[2])

static void g_pass(uop *u, uop *g, uop **d) { d[0] = g; }
static void g_reshape(uop *u, uop *g, uop **d) { d[0] = view_reshape(g, X0->shape, X0->ndim); }
static void g_permute(uop *u, uop *g, uop **d) {
  int64_t inv[UOP_MAX_DIMS];
  for (int i = 0; i < u->ndim; i++) inv[u->arg.v[i]] = i;
  d[0] = view_permute(g, inv);
}
static void g_expand(uop *u, uop *g, uop **d) {
  int ax[UOP_MAX_DIMS], n = 0, lead = u->ndim - X0->ndim; /* view_broadcast keeps ndim; be general anyway */
  for (int i = 0; i < u->ndim; i++)
    if (i < lead || X0->shape[i - lead] != u->shape[i]) ax[n++] = i;
  d[0] = view_reshape(sum_axes(g, ax, n), X0->shape, X0->ndim);
}
/* at a var offset (view.h) the gradient moves by the same var; the var gets none */
static void g_pad(uop *u, uop *g, uop **d) {
  int64_t box[2 * UOP_MAX_DIMS];
  for (int i = 0; i < u->ndim; i++) box[2 * i] = u->arg.v[2 * i], box[2 * i + 1] = u->arg.v[2 * i] + X0->shape[i];
  d[0] = view_has_var(u) ? view_shrink_var(g, box, (int)u->arg.v[2 * u->ndim], u->arg.v[2 * u->ndim + 1], u->src[1]) : view_shrink(g, box);
}
static void g_shrink(uop *u, uop *g, uop **d) {
  int64_t pads[2 * UOP_MAX_DIMS];
  for (int i = 0; i < u->ndim; i++) pads[2 * i] = u->arg.v[2 * i], pads[2 * i + 1] = X0->shape[i] - u->arg.v[2 * i + 1];
  d[0] = view_has_var(u) ? view_pad_var(g, pads, (int)u->arg.v[2 * u->ndim], u->arg.v[2 * u->ndim + 1], u->src[1]) : view_pad(g, pads);
}
static void g_flip(uop *u, uop *g, uop **d) { d[0] = uop_new1(OP_FLIP, g->dt, g, u->arg); }

static void g_reduce(uop *u, uop *g, uop **d) {
  uop *x = X0, *ge = view_expand(g, x->shape, x->ndim);
  switch (u->arg.v[0]) {
  case OP_ADD: d[0] = ge; break;
  case OP_MAX: { /* split equally among the positions that hold the max */
    int ax[UOP_MAX_DIMS], n = reduce_axes(u, ax);
    uop *hit = cmpeq(x, view_expand(u, x->shape, x->ndim));
    uop *count = sum_axes(cast_to(hit, x->dt), ax, n);
    d[0] = where(hit, view_expand(mul(g, recip(count)), x->shape, x->ndim), C(x, 0));
    break;
  }
  case OP_MUL: { /* prod of the others: out/x without zeros; with one zero only it gets the rest */
    int ax[UOP_MAX_DIMS], n = reduce_axes(u, ax);
    uop *zero = cmpeq(x, C(x, 0));
    uop *rest = view_expand(reduce_uop(where(zero, C(x, 1), x), OP_MUL, ax, n), x->shape, x->ndim);
    uop *zeros = view_expand(sum_axes(cast_to(zero, x->dt), ax, n), x->shape, x->ndim);
    uop *one_zero = where(zero, where(cmpeq(zeros, C(zeros, 1)), rest, C(x, 0)), C(x, 0));
    d[0] = mul(ge, where(cmpeq(zeros, C(zeros, 0)), mul(rest, recip(x)), one_zero));
    break;
  }
  default: CG_ASSERT(0, "REDUCE with op %s", op_name((int)u->arg.v[0]));
  }
}

static void g_exp2(uop *u, uop *g, uop **d) { d[0] = mul(g, mul(u, C(u, M_LN2))); }
static void g_log2(uop *u, uop *g, uop **d) { d[0] = mul(g, recip(mul(X0, C(X0, M_LN2)))); }
static void g_sin(uop *u, uop *g, uop **d) { d[0] = mul(g, ew1(OP_SIN, ew2(OP_ADD, neg(X0), C(X0, M_PI / 2)))); }
static void g_sqrt(uop *u, uop *g, uop **d) { d[0] = mul(g, recip(mul(u, C(u, 2)))); }
static void g_recip(uop *u, uop *g, uop **d) { d[0] = neg(mul(g, mul(u, u))); }
static void g_neg(uop *u, uop *g, uop **d) { d[0] = neg(g); }
static void g_trunc(uop *u, uop *g, uop **d) { d[0] = C(X0, 0); }
static void g_add(uop *u, uop *g, uop **d) { d[0] = g, d[1] = g; }
static void g_mul(uop *u, uop *g, uop **d) { d[0] = mul(g, X1), d[1] = mul(g, X0); }
static void g_max(uop *u, uop *g, uop **d) {
  uop *half = where(cmpeq(X0, X1), mul(g, C(g, 0.5)), C(g, 0));
  d[0] = where(cmplt(X1, X0), g, half), d[1] = where(cmplt(X0, X1), g, half);
}
static void g_where(uop *u, uop *g, uop **d) { d[1] = where(X0, g, C(g, 0)), d[2] = where(X0, C(g, 0), g); }
static void g_mulacc(uop *u, uop *g, uop **d) { d[0] = mul(g, X1), d[1] = mul(g, X0), d[2] = g; }
static void g_cast(uop *u, uop *g, uop **d) { d[0] = dt_is_float(X0->dt) ? cast_to(g, X0->dt) : NULL; }
static void g_assign(uop *u, uop *g, uop **d) { d[1] = g; }
static void g_custom(uop *u, uop *g, uop **d) { custom_kind_of(u)->backward(u, g, d); }
/* back to the source's device (a gradient that reads no buffer goes anywhere as it is) */
static void g_copy(uop *u, uop *g, uop **d) {
  rt_device *to = graph_device(X0), *from = graph_device(g);
  if (!to) to = rt_default_device();
  d[0] = !to || !from || from == to ? g : uop_new1(OP_COPY, g->dt, g, arg_str(to->name));
}

/* One rule per op; ops not listed have no gradient (integer, comparison and bit ops,
 * BITCAST) or are leaves (BUFFER, CONST, DEFINE_VAR) or stop it (DETACH). */
static const grad_rule RULES[OP_COUNT] = {
  [OP_RESHAPE] = g_reshape,     /* dx = reshape(g, shape(x)) */
  [OP_PERMUTE] = g_permute,     /* dx = permute(g, perm^-1) */
  [OP_EXPAND] = g_expand,       /* dx = sum(g) over the expanded axes */
  [OP_PAD] = g_pad,             /* dx = shrink(g, the unpadded box) */
  [OP_SHRINK] = g_shrink,       /* dx = pad(g, back to shape(x)) with zeros */
  [OP_FLIP] = g_flip,           /* dx = flip(g) on the same axes */
  [OP_REDUCE] = g_reduce,       /* ADD: expand(g); MAX: g/count to each max; MUL: g * prod(others) */
  [OP_CONTIGUOUS] = g_pass,     /* dx = g */
  [OP_COPY] = g_copy,           /* dx = copy(g) back to x's device */
  [OP_ASSIGN] = g_assign,       /* d(value) = g; the overwritten buffer gets none */
  [OP_EXP2] = g_exp2,           /* d 2^x = g * 2^x * ln2 */
  [OP_LOG2] = g_log2,           /* d log2 x = g / (x ln2) */
  [OP_SIN] = g_sin,             /* d sin x = g * cos x, cos x = sin(pi/2 - x) */
  [OP_SQRT] = g_sqrt,           /* d sqrt x = g / (2 sqrt x) */
  [OP_RECIPROCAL] = g_recip,    /* d 1/x = -g / x^2 = -g * out^2 */
  [OP_NEG] = g_neg,             /* d -x = -g */
  [OP_TRUNC] = g_trunc,         /* d trunc x = 0 */
  [OP_ADD] = g_add,             /* d(x + y) = g, g */
  [OP_MUL] = g_mul,             /* d(x * y) = g*y, g*x */
  [OP_MAX] = g_max,             /* d max(x, y) = g to the larger; g/2 each on a tie */
  [OP_WHERE] = g_where,         /* d(c ? x : y) = (none), c ? g : 0, c ? 0 : g */
  [OP_MULACC] = g_mulacc,       /* d(x*y + z) = g*y, g*x, g */
  [OP_CAST] = g_cast,           /* dx = cast(g, dtype(x)) (floats only) */
  [OP_CUSTOM] = g_custom,       /* the node's own backward (custom.h); none into the value */
};
_Static_assert(sizeof RULES / sizeof RULES[0] == OP_COUNT, "one rule slot per op");

/* ---- the backward pass ---------------------------------------------------------------- */

typedef struct {
  uop **v;
  size_t n, cap;
} uvec;
static bool uvec_push(uvec *a, uop *u) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? 2 * a->cap : 64;
    uop **v = ir_realloc(a->v, cap * sizeof *v);
    if (!v) return false;
    a->v = v, a->cap = cap;
  }
  a->v[a->n++] = u;
  return true;
}

/* A node's sources as autograd sees them: a composite's recorded inputs (comp, when not
 * NULL, gets a map node -> malloc'd record), a DETACH none, else its sources. */
static uint32_t grad_srcs(uop *u, uopset *comp, uop *const **src) {
  composite *c = comp ? uopset_get(comp, u) : NULL;
  if (c) return *src = c->in, (uint32_t)c->nin;
  *src = u->src;
  return u->op == OP_DETACH ? 0 : u->nsrc;
}

/* Nodes of root's graph, sources before users; nothing below a DETACH. Iterative, so deep
 * graphs do not exhaust the stack. comp (optional) collects the composites met: their
 * recorded inputs stand in for their sources. False when out of memory. */
static bool toposort(uop *root, uvec *order, uopset *seen, uopset *comp) {
  typedef struct { uop *u; uint32_t next; } frame;
  size_t n = 0, cap = 64;
  frame *st = ir_malloc(cap * sizeof *st);
  if (!st || uopset_add(seen, root) < 0) return free(st), false;
  st[n++] = (frame){root, 0};
  while (n) {
    frame *f = &st[n - 1];
    if (f->next == 0 && comp) {
      composite c;
      if (composite_get(f->u, &c)) {
        composite *cp = ir_malloc(sizeof *cp);
        if (!cp) return free(st), false;
        *cp = c;
        if (!uopset_put(comp, f->u, cp)) return free(cp), free(st), false;
      }
    }
    uop *const *srcs;
    uint32_t ns = grad_srcs(f->u, comp, &srcs);
    if (f->next == ns) {
      if (!uvec_push(order, f->u)) return free(st), false;
      n--;
      continue;
    }
    uop *s = srcs[f->next++];
    int added = uopset_add(seen, s);
    if (added < 0) return free(st), false;
    if (!added) continue;
    if (n == cap) {
      frame *bigger = ir_realloc(st, (cap * 2) * sizeof *st);
      if (!bigger) return free(st), false;
      st = bigger, cap *= 2;
    }
    st[n++] = (frame){s, 0};
  }
  free(st);
  return true;
}

static bool add_all(uopset *set, uop *const *us, int n) {
  for (int i = 0; i < n; i++)
    if (uopset_add(set, us[i]) < 0) return false;
  return true;
}

int grad_depends_on(uop *u, uop *const *targets, int n) {
  uopset seen = {0}, tset = {0};
  uvec order = {0};
  int found = add_all(&tset, targets, n) && toposort(u, &order, &seen, NULL) ? 0 : -1;
  for (size_t i = 0; i < order.n && !found; i++) found = order.v[i] != u && uopset_get(&tset, order.v[i]);
  free(order.v);
  uopset_free(&seen);
  uopset_free(&tset);
  return found;
}

/* Before a custom backward that realizes (custom.h): the gradients accumulated for the
 * nodes not reached yet (order[0 .. i): the sweep's frontier and the targets' partial
 * sums; and the node's own) are realized, and the sweep continues from their buffers. Without this, the
 * backward's realize computes the frontier inside its kernels without storing it, and each
 * later realize (the next layer's attention, the step's final one) computes it again from
 * the loss: quadratic in depth (a 6-layer GPT step, 1 thread: 7.4 s of CPU time against
 * 0.43 s for one layer). False when a realize failed. */
static bool is_stored(const uop *u);
static bool realize_frontier(const uvec *order, size_t i, uopset *grads) {
  uop **outs = ir_malloc(sizeof(uop *) * 2 * (i + 1)), **views = outs ? outs + i + 1 : NULL;
  uopset uniq = {0};
  int n = 0;
  bool ok = outs != NULL;
  for (size_t j = 0; ok && j <= i; j++) { /* and the node's own gradient */
    uop *g = uopset_get(grads, order->v[j]);
    if (!g || is_stored(g) || g->op == OP_CONST || uopset_get(&uniq, g)) continue;
    ok = uopset_put(&uniq, g, g);
    outs[n++] = g;
  }
  if (ok && n) ok = realize_uops(outs, n, views) == CG_OK;
  for (int k = 0; ok && k < n; k++) ok = views[k] && uopset_put(&uniq, outs[k], views[k]);
  for (size_t j = 0; ok && n && j <= i; j++) {
    uop *g = uopset_get(grads, order->v[j]), *v = g ? uopset_get(&uniq, g) : NULL;
    if (v && v != g) ok = uopset_put(grads, order->v[j], v);
  }
  uopset_free(&uniq);
  free(outs);
  return ok;
}

bool grad_compute(uop *root, uop *seed, uop *const *targets, int n, uop **out, bool *reached) {
  uopset seen = {0}, tset = {0}, on = {0}, grads = {0}, comp = {0};
  uvec order = {0};
  bool ok = seed && add_all(&tset, targets, n) && toposort(root, &order, &seen, &comp);
  for (size_t i = 0; ok && i < order.n; i++) {
    uop *u = order.v[i], *const *srcs;
    uint32_t ns = grad_srcs(u, &comp, &srcs);
    bool p = uopset_get(&tset, u) != NULL;
    if (!p && dt_is_float(u->dt))
      for (uint32_t s = 0; s < ns && !p; s++) p = uopset_get(&on, srcs[s]) != NULL;
    if (p) ok = uopset_add(&on, u) >= 0;
  }
  if (ok) {
    CG_ASSERT(shape_eq(seed->shape, seed->ndim, root->shape, root->ndim) && dt_eq(seed->dt, root->dt), "seed %s for root %s",
              shape_str(seed->shape, seed->ndim), shape_str(root->shape, root->ndim));
    if (uopset_get(&on, root)) ok = uopset_put(&grads, root, seed);
  }
  for (size_t i = order.n; ok && i-- > 0;) {
    uop *u = order.v[i], *g = uopset_get(&grads, u), *const *srcs;
    composite *c = uopset_get(&comp, u);
    uint32_t ns = grad_srcs(u, &comp, &srcs);
    if (!g || (!c && (!RULES[u->op] || u->op == OP_DETACH))) continue;
    uop *d[CUSTOM_MAX_SRC] = {NULL};
    CG_ASSERT(ns <= CUSTOM_MAX_SRC, "%s with %u sources", op_name(u->op), ns);
    if (!c && u->op == OP_CUSTOM && custom_kind_of(u)->realizes && cfg_int("CG_GRAD_FRONTIER", 1)) {
      if (!(ok = realize_frontier(&order, i, &grads))) break;
      g = uopset_get(&grads, u);
    }
    if (c) c->grad(c, g, d);
    else RULES[u->op](u, g, d);
    for (uint32_t s = 0; s < ns && ok; s++) {
      uop *x = srcs[s];
      if (!uopset_get(&on, x)) continue;
      if (!d[s]) { /* no gradient to this source, or it could not be built */
        ok = !uop_pool_failed();
        continue;
      }
      CG_ASSERT(shape_eq(d[s]->shape, d[s]->ndim, x->shape, x->ndim) && dt_eq(d[s]->dt, x->dt),
                "the gradient rule of %s%s gave %s %s for a source of %s %s", c ? "the composite over " : "", op_name(u->op), dt_name(d[s]->dt),
                shape_str(d[s]->shape, d[s]->ndim), dt_name(x->dt), shape_str(x->shape, x->ndim));
      uop *prev = uopset_get(&grads, x), *sum = prev ? ew2(OP_ADD, prev, d[s]) : d[s];
      ok = sum && uopset_put(&grads, x, sum);
    }
  }
  for (int i = 0; ok && i < n; i++) {
    out[i] = uopset_get(&grads, targets[i]);
    if (reached) reached[i] = uopset_get(&seen, targets[i]) != NULL;
  }
  for (size_t i = 0; i < comp.cap; i++) free(comp.keys[i] ? comp.vals[i] : NULL);
  free(order.v);
  uopset_free(&seen);
  uopset_free(&tset);
  uopset_free(&on);
  uopset_free(&grads);
  uopset_free(&comp);
  return ok && !uop_pool_failed();
}

/* ---- the public API ------------------------------------------------------------------- */

/* The tensors that require grad (collected before any new tensor is made). */
typedef struct {
  cg_tensor **t;
  int n, cap;
  bool nomem;
} tlist;
static void collect_rg(cg_tensor *t, void *ctx) {
  tlist *l = ctx;
  if (!t->requires_grad || l->nomem) return;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 16;
    cg_tensor **bigger = cg_realloc(l->t, (size_t)cap * sizeof *bigger);
    if (!bigger) {
      l->nomem = true;
      return;
    }
    l->t = bigger, l->cap = cap;
  }
  l->t[l->n++] = t;
}

/* The node a target's gradient is taken at: below its RESHAPEs, since a reshape of a
 * reshape is built as one node (view_reshape) and skips the tensor's own node. A reshape
 * maps values one to one, so the gradient there, reshaped, is the tensor's. */
static uop *base_of(uop *u) {
  while (u->op == OP_RESHAPE) u = u->src[0];
  return u;
}

/* A view of a BUFFER: a leaf with storage of its own. */
static bool is_stored(const uop *u) {
  while (u->op == OP_RESHAPE) u = u->src[0];
  return u->op == OP_BUFFER;
}

cg_status cg_set_requires_grad(cg_tensor *t, bool on) {
  if (!t) return cg_fail(CG_NULL_INPUT, "set_requires_grad: tensor is NULL");
  if (!on) {
    t->requires_grad = false;
    return CG_OK;
  }
  if (!dt_is_float(t->u->dt))
    return cg_fail(CG_ERR_INVALID, "set_requires_grad: only floating-point tensors can require gradients, got %s %s",
                   dt_name(t->u->dt), shape_str(t->u->shape, t->u->ndim));
  if (t->requires_grad) return CG_OK;
  if (t->u->op == OP_DEFINE_VAR)
    return cg_fail(CG_ERR_INVALID, "set_requires_grad: '%s' is a kernel variable (cg_variable), which has no gradient", t->u->arg.s);
  /* A lazy leaf (a constant, random numbers, x*2 of plain tensors) is realized into storage
   * of its own: hash-consing would otherwise make two equal leaves one node, sharing one
   * gradient. A tensor computed from tensors that require grad stays lazy (gradients flow
   * on through it, and its own gradient is what reaches it). */
  if (!is_stored(t->u)) {
    tlist l = {0};
    tensor_foreach(collect_rg, &l);
    uop **us = l.nomem ? NULL : cg_malloc(sizeof(uop *) * (size_t)(l.n ? l.n : 1));
    int derived = -1;
    if (us) {
      for (int i = 0; i < l.n; i++) us[i] = base_of(l.t[i]->u);
      uop_pool_push_checked();
      derived = grad_depends_on(t->u, us, l.n);
      uop_pool_pop();
    }
    free(us);
    free(l.t);
    if (derived < 0) return cg_fail(CG_ERR_NOMEM, "set_requires_grad: out of memory");
    if (!derived) {
      cg_status st = cg_realize(t);
      if (st != CG_OK) return st;
    }
  }
  t->requires_grad = true;
  return CG_OK;
}

/* Add each reached target's gradient to its tensor's ->grad (lazily), all or nothing: the
 * new gradient nodes and tensors are built first, and only when every one exists are they
 * swapped in. A first gradient comes with the zeros cg_zero_grad will put in its place. A new gradient tensor belongs to its owner (cg_free(t) frees it) and lives
 * at the outermost level, which no scope frees. */
static cg_status accumulate_all(tlist *l, uop **grads, const bool *reached) {
  uop **next = cg_calloc((size_t)(l->n ? l->n : 1), sizeof *next);
  cg_tensor **fresh = cg_calloc((size_t)(l->n ? l->n : 1), sizeof *fresh);
  uop **zeros = cg_calloc((size_t)(l->n ? l->n : 1), sizeof *zeros);
  bool ok = next && fresh && zeros;
  for (int i = 0; i < l->n && ok; i++) {
    if (!reached[i]) continue;
    cg_tensor *t = l->t[i];
    uop *u = t->u, *g = grads[i] ? view_reshape(grads[i], u->shape, u->ndim) : const_full(u->dt, 0, u->shape, u->ndim);
    if (!t->grad) zeros[i] = uop_retain(const_full(u->dt, 0, u->shape, u->ndim));
    /* a first gradient is added to the zeros too: the graph is then the one every later
     * step (after cg_zero_grad) builds, so the second step of a training loop finds the
     * first one's schedule (engine/sched_cache.c) instead of scheduling again */
    next[i] = t->grad ? ew2(OP_ADD, t->grad->u, g) : zeros[i] ? ew2(OP_ADD, zeros[i], g) : NULL;
    ok = next[i] && !uop_pool_failed();
    if (ok && !t->grad) ok = (fresh[i] = tensor_new(next[i])) != NULL;
  }
  if (ok) {
    for (int i = 0; i < l->n; i++) {
      if (!reached[i]) continue;
      cg_tensor *t = l->t[i];
      if (fresh[i]) {
        while (fresh[i]->scope > 0) cg_keep(fresh[i]);
        t->grad = fresh[i];
        t->grad_zero = zeros[i];
      } else {
        uop *old = t->grad->u;
        t->grad->u = uop_retain(next[i]);
        uop_release(old);
      }
    }
  } else {
    for (int i = 0; fresh && i < l->n; i++) cg_free(fresh[i]);
    for (int i = 0; zeros && i < l->n; i++) uop_release(zeros[i]);
  }
  free(next);
  free(fresh);
  free(zeros);
  return ok ? CG_OK : op_status(cg_last_status() == CG_OK ? CG_ERR_NOMEM : cg_last_status());
}

void tensor_realized(cg_tensor *t, uop *view) {
  uop *old = t->u;
  t->u = uop_retain(view);
  if (t->graph) uop_release(t->graph), t->graph = NULL;
  bool keep = dt_is_float(old->dt) && shape_numel(old->shape, old->ndim) == 1 && !is_stored(old) && old->op != OP_ASSIGN && !t->requires_grad;
  if (keep) {
    tlist l = {0};
    tensor_foreach(collect_rg, &l);
    uop **us = l.nomem ? NULL : cg_malloc(sizeof(uop *) * (size_t)(l.n ? l.n : 1));
    if (us) { /* out of memory: the graph is kept (backward through this value still works) */
      for (int i = 0; i < l.n; i++) us[i] = base_of(l.t[i]->u);
      keep = l.n && grad_depends_on(old, us, l.n);
    }
    free(us);
    free(l.t);
  }
  if (keep) t->graph = old;
  else uop_release(old);
}

static cg_status backward(const char *who, cg_tensor *out, uop *seed) {
  tlist l = {0};
  tensor_foreach(collect_rg, &l);
  size_t n = (size_t)(l.n ? l.n : 1);
  uop **targets = l.nomem ? NULL : cg_malloc(sizeof(uop *) * n), **grads = cg_malloc(sizeof(uop *) * n);
  bool *reached = cg_malloc(n);
  cg_status st = CG_OK;
  if (!targets || !grads || !reached) st = CG_ERR_NOMEM;
  for (int i = 0; i < l.n && st == CG_OK; i++) targets[i] = base_of(l.t[i]->u);
  /* a realized loss differentiates the graph it kept; the first backward gives it up */
  custom_take_failure();
  if (st == CG_OK && !grad_compute(out->graph ? out->graph : out->u, seed, targets, l.n, grads, reached)) st = op_status(CG_ERR_NOMEM);
  if (st == CG_OK) st = custom_take_failure(); /* a custom backward that could not run (custom.h) */
  int nreached = 0;
  for (int i = 0; i < l.n && st == CG_OK; i++) nreached += reached[i];
  if (st == CG_OK && !nreached)
    st = cg_fail(CG_ERR_INVALID, "%s: the output %s %s does not depend on any tensor that requires grad. If it was computed "
                 "from one, its graph is gone: it was realized or read (cg_realize/cg_item/cg_read) and is not a one-element "
                 "output, or an earlier backward from it used the graph up. Call backward before reading it, or compute the output "
                 "again from its inputs", who, dt_name(out->u->dt), shape_str(out->u->shape, out->u->ndim));
  /* reached but no gradient (it only flows through comparisons, trunc, ...): zeros */
  if (st == CG_OK) st = accumulate_all(&l, grads, reached);
  if (st == CG_ERR_NOMEM && cg_last_status() != CG_ERR_NOMEM) cg_fail(CG_ERR_NOMEM, "%s: out of memory", who);
  if (st == CG_OK && out->graph) uop_release(out->graph), out->graph = NULL;
  free(targets);
  free(grads);
  free(reached);
  free(l.t);
  return st;
}

cg_status cg_backward(cg_tensor *loss) {
  if (!loss) return cg_fail(CG_NULL_INPUT, "backward: loss is NULL");
  if (!dt_is_float(loss->u->dt) || cg_numel(loss) != 1)
    return cg_fail(CG_ERR_INVALID, "backward: expected a one-element floating-point loss, got %s %s (use cg_backward_with "
                   "to give the output's gradient)", dt_name(loss->u->dt), shape_str(loss->u->shape, loss->u->ndim));
  uop_pool_push_checked();
  cg_status st = op_status(backward("backward", loss, ew_const(loss->u, 1)));
  uop_pool_pop();
  return st;
}

cg_status cg_backward_with(cg_tensor *out, cg_tensor *grad_out) {
  if (!out || !grad_out) return cg_fail(CG_NULL_INPUT, "backward_with: %s is NULL", out ? "grad_out" : "out");
  if (!dt_is_float(out->u->dt) || !dt_is_float(grad_out->u->dt))
    return cg_fail(CG_ERR_INVALID, "backward_with: expected floating-point tensors, got output %s and gradient %s",
                   dt_name(out->u->dt), dt_name(grad_out->u->dt));
  if (!shape_eq(out->u->shape, out->u->ndim, grad_out->u->shape, grad_out->u->ndim))
    return cg_fail(CG_ERR_INVALID, "backward_with: the gradient's shape %s differs from the output's %s",
                   shape_str(grad_out->u->shape, grad_out->u->ndim), shape_str(out->u->shape, out->u->ndim));
  uop_pool_push_checked();
  cg_status st = op_status(backward("backward_with", out, cast_to(grad_out->u, out->u->dt)));
  uop_pool_pop();
  return st;
}

cg_tensor *cg_grad(cg_tensor *t) { return t ? t->grad : NULL; }

void cg_zero_grad(cg_tensor *t) {
  if (!t || !t->grad || !t->grad_zero) return;
  uop *old = t->grad->u; /* the zeros were built with the first gradient: nothing to allocate */
  t->grad->u = uop_retain(t->grad_zero);
  uop_release(old);
}
