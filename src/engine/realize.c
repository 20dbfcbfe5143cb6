/* realize: schedule -> (per kernel) codegen + compile, cached by the kernel's AST ->
 * run, in order; then the outputs are views of their buffers.
 *
 *   outputs ─► split big reductions ─► sched_build ─► program cache ─hit──────► launch
 *                                                        │ miss                ▲
 *                                                        ▼                     │
 *                                  codegen (lower, opt, linearize, render) ─► dev->compile
 *
 * Intermediate buffers go back to the allocator right after their last reader runs, so
 * kernels later in the schedule reuse their memory (the LRU allocator hands the same
 * block to the next request of that size). DEBUG=1 prints a line per kernel run, 2 adds
 * the schedule and memory, 3 each kernel's AST, 4 the generated source. */
#include "core/config.h"
#include "realize.h"
#include "capture.h"
#include "programs.h"
#include "copy.h"
#include "sched_cache.h"
#include "queue.h"
#include "run_kernel.h"
#include "codegen/codegen.h"
#include "renderer/render.h"
#include "runtime/alloc.h"
#include "runtime/buffer.h"
#include "runtime/threadpool.h"
#include "runtime/var.h"
#include "schedule/schedule.h"
#include "uop/rewrite.h"
#include "uop/uopset.h"
#include "uop/view.h"
#include <pthread.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <time.h>

/* Counters are atomic (realize runs on any thread); last_threads is the calling thread's. */
static cg_stats stats;
static _Thread_local uint64_t last_threads, last_max_buffer;
static _Thread_local realize_observer observer; /* for the next realize (realize_observe_next) */
static void (*progress_hook)(void);
void realize_observe_next(const realize_observer *o) { observer = o ? *o : (realize_observer){0}; }
void realize_set_progress(void (*fn)(void)) { __atomic_store_n(&progress_hook, fn, __ATOMIC_RELEASE); }
void realize_progress(void) {
  void (*fn)(void) = __atomic_load_n(&progress_hook, __ATOMIC_ACQUIRE);
  if (fn) fn();
}
#define STAT_ADD(field) __atomic_fetch_add(&stats.field, 1, __ATOMIC_RELAXED)
#define RT_STAT(field) __atomic_load_n(&rt_get_stats()->field, __ATOMIC_RELAXED)
cg_stats cg_get_stats(void) {
  cg_stats s = {.kernels_run = __atomic_load_n(&stats.kernels_run, __ATOMIC_RELAXED),
                .kernels_compiled = (uint64_t)RT_STAT(compiled),
                .kernels_cached = (uint64_t)RT_STAT(disk_hits),
                .schedules = __atomic_load_n(&stats.schedules, __ATOMIC_RELAXED),
                .schedule_hits = __atomic_load_n(&stats.schedule_hits, __ATOMIC_RELAXED),
                .last_threads = last_threads,
                .last_max_buffer = last_max_buffer};
  return s;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
/* A kernel's time for DEBUG lines: wall clock, or with DEBUG_CPUTIME=1 this thread's CPU
 * time (with CG_THREADS=1 the kernel runs here: a per-kernel figure that other processes
 * on the cores change little; bench/bench_x86.sh) */
static double kernel_now(void) {
  if (!cfg_int("DEBUG_CPUTIME", 0)) return now();
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- big reductions run in two stages, so they use every core ---------------------- */

static uop *split_reduce(rw_match *m) {
  uop *r = m->root, *x = r->src[0];
  if (r->arg.kind != ARG_INTS || r->ndim < 0 || x->ndim < 0) return NULL;
  int64_t out = shape_numel(r->shape, r->ndim), red = shape_numel(x->shape, x->ndim) / (out ? out : 1);
  if (out > 64 || red < 32768) return NULL;
  int nd = x->ndim;
  bool reduced[UOP_MAX_DIMS] = {0};
  for (int i = 1; i < r->arg.n; i++) reduced[r->arg.v[i]] = true;
  /* split at a boundary between reduced dims where one leaves partials of 64+ elements:
   * each partial then reads whole rows (BatchNorm's statistics over NCHW: one partial per
   * (channel, image), a contiguous H*W row, no div/mod of a flattened index) */
  int64_t f = 0, lead = 1;
  int last = -1, at = -1;
  for (int i = 0; i < nd; i++)
    if (reduced[i]) last = i;
  for (int i = 0; i < last && !f; i++)
    if (reduced[i] && (lead *= x->shape[i]) >= 8 && lead <= 65536 && red / lead >= 64) f = lead, at = i;
  if (f) {
    /* the reduced dims after the boundary summed in place (no view between the reduction
     * and its body, so the scheduler computes the body inside the partial sums instead of
     * writing it to a buffer first), then the ones before it */
    int inner[UOP_MAX_DIMS], outer[UOP_MAX_DIMS], ni = 0, no = 0;
    for (int i = 0; i < nd; i++)
      if (reduced[i]) {
        if (i > at) inner[ni++] = i;
        else outer[no++] = i;
      }
    uop *part = reduce_uop(x, (int)r->arg.v[0], inner, ni);
    part = uop_new1(OP_CONTIGUOUS, part->dt, part, arg_none());
    return view_reshape(reduce_uop(part, (int)r->arg.v[0], outer, no), r->shape, r->ndim);
  }
  for (int64_t c = 256; c >= 8 && !f; c--)
    if (red % c == 0 && red / c >= 1024) f = c;
  if (!f) return NULL;
  /* (kept..., reduced...) -> (kept, f, red/f) -> sum last -> contiguous -> sum f */
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
static pthread_once_t assign_hook_once = PTHREAD_ONCE_INIT;
static void set_assign_hook(void) { uop_set_free_hook(OP_ASSIGN, forget_assign); } /* once, for every thread */
static bool assign_done(uop *u) {
  pthread_mutex_lock(&done_lock);
  bool done = uopset_get(&done_assigns, u) != NULL;
  pthread_mutex_unlock(&done_lock);
  return done;
}
static uop *done_assign(rw_match *m) { return assign_done(m->root) ? m->root->src[0] : NULL; }
static int count_assigns(uop *u, uopset *seen) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_BUFFER) return 0;
  int n = u->op == OP_ASSIGN;
  for (uint32_t i = 0; i < u->nsrc; i++) n += count_assigns(u->src[i], seen);
  return n;
}
/* Room in done_assigns for k more, taken before any kernel runs: marking them after the
 * kernels ran must not fail (an update applied but not marked would be applied twice). */
static bool reserve_assigns(size_t k) {
  pthread_mutex_lock(&done_lock);
  bool ok = true;
  while (ok && (done_assigns.n + k + 1) * 2 > done_assigns.cap) ok = uopset_grow(&done_assigns);
  pthread_mutex_unlock(&done_lock);
  return ok;
}
static void mark_assigns(uop *u, uopset *seen) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_BUFFER) return;
  if (u->op == OP_ASSIGN) {
    pthread_mutex_lock(&done_lock);
    uopset_put(&done_assigns, u, (void *)1);
    pthread_mutex_unlock(&done_lock);
  }
  for (uint32_t i = 0; i < u->nsrc; i++) mark_assigns(u->src[i], seen);
}

