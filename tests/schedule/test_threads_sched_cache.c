/* The schedule cache under threads: two threads realize graphs of three shapes at once (five
 * iterations of a shape, then the next; the threads one shape apart) with room for two
 * entries, so entries are hit, added and evicted while the other thread binds them; every
 * result is checked against float64 in plain C.
 * Built with ThreadSanitizer by test.sh (the "tsan" step), which must report no race. */
#include "check.h"
#include "engine/sched_cache.h"
#include <cgrad.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>

enum { ITERS = 150, MAXN = 96 };

typedef struct {
  int id;
  int bad;
  char err[256];
} job;

static void *work(void *arg) {
  job *j = arg;
  float a[MAXN], b[MAXN], out[MAXN];
  for (int it = 0; it < ITERS && !j->err[0]; it++) {
    int64_t n = 32 + 32 * ((it / 5 + j->id) % 3);
    for (int i = 0; i < n; i++) a[i] = (float)((i * 7 + it + j->id) % 19) / 9.0f - 1.0f, b[i] = (float)((i * 3 + it) % 11) / 5.0f - 1.0f;
    cg_scope_begin();
    cg_tensor *x = cg_from_data(a, CG_FLOAT32, &n, 1), *y = cg_from_data(b, CG_FLOAT32, &n, 1);
    cg_tensor *z = cg_sub(cg_mul(cg_add(x, cg_mul(y, cg_scalar(2))), x), cg_scalar(0.5));
    if (!z || cg_read(z, CG_FLOAT32, out, sizeof(float) * (size_t)n) != CG_OK) snprintf(j->err, sizeof j->err, "iteration %d: %s", it, cg_last_error());
    for (int i = 0; i < n && !j->err[0]; i++) {
      double want = ((double)a[i] + 2.0 * b[i]) * a[i] - 0.5;
      if (!(fabs(out[i] - want) <= 1e-5 * (1 + fabs(want)))) j->bad++;
    }
    cg_scope_end();
  }
  return NULL;
}

int main(void) {
  cg_set_config("CG_SCHED_CACHE", "1");
  cg_set_config("CG_SCHED_CACHE_ENTRIES", "2");
  cg_set_config("CG_THREADS", "1");
  job jobs[2] = {{.id = 0}, {.id = 1}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, work, &jobs[i]) == 0, "pthread_create");
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 2; i++) {
    CHECK(!jobs[i].err[0], "thread %d: %s", i, jobs[i].err);
    CHECK(jobs[i].bad == 0, "thread %d: %d wrong values", i, jobs[i].bad);
  }
  cg_stats st = cg_get_stats();
  CHECK(st.schedule_hits > 0 && st.schedule_hits < st.schedules, "hits and misses both happen (%llu of %llu)", (unsigned long long)st.schedule_hits,
        (unsigned long long)st.schedules);
  CHECK(sched_cache_get_stats().evictions > 0 && sched_cache_get_stats().entries <= 2, "entries evicted (%llu), at most 2 kept (%zu)",
        (unsigned long long)sched_cache_get_stats().evictions, sched_cache_get_stats().entries);
  return test_summary();
}
