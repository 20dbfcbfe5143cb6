/* The launch thread pool. One job at a time; its chunks are claimed in order by whichever
 * thread is free, the caller included:
 *
 *   caller: close the old job → write the job → open it (gen++, next chunk 0) → [wake
 *           sleepers] → claim and run chunks → spin/sleep until every chunk has finished
 *   worker: spin/sleep until gen changes → claim and run chunks until none are left
 *
 * A chunk is claimed by a CAS on one word holding (gen, next chunk), so a worker that
 * wakes late (asleep, or its core taken by another process) finds the chunks already
 * claimed and runs none, and the caller never waits for it: a late thread costs its share
 * of the work, not the whole job (a 1 ms GEMM used to run at one thread's speed when the
 * worker came 0.5 ms late, measured under load). Closing the old job first (its counter
 * set past any chunk) makes a CAS that read the old word fail, so a slow worker never runs
 * a chunk of a job it read half-written. Sleeping uses the "announce, then re-check"
 * pattern on seq_cst atomics: a waiter bumps a sleeper count before its last check, the
 * waker reads the count after publishing, so one of them always sees the other and no
 * wakeup is lost. */
#define _GNU_SOURCE
#include "threadpool.h"
#include "core/config.h"
#include "core/fault.h"
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct pool pool;
typedef struct worker {
  pool *p;
  int index; /* 1 .. size-1; the caller is 0 */
  pthread_t tid;
  _Atomic int ltid; /* its Linux thread id (0 until it runs): /proc/self/task/<ltid> */
} worker;

struct pool {
  int size;          /* threads, the caller included */
  int64_t spin_ns;   /* how long to spin before sleeping */
  worker *workers;   /* size - 1 of them */
  pthread_mutex_t run_lock; /* one job at a time */
  /* the job: written by the caller between closing the old job and opening this one */
  _Atomic(rt_task_fn) fn;
  _Atomic(void *) ctx;
  _Atomic int nchunks;
  _Atomic uint64_t work;       /* gen << 32 | the next chunk to claim (CLOSED: none) */
  uint32_t gen;                /* the caller's count of jobs (under run_lock) */
  _Atomic int finished;        /* chunks of the current job run to their end */
  _Atomic int sleepers;        /* workers asleep (or about to be) on wake */
  _Atomic uint32_t poke;       /* bumped by rt_pool_wake_all: sleepers spin again */
  _Atomic int caller_sleeping; /* the caller is asleep (or about to be) on done */
  _Atomic int quit;            /* retired (CG_THREADS changed): workers exit */
  _Atomic int caller_cpu;      /* the CPU the current job's caller launched it from */
  pthread_mutex_t m;
  pthread_cond_t wake, done;
  pool *stale_next; /* after fork or a resize: the chain of pools no longer listed */
};

static pool solo = {.size = 1}; /* when no pool could be made: everything runs inline */
/* the pools made so far, by instance number (few: RT_MAX_INSTANCES + the base), each with
 * the thread count it was made for (CG_THREADS / CG_DEVICES when it was made) */
#define MAX_POOLS 32
static struct {
  int index;
  long want;
  _Atomic(pool *) p;
} pools[MAX_POOLS];
static int npools;
static unsigned long sized_gen; /* the knob generation the listed pools were checked at */
/* pools of a parent process (after fork) or retired by a resize: kept reachable, never
 * freed (a host thread may still hold one; it then runs its jobs on the caller alone) */