/* a custom-gradient node is worth its value (tensor/custom.h) */
static uop *drop_custom(rw_match *m) { return m->root->src[0]; }

static void keep_assign_targets(uop *u, uopset *keep, uopset *seen) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_BUFFER) return;
  if (u->op == OP_ASSIGN) {
    uop *b = u->src[0];
    while (b->op != OP_BUFFER && b->nsrc) b = b->src[0];
    uopset_add(keep, b);
  }
  for (uint32_t i = 0; i < u->nsrc; i++) keep_assign_targets(u->src[i], keep, seen);
}

static const rw_rule split_rules[] = {
    RULE("CUSTOM", drop_custom),
    RULE("ASSIGN", done_assign),
    RULE("(REDUCE x)", split_reduce),
};
static RULESET(rs_split_reduce, "before_schedule", split_rules);

/* ---- programs (engine/programs.h: cached by the scheduled AST, bounded, reference
 * counted; every prog_entry pointer held here carries a reference) */

static bool has_reduce(uop *u, uopset *seen) {
  if (uopset_add(seen, u) <= 0) return false;
  if (u->op == OP_REDUCE) return true;
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (has_reduce(u->src[i], seen)) return true;
  return false;
}

/* A new entry with its source generated (not compiled, not yet in the cache). */
static prog_entry *generate(rt_device *dev, sched_kernel *sk, const opt *o, int nopts) {
  if (nopts > MAX_OPTS) return cg_fail_null(CG_ERR_INVALID, "at most %d opts per kernel, got %d", MAX_OPTS, nopts);
  prog_entry *e = cg_calloc(1, sizeof *e);
  if (!e) return cg_fail_null(CG_ERR_NOMEM, "out of memory");
  e->refs = 1; /* the caller's */
  e->k.ren = renderer_find(rt_device_renderer(dev)); /* tiering: machine code first (runtime/x86.c) */
  if (!e->k.ren) return free(e), NULL;
  uint64_t nomem0 = uop_nomem_events(); /* a failure absorbed below fails the entry (never cached half-built) */
  uopset seen = {0};
  e->reduce = has_reduce(sk->ast, &seen);
  uopset_free(&seen);
  /* a name that says what it is: r_ (with a reduction) or E_, output elements, buffers */
  snprintf(e->k.name, sizeof e->k.name, "%s_%" PRId64 "_%d", e->reduce ? "r" : "E", sk->ast->src[0]->src[0]->arg.v[1], sk->nbufs);
  e->k.ast = sk->ast;
  if (o) {
    e->k.opts_given = true, e->k.nopts = nopts;
    if (nopts) memcpy(e->k.opts, o, sizeof *o * (size_t)nopts);
  }
  if (!codegen_run(&e->k) || uop_nomem_events() != nomem0) {
    if (uop_nomem_events() != nomem0 && cg_last_status() != CG_ERR_NOMEM) cg_fail(CG_ERR_NOMEM, "out of memory compiling %s", e->k.name);
    ckernel_free(&e->k);
    free(e);
    return NULL;
  }
  e->flops = linear_flops(&e->k.lin);
  e->ast = uop_retain(sk->ast), e->dev = dev, e->gen = cfg_generation();
  e->global = e->k.lin.global;
  linear_free(&e->k.lin); /* the program is what runs; the list is not needed again */
  return e;
}

