/* Realize points, kernels over slots and merging (see schedule.h). */
#include "schedule.h"
#include "runtime/buffer.h"
#include "runtime/var.h"
#include "uop/shape.h"
#include "uop/view.h"
#include "uop/rewrite.h"
#include "uop/uopset.h"
#include <string.h>

typedef struct {
  uop **topo;         /* nodes below the outputs, sources first */
  size_t ntopo;
  uopset order;       /* node -> 1 + topo index */
  uopset uses;        /* node -> number of consumers */
  uopset realize;     /* node -> 1 when it gets its own buffer */
  uopset fused_in;    /* REDUCE -> the realize point whose kernel computes it */
  uop **work;         /* realize points to visit */
  size_t nwork, capwork;
  int reduce_axes;    /* reduced axes fused into the kernel being visited */
  uint64_t nomem0;    /* uop_nomem_events() at the start: walks stop once it moves */
  uopset walked[4];   /* per context: node -> the axes it was walked with + 1, this root */
  uopset staged;      /* a COPY whose source is realized only to make a view contiguous -> 1 */
  uopset ew_cost;     /* ALU node -> 1 + the cost of computing it once (ew_cost) */
  uopset ew_owner;    /* costly shared ALU node -> the realize point whose kernel computes it */
  uopset ew_shared;   /* costly ALU node reached from two kernels -> 1 (kept across passes) */
  uop **shared;       /* the same, in the order found */
  size_t nshared, capshared;
  bool custom;        /* a CUSTOM node was met (toposort) */
} sched_ctx;
static bool sched_failed(const sched_ctx *c) { return uop_nomem_events() != c->nomem0; }

/* A kernel holds at most this many reduced axes (each a loop; the linearizer tracks a
 * kernel's loops, upcast lanes included, in 64 bits): a sum of many reductions (a global
 * gradient norm over 76 parameters) realizes the ones beyond it on their own. */
enum { MAX_FUSED_REDUCE_AXES = 24 };

/* Out of memory here (ir_* allocations, in the checked pool of a realize) is not handled
 * where it happens: the step is skipped, and sched_build fails as a whole at its end
 * (uop_nomem_events moved), so a half-built schedule is never returned. */
static bool grow(void ***arr, size_t n, size_t *cap) {
  if (n < *cap) return true;
  void **a = ir_realloc(*arr, (*cap ? *cap * 2 : 64) * sizeof(void *));
  if (!a) return false;
  *arr = a, *cap = *cap ? *cap * 2 : 64;
  return true;
}

static void toposort(sched_ctx *c, uop *u, size_t *cap) {
  if (uopset_get(&c->order, u) || sched_failed(c)) return;
  uopset_put(&c->order, u, (void *)(uintptr_t)-1); /* in progress */
  c->custom |= u->op == OP_CUSTOM;
  if (u->op != OP_BUFFER)
    for (uint32_t i = 0; i < u->nsrc; i++) {
      uop *s = u->src[i];
      uopset_put(&c->uses, s, (void *)((uintptr_t)uopset_get(&c->uses, s) + 1));
      toposort(c, s, cap);
    }
  if (grow((void ***)&c->topo, c->ntopo, cap)) c->topo[c->ntopo++] = u;
  uopset_put(&c->order, u, (void *)(uintptr_t)c->ntopo);
}

static void mark(sched_ctx *c, uop *u) {
  if (uopset_get(&c->realize, u)) return;
  uopset_put(&c->realize, u, (void *)1);
  if (grow((void ***)&c->work, c->nwork, &c->capwork)) c->work[c->nwork++] = u;
}

/* ---- copies between devices ------------------------------------------------------- */

/* Is u the elements [*off, *off + numel) of one buffer, in order? Follows reshapes,
 * shrinks (as a strided view: a reshape needs a contiguous input) and detaches down to
 * the leaf, the first other node: a BUFFER (its elements) or a node realized into a
 * buffer of its shape. */
static bool copy_range(uop *u, uop **leaf, int64_t *off) {
  uop *chain[64];
  int n = 0;
  while (u->op == OP_RESHAPE || (u->op == OP_SHRINK && !view_has_var(u)) || u->op == OP_DETACH) {
    if (u->op != OP_DETACH) { /* worth its value */
      if (n == 64) return false;
      chain[n++] = u;
    }
    u = u->src[0];
  }
  *leaf = u;
  int64_t shape[UOP_MAX_DIMS], stride[UOP_MAX_DIMS], o = 0;
  int nd;
  if (u->op == OP_BUFFER || u->op == OP_DEFINE_GLOBAL) nd = 1, shape[0] = u->arg.v[1]; /* both: arg [id or slot, count] */
  else {
    if (u->ndim < 0) return false;
    nd = u->ndim;
    memcpy(shape, u->shape, sizeof(int64_t) * (size_t)nd);
  }
  for (int i = nd - 1; i >= 0; i--) stride[i] = i == nd - 1 ? 1 : stride[i + 1] * shape[i + 1];
  for (int c = n - 1; c >= -1; c--) {
    /* contiguous so far? (row-major strides, size-1 dims aside) */
    int64_t want = 1;
    bool contig = true;
    for (int i = nd - 1; i >= 0; i--) {
      if (shape[i] == 1) continue;
      contig = contig && stride[i] == want;
      want *= shape[i];
    }
    if (c < 0) {
      *off = o;
      return contig;
    }
    uop *v = chain[c];
    if (v->op == OP_RESHAPE) {
      if (!contig) return false;
      nd = v->ndim;
      int64_t st = 1;
      for (int i = nd - 1; i >= 0; i--) shape[i] = v->shape[i], stride[i] = st, st *= v->shape[i];
    } else {
      for (int i = 0; i < nd; i++) o += v->arg.v[2 * i] * stride[i], shape[i] = v->shape[i];
    }
  }
  return false;
}

/* What u is a view of: below its movement ops and detaches. */
static uop *movement_base(uop *u) {
  while (op_is_movement(u->op) || u->op == OP_DETACH) u = u->src[0];
  return u;
}
/* A view (movement ops only) of a buffer or of a node realized by itself. */
static bool view_of_buffer(uop *u) {
  u = movement_base(u);
  return u->op == OP_BUFFER || u->op == OP_CONTIGUOUS || u->op == OP_COPY || u->op == OP_ASSIGN;
}