static pool *stale_pools;
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int in_pool_job; /* a chunk that launches runs its job inline */
static _Thread_local int thread_index; /* a worker's index in its pool; 0 on other threads */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spin until done_expr holds or (p)->spin_ns have passed (the clock is read every 64
 * turns), then the caller of SPIN_UNTIL sleeps on a condition variable. No sched_yield
 * while spinning: on Linux's EEVDF scheduler each yield pushes the thread's deadline a
 * whole slice later when another task shares its core, so a worker that spun by
 * yielding was passed over for milliseconds by any other process and joined a 1 ms
 * kernel after the caller had run it alone (measured: the worker's chunk started when
 * the caller's ended, load ~7). Sleeping resets that; a pure spin holds the core at most
 * spin_ns. */
#define SPIN_UNTIL(p, done_expr)                                     \
  do {                                                               \
    int64_t t0_ = 0;                                                 \
    for (unsigned i_ = 0; !(done_expr); i_++) {                      \
      cpu_relax();                                                   \
      if ((i_ & 63) == 63) {                                         \
        int64_t t_ = now_ns();                                       \
        if (!t0_) t0_ = t_;                                          \
        else if (t_ - t0_ > (p)->spin_ns) break;                     \
      }                                                              \
    }                                                                \
  } while (0)

#define CLOSED 0xffffffffu
static uint32_t gen_of(uint64_t w) { return (uint32_t)(w >> 32); }

/* Claim and run chunks of job g until none is left (or another job has started), then
 * count them finished at once: one add to the shared counter per thread, not per chunk
 * (each is a cache line taken from the other cores). The job cannot end meanwhile: its
 * caller waits for every chunk's count. */
static void run_chunks(pool *p, uint32_t g) {
  int done = 0, n = 0;
  for (;;) {
    uint64_t w = atomic_load(&p->work);
    uint32_t c = (uint32_t)w;
    int nc = atomic_load(&p->nchunks);
    if (gen_of(w) != g || c == CLOSED || c >= (uint32_t)nc) break;
    rt_task_fn fn = atomic_load(&p->fn);
    void *ctx = atomic_load(&p->ctx);
    if (!atomic_compare_exchange_weak(&p->work, &w, w + 1)) continue; /* read before a close or another claim: again */
    fn(ctx, (int)c, nc);
    done++, n = nc;
  }
  if (done && atomic_fetch_add(&p->finished, done) == n - done && atomic_load(&p->caller_sleeping)) {
    pthread_mutex_lock(&p->m);
    pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->m);
  }
}

/* A worker that starts a job on its caller's CPU moves to another CPU it may run on.
 * Measured (2 vCPUs, a 512^3 GEMM on 2 threads, 40 products per process): in some
 * processes the worker was made on, or woken onto, the caller's CPU and stayed there for
 * every product (caller and worker on cpu0 all 40 times: 1.0-1.4 ms, one core's speed,
 * the process's CPU use 50%), in the others 0.53-0.6 ms; Linux's wake-up placement keeps
 * a thread near the one that wakes it, and a worker that runs only while its caller waits
 * is seldom seen runnable beside it by the load balancer. This was bench_matmul's "first
 * shape at one core's speed". The move: the allowed CPUs less the caller's, then the
 * allowed CPUs again (the thread stays where it went); never outside the thread's mask,
 * at most once per 10 ms per worker (more threads than CPUs must share). */
static void move_off(int cpu, int64_t *last) {
  int64_t t = now_ns();
  if (t - *last < 10000000) return;
  *last = t;
  cpu_set_t all, other;
  if (sched_getaffinity(0, sizeof all, &all) || !CPU_ISSET(cpu, &all) || CPU_COUNT(&all) < 2) return;
  other = all;
  CPU_CLR(cpu, &other);
  if (!sched_setaffinity(0, sizeof other, &other)) sched_setaffinity(0, sizeof all, &all);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  pool *p = w->p;
  uint32_t seen = 0; /* the generation when the pool was made */
  int64_t moved = -10000000000;
  in_pool_job = 1;
  thread_index = w->index;
  atomic_store(&w->ltid, (int)gettid());
  for (;;) {
    uint32_t poked = atomic_load(&p->poke);
    SPIN_UNTIL(p, gen_of(atomic_load(&p->work)) != seen || atomic_load(&p->quit));
    if (atomic_load(&p->quit)) return NULL;
    if (gen_of(atomic_load(&p->work)) == seen) {
      pthread_mutex_lock(&p->m);
      atomic_fetch_add(&p->sleepers, 1);
      while (gen_of(atomic_load(&p->work)) == seen && atomic_load(&p->poke) == poked && !atomic_load(&p->quit)) pthread_cond_wait(&p->wake, &p->m);
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->m);
      if (atomic_load(&p->quit)) return NULL;
      if (gen_of(atomic_load(&p->work)) == seen) continue; /* woken ahead of a job: spin for it */
    }
    seen = gen_of(atomic_load(&p->work));
    int cc = atomic_load(&p->caller_cpu);
    if (cc >= 0 && sched_getcpu() == cc) move_off(cc, &moved);
    run_chunks(p, seen);
  }
  return NULL;
}