static prog_entry *get_program(rt_device *dev, sched_kernel *sk, const opt *o, int nopts) {
  prog_entry *e = programs_lookup(dev, sk->ast, o, nopts);
  if (e) return e;
  if (!(e = generate(dev, sk, o, nopts))) return NULL;
  if (!(e->p = dev->compile(e->k.name, e->k.src))) return programs_release(e), NULL;
  programs_publish(e);
  return e;
}

/* Programs for every kernel of a schedule; the new ones generated, then compiled together
 * (dev->compile_many: a few compiler runs on every core). */
static cg_status get_programs(schedule *s, rt_device **devs, prog_entry **out) {
  prog_entry **fresh = cg_calloc((size_t)(s->n ? s->n : 1), sizeof *fresh);
  if (!fresh) return cg_fail(CG_ERR_NOMEM, "out of memory");
  cg_status st = CG_OK;
  int nf = 0;
  for (int i = 0; i < s->n && st == CG_OK; i++) {
    out[i] = NULL;
    if (!devs[i]) continue; /* nothing to run */
    if ((out[i] = programs_lookup(devs[i], s->k[i].ast, NULL, 0))) continue;
    for (int j = 0; j < nf && !out[i]; j++) /* the same kernel twice in one schedule */
      if (fresh[j]->ast == s->k[i].ast && fresh[j]->dev == devs[i]) programs_retain(out[i] = fresh[j]);
    if (out[i]) continue;
    /* BEAM=n: the searched (or cached) opts instead of the heuristic's */
    int width = (int)cfg_int("BEAM", 0), nb = -1;
    opt bo[MAX_OPTS];
    if (width > 0) {
      const renderer *ren = renderer_find(devs[i]->renderer);
      if (ren && (nb = beam_search(s->k[i].ast, ren, devs[i], width, bo)) < 0 && cfg_debug() >= 1)
        fprintf(stderr, "*** BEAM: %s; using the heuristic's opts\n", cg_last_error());
      cg_clear_error();
    }
    if (!(out[i] = fresh[nf] = generate(devs[i], &s->k[i], nb >= 0 ? bo : NULL, nb >= 0 ? nb : 0))) st = cg_last_status();
    else fresh[nf++]->beam = nb >= 0;
  }
  /* compile, grouped by device */
  for (int a = 0; a < nf && st == CG_OK; a++) {
    if (fresh[a]->p) continue;
    rt_device *dev = fresh[a]->dev;
    int n = 0;
    const char **names = cg_malloc(sizeof(char *) * (size_t)nf), **srcs = cg_malloc(sizeof(char *) * (size_t)nf);
    rt_program **progs_out = cg_calloc((size_t)nf, sizeof(rt_program *));
    int *which = cg_malloc(sizeof(int) * (size_t)nf);
    if (!names || !srcs || !progs_out || !which) st = cg_fail(CG_ERR_NOMEM, "out of memory");
    for (int b = a; b < nf && st == CG_OK; b++)
      if (fresh[b]->dev == dev && !fresh[b]->p) names[n] = fresh[b]->k.name, srcs[n] = fresh[b]->k.src, which[n++] = b;
    if (st == CG_OK) {
      if (dev->compile_many && n > 1) st = dev->compile_many(names, srcs, n, progs_out);
      else
        for (int k = 0; k < n; k++)
          if (!(progs_out[k] = dev->compile(names[k], srcs[k])) && st == CG_OK) st = cg_last_status();
      for (int k = 0; k < n; k++) fresh[which[k]]->p = progs_out[k];
    }
    free(names), free(srcs), free(progs_out), free(which);
  }
  for (int j = 0; j < nf && st == CG_OK; j++) programs_publish(fresh[j]);
  if (st != CG_OK) /* the fresh ones too: out holds all their references */
    for (int i = 0; i < s->n; i++) programs_release(out[i]), out[i] = NULL;
  free(fresh);
  return st;
}

/* ---- the memory plan: a schedule's intermediates (written by one of its kernels, read by
 * a later one, not asked for) live in one arena per device, at offsets packed by their
 * lifetimes (first fit), so two whose lifetimes do not overlap share bytes. */

typedef sched_arena arena; /* engine/sched_cache.h: a cache hit takes the same plan */

static cg_status plan_arena(schedule *s, rt_device **devs, uopset *is_out, uopset *last_read, arena *a) {
  typedef struct { size_t off, end; int from, until; uop *b; } slot;
  int cap = 0;
  for (int ki = 0; ki < s->n; ki++) cap += s->k[ki].nout;
  slot *sl = cg_calloc((size_t)(cap ? cap : 1), sizeof *sl);
  if (!sl) return cg_fail(CG_ERR_NOMEM, "out of memory");
  int n = 0;
  for (int ki = 0; ki < s->n; ki++) {
    if (!devs[ki] || (a->dev && devs[ki] != a->dev)) continue; /* one device's arena */
    for (int i = 0; i < s->k[ki].nout; i++) {
      uop *b = s->k[ki].bufs[i];
      intptr_t last = (intptr_t)uopset_get(last_read, b) - 1;
      cg_buffer *cb = buffer_of(b);
      if (uopset_get(is_out, b) || last <= ki || cb->ptr) continue; /* asked for, unread, or already there */
      bool seen = false;
      for (int j = 0; j < n && !seen; j++) seen = sl[j].b == b;
      if (seen) continue;
      size_t size = (cb->nbytes + 63) / 64 * 64, off = 0;
      for (bool moved = true; moved;) {
        moved = false;
        for (int j = 0; j < n; j++)
          if (sl[j].until >= ki && sl[j].from <= (int)last && off < sl[j].end && sl[j].off < off + size) off = sl[j].end, moved = true;
      }
      sl[n++] = (slot){off, off + size, ki, (int)last, b};
      if (off + size > a->bytes) a->bytes = off + size;
      a->dev = devs[ki];
    }
  }
  cg_status st = CG_OK;
  if (n && (!(a->mem = a->dev->alloc(a->bytes)) || !(a->bufs = cg_malloc(sizeof(uop *) * (size_t)n)))) st = cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
  for (int j = 0; j < n && st == CG_OK; j++) buffer_borrow(sl[j].b, (char *)a->mem + sl[j].off), a->bufs[a->n++] = sl[j].b;
  free(sl);
  return st;
}