/* An elementwise value costing at least this much per element (ew_cost: a transcendental
 * counts as its vmath body, ~20 ops) is realized once when two kernels read it, not
 * recomputed in each: GELU's backward (two exp2 and two polynomials, ~100) feeds a bf16
 * cast, a transposed bf16 cast and the bias gradient's sum, and cost three times its
 * work; softmax's exp (~25) and tanh-GELU's backward (~60) stay fused. Realizing costs
 * one store and a load per reader, a few ops' time per element. */
enum { EW_EXPENSIVE = 80, EW_COST_MAX = 1 << 20 };

static int ew_cost(sched_ctx *c, uop *u) {
  /* a load, a kernel's own, or a broadcast value (computed once per row, or hoisted out
   * of the loops: LayerNorm's statistics, AdamW's learning rate) */
  if ((!op_is_alu(u->op) && !op_is_movement(u->op) && u->op != OP_DETACH) || u->op == OP_EXPAND) return 0;
  uintptr_t m = (uintptr_t)uopset_get(&c->ew_cost, u);
  if (m) return (int)(m - 1);
  int n = u->op == OP_EXP2 || u->op == OP_LOG2 || u->op == OP_SIN ? 20 : u->op == OP_RECIPROCAL || u->op == OP_SQRT ? 4 : op_is_alu(u->op);
  for (uint32_t i = 0; i < u->nsrc && n < EW_COST_MAX; i++) n += ew_cost(c, u->src[i]);
  if (n > EW_COST_MAX) n = EW_COST_MAX; /* shared subgraphs count once per path: bounded */
  uopset_put(&c->ew_cost, u, (void *)(uintptr_t)(n + 1));
  return n;
}

/* C_DIRECT: computed once per output element; C_REDUCE: inside a reduction, over its
 * axes; C_OTHER: repeated through a broadcast; C_OTHER_R: repeated through a broadcast or a
 * window inside a reduction. */
enum { C_DIRECT, C_REDUCE, C_OTHER, C_OTHER_R };

/* Walk what kernel `root` computes, deciding which reductions it cannot hold. `axes` is
 * the mask of axes reduced by the enclosing reduction (C_REDUCE). */
static void visit(sched_ctx *c, uop *u, uop *root, int ctx, uint32_t axes) {
  if (sched_failed(c)) return;
  /* a node reached again the same way decides nothing new (marks only grow): without this
   * a graph with shared nodes (x = x + x, 24 times) is walked once per path, 2^24 times */
  if ((uintptr_t)uopset_get(&c->walked[ctx], u) == (uintptr_t)axes + 1) return;
  uopset_put(&c->walked[ctx], u, (void *)((uintptr_t)axes + 1));
  if (u->op == OP_BUFFER || u->op == OP_CONST || u->op == OP_DEFINE_VAR) return;
  if (u != root && uopset_get(&c->realize, u)) return;
  if (u->op == OP_COPY) { /* its own item: the source read from a buffer (see schedule.h) */
    if (u != root) {
      mark(c, u);
      return;
    }
    uop *leaf, *s = u->src[0];
    int64_t off;
    if (!copy_range(s, &leaf, &off)) leaf = s; /* realized whole, then read whole */
    if (leaf->op == OP_BUFFER) return;
    /* a view made contiguous only to be copied: the staging bytes */
    if (op_is_movement(leaf->op) && view_of_buffer(leaf)) uopset_put(&c->staged, u, (void *)1);
    mark(c, leaf);
    return;
  }
  if (u != root && (u->op == OP_CONTIGUOUS || u->op == OP_ASSIGN)) {
    mark(c, u);
    return;
  }
  /* computed values reached through a broadcast or window inside a reduction would be
   * recomputed for every use of every element (a convolution's input): give them a buffer.
   * A float32 of a value rounded to bf16 stores the rounded bf16 value (the inner CAST):
   * half the bytes, and the reader's operand is a float32 of a bf16 load, the TC opt's
   * (flash attention's p and ds, autocast's weights). Not float16: no unit takes its
   * pairs, and a GEMM's A operand, broadcast a value at a time, is a conversion per value
   * from f16 but a load from float32 (a float32 copy reads faster: linear_bf16.c) */
  bool widen16 = u->op == OP_CAST && u->dt.scalar == CG_FLOAT32 && u->src[0]->op == OP_CAST && u->src[0]->dt.scalar == CG_BFLOAT16 && u->src[0]->dt.count <= 1;
  if (u != root && ctx == C_OTHER_R && widen16 && !uopset_get(&c->realize, u->src[0])) {
    mark(c, u->src[0]);
    return;
  }
  if (u != root && ctx == C_OTHER_R && op_is_alu(u->op) && !widen16 && !(u->op == OP_CAST && u->src[0]->op != OP_REDUCE && !op_is_alu(u->src[0]->op))) {
    mark(c, u);
    return;
  }
  if (u != root && op_is_alu(u->op) && (uintptr_t)uopset_get(&c->uses, u) > 1 && ew_cost(c, u) >= EW_EXPENSIVE) {
    uop *owner = uopset_get(&c->ew_owner, u);
    if (owner && owner != root) { /* a second kernel: realized, and the walk starts again (sched_build) */
      if (uopset_add(&c->ew_shared, u) > 0 && grow((void ***)&c->shared, c->nshared, &c->capshared)) c->shared[c->nshared++] = u;
      mark(c, u);
      return;
    }
    uopset_put(&c->ew_owner, u, root);
  }
  if (u->op == OP_REDUCE && u != root) {
    /* a reduction that a second kernel reaches (through elementwise consumers it shares,
     * e.g. a convolution whose output feeds a ReLU and, in the backward, the ReLU's mask)
     * is realized once and read by both, not recomputed in each */
    uop *owner = uopset_get(&c->fused_in, u);
    if ((uintptr_t)uopset_get(&c->uses, u) > 1 || ctx == C_OTHER || ctx == C_OTHER_R || (owner && owner != root)) {
      mark(c, u);
      return;
    }
    uopset_put(&c->fused_in, u, root);
  }
  if (u->op == OP_REDUCE) {
    if (u != root && (c->reduce_axes += u->arg.n - 1) > MAX_FUSED_REDUCE_AXES) {
      c->reduce_axes -= u->arg.n - 1;
      mark(c, u);
      return;
    }
    uint32_t m = 0;
    for (int i = 1; i < u->arg.n; i++) m |= 1u << u->arg.v[i];
    visit(c, u->src[0], root, C_REDUCE, m);
    return;
  }
  if (u->op == OP_ASSIGN) {
    visit(c, u->src[1], root, ctx, axes);
    return;
  }
  if (u->op == OP_EXPAND) {
    uint32_t e = 0;
    for (int i = 0; i < u->ndim; i++)
      if (u->src[0]->shape[i] != u->shape[i]) e |= 1u << i;
    int next = ctx == C_REDUCE && (e & ~axes) == 0 ? C_DIRECT : (ctx == C_REDUCE || ctx == C_OTHER_R) ? C_OTHER_R : C_OTHER;
    visit(c, u->src[0], root, next, 0);
    return;
  }
  if (op_is_movement(u->op)) {
    /* a reduction under a pad would be evaluated (and thrown away) for every padded
     * element too: a concatenation of matmuls (attention's q, k, v gradients) computes
     * each in its own kernel */
    bool padded = false;
    for (int i = 0; u->op == OP_PAD && i < 2 * u->ndim; i++) padded |= u->arg.v[i] != 0;
    padded |= u->op == OP_PAD && view_has_var(u);
    visit(c, u->src[0], root, ctx == C_DIRECT && !padded ? C_DIRECT : (ctx == C_REDUCE || ctx == C_OTHER_R) ? C_OTHER_R : C_OTHER, 0);
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) visit(c, u->src[i], root, ctx, axes);
}

