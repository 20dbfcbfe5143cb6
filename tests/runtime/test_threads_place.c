/* A pool worker that starts a job on its caller's CPU moves to another CPU it may run on
 * (runtime/threadpool.c, move_off): left there, it ran a kernel's chunks only while its
 * caller waited, at one core's speed (bench_matmul's "first shape"). The situation is
 * made on purpose: the caller pins itself to one CPU before the pool is made (the worker
 * inherits the mask, so it starts there), then the worker's mask is widened to every CPU
 * again (it stays where it is). A launch of 2 chunks that wait for each other then records
 * where each ran: the worker's chunk must run on another CPU than the caller's, and the
 * worker's mask must be the full one afterwards. Skipped (with a message) where fewer than
 * 2 CPUs are allowed. (Named test_threads_*: test.sh runs it under TSan too.) */
#define _GNU_SOURCE
#include "check.h"
#include "runtime/device.h"
#include "runtime/threadpool.h"
#include <cgrad.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static const char *WHERE = "#define _GNU_SOURCE\n"
                           "#include <stdint.h>\n"
                           "#include <pthread.h>\n"
                           "#include <sched.h>\n"
                           "#include <time.h>\n"
                           "static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }\n"
                           "void where(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
                           "  int64_t *c = bufs[0];\n"
                           "  (void)vars, (void)hi;\n"
                           "  c[2 + lo] = sched_getcpu(), c[6 + lo] = (int64_t)pthread_self();\n"
                           "  __atomic_fetch_add(&c[0], 1, __ATOMIC_SEQ_CST);\n"
                           "  double t0 = now_s();\n"
                           "  while (__atomic_load_n(&c[0], __ATOMIC_SEQ_CST) < 2 && now_s() - t0 < 20) sched_yield();\n"
                           "  c[4 + lo] = sched_getcpu();\n"
                           "  if (__atomic_load_n(&c[0], __ATOMIC_SEQ_CST) >= 2) __atomic_fetch_add(&c[1], 1, __ATOMIC_SEQ_CST);\n"
                           "}\n";

/* the thread id of the default pool's first worker, or 0 */
static pid_t worker_tid(void) {
  int tid = 0;
  return rt_pool_worker_tids(rt_pool_of(0), &tid, 1) == 1 ? (pid_t)tid : 0;
}

int main(void) {
  cpu_set_t all, one;
  if (sched_getaffinity(0, sizeof all, &all) || CPU_COUNT(&all) < 2) {
    printf("skipped: fewer than 2 CPUs allowed\n");
    return test_summary();
  }
  int a = -1;
  for (int i = 0; i < CPU_SETSIZE && a < 0; i++)
    if (CPU_ISSET(i, &all)) a = i;
  CPU_ZERO(&one);
  CPU_SET(a, &one);
  CHECK(!sched_setaffinity(0, sizeof one, &one), "pin the caller to cpu %d", a);
  setenv("CG_THREADS", "2", 1);
  rt_device *cpu = rt_get_device("CPU");
  CHECK(cpu && rt_pool_size() == 2, "2 threads");
  if (!cpu) return test_summary();
  pid_t tid = worker_tid();
  CHECK(tid > 0, "the worker thread is there");
  cpu_set_t wm;
  CHECK(tid > 0 && !sched_getaffinity(tid, sizeof wm, &wm) && CPU_EQUAL(&wm, &one), "the worker started with the caller's mask (cpu %d only)", a);
  CHECK(tid > 0 && !sched_setaffinity(tid, sizeof all, &all), "widen the worker's mask");
  rt_program *p = cpu->compile("where", WHERE);
  CHECK(p != NULL, "compile: %s", cg_last_error());
  if (!p) return test_summary();
  int64_t c[8] = {0, 0, -1, -1, -1, -1, 0, 0};
  CHECK(cpu->launch(p, (void *[]){c}, NULL, 2) == CG_OK, "launch");
  CHECK(c[0] == 2 && c[1] == 2, "2 chunks, on 2 threads at once (%lld, %lld)", (long long)c[0], (long long)c[1]);
  int me = c[6] == (int64_t)pthread_self() ? 0 : 1, w = 1 - me; /* which chunk the caller claimed */
  CHECK(c[6 + me] == (int64_t)pthread_self() && c[6 + w] != c[6 + me], "one chunk on the caller, one on the worker");
  CHECK(c[2 + me] == a && c[4 + me] == a, "the caller's chunk on cpu %d (%lld, %lld)", a, (long long)c[2 + me], (long long)c[4 + me]);
  /* where the worker's chunk started (after the rendezvous the load balancer may have
   * moved it anywhere, on a loaded machine back beside the caller too) */
  CHECK(c[2 + w] >= 0 && c[2 + w] != a, "the worker's chunk moved off the caller's cpu %d: started on %lld", a, (long long)c[2 + w]);
  CHECK(tid > 0 && !sched_getaffinity(tid, sizeof wm, &wm) && CPU_EQUAL(&wm, &all), "the worker's mask is the full one again");
  cpu->program_free(p);
  sched_setaffinity(0, sizeof all, &all);
  return test_summary();
}
