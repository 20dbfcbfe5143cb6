/* Realize points and the kernel list (see schedule.h). */
#include "schedule.h"
#include "tensor/tensor.h"
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

enum { C_DIRECT, C_REDUCE, C_OTHER };

/* Walk what kernel `root` computes, deciding which reductions it cannot hold. `axes` is
 * the mask of axes reduced by the enclosing reduction (C_REDUCE). */
static void visit(sched_ctx *c, uop *u, uop *root, int ctx, uint32_t axes) {
  if (u->op == OP_BUFFER || u->op == OP_CONST || u->op == OP_DEFINE_VAR) return;
  if (u != root && uopset_get(&c->realize, u)) return;
  if (u != root && (u->op == OP_CONTIGUOUS || u->op == OP_ASSIGN)) {
    mark(c, u);
    return;
  }
  if (u->op == OP_REDUCE && u != root) {
    if ((uintptr_t)uopset_get(&c->uses, u) > 1 || ctx == C_OTHER) {
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
    int next = ctx == C_REDUCE && (e & ~axes) == 0 ? C_DIRECT : C_OTHER;
    visit(c, u->src[0], root, next, 0);
    return;
  }
  if (op_is_movement(u->op)) {
    visit(c, u->src[0], root, ctx == C_DIRECT ? C_DIRECT : C_OTHER, 0);
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

static void collect_bufs(uop *ast, uop *out, sched_kernel *k) {
  /* outputs first, then inputs in the order they are first met */
  uopset seen = {0};
  uop *stack[4096];
  size_t n = 0, cap = 8;
  k->bufs = malloc(sizeof(uop *) * cap);
  CG_ASSERT(k->bufs, "out of memory");
  k->bufs[0] = out;
  k->nbufs = 1;
  k->nout = 1;
  uopset_add(&seen, out);
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
      CG_ASSERT(n < 4096, "kernel AST too deep to scan");
      stack[n++] = u->src[i];
    }
  }
  uopset_free(&seen);
  uopset_free(&visited);
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
  memcpy(pts, c.work, sizeof(uop *) * c.nwork);
  for (size_t i = 1; i < c.nwork; i++) /* insertion sort by topological position */
    for (size_t j = i; j > 0 && order_of(&c, pts[j]) < order_of(&c, pts[j - 1]); j--) {
      uop *t = pts[j];
      pts[j] = pts[j - 1], pts[j - 1] = t;
    }
  uopset realized = {0};
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
    k->ast = lower_kernel(p, buf, &realized, &k->global);
    collect_bufs(k->ast, buf, k);
    uopset_put(&realized, p, buf);
  }
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
