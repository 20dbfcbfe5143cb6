/* Realize points and the kernel list (see schedule.h). */
#include "schedule.h"
#include "tensor/tensor.h"
#include "uop/rewrite.h"
#include "uop/uopset.h"
#include <string.h>

typedef struct {
  uop **topo;         /* nodes below the outputs, sources first */
  size_t ntopo;
  uopset order;       /* node -> 1 + topo index */
  uopset uses;        /* node -> number of consumers */
  uopset realize;     /* node -> 1 when it gets its own buffer */
  uop **work;         /* realize points to visit */
  size_t nwork, capwork;
} sched_ctx;

static void grow(void ***arr, size_t n, size_t *cap) {
  if (n < *cap) return;
  *cap = *cap ? *cap * 2 : 64;
  *arr = realloc(*arr, *cap * sizeof(void *));
  CG_ASSERT(*arr, "out of memory");
}

static void toposort(sched_ctx *c, uop *u, size_t *cap) {
  if (uopset_get(&c->order, u)) return;
  uopset_put(&c->order, u, (void *)(uintptr_t)-1); /* in progress */
  if (u->op != OP_BUFFER)
    for (uint32_t i = 0; i < u->nsrc; i++) {
      uop *s = u->src[i];
      uopset_put(&c->uses, s, (void *)((uintptr_t)uopset_get(&c->uses, s) + 1));
      toposort(c, s, cap);
    }
  grow((void ***)&c->topo, c->ntopo, cap);
  c->topo[c->ntopo++] = u;
  uopset_put(&c->order, u, (void *)(uintptr_t)c->ntopo);
}

static void mark(sched_ctx *c, uop *u) {
  if (uopset_get(&c->realize, u)) return;
  uopset_put(&c->realize, u, (void *)1);
  grow((void ***)&c->work, c->nwork, &c->capwork);
  c->work[c->nwork++] = u;
}

/* C_DIRECT: computed once per output element; C_REDUCE: inside a reduction, over its
 * axes; C_OTHER: repeated through a broadcast; C_OTHER_R: repeated through a broadcast or a
 * window inside a reduction. */
enum { C_DIRECT, C_REDUCE, C_OTHER, C_OTHER_R };

/* Walk what kernel `root` computes, deciding which reductions it cannot hold. `axes` is
 * the mask of axes reduced by the enclosing reduction (C_REDUCE). */
static void visit(sched_ctx *c, uop *u, uop *root, int ctx, uint32_t axes) {
  if (u->op == OP_BUFFER || u->op == OP_CONST || u->op == OP_DEFINE_VAR) return;
  if (u != root && uopset_get(&c->realize, u)) return;
  if (u != root && (u->op == OP_CONTIGUOUS || u->op == OP_ASSIGN)) {
    mark(c, u);
    return;
  }
  /* computed values reached through a broadcast or window inside a reduction would be
   * recomputed for every use of every element (a convolution's input): give them a buffer */
  if (u != root && ctx == C_OTHER_R && op_is_alu(u->op) && !(u->op == OP_CAST && u->src[0]->op != OP_REDUCE && !op_is_alu(u->src[0]->op))) {
    mark(c, u);
    return;
  }
  if (u->op == OP_REDUCE && u != root) {
    if ((uintptr_t)uopset_get(&c->uses, u) > 1 || ctx == C_OTHER || ctx == C_OTHER_R) {
      mark(c, u);
      return;
    }
  }
  if (u->op == OP_REDUCE) {
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
    visit(c, u->src[0], root, ctx == C_DIRECT ? C_DIRECT : (ctx == C_REDUCE || ctx == C_OTHER_R) ? C_OTHER_R : C_OTHER, 0);
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) visit(c, u->src[i], root, ctx, axes);
}

/* An output that is only a reshape of a buffer needs no kernel. */
static uop *plain_buffer(uop *u) {
  if (u->op == OP_RESHAPE) u = u->src[0];
  return u->op == OP_BUFFER ? u : NULL;
}