static void forget_pool_after_fork(void) {
  /* The child has the parent's pools but none of their threads: start afresh. */
  for (int i = 0; i < npools; i++) {
    pool *p = atomic_load(&pools[i].p);
    if (p != &solo) {
      p->stale_next = stale_pools;
      stale_pools = p;
    }
  }
  __atomic_store_n(&npools, 0, __ATOMIC_RELEASE);
  pthread_mutex_init(&create_lock, NULL);
}

/* The threads a pool should have under the knobs now. */
static long pool_want(void) {
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  long n = cfg_int("CG_THREADS", ncpu > 0 ? ncpu : 1), ndev = cfg_int("CG_DEVICES", 1);
  if (ndev > 1) n /= ndev; /* the instances split the cores */
  return n < 1 ? 1 : n > 1024 ? 1024 : n;
}

static pool *pool_create(int index, long n) {
  static int atfork_done;
  if (!atfork_done) atfork_done = !pthread_atfork(NULL, NULL, forget_pool_after_fork);
  if (n == 1) return &solo;
  pool *p = fault_hit() ? NULL : calloc(1, sizeof *p); /* out of memory: run on the caller alone */
  worker *ws = calloc((size_t)n, sizeof *ws); /* workers[0] stands for the caller, unused */
  if (!p || !ws) {
    free(p), free(ws);
    return &solo;
  }
  p->workers = ws;
  atomic_init(&p->work, CLOSED);
  atomic_init(&p->caller_cpu, -1);
  p->spin_ns = cfg_int("CG_SPIN_US", 100) * 1000;
  pthread_mutex_init(&p->run_lock, NULL);
  pthread_mutex_init(&p->m, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  /* Workers block all signals, so handlers run on the user's threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int size = 1;
  for (int i = 1; i < n; i++) {
    ws[i].p = p, ws[i].index = i;
    if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i])) break;
    char tname[32]; /* the kernel keeps 15 characters */
    if (index) snprintf(tname, sizeof tname, "cgrad-%d-pool-%d", index, i);
    else snprintf(tname, sizeof tname, "cgrad-pool-%d", i);
    tname[15] = 0;
    pthread_setname_np(ws[i].tid, tname);
    size++;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  p->size = size;
  return p;
}

/* A retired pool's workers exit once no job is in flight (its run_lock), and are joined;
 * the struct stays (a host thread that read the pointer before the swap runs its job on
 * the caller: the caller claims every chunk no worker took). */
static void pool_retire(pool *p) {
  pthread_mutex_lock(&p->run_lock);
  pthread_mutex_lock(&p->m);
  atomic_store(&p->quit, 1);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->m);
  for (int i = 1; i < p->size; i++) pthread_join(p->workers[i].tid, NULL);
  pthread_mutex_unlock(&p->run_lock);
}

/* After a cg_set_config: remake the pools whose size the knobs changed (CG_THREADS set
 * after the first launch used to be ignored: a process that ran at 1 thread stayed there).
 * Not from inside a pool job (a worker would join itself). */
