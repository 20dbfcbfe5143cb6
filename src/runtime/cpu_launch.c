/* A CPU-ABI kernel's launch over the instance's thread pool (ARCHITECTURE §7): the
 * THREAD range [0, global_size) is cut into guided chunks that whichever thread is free
 * claims (threadpool.c). Every CPU-ABI device launches here (cpu.c, x86.c).
 *
 * CG_POOL_TRACE=1 prints one line per launch on stderr: the kernel, its trips and chunks,
 * the launch's wall time, and per thread the time it spent in chunks (wall and CPU), how
 * many it ran and when its first started and its last ended after the launch began. How
 * a step's time splits into work, idle ends and late starts is read from these lines
 * (bench/pool_scaling_gpt.sh); the results do not change (the same chunks run). */
#define _GNU_SOURCE
#include "device.h"
#include "threadpool.h"
#include "core/config.h"
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRACE_THREADS 64 /* threads past this are not traced (their chunks run, uncounted) */

typedef struct trace_slot {
  int64_t busy, cpu, first, last; /* ns: in chunks (wall, CPU), first start, last end */
  int chunks;
} trace_slot;

typedef struct launch_ctx {
  rt_cpu_kernel_fn fn;
  void **bufs;
  const int64_t *vars;
  const int64_t *at; /* chunk c runs [at[c], at[c + 1]) */
  int64_t t0;        /* CG_POOL_TRACE: when the launch began */
  trace_slot *slot;  /* CG_POOL_TRACE: one per thread (each writes its own), else NULL */
  bool pooled;       /* run on the pool (else inline: slot 0) */
} launch_ctx;

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void launch_chunk(void *ctx, int c, int nchunks) {
  launch_ctx *l = ctx;
  (void)nchunks;
  int i = l->slot && l->pooled ? rt_pool_thread_index() : 0;
  if (!l->slot || i >= TRACE_THREADS) {
    l->fn(l->bufs, l->vars, l->at[c], l->at[c + 1]);
    return;
  }
  trace_slot *s = &l->slot[i];
  int64_t t = clock_ns(CLOCK_MONOTONIC), u = clock_ns(CLOCK_THREAD_CPUTIME_ID);
  l->fn(l->bufs, l->vars, l->at[c], l->at[c + 1]);
  int64_t t1 = clock_ns(CLOCK_MONOTONIC);
  s->cpu += clock_ns(CLOCK_THREAD_CPUTIME_ID) - u, s->busy += t1 - t;
  if (!s->chunks++) s->first = t - l->t0;
  s->last = t1 - l->t0;
}

/* The chunks of [0, n) for a pool of t threads. Threads claim them in order as they get
 * free (threadpool.c), so one that starts late takes fewer instead of the others waiting
 * for it. Sizes shrink as the work is handed out (guided self-scheduling): the trips left
 * / 2t each, down to n / 32t. The first chunks are long (a GEMM sweeps its column
 * blocks over many rows: each chunk reads them again), the last short: the threads finish
 * within one last chunk of each other (measured, 2 threads: a 512^3 GEMM's 64 row blocks,
 * 16 us each on one thread, and a 1M elementwise kernel left the caller 20-35 us and 5 us
 * idle at the end with n / 8t, 4-7% of the kernel; a chunk costs ~0.1 us to claim). At
 * most 8t + 8 chunks (max: the last takes the rest). Finer last chunks (n / 128t) left
 * the GPT step's threads no less idle and cost its tiled GEMMs ~5% more CPU (each chunk
 * streams the column blocks again): bench/RESULTS.md, scale8. */
int rt_cpu_max_chunks(int t) { return 8 * t + 8; }

int rt_cpu_chunks(int64_t n, int t, int64_t *at, int max) {
  int64_t floor = (n + 32 * t - 1) / (32 * t), pos = 0;
  int c = 0;
  at[0] = 0;
  while (pos < n && c < max - 1) {
    int64_t left = n - pos, sz = (left + 2 * t - 1) / (2 * t);
    if (sz < floor) sz = floor;
    pos += sz < left ? sz : left;
    at[++c] = pos;
  }
  at[c] = n; /* (max reached: the last chunk takes the rest) */
  return c;
}

/* CG_POOL_TRACE, read again when cg_set_config changed a knob (a launch is too short to
 * look it up each time) */
static _Atomic int knob_trace;
static _Atomic unsigned long knob_gen = (unsigned long)-1;
static bool tracing(void) {
  unsigned long g = cfg_generation();
  if (g != atomic_load_explicit(&knob_gen, memory_order_acquire)) {
    atomic_store_explicit(&knob_trace, cfg_int("CG_POOL_TRACE", 0) > 0, memory_order_relaxed);
    atomic_store_explicit(&knob_gen, g, memory_order_release);
  }
  return atomic_load_explicit(&knob_trace, memory_order_relaxed);
}

static void trace_print(const char *name, int64_t n, int nchunks, int threads, int64_t t0, int64_t wall, const trace_slot *s) {
  char line[4096];
  int w = snprintf(line, sizeof line, "pool %s trips=%lld chunks=%d at_us=%.1f wall_us=%.1f", name ? name : "?", (long long)n, nchunks, t0 / 1e3, wall / 1e3);
  for (int i = 0; i < threads && i < TRACE_THREADS && w < (int)sizeof line - 100; i++)
    w += snprintf(line + w, sizeof line - (size_t)w, " | t%d busy_us=%.1f cpu_us=%.1f chunks=%d start_us=%.1f end_us=%.1f", i, s[i].busy / 1e3, s[i].cpu / 1e3,
                  s[i].chunks, s[i].chunks ? s[i].first / 1e3 : -1.0, s[i].chunks ? s[i].last / 1e3 : -1.0);
  fprintf(stderr, "%s\n", line);
}

void rt_cpu_run_kernel(int index, const char *name, rt_cpu_kernel_fn fn, void **bufs, const int64_t *vars, int64_t global_size) {
  rt_pool *pool = global_size > 1 ? rt_pool_of(index) : NULL;
  int threads = rt_pool_threads(pool);
  trace_slot slots[TRACE_THREADS];
  bool trace = tracing();
  int64_t t0 = trace ? clock_ns(CLOCK_MONOTONIC) : 0;
  if (trace) memset(slots, 0, sizeof slots);
  int64_t small[137], *at = small;
  int cap = 137, nchunks = 1;
  if (threads == 1) {
    at[0] = 0, at[1] = global_size;
    launch_ctx l = {fn, bufs, vars, at, t0, trace ? slots : NULL, false};
    if (global_size > 0) launch_chunk(&l, 0, 1);
  } else {
    if (rt_cpu_max_chunks(threads) + 1 > cap && (at = malloc(sizeof *at * (size_t)(rt_cpu_max_chunks(threads) + 1)))) cap = rt_cpu_max_chunks(threads) + 1;
    if (!at) at = small; /* out of memory: fewer, longer chunks */
    launch_ctx l = {fn, bufs, vars, at, t0, trace ? slots : NULL, true};
    nchunks = rt_cpu_chunks(global_size, threads, at, cap);
    rt_pool_run_on(pool, nchunks, launch_chunk, &l);
    if (at != small) free(at);
  }
  if (trace) trace_print(name, global_size, nchunks, threads, t0, clock_ns(CLOCK_MONOTONIC) - t0, slots);
}