static void free_arena(arena *a) {
  for (int j = 0; j < a->n; j++) /* normally done at their last reader; not after an error */
    if (buffer_of(a->bufs[j])->borrowed) buffer_release_memory(a->bufs[j]);
  if (a->mem) a->dev->free(a->mem, a->bytes);
  free(a->bufs);
}

/* ptrs[i]: the memory of slot i (allocated now if it is not yet). */
static cg_status bind_buffers(sched_kernel *k, void **ptrs) {
  cg_status st = CG_OK;
  for (int i = 0; i < k->nbufs && st == CG_OK; i++) {
    st = buffer_alloc(k->bufs[i]);
    ptrs[i] = buffer_of(k->bufs[i])->ptr;
  }
  return st;
}

/* vals[i]: the value var slot i has now (a malloc'd array when a small one is too short). */
static int64_t *bind_vars(sched_kernel *k, int64_t *small, int nsmall) {
  int64_t *vals = k->nvars <= nsmall ? small : cg_malloc(sizeof(int64_t) * (size_t)k->nvars);
  if (!vals) return cg_fail_null(CG_ERR_NOMEM, "out of memory");
  for (int i = 0; i < k->nvars; i++) vals[i] = var_load(var_cell(k->vars[i]));
  return vals;
}

/* The device a kernel runs on: its buffers' (all on one). */
static rt_device *kernel_device(sched_kernel *k) {
  rt_device *dev = buffer_of(k->bufs[0])->dev;
  for (int i = 1; i < k->nbufs; i++) {
    rt_device *d = buffer_of(k->bufs[i])->dev;
    if (d != dev) return cg_fail_null(CG_ERR_INVALID, "a kernel reads buffers on two devices: %s and %s (copy one with cg_to first)", dev->name, d->name);
  }
  return dev;
}

/* ---- running the items ------------------------------------------------------------ */

/* What every item of one realize needs; items run on the calling thread, or on lanes
 * (queue.h) when the schedule drives several devices. */
typedef struct {
  schedule *s;
  const bool *copy;     /* per item: a copy (sched_copy_of) */
  rt_device **devs;     /* per item: the kernel's device (NULL: a copy, or nothing to run) */
  prog_entry **entries; /* per item: its program (NULL: a copy, or nothing to run) */
  uop ***release;       /* per item: intermediates whose last reader it is (NULL-terminated) */
  double *secs;         /* per item: time it ran */
  int64_t *threads;     /* per item: threads it used */
  int dbg;
  bool serial;          /* on the calling thread, in order: capture and observers allowed */
  realize_observer *obs;
  int *ready_at;
  int nout;
  uop **out_bufs;
} run_ctx;

static cg_status run_copy(run_ctx *rc, int ki) {
  sched_kernel *k = &rc->s->k[ki];
  cg_status st = buffer_alloc(k->bufs[0]);
  if (st == CG_OK) st = buffer_alloc(k->bufs[1]);
  if (st != CG_OK) return st;
  cg_buffer *dst = buffer_of(k->bufs[0]), *src = buffer_of(k->bufs[1]);
  size_t esz = (size_t)dt_scalar_size(k->bufs[0]->dt);
  copy_step c;
  memset(&c, 0, sizeof c); /* padding too: captures compare steps byte by byte */
  int64_t off = 0;
  sched_copy_of(k, &off);
  c.dst = dst->dev, c.src = src->dev, c.off = (size_t)off * esz, c.nbytes = (size_t)k->bufs[0]->arg.v[1] * esz, c.staged = k->copy_staged;
  double t1 = now();
  st = engine_copy(c.dst, dst->ptr, c.src, (const char *)src->ptr + c.off, c.nbytes, c.staged);
  double dt = now() - t1;
  rc->secs[ki] = dt;
  if (st == CG_OK && rc->serial && capture_active()) capture_host_io(copy_step_run, &c, sizeof c, k->bufs, 2, 1);
  if (st == CG_OK && rc->dbg >= 1) {
    char name[64];
    snprintf(name, sizeof name, "copy %s -> %s", c.src->name, c.dst->name);
    fprintf(stderr, "  %-24s %9.3f ms  %17s  %7.2f GB/s  (%zu bytes%s)\n", name, 1e3 * dt, "", (double)c.nbytes / dt * 1e-9, c.nbytes, c.staged ? ", staged" : "");
  }
  return st;
}