static void pools_resize(unsigned long g) {
  pool *old[MAX_POOLS];
  int nold = 0;
  pthread_mutex_lock(&create_lock);
  if (__atomic_load_n(&sized_gen, __ATOMIC_ACQUIRE) != g) {
    long want = pool_want();
    for (int i = 0; i < npools; i++)
      if (pools[i].want != want) {
        pool *p = atomic_load(&pools[i].p);
        atomic_store(&pools[i].p, pool_create(pools[i].index, want));
        pools[i].want = want;
        if (p != &solo) old[nold++] = p, p->stale_next = stale_pools, stale_pools = p;
      }
    __atomic_store_n(&sized_gen, g, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&create_lock);
  for (int i = 0; i < nold; i++) pool_retire(old[i]);
}

/* Slots below npools are published under create_lock; a slot's pool changes only when
 * the knobs change its size (pools_resize). */
rt_pool *rt_pool_of(int index) {
  unsigned long g = cfg_generation();
  if (g != __atomic_load_n(&sized_gen, __ATOMIC_ACQUIRE) && !in_pool_job) pools_resize(g);
  int n = __atomic_load_n(&npools, __ATOMIC_ACQUIRE);
  for (int i = 0; i < n; i++)
    if (pools[i].index == index) return atomic_load(&pools[i].p);
  pthread_mutex_lock(&create_lock);
  pool *p = NULL;
  for (int i = 0; i < npools && !p; i++)
    if (pools[i].index == index) p = atomic_load(&pools[i].p);
  if (!p) {
    long want = pool_want();
    p = pool_create(index, want);
    if (npools < MAX_POOLS) { /* else (never: instances are bounded) unlisted, made again next time */
      pools[npools].index = index, pools[npools].want = want;
      atomic_store(&pools[npools].p, p);
      __atomic_store_n(&npools, npools + 1, __ATOMIC_RELEASE);
    }
  }
  pthread_mutex_unlock(&create_lock);
  return p;
}

int rt_pool_threads(rt_pool *p) { return p ? p->size : 1; }
int rt_pool_thread_index(void) { return thread_index; }

int rt_pool_worker_tids(rt_pool *p, int *out, int max) {
  int n = 0;
  for (int i = 1; p && i < p->size && n < max; i++) {
    int t = 0; /* a worker just made publishes its id as it starts: a moment's wait */
    for (int k = 0; k < 100000 && !(t = atomic_load(&p->workers[i].ltid)); k++) sched_yield();
    if (t) out[n++] = t;
  }
  return n;
}

void rt_pool_wake_all(void) {
  int n = __atomic_load_n(&npools, __ATOMIC_ACQUIRE);
  for (int i = 0; i < n; i++) {
    pool *p = atomic_load(&pools[i].p);
    if (p->size == 1 || !atomic_load(&p->sleepers)) continue; /* spinning already (or no workers) */
    pthread_mutex_lock(&p->m);
    atomic_fetch_add(&p->poke, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->m);
  }
}
int rt_pool_size(void) { return rt_pool_of(0)->size; }
void rt_pool_run(int nchunks, rt_task_fn fn, void *ctx) { rt_pool_run_on(nchunks > 1 && !in_pool_job ? rt_pool_of(0) : NULL, nchunks, fn, ctx); }

void rt_pool_run_on(rt_pool *p, int nchunks, rt_task_fn fn, void *ctx) {
  if (nchunks <= 0) return;
  if (in_pool_job) p = NULL; /* a chunk that launches runs its job inline */
  if (!p || p->size == 1) {
    for (int c = 0; c < nchunks; c++) fn(ctx, c, nchunks);
    return;
  }
  pthread_mutex_lock(&p->run_lock);
  uint32_t g = ++p->gen;
  atomic_store(&p->work, (uint64_t)(g - 1) << 32 | CLOSED); /* before the job is rewritten: see the top */
  atomic_store(&p->fn, fn), atomic_store(&p->ctx, ctx), atomic_store(&p->nchunks, nchunks);
  atomic_store(&p->caller_cpu, sched_getcpu());
  atomic_store(&p->finished, 0);
  atomic_store(&p->work, (uint64_t)g << 32);
  if (atomic_load(&p->sleepers)) {
    pthread_mutex_lock(&p->m);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->m);
  }
  in_pool_job = 1;
  run_chunks(p, g);
  in_pool_job = 0;
  SPIN_UNTIL(p, atomic_load(&p->finished) == nchunks);
  if (atomic_load(&p->finished) != nchunks) {
    pthread_mutex_lock(&p->m);
    atomic_store(&p->caller_sleeping, 1);
    while (atomic_load(&p->finished) != nchunks) pthread_cond_wait(&p->done, &p->m);
    atomic_store(&p->caller_sleeping, 0);
    pthread_mutex_unlock(&p->m);
  }
  pthread_mutex_unlock(&p->run_lock);
}