static uintptr_t order_of(sched_ctx *c, uop *u) { return (uintptr_t)uopset_get(&c->order, u); }

static void collect_bufs(uop *ast, sched_kernel *k) {
  /* outputs (the stored buffers) first, then inputs in the order they are first met */
  uopset seen = {0};
  uop **stack = NULL; /* grows: wide ASTs (an ONNX pool is one view per kernel offset) */
  size_t n = 0, cap = 8, scap = 0;
  free(k->bufs);
  k->bufs = malloc(sizeof(uop *) * cap);
  CG_ASSERT(k->bufs, "out of memory");
  k->nbufs = 0;
  for (uint32_t i = 0; i < ast->nsrc; i++) {
    uop *b = ast->src[i]->src[0]->src[0];
    if (!uopset_add(&seen, b)) continue;
    grow((void ***)&k->bufs, (size_t)k->nbufs, &cap);
    k->bufs[k->nbufs++] = b;
  }
  k->nout = k->nbufs;
  grow((void ***)&stack, n, &scap);
  stack[n++] = ast;
  uopset visited = {0};
  while (n) {
    uop *u = stack[--n];
    if (!uopset_add(&visited, u)) continue;
    if (u->op == OP_BUFFER) {
      if (uopset_add(&seen, u)) {
        grow((void ***)&k->bufs, (size_t)k->nbufs, &cap);
        k->bufs[k->nbufs++] = u;
      }
      continue;
    }
    for (int i = (int)u->nsrc - 1; i >= 0; i--) {
      grow((void ***)&stack, n, &scap);
      stack[n++] = u->src[i];
    }
  }
  free(stack);
  uopset_free(&seen);
  uopset_free(&visited);
}

/* ---- merging: a kernel whose only job is to feed another at the same index runs inside
 * it (softmax's max inside its sum): B computes A's value where it loaded it, and stores
 * A's buffer too. */

typedef struct { uop *buf, *idx, *val; } subst_ctx;
static uop *subst_load(rw_match *m) {
  subst_ctx *c = m->ctx;
  return B(b) == c->buf && B(i) == c->idx ? c->val : NULL;
}
static const rw_rule subst_rules[] = {RULE("(LOAD (INDEX b:BUFFER i))", subst_load)};
static RULESET(rs_subst_load, "merge_kernels", subst_rules);

/* Whether every read of buf in u is an ungated load at exactly idx. */
static bool reads_only_at(uop *u, uop *buf, uop *idx, uopset *seen, bool *any) {
  if (!uopset_add(seen, u)) return true;
  if (u->op == OP_INDEX && u->src[0] == buf) {
    *any = true;
    return u->nsrc == 2 && u->src[1] == idx;
  }
  if (u->op == OP_BUFFER) return true;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (!reads_only_at(u->src[i], buf, idx, seen, any)) return false;
  return true;
}

static bool kernel_reads(sched_kernel *k, uop *buf) {
  for (int i = k->nout; i < k->nbufs; i++)
    if (k->bufs[i] == buf) return true;
  return false;
}