static cg_status run_kernel_item(run_ctx *rc, int ki) {
  sched_kernel *k = &rc->s->k[ki];
  prog_entry *e = rc->entries[ki];
  rt_device *dev = rc->devs[ki];
  if (rc->dbg >= 3) {
    char o[256];
    opts_str(e->k.opts, e->k.nopts, o, sizeof o);
    fprintf(stderr, "--- kernel %d: %s on %s  (opts: %s)\n", ki, e->k.name, dev->name, o);
    uop_print(stderr, e->k.ast);
  }
  if (rc->dbg >= 4) fprintf(stderr, "%s\n", e->k.src);
  void *small[64], **ptrs = k->nbufs <= 64 ? small : cg_malloc(sizeof(void *) * (size_t)k->nbufs);
  if (!ptrs) return cg_fail(CG_ERR_NOMEM, "out of memory");
  cg_status st = bind_buffers(k, ptrs);
  int64_t vsmall[16], *vals = st == CG_OK ? bind_vars(k, vsmall, 16) : NULL;
  if (st == CG_OK && !vals) st = cg_last_status();
  if (st == CG_OK) {
    double t1 = kernel_now();
    st = dev->launch(e->p, ptrs, vals, e->global);
    dev->synchronize();
    if (rc->serial && capture_active()) capture_launch(dev, e, e->global, k->bufs, k->nbufs, k->nout, k->vars, k->nvars);
    double dt = kernel_now() - t1;
    rc->secs[ki] = dt;
    STAT_ADD(kernels_run);
    rc->threads[ki] = e->global < rt_pool_size() ? e->global : rt_pool_size();
    if (rc->dbg >= 1) {
      double bytes = 0;
      for (int i = 0; i < k->nbufs; i++) bytes += (double)buffer_of(k->bufs[i])->nbytes;
      fprintf(stderr, "  %-24s %9.3f ms  %8.2f GFLOP/s  %7.2f GB/s  (%d buffers%s%s)\n", e->k.name, 1e3 * dt, e->flops / dt * 1e-9, bytes / dt * 1e-9, k->nbufs,
              rt_multi_device() ? ", " : "", rt_multi_device() ? dev->name : "");
    }
  }
  if (vals != vsmall) free(vals);
  if (ptrs != small) free(ptrs);
  return st;
}

/* Item ki: a copy, a kernel, or (empty outputs) only its buffers; then the intermediates
 * it read last go back to their allocator. */
static cg_status run_item(void *ctx, int ki) {
  run_ctx *rc = ctx;
  sched_kernel *k = &rc->s->k[ki];
  cg_status st = CG_OK;
  bool ran = true;
  if (rc->copy[ki] && k->bufs[0]->arg.v[1]) st = run_copy(rc, ki);
  else if (rc->entries[ki]) st = run_kernel_item(rc, ki);
  else {
    ran = false;
    for (int i = 0; i < k->nout && st == CG_OK; i++) st = buffer_alloc(k->bufs[i]);
  }
  if (st == CG_OK && ran && rc->serial) {
    for (int i = 0; rc->ready_at && i < rc->nout; i++)
      if (rc->ready_at[i] == ki) rc->obs->ready(rc->obs->ctx, i, rc->out_bufs[i], rc->s->n - 1 - ki);
    realize_progress();
  }
  for (uop **r = rc->release[ki]; r && *r; r++) buffer_release_memory(*r);
  return st;
}

/* The lanes of a schedule over several devices: one per device an item runs on (in order
 * of first use; lane 0 the calling thread), and per item the fences: the last earlier item
 * on another lane that touched a device this one touches (a copy touches two). Returns the
 * number of lanes (1: run in order here), or -1 out of memory. */
static int plan_lanes(schedule *s, const bool *copy, int *lane, int (*dep)[2]) {
  rt_device *dev_of_lane[QUEUE_MAX_LANES];
  int nl = 0, last[QUEUE_MAX_LANES]; /* per lane (= device): the last item that touched it */
  for (int ki = 0; ki < s->n; ki++) {
    sched_kernel *k = &s->k[ki];
    rt_device *touch[2] = {buffer_of(k->bufs[0])->dev, copy[ki] ? buffer_of(k->bufs[1])->dev : NULL};
    int tl[2] = {-1, -1};
    for (int t = 0; t < 2 && touch[t]; t++) {
      for (int l = 0; l < nl && tl[t] < 0; l++)
        if (dev_of_lane[l] == touch[t]) tl[t] = l;
      if (tl[t] < 0) {
        if (nl == QUEUE_MAX_LANES) return 1;
        dev_of_lane[nl] = touch[t], last[nl] = -1, tl[t] = nl++;
      }
    }
    lane[ki] = tl[0]; /* a copy runs on its destination's lane */
    dep[ki][0] = dep[ki][1] = -1;
    for (int t = 0; t < 2 && tl[t] >= 0; t++) {
      int d = last[tl[t]];
      if (d >= 0 && lane[d] != lane[ki]) dep[ki][t] = d;
      last[tl[t]] = ki;
    }
  }
  return nl;
}

/* The schedule of a miss: built from the graph (split reductions, sched_build), the
 * buffers that outlive the realize added to is_out (outputs and assign targets), each
 * kernel's device (none for a copy). pre: the graph as scheduled (the caller frees it). */