/* ---- an assign reads its own buffer only where it writes it --------------------------
 * A kernel that writes a buffer while it reads other elements of it would find some of
 * them already replaced (by another thread, or an earlier trip of its loops). An assign's
 * value may read its target's buffer only through the target view itself (for a whole
 * buffer, any reshape of it to the same shape) with nothing but elementwise ops between:
 * at the element it writes. Any other read of that buffer (a flip of the target, another
 * row, a sum over it) gets a buffer of its own, a kernel ordered before the assign (it
 * reads the old value). A read of the bare buffer that is no view cannot be split off so
 * and is refused. */
static bool same_place(uop *u, uop *target) {
  return u == target || (view_is_whole(u) && view_is_whole(target) && shape_eq(u->shape, u->ndim, target->shape, target->ndim));
}
static bool guard_assign(sched_ctx *c, uop *u, uop *root, bool direct, uopset *seen) {
  uintptr_t bit = direct ? 1 : 2, had = (uintptr_t)uopset_get(seen, u);
  if ((had & bit) || sched_failed(c)) return true;
  uopset_put(seen, u, (void *)(had | bit));
  if (u->op == OP_CONST || u->op == OP_DEFINE_VAR || var_is_tensor(u) || uopset_get(&c->realize, u)) return true;
  uop *target = root->src[0], *buf = view_store_base(target);
  if (movement_base(u) == buf) {
    if (direct && same_place(u, target)) return true;
    if (u->op == OP_BUFFER || u->op == OP_DETACH) {
      cg_fail(CG_ERR_INVALID, "assign: the value reads its target's buffer at elements it does not write, as the bare buffer (read it through a view, or realize that read first)");
      return false;
    }
    mark(c, u);
    return true;
  }
  if (u->op == OP_BUFFER) return true;
  bool d = direct && op_is_alu(u->op);
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (!guard_assign(c, u->src[i], root, d, seen)) return false;
  return true;
}

/* An output that is only a reshape of a buffer needs no kernel; detached too (it shares
 * the buffer, as torch's detach shares storage: cg_stored realizes a detached value that
 * a realize already wrote, which cost a copy of it). */
static uop *plain_buffer(uop *u) {
  while (u->op == OP_DETACH) u = u->src[0];
  if (u->op == OP_RESHAPE) u = u->src[0];
  while (u->op == OP_DETACH) u = u->src[0];
  return u->op == OP_BUFFER ? u : NULL;
}

static uintptr_t order_of(sched_ctx *c, uop *u) { return (uintptr_t)uopset_get(&c->order, u); }

/* A kernel while it is planned: the realize points it computes (roots) and their buffers. */
typedef struct {
  uop **roots, **outs;
  bool *dead; /* computed here but stored nowhere: merged into its only reader, and no
               * output of the realize */
  int n, cap;
} plan;

static void plan_add(plan *k, uop *root, uop *buf, bool dead) {
  if (k->n == k->cap) {
    int cap = k->cap ? 2 * k->cap : 2;
    uop **r = ir_realloc(k->roots, sizeof(uop *) * (size_t)cap);
    if (r) k->roots = r;
    uop **o = r ? ir_realloc(k->outs, sizeof(uop *) * (size_t)cap) : NULL;
    if (o) k->outs = o;
    bool *d = o ? ir_realloc(k->dead, sizeof(bool) * (size_t)cap) : NULL;
    if (!d) return; /* failed: see grow */
    k->dead = d, k->cap = cap;
  }
  k->roots[k->n] = root, k->outs[k->n] = buf, k->dead[k->n++] = dead;
}

static void plan_free(plan *k) { free(k->roots), free(k->outs), free(k->dead); }

/* The value a root stores (an ASSIGN stores its source into its target's buffer). */
static uop *stored_value(uop *root) { return root->op == OP_ASSIGN ? root->src[1] : root; }

/* ---- merging: a kernel whose only job is to feed another at the same index runs inside
 * it (softmax's max inside its sum). Decided on the tensor-level graph: every path from
 * the reader's stored value to the merged node must keep the index equal to the reader's
 * output index, axis by axis. */

enum { AX_OUT, AX_ZERO, AX_OTHER }; /* index is the output index / constant 0 / anything else */

typedef struct {
  uopset *realized;
  uop *target;          /* the node of the kernel that would be merged */
  const int64_t *oshape;
  int ondim;
  int budget;           /* paths walked before giving up (shared subgraphs) */
  uopset reach;         /* node -> 1 + whether the target is below it */
} same_ctx;

static bool reaches(same_ctx *c, uop *u) {
  uintptr_t r = (uintptr_t)uopset_get(&c->reach, u);
  if (r) return r == 2;
  bool y = u == c->target;
  if (!y && u->op != OP_BUFFER && !uopset_get(c->realized, u))
    for (uint32_t i = 0; i < u->nsrc && !y; i++) y = reaches(c, u->src[i]);
  uopset_put(&c->reach, u, (void *)(uintptr_t)(1 + y));
  return y;
}

/* Equal shapes once their size-1 dims are dropped (a keepdim reduction and its reshape:
 * a merged kernel stores both through one shape, see plan_to_kernel). */
static bool same_dims(const int64_t *a, int na, const int64_t *b, int nb) {
  int i = 0, j = 0;
  for (;;) {
    while (i < na && a[i] == 1) i++;
    while (j < nb && b[j] == 1) j++;
    if (i == na || j == nb) return i == na && j == nb;
    if (a[i++] != b[j++]) return false;
  }
}