static void merge_kernels(schedule *s) {
  for (bool again = true; again;) {
    again = false;
    for (int i = 0; i < s->n && !again; i++) {
      sched_kernel *a = &s->k[i];
      if (a->ast->nsrc != 1) continue;
      uop *st = a->ast->src[0], *abuf = st->src[0]->src[0], *aidx = st->src[0]->src[1];
      for (int j = i + 1; j < s->n; j++) {
        sched_kernel *b = &s->k[j];
        if (!kernel_reads(b, abuf)) continue;
        uop *bidx = b->ast->src[0]->src[0]->src[1];
        uopset seen = {0}, seen_a = {0};
        bool any = false, any_a = false, only = bidx == aidx && reads_only_at(b->ast, abuf, aidx, &seen, &any);
        /* a kernel that reads its own output (an in-place update) stays separate: its value
         * would read the buffer it replaces */
        if (only) reads_only_at(st->src[1], abuf, aidx, &seen_a, &any_a);
        only = only && !any_a;
        uopset_free(&seen);
        uopset_free(&seen_a);
        if (only) {
          subst_ctx c = {abuf, aidx, st->src[1]};
          uop *body = graph_rewrite(b->ast, &rs_subst_load, &c);
          uop *srcs[64];
          int n = 0;
          srcs[n++] = st;
          for (uint32_t k = 0; k < body->nsrc && n < 64; k++) srcs[n++] = body->src[k];
          b->ast = uop_new(OP_SINK, dt_void(), srcs, n, arg_none());
          collect_bufs(b->ast, b);
          free(a->bufs);
          memmove(&s->k[i], &s->k[i + 1], sizeof *s->k * (size_t)(s->n - i - 1));
          s->n--;
          again = true;
        }
        break; /* only the first reader of a's buffer may absorb it */
      }
    }
  }
}

bool sched_build(uop *const *outs, int nouts, schedule *s) {
  sched_ctx c = {0};
  size_t cap = 0;
  memset(s, 0, sizeof *s);
  for (int i = 0; i < nouts; i++) toposort(&c, outs[i], &cap);
  for (int i = 0; i < nouts; i++)
    if (!plain_buffer(outs[i])) mark(&c, outs[i]);
  for (size_t w = 0; w < c.nwork; w++) visit(&c, c.work[w], c.work[w], C_DIRECT, 0);
  /* kernels in dependency order */
  uop **pts = malloc(sizeof(uop *) * (c.nwork ? c.nwork : 1));
  CG_ASSERT(pts, "out of memory");
  if (c.nwork) memcpy(pts, c.work, sizeof(uop *) * c.nwork);
  for (size_t i = 1; i < c.nwork; i++) /* insertion sort by topological position */
    for (size_t j = i; j > 0 && order_of(&c, pts[j]) < order_of(&c, pts[j - 1]); j--) {
      uop *t = pts[j];
      pts[j] = pts[j - 1], pts[j - 1] = t;
    }
  uopset realized = {0};
  int next_axis = 100;
  s->k = calloc(c.nwork ? c.nwork : 1, sizeof *s->k);
  s->out_bufs = calloc((size_t)nouts, sizeof(uop *));
  CG_ASSERT(s->k && s->out_bufs, "out of memory");
  bool ok = true;
  for (size_t i = 0; i < c.nwork && ok; i++) {
    uop *p = pts[i], *buf;
    if (p->op == OP_ASSIGN) {
      buf = plain_buffer(p->src[0]);
      if (!buf) {
        cg_fail(CG_ERR_INVALID, "assign: the target must be a realized, contiguous tensor");
        ok = false;
        break;
      }
    } else {
      buf = buffer_new(p->dt, shape_numel(p->shape, p->ndim));
    }
    sched_kernel *k = &s->k[s->n++];
    k->ast = lower_kernel(p, buf, &realized, &k->global, &next_axis, k->opts, sizeof k->opts);
    collect_bufs(k->ast, k);
    uopset_put(&realized, p, buf);
  }
  if (ok) merge_kernels(s);
  for (int i = 0; i < nouts; i++) {
    uop *b = plain_buffer(outs[i]);
    s->out_bufs[i] = b ? b : uopset_get(&realized, outs[i]);
  }
  free(pts);
  free(c.topo);
  free(c.work);
  uopset_free(&c.order);
  uopset_free(&c.uses);
  uopset_free(&c.realize);
  uopset_free(&realized);
  if (!ok) sched_free(s);
  return ok;
}

void sched_free(schedule *s) {
  for (int i = 0; i < s->n; i++) free(s->k[i].bufs);
  free(s->k);
  free(s->out_bufs);
  memset(s, 0, sizeof *s);
}