static cg_status build_schedule(uop *const *outs, int n, schedule *s, uop ***pre_out, uopset *is_out, rt_device ***devs_out) {
  uint64_t nomem0 = uop_nomem_events();
  uop **pre = *pre_out = cg_malloc(sizeof(uop *) * (size_t)(n ? n : 1));
  if (!pre) return cg_fail(CG_ERR_NOMEM, "out of memory");
  for (int i = 0; i < n; i++) pre[i] = graph_rewrite(outs[i], &rs_split_reduce, NULL);
  if (uop_nomem_events() != nomem0 || !sched_build(pre, n, s)) {
    if (uop_nomem_events() != nomem0 && cg_last_status() != CG_ERR_NOMEM) cg_fail(CG_ERR_NOMEM, "out of memory while scheduling");
    return cg_last_status();
  }
  for (int i = 0; i < n; i++) uopset_add(is_out, s->out_bufs[i]);
  /* an assign's target is a tensor's storage, not an intermediate, even when it is not
   * among the outputs asked for (a pending BatchNorm statistic realized with the loss) */
  uopset seen_t = {0};
  for (int i = 0; i < n; i++) keep_assign_targets(pre[i], is_out, &seen_t);
  uopset_free(&seen_t);
  rt_device **devs = *devs_out = cg_calloc((size_t)(s->n ? s->n : 1), sizeof *devs);
  if (!devs) return cg_fail(CG_ERR_NOMEM, "out of memory");
  for (int ki = 0; ki < s->n; ki++) {
    int64_t out_elems = 0, off;
    for (int i = 0; i < s->k[ki].nout; i++) out_elems += s->k[ki].bufs[i]->arg.v[1];
    /* an empty output: nothing to compute (its index math may divide by 0); a copy is no
     * kernel */
    if (out_elems && !sched_copy_of(&s->k[ki], &off) && !(devs[ki] = kernel_device(&s->k[ki]))) return cg_last_status();
  }
  return CG_OK;
}

/* Remember a miss's schedule: is_out's members are the buffers kept. */
static void remember(const sched_key *key, const schedule *s, rt_device **devs, prog_entry *const *entries, unsigned long gen, uopset *is_out, const sched_arena *ar) {
  uop **keep = cg_malloc(sizeof(uop *) * (is_out->n ? is_out->n : 1));
  if (!keep) {
    cg_clear_error(); /* the cache is a shortcut: nothing lost */
    return;
  }
  int nkeep = 0;
  for (size_t i = 0; i < is_out->cap; i++)
    if (is_out->keys[i]) keep[nkeep++] = is_out->keys[i];
  sched_cache_add(key, s, devs, entries, gen, keep, nkeep, ar);
  free(keep);
}