static bool same_index(same_ctx *c, uop *u, const uint8_t *ax) {
  if (!reaches(c, u)) return true;
  if (--c->budget < 0) return false;
  if (u == c->target) {
    if (!same_dims(u->shape, u->ndim, c->oshape, c->ondim)) return false;
    for (int i = 0; i < u->ndim; i++)
      if (!(ax[i] == AX_OUT || u->shape[i] == 1)) return false;
    return true;
  }
  if (u->op == OP_BUFFER || u->op == OP_CONST || u->op == OP_DEFINE_VAR || uopset_get(c->realized, u)) return true;
  uint8_t nx[UOP_MAX_DIMS];
  uop *s = u->nsrc ? u->src[0] : NULL;
  switch (u->op) {
  case OP_REDUCE:
    memcpy(nx, ax, (size_t)u->ndim);
    for (int i = 1; i < u->arg.n; i++) nx[u->arg.v[i]] = AX_OTHER;
    return same_index(c, s, nx);
  case OP_EXPAND:
    for (int i = 0; i < u->ndim; i++) nx[i] = s->shape[i] == 1 && u->shape[i] != 1 ? AX_ZERO : ax[i];
    return same_index(c, s, nx);
  case OP_PERMUTE:
    for (int i = 0; i < u->ndim; i++) nx[u->arg.v[i]] = ax[i];
    return same_index(c, s, nx);
  case OP_PAD: case OP_SHRINK:
    for (int i = 0; i < u->ndim; i++) nx[i] = u->arg.v[2 * i] || (view_has_var(u) && u->arg.v[2 * u->ndim] == i) ? AX_OTHER : ax[i];
    return same_index(c, s, nx);
  case OP_FLIP:
    for (int i = 0; i < u->ndim; i++) nx[i] = u->arg.v[i] && u->shape[i] > 1 ? AX_OTHER : ax[i];
    return same_index(c, s, nx);
  case OP_RESHAPE: { /* only reshapes that add or drop size-1 dims keep axes apart */
    int j = 0;
    for (int i = 0; i < s->ndim; i++) {
      if (s->shape[i] == 1) { nx[i] = AX_ZERO; continue; }
      while (j < u->ndim && u->shape[j] == 1) j++;
      if (j == u->ndim || u->shape[j] != s->shape[i]) return false;
      nx[i] = ax[j++];
    }
    while (j < u->ndim && u->shape[j] == 1) j++;
    return j == u->ndim && same_index(c, s, nx);
  }
  default:
    for (uint32_t i = 0; i < u->nsrc; i++)
      if (!same_index(c, u->src[i], ax)) return false;
    return true;
  }
}

static bool reads_node(uop *u, uop *target, uopset *realized, uopset *seen) {
  if (u == target) return true;
  if (u->op == OP_BUFFER || uopset_get(realized, u) || uopset_add(seen, u) <= 0) return false;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (reads_node(u->src[i], target, realized, seen)) return true;
  return false;
}

/* While b is checked, its roots and a's are not loads: b's walk starts at its roots and
 * must reach into a's. These take them out of `realized` and put them back. */
static void unrealize(plan *a, plan *b, uopset *realized, void **saved) {
  saved[0] = uopset_get(realized, a->roots[0]);
  uopset_del(realized, a->roots[0]);
  for (int k = 0; k < b->n; k++) {
    saved[k + 1] = uopset_get(realized, b->roots[k]);
    uopset_del(realized, b->roots[k]);
  }
}
static void rerealize(plan *a, plan *b, uopset *realized, void **saved) {
  uopset_put(realized, a->roots[0], saved[0]);
  for (int k = 0; k < b->n; k++) uopset_put(realized, b->roots[k], saved[k + 1]);
}

/* Whether kernel b can compute kernel a's single root where it reads it. */
/* Whether u's value (up to realized nodes) reads one of the buffers in `bufs` as it was. */
static bool reads_any(uop *u, uopset *bufs, uop *except, uopset *realized, uopset *seen) {
  if (u->op == OP_BUFFER) return u != except && uopset_get(bufs, u);
  if (uopset_get(realized, u) || uopset_add(seen, u) <= 0) return false;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (reads_any(u->src[i], bufs, except, realized, seen)) return true;
  return false;
}

/* The reduced axes a value computes (up to realized nodes; `start` is walked into). */
static int reduce_axes_below(uop *u, uop *start, uopset *realized, uopset *seen) {
  if (u->op == OP_BUFFER || (u != start && uopset_get(realized, u)) || !uopset_add(seen, u)) return 0;
  int n = u->op == OP_REDUCE ? u->arg.n - 1 : 0;
  for (uint32_t i = 0; i < u->nsrc; i++) n += reduce_axes_below(u->src[i], start, realized, seen);
  return n;
}
static int plan_reduce_axes(plan *k, uopset *realized) {
  int n = 0;
  for (int i = 0; i < k->n; i++) {
    uopset seen = {0};
    uop *v = stored_value(k->roots[i]);
    n += reduce_axes_below(v, v, realized, &seen);
    uopset_free(&seen);
  }
  return n;
}

/* A broadcast operand: movement ops and casts down to an EXPAND that grows an axis. */
static bool broadcast_operand(uop *u) {
  while (op_is_movement(u->op) || u->op == OP_CAST) {
    if (u->op == OP_EXPAND) return true;
    u = u->src[0];
  }
  return false;
}
/* A product: a sum over the elementwise product of two broadcast operands (a matrix
 * product, a convolution's window sum), the shape the GEMM recipes take. */
static bool is_product(uop *u) {
  if (u->op != OP_REDUCE || u->arg.v[0] != OP_ADD) return false;
  uop *m = u->src[0];
  while (m->op == OP_CAST) m = m->src[0];
  return m->op == OP_MUL && broadcast_operand(m->src[0]) && broadcast_operand(m->src[1]);
}
static bool has_product_below(uop *u, uop *start, uopset *realized, uopset *seen) {
  if (u->op == OP_BUFFER || (u != start && uopset_get(realized, u)) || uopset_add(seen, u) <= 0) return false;
  if (is_product(u)) return true;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (has_product_below(u->src[i], start, realized, seen)) return true;
  return false;
}
static bool plan_has_product(plan *k, uopset *realized) {
  bool r = false;
  for (int i = 0; i < k->n && !r; i++) {
    uopset seen = {0};
    uop *v = stored_value(k->roots[i]);
    r = has_product_below(v, v, realized, &seen);
    uopset_free(&seen);
  }
  return r;
}

