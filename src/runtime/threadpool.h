/* A persistent thread pool for kernel launches (ARCHITECTURE §7). CG_THREADS threads in
 * all (default: the online CPUs), the calling thread included; created on first use.
 *
 * Launching must be cheap — training runs thousands of small kernels — so a launch is one
 * store to a generation counter: workers spin on it briefly (knob CG_SPIN_US, default
 * 100 µs) before sleeping on a condition variable, and the caller wakes sleepers only when
 * there are some. The caller claims chunks too, then waits the same way. */
#ifndef CG_RUNTIME_THREADPOOL_H
#define CG_RUNTIME_THREADPOOL_H

/* One chunk of a parallel job: chunk in [0, nchunks). */
typedef void (*rt_task_fn)(void *ctx, int chunk, int nchunks);
typedef struct pool rt_pool;

/* Every device instance owns a pool (device.c: "CPU" is instance 0, "CPU:1" instance 1),
 * so kernels of two instances, launched from two host threads, run at the same time on
 * their own workers. Sizes: CG_THREADS (default: the online CPUs) split evenly over
 * CG_DEVICES instances (default 1: every pool gets all of them), at least 1 each. The
 * pool of instance index, made on first use (a pool that cannot be made runs inline) and
 * made again when a cg_set_config changed its size (the old one's workers exit; a pointer
 * to it stays usable, its jobs then run on the caller). */
rt_pool *rt_pool_of(int index);
/* Threads in a pool, the caller included (>= 1). */
int rt_pool_threads(rt_pool *p);
/* The calling thread's index in its pool: 1 .. size-1 on a worker, 0 on any other thread
 * (a job's caller). For per-thread statistics of a job's chunks. */
int rt_pool_thread_index(void);
/* The Linux thread ids of p's workers (caller excluded, at most max), in worker order (a
 * worker just made is waited for while it starts): for reading their placement and CPU time in /proc/self/task. */
int rt_pool_worker_tids(rt_pool *p, int *out, int max);
/* Run fn(ctx, i, nchunks) for every i in [0, nchunks) on p and return when all are done.
 * Chunks are claimed in increasing order by whichever thread of the pool is free (the
 * caller included), so which thread runs which chunk is not fixed: a chunk must not
 * depend on it. Jobs from several host threads on one pool are serialized. */
void rt_pool_run_on(rt_pool *p, int nchunks, rt_task_fn fn, void *ctx);
/* Wake the sleeping workers of every pool made so far, ahead of launches to come: they
 * spin again (CG_SPIN_US), so the host work before the next launch (a realize's
 * scheduling and lookups) hides their wake-up, which on a VM's idle vCPU takes tens of
 * microseconds. Cheap when none sleeps (a load per pool). */
void rt_pool_wake_all(void);
/* The same on instance 0's pool (the default device's). */
int rt_pool_size(void);
void rt_pool_run(int nchunks, rt_task_fn fn, void *ctx);

#endif