cg_status realize_uops(uop *const *outs, int n, uop **views) {
  realize_observer obs = observer;
  observer = (realize_observer){0}; /* one realize only (the ones inside this one see none) */
  rt_pool_wake_all(); /* the pool's workers wake while this realize schedules */
  double t0 = now();
  uint64_t nomem0 = uop_nomem_events();
  /* the schedule cache: a graph met before up to which buffers and vars it reads (the
   * next training step) binds them into the kernels planned then (engine/sched_cache.h) */
  sched_key key = {0};
  sched_entry *hit = NULL;
  if (sched_cache_on()) {
    cg_status ks = sched_key_build(outs, n, assign_done, &key);
    if (ks != CG_OK) return ks;
    hit = sched_cache_get(&key);
  }
  double t_key = now() - t0;
  schedule s = {0};
  uop **pre = NULL;
  uopset last_read = {0}, is_out = {0}, written = {0};
  rt_device **devs = NULL;
  prog_entry **entries = NULL; /* each with a reference, released at the end */
  int nentries = 0;
  arena ar = {0};
  unsigned long gen = cfg_generation();
  cg_status st = CG_OK;
  if (hit) {
    int nk = sched_entry_kernels(hit);
    devs = cg_calloc((size_t)(nk ? nk : 1), sizeof *devs);
    entries = cg_calloc((size_t)(nk ? nk : 1), sizeof *entries);
    if (entries) nentries = nk;
    uop **keep = NULL;
    int nkeep = 0;
    unsigned long pgen = 0;
    st = devs && entries ? sched_entry_bind(hit, &key, &s, devs, entries, &pgen, &keep, &nkeep, &ar) : CG_ERR_NOMEM;
    for (int i = 0; i < nkeep && st == CG_OK; i++) uopset_add(&is_out, keep[i]);
    free(keep);
    if (st == CG_OK && pgen != gen) { /* programs made under other knobs (NOOPT, BEAM, ...): fetched again */
      for (int i = 0; i < nk; i++) programs_release(entries[i]), entries[i] = NULL;
      st = get_programs(&s, devs, entries);
      if (st == CG_OK) sched_entry_set_progs(hit, entries, gen);
    }
    for (int i = 0; i < nk && st == CG_OK; i++) /* tiering: a graph met again runs the compiled code (runtime/x86.c) */
      if (entries[i]) rt_program_settle(entries[i]->p);
  } else {
    st = build_schedule(outs, n, &s, &pre, &is_out, &devs);
  }
  if (st != CG_OK) {
    if (st == CG_ERR_NOMEM && cg_last_status() != CG_ERR_NOMEM) cg_fail(CG_ERR_NOMEM, "out of memory while scheduling");
    st = cg_last_status();
    free_arena(&ar);
    for (int i = 0; i < nentries; i++) programs_release(entries[i]);
    sched_free(&s);
    free(pre), free(devs), free(entries);
    uopset_free(&is_out);
    sched_cache_put(hit);
    sched_key_free(&key);
    return st;
  }
  STAT_ADD(schedules);
  if (hit) STAT_ADD(schedule_hits);
  last_threads = 0, last_max_buffer = 0;
  int64_t compiled0 = RT_STAT(compiled), disk0 = RT_STAT(disk_hits);
  int dbg = cfg_debug(), ncopies = 0;
  bool *copy = cg_calloc((size_t)(s.n ? s.n : 1), sizeof *copy);
  int64_t off;
  for (int ki = 0; copy && ki < s.n; ki++) ncopies += copy[ki] = sched_copy_of(&s.k[ki], &off);
  double t_sched = now() - t0, t_kernels = 0;
  if (dbg >= 2)
    fprintf(stderr, "*** schedule: %d kernel%s%s%.0d%s for %d output%s (%.2f ms%s, key %.2f ms)\n", s.n - ncopies, s.n - ncopies == 1 ? "" : "s", ncopies ? " + " : "",
            ncopies, ncopies ? (ncopies == 1 ? " copy" : " copies") : "", n, n == 1 ? "" : "s", 1e3 * t_sched, !key.norm ? "" : hit ? ", cache hit" : ", cache miss",
            1e3 * t_key);
  /* intermediates (written here, not asked for) are dead after their last reader: they
   * share one arena, packed by lifetime (plan_arena), and are forgotten after it */
  for (int ki = 0; ki < s.n; ki++)
    for (int i = s.k[ki].nout; i < s.k[ki].nbufs; i++) uopset_put(&last_read, s.k[ki].bufs[i], (void *)(intptr_t)(ki + 1));
  /* everything that can fail for want of memory is done before the first kernel runs: an
   * output left unmarked (a parameter taken for an intermediate) or a view not made after
   * an in-place update ran would leave wrong state behind */
  for (int i = 0; i < n; i++) /* an assign into part of a buffer: that part, a view of it */
    views[i] = outs[i]->op == OP_ASSIGN && !view_is_whole(outs[i]->src[0]) ? outs[i]->src[0] : view_reshape(s.out_bufs[i], outs[i]->shape, outs[i]->ndim);
  int nassign = key.nassigns;
  if (pre) {
    uopset seen_a = {0};
    for (int i = 0; i < n; i++) nassign += count_assigns(pre[i], &seen_a);
    uopset_free(&seen_a);
  }
  if (nassign) reserve_assigns((size_t)nassign);
  if (uop_nomem_events() != nomem0) st = cg_fail(CG_ERR_NOMEM, "out of memory while planning the run");
  size_t nk = (size_t)(s.n ? s.n : 1);
  uop ***release = cg_calloc(nk, sizeof *release);
  double *secs = cg_calloc(nk, sizeof *secs);
  int64_t *threads = cg_calloc(nk, sizeof *threads);
  int *lane = cg_malloc(sizeof(int) * nk), (*dep)[2] = cg_malloc(sizeof *dep * nk);
  if (!copy || !release || !secs || !threads || !lane || !dep) st = cg_fail(CG_ERR_NOMEM, "out of memory");
  /* a miss: every program first (the new ones compile together), then the memory plan */
  if (!hit) {
    if (st == CG_OK && !(entries = cg_calloc(nk, sizeof *entries))) st = cg_fail(CG_ERR_NOMEM, "out of memory");
    if (entries) nentries = s.n;
    if (st == CG_OK) st = get_programs(&s, devs, entries);
    if (st == CG_OK) st = plan_arena(&s, devs, &is_out, &last_read, &ar);
    if (st == CG_OK && key.norm) remember(&key, &s, devs, entries, gen, &is_out, &ar);
  }
  /* what each item releases after it ran: the intermediates it is the last reader of */
  for (int ki = 0; ki < s.n && st == CG_OK; ki++) {
    sched_kernel *k = &s.k[ki];
    for (int i = 0; i < k->nout; i++) {
      uopset_add(&written, k->bufs[i]);
      uint64_t nb = (uint64_t)k->bufs[i]->arg.v[1] * dt_scalar_size(k->bufs[i]->dt);
      if (nb > last_max_buffer) last_max_buffer = nb;
    }
    int nr = 0;
    for (int i = k->nout; i < k->nbufs; i++) {
      uop *b = k->bufs[i];
      if (uopset_get(&written, b) && !uopset_get(&is_out, b) && (intptr_t)uopset_get(&last_read, b) == ki + 1) {
        uop **r = cg_realloc(release[ki], sizeof(uop *) * (size_t)(nr + 2));
        if (!r) {
          st = cg_fail(CG_ERR_NOMEM, "out of memory");
          break;
        }
        release[ki] = r, r[nr++] = b, r[nr] = NULL;
      }
    }
  }
  /* the observer: each output is ready after the last kernel that touches its buffer */
  int *ready_at = obs.ready && st == CG_OK ? cg_malloc(sizeof(int) * (size_t)(n ? n : 1)) : NULL;
  if (obs.ready && st == CG_OK && !ready_at) st = cg_fail(CG_ERR_NOMEM, "out of memory");
  for (int i = 0; ready_at && i < n; i++) {
    ready_at[i] = -1;
    for (int ki = 0; ki < s.n; ki++)
      for (int b = 0; b < s.k[ki].nbufs; b++)
        if (s.k[ki].bufs[b] == s.out_bufs[i]) ready_at[i] = ki;
    if (ready_at[i] < 0) obs.ready(obs.ctx, i, s.out_bufs[i], s.n);
  }
  /* several devices: each on a lane of its own, unless a capture or an observer needs the
   * items in order on this thread (CG_CONCURRENT=0: always in order) */
  int nlanes = 1;
  if (st == CG_OK && s.n > 1 && rt_multi_device() && !capture_active() && !obs.ready && cfg_int("CG_CONCURRENT", 1) != 0) nlanes = plan_lanes(&s, copy, lane, dep);
  if (dbg >= 2 && nlanes > 1) {
    int fences = 0;
    for (int ki = 0; ki < s.n; ki++) fences += (dep[ki][0] >= 0) + (dep[ki][1] >= 0);
    fprintf(stderr, "*** %d lanes (one host thread per device, at once), %d fence%s between them\n", nlanes, fences, fences == 1 ? "" : "s");
  }
  run_ctx rc = {&s, copy, devs, entries, release, secs, threads, dbg, nlanes < 2, &obs, ready_at, n, s.out_bufs};
  if (st == CG_OK && nlanes >= 2) st = queue_run(s.n, lane, (const int(*)[2])dep, nlanes, run_item, &rc);
  else
    for (int ki = 0; ki < s.n && st == CG_OK; ki++) st = run_item(&rc, ki);
  for (int ki = 0; ki < s.n && secs && threads; ki++) {
    t_kernels += secs[ki];
    if (threads[ki] > (int64_t)last_threads) last_threads = (uint64_t)threads[ki];
  }
  /* kernels that launched nothing (empty outputs) still make their outputs ready */
  for (int i = 0; ready_at && st == CG_OK && i < n; i++)
    if (ready_at[i] >= 0 && !entries[ready_at[i]] && !(copy[ready_at[i]] && s.k[ready_at[i]].bufs[0]->arg.v[1])) obs.ready(obs.ctx, i, s.out_bufs[i], 0);
  free(ready_at);
  free_arena(&ar);
  for (int ki = 0; release && ki < s.n; ki++) free(release[ki]);
  for (int i = 0; i < nentries; i++) programs_release(entries[i]);
  free(copy), free(devs), free(entries), free(release), free(secs), free(threads), free(lane), free(dep);
  sched_cache_put(hit);
  uopset_free(&last_read);
  uopset_free(&is_out);
  uopset_free(&written);
  if (st == CG_OK) {
    pthread_once(&assign_hook_once, set_assign_hook);
    /* the graph's own pending assigns (what the cache key met) and, on a miss, those of
     * the graph as scheduled (an assign whose sources the split rewrote is a new node) */
    pthread_mutex_lock(&done_lock);
    for (int i = 0; i < key.nassigns; i++) uopset_put(&done_assigns, key.assigns[i], (void *)1);
    pthread_mutex_unlock(&done_lock);
    uopset seen = {0};
    for (int i = 0; pre && i < n; i++) mark_assigns(pre[i], &seen);
    uopset_free(&seen);
  }
  if (dbg >= 2) {
    rt_alloc_stats a = rt_lru_stats(rt_cpu_device.allocator);
    double total = now() - t0;
    fprintf(stderr, "*** realized in %.2f ms (kernels %.2f ms%s, host %.2f ms): compiled %lld kernels, %lld loaded from the disk cache; memory in use %.1f MB, cached %.1f MB, peak %.1f MB\n",
            1e3 * total, 1e3 * t_kernels, nlanes > 1 ? " summed over the lanes" : "", 1e3 * (total - t_kernels > 0 ? total - t_kernels : 0),
            (long long)(RT_STAT(compiled) - compiled0), (long long)(RT_STAT(disk_hits) - disk0), (double)a.in_use / 1e6, (double)a.cached / 1e6,
            (double)a.peak / 1e6);
  }
  sched_free(&s);
  sched_key_free(&key);
  free(pre);
  return st;
}

cg_status kernel_run_with_opts(sched_kernel *k, const opt *o, int nopts, double *seconds) {
  rt_device *dev = kernel_device(k);
  prog_entry *e = dev ? get_program(dev, k, o, nopts) : NULL;
  if (!e) return cg_last_status();
  void **ptrs = cg_malloc(sizeof(void *) * (size_t)k->nbufs);
  if (!ptrs) return cg_fail(CG_ERR_NOMEM, "out of memory");
  cg_status st = bind_buffers(k, ptrs);
  int64_t vsmall[16], *vals = st == CG_OK ? bind_vars(k, vsmall, 16) : NULL;
  if (st == CG_OK && !vals) st = cg_last_status();
  if (st == CG_OK) {
    double t = now();
    st = dev->launch(e->p, ptrs, vals, e->global);
    if (st == CG_OK) st = dev->synchronize();
    if (seconds) *seconds = now() - t;
  }
  if (vals != vsmall) free(vals);
  free(ptrs);
  programs_release(e);
  return st;
}