/* Whether a kernel's values read a buffer that w's assigns overwrite (the old value). */
static bool reads_assigned(plan *r, plan *w, uopset *realized) {
  uopset bufs = {0}, seen = {0};
  for (int k = 0; k < w->n; k++)
    if (w->roots[k]->op == OP_ASSIGN) uopset_put(&bufs, w->outs[k], (void *)1);
  bool bad = false;
  for (int k = 0; k < r->n && !bad && bufs.n; k++) {
    uop *v = stored_value(r->roots[k]); /* from its sources: r's roots are realized */
    for (uint32_t x = 0; x < v->nsrc && !bad; x++) bad = reads_any(v->src[x], &bufs, NULL, realized, &seen);
  }
  uopset_free(&bufs), uopset_free(&seen);
  return bad;
}

static bool can_merge(plan *a, plan *b, uopset *realized, uopset *assigned) {
  uop *ra = a->roots[0];
  if (a->n != 1 || ra->op == OP_COPY || b->roots[0]->op == OP_COPY) return false; /* copies are items of their own */
  /* two products in one kernel (attention's backward: p = exp(q k^T - lse) inside
   * ds = p (dO v^T - D)) leave it two reductions and no GEMM recipe, at half the speed
   * of each product in its own kernel: a product's producer stays apart from a reader
   * that has a product of its own */
  if (plan_has_product(a, realized) && plan_has_product(b, realized)) return false;
  /* the loops of both must fit one kernel (76 parameters' squared norms summed) */
  if (ra->op == OP_REDUCE && plan_reduce_axes(a, realized) + plan_reduce_axes(b, realized) > MAX_FUSED_REDUCE_AXES) return false;
  /* an assign into part of a buffer stores through its view, not at its reader's index */
  if (ra->op == OP_ASSIGN && !view_is_whole(ra->src[0])) return false;
  /* nor does an assign take in a producer that reads the buffer it overwrites: the read
   * would no longer run before the write (guard_assign), and the producer's other readers
   * that read the old value too (flash attention's running max, its new value read by the
   * sum's update with the old) could then run neither before nor after it */
  if (reads_assigned(a, b, realized)) return false;
  /* an assign (an optimizer's moment) runs inside its reader (the parameter's update) only
   * if the reader reads the overwritten buffer nowhere but through the assign itself
   * (element i would otherwise read a neighbour another thread has already replaced), and
   * if the assign reads no other assigned buffer's old value (the merged kernel could then
   * have to run both before and after another assign: BatchNorm's weight and bias) */
  if (ra->op == OP_ASSIGN) {
    uopset seen = {0};
    bool bad = reads_any(stored_value(ra), assigned, a->outs[0], realized, &seen);
    uopset_free(&seen);
    for (int k = 0; !bad && k < b->n; k++) { /* from the sources: b's roots are realized */
      uopset s2 = {0};
      uop *v = stored_value(b->roots[k]);
      for (uint32_t i = 0; i < v->nsrc && !bad; i++) bad = reads_node(v->src[i], a->outs[0], realized, &s2);
      uopset_free(&s2);
    }
    if (bad) return false;
  }
  uint8_t ax[UOP_MAX_DIMS];
  bool ok = true;
  void **saved = ir_malloc(sizeof(void *) * (size_t)(b->n + 1));
  if (!saved) return false;
  unrealize(a, b, realized, saved);
  for (int k = 0; k < b->n && ok; k++) {
    uop *rb = b->roots[k];
    /* an in-place update reads the buffer it replaces: never computed inside */
    ok = same_dims(rb->shape, rb->ndim, ra->shape, ra->ndim) && !(rb->op == OP_ASSIGN && b->outs[k] == a->outs[0]);
    memset(ax, AX_OUT, sizeof ax);
    same_ctx c = {realized, ra, rb->shape, rb->ndim, 100000, {0}};
    ok = ok && same_index(&c, stored_value(rb), ax);
    uopset_free(&c.reach);
  }
  rerealize(a, b, realized, saved);
  free(saved);
  return ok;
}

static bool plan_reads(plan *a, plan *b, uopset *realized) {
  void **saved = ir_malloc(sizeof(void *) * (size_t)(b->n + 1));
  if (!saved) return false;
  unrealize(a, b, realized, saved);
  bool r = false;
  for (int k = 0; k < b->n && !r; k++) {
    uopset seen = {0};
    r = reads_node(stored_value(b->roots[k]), a->roots[0], realized, &seen);
    uopset_free(&seen);
  }
  rerealize(a, b, realized, saved);
  free(saved);
  return r;
}

/* Whether merging ks[i] into an assign kernel ks[j] would leave a cycle: another reader
 * of ks[i] reads the old value of a buffer ks[j] overwrites, so it must run before ks[j]
 * and, reading ks[i]'s result, after it (flash attention's row max inside the running
 * max's assign, read by the rescale factor exp(m_old - m_new)). */
static bool others_read_old(plan *ks, int n, int i, int j, uopset *realized) {
  bool assigns = false;
  for (int k = 0; k < ks[j].n; k++) assigns |= ks[j].roots[k]->op == OP_ASSIGN;
  for (int k = i + 1; assigns && k < n; k++)
    if (k != j && plan_reads(&ks[i], &ks[k], realized) && reads_assigned(&ks[k], &ks[j], realized)) return true;
  return false;
}

static void merge_plans(plan *ks, int *n, uopset *realized, uop *const *outs, int nouts) {
  uopset assigned = {0}; /* buffers an assign of this schedule overwrites */
  for (int i = 0; i < *n; i++)
    for (int k = 0; k < ks[i].n; k++)
      if (ks[i].roots[k]->op == OP_ASSIGN) uopset_put(&assigned, ks[i].outs[k], (void *)1);
  for (int i = 0; i < *n; i++) {
    if (ks[i].n != 1) continue;
    for (int j = i + 1; j < *n; j++) {
      if (!plan_reads(&ks[i], &ks[j], realized)) continue;
      /* only the first reader may absorb it; the others read its buffer */
      if (can_merge(&ks[i], &ks[j], realized, &assigned) && !others_read_old(ks, *n, i, j, realized)) {
        /* read by no other kernel and asked for by no one: computed inside its reader,
         * never stored (a realized Winograd output whose only reader is the ReLU mask of
         * the gradient: a 38 MB write per CNN step for nothing) */
        bool dead = ks[i].roots[0]->op != OP_ASSIGN;
        for (int o = 0; o < nouts && dead; o++) dead = outs[o] != ks[i].roots[0];
        for (int k = j + 1; k < *n && dead; k++) dead = !plan_reads(&ks[i], &ks[k], realized);
        plan m = {0};
        plan_add(&m, ks[i].roots[0], ks[i].outs[0], dead);
        for (int k = 0; k < ks[j].n; k++) plan_add(&m, ks[j].roots[k], ks[j].outs[k], ks[j].dead[k]);
        plan_free(&ks[j]), plan_free(&ks[i]);
        ks[j] = m;
        memmove(&ks[i], &ks[i + 1], sizeof *ks * (size_t)(*n - i - 1));
        (*n)--, i--;
      }
      break;
    }
  }
  uopset_free(&assigned);
}

