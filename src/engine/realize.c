/* realize: schedule -> (per kernel) render -> compile (cached) -> run, in order; then the
 * tensors point at their buffers.
 *
 *   outputs ─► split big reductions ─► sched_build ─► render_c ─► dev->compile ─► launch
 *
 * Intermediate buffers go back to the allocator right after their last reader runs, so
 * kernels later in the schedule reuse their memory (the LRU allocator hands the same
 * block to the next request of that size). DEBUG=1 prints a line per kernel run, 2 adds
 * the schedule and memory, 3 each kernel's AST, 4 the generated source. */
#include "core/config.h"
#include "renderer/render.h"
#include "runtime/alloc.h"
#include "runtime/hash128.h"
#include "runtime/threadpool.h"
#include <pthread.h>
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include "uop/rewrite.h"
#include "uop/uopset.h"
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

static cg_stats stats;
cg_stats cg_get_stats(void) {
  cg_stats s = stats;
  const rt_stats *r = rt_get_stats();
  s.kernels_compiled = (uint64_t)r->compiled;
  s.kernels_cached = (uint64_t)r->disk_hits;
  return s;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- big reductions run in two stages, so they use every core ---------------------- */

static uop *split_reduce(rw_match *m) {
  uop *r = m->root, *x = r->src[0];
  if (r->arg.kind != ARG_INTS || r->ndim < 0 || x->ndim < 0) return NULL;
  int64_t out = shape_numel(r->shape, r->ndim), red = shape_numel(x->shape, x->ndim) / (out ? out : 1);
  if (out > 64 || red < 32768) return NULL;
  int64_t f = 0;
  for (int64_t c = 256; c >= 8 && !f; c--)
    if (red % c == 0 && red / c >= 1024) f = c;
  if (!f) return NULL;
  /* (kept..., reduced...) -> (kept, f, red/f) -> sum last -> contiguous -> sum f */
  int nd = x->ndim;
  bool reduced[UOP_MAX_DIMS] = {0};
  for (int i = 1; i < r->arg.n; i++) reduced[r->arg.v[i]] = true;
  int64_t perm[UOP_MAX_DIMS];
  int np = 0;
  for (int i = 0; i < nd; i++)
    if (!reduced[i]) perm[np++] = i;
  for (int i = 0; i < nd; i++)
    if (reduced[i]) perm[np++] = i;
  uop *y = view_permute(x, perm);
  int64_t s3[3] = {out, f, red / f};
  y = view_reshape(y, s3, 3);
  int ax2 = 2, ax1 = 1;
  uop *part = reduce_uop(y, (int)r->arg.v[0], &ax2, 1);
  part = uop_new1(OP_CONTIGUOUS, part->dt, part, arg_none());
  uop *tot = reduce_uop(part, (int)r->arg.v[0], &ax1, 1);
  return view_reshape(tot, r->shape, r->ndim);
}
/* ---- assigns run once: an ASSIGN node a later graph still refers to (a tensor built
 * from a pending update) is its target buffer once it has been realized ------------- */

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static uopset done_assigns;
static void forget_assign(uop *u) { /* free hook: runs under the intern lock */
  pthread_mutex_lock(&done_lock);
  uopset_del(&done_assigns, u);
  pthread_mutex_unlock(&done_lock);
}
static uop *done_assign(rw_match *m) {
  pthread_mutex_lock(&done_lock);
  bool done = uopset_get(&done_assigns, m->root) != NULL;
  pthread_mutex_unlock(&done_lock);
  return done ? m->root->src[0] : NULL;
}
static void mark_assigns(uop *u, uopset *seen) {
  if (!uopset_add(seen, u) || u->op == OP_BUFFER) return;
  if (u->op == OP_ASSIGN) {
    pthread_mutex_lock(&done_lock);
    uopset_put(&done_assigns, u, (void *)1);
    pthread_mutex_unlock(&done_lock);
  }
  for (uint32_t i = 0; i < u->nsrc; i++) mark_assigns(u->src[i], seen);
}

/* a custom-gradient node is worth its value (tensor/custom.h) */
static uop *drop_custom(rw_match *m) { return m->root->src[0]; }

static const rw_rule split_rules[] = {
    RULE("CUSTOM", drop_custom),
    RULE("ASSIGN", done_assign),
    RULE("(REDUCE x)", split_reduce),
};
static RULESET(rs_split_reduce, "before_schedule", split_rules);

/* ---- loaded programs, kept for the process: a kernel is compiled (or loaded from disk)
 * once, then every realize that renders the same source launches it directly ---------- */

typedef struct prog_entry {
  uint64_t key[2];
  rt_device *dev;
  rt_program *p;
  struct prog_entry *next;
} prog_entry;
static prog_entry *progs[1024];
static pthread_mutex_t prog_lock = PTHREAD_MUTEX_INITIALIZER;

static rt_program *get_program(rt_device *dev, const char *name, const char *src) {
  uint64_t key[2] = {0, 0}; /* the hash chains from its seed */
  rt_hash128_str(src, key);
  pthread_mutex_lock(&prog_lock);
  prog_entry **slot = &progs[key[0] & 1023];
  for (prog_entry *e = *slot; e; e = e->next)
    if (e->key[0] == key[0] && e->key[1] == key[1] && e->dev == dev) {
      pthread_mutex_unlock(&prog_lock);
      return e->p;
    }
  pthread_mutex_unlock(&prog_lock);
  rt_program *p = dev->compile(name, src);
  if (!p) return NULL;
  prog_entry *e = malloc(sizeof *e);
  if (!e) return p; /* still usable, just not kept */
  e->key[0] = key[0], e->key[1] = key[1], e->dev = dev, e->p = p;
  pthread_mutex_lock(&prog_lock);
  e->next = *slot;
  *slot = e;
  pthread_mutex_unlock(&prog_lock);
  return p;
}

/* ---- running ------------------------------------------------------------------------ */

/* Floating-point ops a kernel does: each float ALU node times the trips of the loops it
 * sits in (the ranges it depends on, less those its reductions close). For DEBUG lines. */
typedef struct { uopset mask; uop *rng[64]; int nr; } flop_ctx;
static uint64_t range_mask(flop_ctx *c, uop *u) {
  uintptr_t m = (uintptr_t)uopset_get(&c->mask, u);
  if (m) return (uint64_t)(m - 1);
  uint64_t d = 0;
  if (u->op == OP_RANGE) {
    int i = 0;
    while (i < c->nr && c->rng[i] != u) i++;
    if (i == c->nr && c->nr < 64) c->rng[c->nr++] = u;
    d = i < 64 ? 1ull << i : 0;
  } else if (u->op != OP_BUFFER) {
    for (uint32_t i = 0; i < u->nsrc; i++) d |= range_mask(c, u->src[i]);
  }
  uopset_put(&c->mask, u, (void *)(uintptr_t)(d + 1));
  return d;
}
static double kernel_flops(sched_kernel *k) {
  flop_ctx c = {0};
  double flops = 0;
  uopset seen = {0};
  uop *stack[4096];
  int n = 0;
  stack[n++] = k->ast;
  while (n) {
    uop *u = stack[--n];
    if (!uopset_add(&seen, u) || u->op == OP_BUFFER) continue;
    if ((op_is_alu(u->op) || u->op == OP_REDUCE) && dt_is_float(u->dt)) {
      uint64_t m = range_mask(&c, u);
      double trips = 1;
      for (int i = 0; i < c.nr; i++)
        if (m >> i & 1) trips *= (double)c.rng[i]->src[0]->arg.i;
      flops += trips;
    }
    for (uint32_t i = 0; i < u->nsrc && n < 4096; i++) stack[n++] = u->src[i];
  }
  uopset_free(&seen);
  uopset_free(&c.mask);
  return flops;
}

static void kernel_name(sched_kernel *k, char *out, size_t n) {
  uop *st = k->ast->src[0];
  bool red = false;
  uop *stack[2048];
  int sp = 0;
  stack[sp++] = st;
  for (int guard = 0; sp && guard < 100000 && !red; guard++) {
    uop *u = stack[--sp];
    if (u->op == OP_REDUCE) red = true;
    if (u->op != OP_BUFFER)
      for (uint32_t i = 0; i < u->nsrc && sp < 2048; i++) stack[sp++] = u->src[i];
  }
  int64_t numel = 0;
  uop *b = k->bufs[0];
  numel = b->arg.v[1];
  snprintf(out, n, "%s_%" PRId64 "_%d", red ? "r" : "E", numel, k->nbufs);
}

cg_status realize_uops(uop *const *outs, int n, uop **views) {
  double t0 = now();
  uop *pre[64];
  CG_ASSERT(n <= 64, "realize more than 64 tensors at once");
  for (int i = 0; i < n; i++) pre[i] = graph_rewrite(outs[i], &rs_split_reduce, NULL);
  schedule s;
  if (!sched_build(pre, n, &s)) return cg_last_status();
  stats.schedules++;
  stats.last_threads = 0;
  const rt_stats *rs = rt_get_stats();
  int64_t compiled0 = rs->compiled, disk0 = rs->disk_hits;
  int dbg = cfg_debug();
  rt_device *dev = rt_get_device("CPU");
  if (dbg >= 2) fprintf(stderr, "*** schedule: %d kernel%s for %d output%s (%.2f ms)\n", s.n, s.n == 1 ? "" : "s", n, n == 1 ? "" : "s", 1e3 * (now() - t0));
  /* intermediates (written here, not asked for) go back to the allocator after their
   * last reader: that is the memory plan, the LRU allocator reuses the blocks */
  uopset last_read = {0}, is_out = {0};
  for (int i = 0; i < n; i++) uopset_add(&is_out, s.out_bufs[i]);
  for (int ki = 0; ki < s.n; ki++)
    for (int i = s.k[ki].nout; i < s.k[ki].nbufs; i++) uopset_put(&last_read, s.k[ki].bufs[i], (void *)(intptr_t)(ki + 1));
  cg_status st = CG_OK;
  for (int ki = 0; ki < s.n && st == CG_OK; ki++) {
    sched_kernel *k = &s.k[ki];
    int64_t out_elems = 0;
    for (int i = 0; i < k->nout; i++) out_elems += k->bufs[i]->arg.v[1];
    if (out_elems == 0) { /* an empty output: nothing to compute (its index math may divide by 0) */
      for (int i = 0; i < k->nout && st == CG_OK; i++) st = buffer_alloc(k->bufs[i]);
      continue;
    }
    char name[64];
    kernel_name(k, name, sizeof name);
    if (dbg >= 3) {
      fprintf(stderr, "--- kernel %d: %s  (opts: %s; threads split a range of %lld)\n", ki, name, k->opts, (long long)k->global);
      uop_print(stderr, k->ast);
    }
    char *src = render_c(name, k->ast, k->bufs, k->nbufs, k->nout);
    if (dbg >= 4) fprintf(stderr, "%s\n", src);
    rt_program *p = get_program(dev, name, src);
    free(src);
    if (!p) {
      st = cg_last_status();
      break;
    }
    void *ptrs[256];
    CG_ASSERT(k->nbufs <= 256, "a kernel with more than 256 buffers");
    for (int i = 0; i < k->nbufs && st == CG_OK; i++) {
      st = buffer_alloc(k->bufs[i]);
      ptrs[i] = buffer_of(k->bufs[i])->ptr;
    }
    if (st == CG_OK) {
      double t1 = now();
      st = dev->launch(p, ptrs, NULL, k->global);
      dev->synchronize();
      double dt = now() - t1;
      stats.kernels_run++;
      uint64_t th = (uint64_t)(k->global < rt_pool_size() ? k->global : rt_pool_size());
      if (th > stats.last_threads) stats.last_threads = th;
      if (dbg >= 1) {
        double bytes = 0;
        for (int i = 0; i < k->nbufs; i++) bytes += (double)buffer_of(k->bufs[i])->nbytes;
        fprintf(stderr, "  %-24s %9.3f ms  %8.2f GFLOP/s  %7.2f GB/s  (%d buffers)\n", name, 1e3 * dt, kernel_flops(k) / dt * 1e-9,
                bytes / dt * 1e-9, k->nbufs);
      }
    }
    for (int i = k->nout; i < k->nbufs; i++) {
      uop *b = k->bufs[i];
      bool mine = false;
      for (int kj = 0; kj < ki && !mine; kj++)
        for (int o = 0; o < s.k[kj].nout; o++) mine |= s.k[kj].bufs[o] == b;
      if (mine && !uopset_get(&is_out, b) && (intptr_t)uopset_get(&last_read, b) == ki + 1) buffer_release_memory(b);
    }
  }
  uopset_free(&last_read);
  uopset_free(&is_out);
  if (st == CG_OK) {
    for (int i = 0; i < n; i++) views[i] = view_reshape(s.out_bufs[i], outs[i]->shape, outs[i]->ndim);
    uop_set_free_hook(OP_ASSIGN, forget_assign);
    uopset seen = {0};
    for (int i = 0; i < n; i++) mark_assigns(pre[i], &seen);
    uopset_free(&seen);
  }
  if (dbg >= 2) {
    rt_alloc_stats a = rt_lru_stats(dev->allocator);
    fprintf(stderr, "*** realized in %.2f ms: compiled %lld kernels, %lld loaded from the disk cache; memory in use %.1f MB, cached %.1f MB, peak %.1f MB\n",
            1e3 * (now() - t0), (long long)(rs->compiled - compiled0), (long long)(rs->disk_hits - disk0), (double)a.in_use / 1e6,
            (double)a.cached / 1e6, (double)a.peak / 1e6);
  }
  sched_free(&s);
  return st;
}

cg_status cg_realize_many(cg_tensor *const *ts, int n) {
  uop *outs[64], *views[64];
  if (n > 64) return cg_fail(CG_ERR_INVALID, "realize: at most 64 tensors at once, got %d", n);
  int m = 0;
  for (int i = 0; i < n; i++)
    if (!ts[i]) return cg_fail(CG_ERR_INVALID, "realize: tensor %d is NULL", i);
  uop_pool_push();
  for (int i = 0; i < n; i++) {
    /* two tensors with one graph (two cg_zeros of a shape) must not share a buffer: an
     * in-place update of one would change the other */
    uop *u = ts[i]->u;
    for (int j = 0; j < m; j++)
      if (outs[j] == u && u->op != OP_BUFFER && u->op != OP_ASSIGN && !(u->op == OP_RESHAPE && u->src[0]->op == OP_BUFFER))
        u = uop_new1(OP_CONTIGUOUS, u->dt, u, arg_none());
    outs[m++] = u;
  }
  cg_status st = realize_uops(outs, m, views);
  if (st == CG_OK)
    for (int i = 0; i < n; i++) {
      uop *old = ts[i]->u;
      ts[i]->u = uop_retain(views[i]);
      uop_release(old);
    }
  uop_pool_pop();
  return st;
}

cg_status cg_realize(cg_tensor *t) { return cg_realize_many(&t, 1); }
