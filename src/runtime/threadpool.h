/* A persistent thread pool for kernel launches (ARCHITECTURE §7). CG_THREADS threads in
 * all (default: the online CPUs), the calling thread included; created on first use.
 *
 * Launching must be cheap — training runs thousands of small kernels — so a launch is one
 * store to a generation counter: workers spin on it briefly (knob CG_SPIN_US, default
 * 100 µs) before sleeping on a condition variable, and the caller wakes sleepers only when
 * there are some. The caller runs chunk 0 itself, then waits the same way. */
#ifndef CG_RUNTIME_THREADPOOL_H
#define CG_RUNTIME_THREADPOOL_H

/* One chunk of a parallel job: chunk in [0, nchunks). */
typedef void (*rt_task_fn)(void *ctx, int chunk, int nchunks);

/* Threads in the pool, the caller included (>= 1). Creates the pool if needed. */
int rt_pool_size(void);
/* Run fn(ctx, i, nchunks) for every i in [0, nchunks) and return when all are done.
 * Thread t of the pool (the caller is thread 0) runs chunks t, t + size, t + 2*size, ...
 * Launches from several host threads are serialized. */
void rt_pool_run(int nchunks, rt_task_fn fn, void *ctx);

#endif