/* ---- a plan becomes an AST over slots ------------------------------------------------ */

typedef struct {
  uopset *realized;
  plan *k;
  uopset slot_of;   /* BUFFER -> slot + 1 */
  uopset memo;      /* node -> its form over slots */
  sched_kernel *out;
  int cap, capvars;
  uopset *old_reads; /* BUFFERs read as they were before this schedule */
  uopset *new_reads; /* realize points of this schedule read (their results) */
} slot_ctx;

/* A tensor-level var becomes var slot k of the kernel (k in the order first met). */
static uop *var_slot_for(slot_ctx *c, uop *v) {
  if (c->out->nvars == c->capvars) {
    uop **vs = ir_realloc(c->out->vars, sizeof(uop *) * (size_t)(c->capvars ? 2 * c->capvars : 4));
    if (!vs) return NULL; /* see grow */
    c->out->vars = vs, c->capvars = c->capvars ? 2 * c->capvars : 4;
  }
  int64_t arg[3] = {v->arg.v[0], v->arg.v[1], c->out->nvars};
  c->out->vars[c->out->nvars++] = v;
  return uop_new0(OP_DEFINE_VAR, v->dt, (uarg){.kind = ARG_VAR, .n = 3, .v = arg, .s = v->arg.s});
}

static uop *slot_for(slot_ctx *c, uop *buf) {
  uintptr_t s = (uintptr_t)uopset_get(&c->slot_of, buf);
  if (!s) {
    if (c->out->nbufs == c->cap) {
      uop **b = ir_realloc(c->out->bufs, sizeof(uop *) * (size_t)(c->cap ? 2 * c->cap : 8));
      if (!b) return NULL;
      c->out->bufs = b, c->cap = c->cap ? 2 * c->cap : 8;
    }
    c->out->bufs[c->out->nbufs++] = buf;
    s = (uintptr_t)c->out->nbufs;
    uopset_put(&c->slot_of, buf, (void *)s);
  }
  int64_t arg[2] = {(int64_t)s - 1, buf->arg.v[1]};
  return uop_new0(OP_DEFINE_GLOBAL, buf->dt, arg_ints(arg, 2));
}

/* An assign's target view over slots: the buffer its slot, a var its var slot; read by
 * no one (the value's reads of it are to_slots'), so no old read is recorded. */
static uop *target_slots(slot_ctx *c, uop *u) {
  if (u->op == OP_BUFFER) return slot_for(c, u);
  if (var_is_tensor(u)) return var_slot_for(c, u);
  if (u->nsrc == 0) return u;
  uop *src[2];
  CG_ASSERT(u->nsrc <= 2, "an assign target's view node with %u sources", u->nsrc);
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (!(src[i] = target_slots(c, u->src[i]))) return NULL;
  return uop_replace_src(u, src, (int)u->nsrc);
}

static bool is_root(plan *k, uop *u) {
  for (int i = 0; i < k->n; i++)
    if (k->roots[i] == u) return true;
  return false;
}

static uop *to_slots(slot_ctx *c, uop *u) {
  uop *r = uopset_get(&c->memo, u);
  if (r) return r;
  uop *b = uopset_get(c->realized, u);
  if (u->op == OP_BUFFER) r = slot_for(c, u), uopset_put(c->old_reads, u, u);
  else if (b && !is_root(c->k, u)) { /* a result: its buffer, or the part of it an assign wrote */
    r = u->op == OP_ASSIGN && !view_is_whole(u->src[0]) ? target_slots(c, u->src[0]) : view_reshape(slot_for(c, b), u->shape, u->ndim);
    uopset_put(c->new_reads, u, u);
  }
  else if (u->op == OP_ASSIGN) r = to_slots(c, u->src[1]);
  else if (u->op == OP_CONTIGUOUS || u->op == OP_DETACH) r = to_slots(c, u->src[0]);
  else if (var_is_tensor(u)) r = var_slot_for(c, u);
  else if (u->nsrc == 0) r = u;
  else {
    uop *src[UOP_MAX_DIMS + 4];
    CG_ASSERT(u->nsrc <= UOP_MAX_DIMS + 4, "a node with %u sources", u->nsrc);
    for (uint32_t i = 0; i < u->nsrc; i++) src[i] = to_slots(c, u->src[i]);
    r = uop_replace_src(u, src, (int)u->nsrc);
  }
  uopset_put(&c->memo, u, r);
  return r;
}

static void plan_to_kernel(plan *k, uopset *realized, uopset *staged, sched_kernel *out, uopset *old_reads, uopset *new_reads) {
  slot_ctx c = {.realized = realized, .k = k, .out = out, .old_reads = old_reads, .new_reads = new_reads};
  memset(out, 0, sizeof *out);
  out->copy_staged = uopset_get(staged, k->roots[0]) != NULL;
  for (int i = 0; i < k->n; i++)
    if (!k->dead[i]) slot_for(&c, k->outs[i]);
  out->nout = out->nbufs;
  uop **st = ir_malloc(sizeof(uop *) * (size_t)k->n);
  uop *last = stored_value(k->roots[k->n - 1]);
  int nst = 0;
  for (int i = 0; i < k->n && st; i++) {
    if (k->dead[i]) continue; /* computed inline where its reader reads it */
    uop *v = to_slots(&c, stored_value(k->roots[i]));
    if (v && !shape_eq(v->shape, v->ndim, last->shape, last->ndim)) v = view_reshape(v, last->shape, last->ndim); /* merged: same_dims */
    uop *tgt = slot_for(&c, k->outs[i]), *r = k->roots[i];
    if (r->op == OP_ASSIGN && !view_is_whole(r->src[0])) { /* into part of the buffer: through its view (lower.c) */
      tgt = target_slots(&c, r->src[0]);
      if (tgt && !shape_eq(tgt->shape, tgt->ndim, last->shape, last->ndim)) tgt = view_reshape(tgt, last->shape, last->ndim);
    }
    st[nst++] = uop_new2(OP_STORE, dt_void(), tgt, v);
  }
  /* its own target read where it is written (guard_assign) is no read of the old value
   * that must run before another assign of the buffer: two assigns to two parts of one
   * buffer, each reading its own part, are not a cycle */
  for (int i = 0; i < k->n; i++)
    if (k->roots[i]->op == OP_ASSIGN) uopset_del(old_reads, k->outs[i]);
  out->ast = st ? uop_new(OP_SINK, dt_void(), st, nst, arg_none()) : NULL;
  free(st);
  uopset_free(&c.slot_of);
  uopset_free(&c.memo);
}

/* ---- order: every kernel after the kernels whose results it reads, and before any
 * assign that overwrites a buffer it reads as it was (write after read: an optimizer step
 * realized with the loss and gradients that read the old weights). Among the kernels that
 * are free to run, the earliest in the dependency order first, so without assigns the
 * order is unchanged. */
static bool order_kernels(schedule *s, plan *ks, uopset *old_reads, uopset *new_reads) {
  int n = s->n;
  if (n < 2) return true;
  /* realize point -> kernel + 1; assigned BUFFER -> its first assign (an index into
   * `asg` + 1), each assign of a buffer linked to the next (several parts of one buffer) */
  uopset producer = {0}, assigner = {0};
  int nasg = 0;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < ks[i].n; k++) nasg += ks[i].roots[k]->op == OP_ASSIGN;
  struct { int kernel, next; } *asg = ir_malloc(sizeof *asg * (size_t)(nasg ? nasg : 1));
  int *last_of = asg ? ir_malloc(sizeof(int) * (size_t)(nasg ? nasg : 1)) : NULL, na = 0;
  int *indeg = last_of ? ir_calloc((size_t)n, sizeof *indeg) : NULL, *order = indeg ? ir_malloc(sizeof(int) * (size_t)n) : NULL, nedge = 0, cap = 0;
  int (*edge)[2] = NULL; /* before, after */
  bool *done = order ? ir_calloc((size_t)n, sizeof *done) : NULL;
  bool ok = done != NULL; /* false: out of memory (recorded; sched_build fails) */
#define EDGE(a, b)                                                                                   \
  do {                                                                                               \
    if (nedge == cap) {                                                                              \
      int(*ne)[2] = ok ? ir_realloc(edge, sizeof *edge * (size_t)(cap ? 2 * cap : 64)) : NULL;       \
      if (!ne) ok = false;                                                                           \
      else edge = ne, cap = cap ? 2 * cap : 64;                                                      \
    }                                                                                                \
    if (ok) edge[nedge][0] = (a), edge[nedge][1] = (b), indeg[(b)]++, nedge++;                       \
  } while (0)
  for (int i = 0; ok && i < n; i++)
    for (int k = 0; k < ks[i].n; k++) {
      uopset_put(&producer, ks[i].roots[k], (void *)(uintptr_t)(i + 1));
      if (ks[i].roots[k]->op != OP_ASSIGN) continue;
      /* assigns to one buffer (its parts) in the dependency order */
      asg[na].kernel = i, asg[na].next = -1;
      int first = (int)(uintptr_t)uopset_get(&assigner, ks[i].outs[k]) - 1;
      if (first < 0) uopset_put(&assigner, ks[i].outs[k], (void *)(uintptr_t)(na + 1)), last_of[na] = na;
      else {
        int prev = last_of[first];
        asg[prev].next = na, last_of[first] = na;
        if (asg[prev].kernel != i) EDGE(asg[prev].kernel, i);
      }
      na++;
    }
  for (int j = 0; ok && j < n; j++) {
    for (size_t e = 0; ok && e < new_reads[j].cap; e++) { /* results before their readers */
      uop *u = new_reads[j].keys[e];
      int i = u ? (int)(uintptr_t)uopset_get(&producer, u) - 1 : -1;
      if (i >= 0 && i != j) EDGE(i, j);
    }
    for (size_t e = 0; ok && e < old_reads[j].cap; e++) { /* readers of the old value before every assign of it */
      uop *u = old_reads[j].keys[e];
      for (int a = u ? (int)(uintptr_t)uopset_get(&assigner, u) - 1 : -1; ok && a >= 0; a = asg[a].next)
        if (asg[a].kernel != j) EDGE(j, asg[a].kernel);
    }
  }
#undef EDGE
  int placed = 0;
  while (ok && placed < n) {
    int pick = -1;
    for (int i = 0; i < n && pick < 0; i++)
      if (!done[i] && indeg[i] == 0) pick = i;
    if (pick < 0) break;
    done[pick] = true, order[placed++] = pick;
    for (int e = 0; e < nedge; e++)
      if (edge[e][0] == pick) indeg[edge[e][1]]--;
  }
  sched_kernel *k = ok ? ir_malloc(sizeof *k * (size_t)n) : NULL;
  if (ok && placed != n) cg_fail(CG_ERR_INVALID, "schedule: a kernel reads both the old and the new value of an assigned buffer (realize the assign first)");
  ok = ok && placed == n && k;
  if (ok) {
    for (int i = 0; i < n; i++) k[i] = s->k[order[i]];
    memcpy(s->k, k, sizeof *k * (size_t)n);
  }
  free(k);
  free(indeg), free(order), free(edge), free(done), free(asg), free(last_of);
  uopset_free(&producer), uopset_free(&assigner);
  return ok;
}

/* A custom-gradient node is worth its value (tensor/custom.h). realize drops them before
 * scheduling; a caller that schedules a tensor's graph itself (tests, benchmarks) may not. */
static uop *drop_custom(rw_match *m) { return m->root->src[0]; }
static const rw_rule custom_rules[] = {RULE("CUSTOM", drop_custom)};
static RULESET(rs_drop_custom, "schedule_drop_custom", custom_rules);

bool sched_build(uop *const *outs, int nouts, schedule *s) {
  sched_ctx c = {.nomem0 = uop_nomem_events()};
  size_t cap = 0;
  bool guard_failed = false;
  memset(s, 0, sizeof *s);
  for (int i = 0; i < nouts; i++)
    if (!outs[i]) return cg_fail(CG_NULL_INPUT, "schedule: output %d is NULL", i), false;
  for (int i = 0; i < nouts; i++) toposort(&c, outs[i], &cap);
  if (c.custom) {
    free(c.topo), uopset_free(&c.order), uopset_free(&c.uses);
    uop **o = ir_malloc(sizeof(uop *) * (size_t)(nouts ? nouts : 1));
    bool ok = o != NULL;
    for (int i = 0; ok && i < nouts; i++) ok = (o[i] = graph_rewrite(outs[i], &rs_drop_custom, NULL)) != NULL;
    if (!ok) cg_fail(CG_ERR_NOMEM, "out of memory while scheduling");
    ok = ok && sched_build(o, nouts, s);
    free(o);
    return ok;
  }
  /* the realize points; a costly value found shared by two kernels is realized and the
   * walk starts again with it a realize point from the start, so the kernels that were
   * walked through it (and the reductions they claimed below it) are decided anew */
  for (size_t pass = 0; !guard_failed; pass++) {
    size_t found = c.nshared;
    if (pass) {
      uopset_free(&c.realize), uopset_free(&c.fused_in), uopset_free(&c.ew_owner), uopset_free(&c.staged);
      c.nwork = 0;
    }
    for (int i = 0; i < nouts; i++)
      if (!plain_buffer(outs[i])) mark(&c, outs[i]);
    for (size_t i = 0; i < found; i++) mark(&c, c.shared[i]);
    for (size_t w = 0; w < c.nwork; w++) {
      uop *r = c.work[w];
      c.reduce_axes = r->op == OP_REDUCE ? r->arg.n - 1 : 0;
      visit(&c, r, r, C_DIRECT, 0);
      for (int k = 0; k < 4; k++) uopset_free(&c.walked[k]);
      if (r->op == OP_ASSIGN && view_store_base(r->src[0])) {
        uopset seen = {0};
        bool g = guard_assign(&c, r->src[1], r, true, &seen);
        uopset_free(&seen);
        if (!g) {
          guard_failed = true;
          break;
        }
      }
    }
    if (c.nshared == found || sched_failed(&c)) break;
  }
  /* kernels in dependency order */
  uop **pts = ir_malloc(sizeof(uop *) * (c.nwork ? c.nwork : 1));
  plan *ks = pts ? ir_calloc(c.nwork ? c.nwork : 1, sizeof *ks) : NULL;
  s->out_bufs = ks ? ir_calloc((size_t)(nouts ? nouts : 1), sizeof(uop *)) : NULL;
  uopset realized = {0};
  int nk = 0;
  bool ok = s->out_bufs && !sched_failed(&c) && !guard_failed;
  if (ok && c.nwork) memcpy(pts, c.work, sizeof(uop *) * c.nwork);
  for (size_t i = 1; i < c.nwork && ok; i++) /* insertion sort by topological position */
    for (size_t j = i; j > 0 && order_of(&c, pts[j]) < order_of(&c, pts[j - 1]); j--) {
      uop *t = pts[j];
      pts[j] = pts[j - 1], pts[j - 1] = t;
    }
  /* a result's buffer is on the device its inputs are on (once there are several) */
  for (size_t i = 0; i < c.nwork && ok; i++) {
    uop *p = pts[i], *buf;
    if (p->op == OP_ASSIGN) {
      buf = view_store_base(p->src[0]);
      if (!buf) {
        cg_fail(CG_ERR_INVALID, "assign: the target must be a realized buffer or a one-to-one view of one (reshape, shrink, permute, flip)");
        ok = false;
        break;
      }
    } else if (!(buf = buffer_new_on(rt_multi_device() ? graph_device(p) : NULL, p->dt, shape_numel(p->shape, p->ndim)))) {
      ok = false;
      break;
    }
    plan_add(&ks[nk++], p, buf, false);
    uopset_put(&realized, p, buf);
  }
  if (ok && !sched_failed(&c)) {
    merge_plans(ks, &nk, &realized, outs, nouts);
    s->k = ir_calloc((size_t)(nk ? nk : 1), sizeof *s->k);
    uopset *old_reads = s->k ? ir_calloc((size_t)(nk ? nk : 1), sizeof *old_reads) : NULL;
    uopset *new_reads = old_reads ? ir_calloc((size_t)(nk ? nk : 1), sizeof *new_reads) : NULL;
    if (new_reads) {
      for (int i = 0; i < nk; i++) plan_to_kernel(&ks[i], &realized, &c.staged, &s->k[s->n++], &old_reads[i], &new_reads[i]);
      ok = sched_failed(&c) || order_kernels(s, ks, old_reads, new_reads);
      for (int i = 0; i < nk; i++) uopset_free(&old_reads[i]), uopset_free(&new_reads[i]);
    }
    free(old_reads), free(new_reads);
  }
  if (sched_failed(&c)) ok = false; /* something above was skipped: fail as a whole */
  for (int i = 0; i < nouts && ok; i++) {
    uop *b = plain_buffer(outs[i]);
    s->out_bufs[i] = b ? b : uopset_get(&realized, outs[i]);
  }
  for (int i = 0; ks && i < nk; i++) plan_free(&ks[i]);
  free(ks);
  free(pts);
  free(c.topo);
  free(c.work);
  uopset_free(&c.order);
  uopset_free(&c.uses);
  uopset_free(&c.realize);
  uopset_free(&c.fused_in);
  uopset_free(&c.staged);
  uopset_free(&c.ew_cost), uopset_free(&c.ew_owner), uopset_free(&c.ew_shared);
  free(c.shared);
  uopset_free(&realized);
  if (!ok) {
    if (sched_failed(&c) && cg_last_status() != CG_ERR_NOMEM) cg_fail(CG_ERR_NOMEM, "out of memory while scheduling");
    sched_free(s);
  }
  return ok;
}

bool sched_copy_of(const sched_kernel *k, int64_t *off) {
  uop *v = k->ast && k->ast->nsrc == 1 ? k->ast->src[0]->src[1] : NULL, *leaf;
  if (!v || v->op != OP_COPY) return false;
  *off = 0;
  bool range = copy_range(v->src[0], &leaf, off);
  CG_ASSERT(range && leaf->op == OP_DEFINE_GLOBAL, "a copy item reads a %s, not a range of a buffer", op_name(leaf->op));
  return true;
}

void sched_free(schedule *s) {
  for (int i = 0; i < s->n; i++) free(s->k[i].bufs), free(s->k[i].vars);
  free(s->k);
  free(s->out_bufs);
  memset(s, 0, sizeof *s);
}
