/* Every CPU device instance owns its thread pool (runtime/threadpool.h): with CG_THREADS=4
 * and CG_DEVICES=2, "CPU" and "CPU:1" get 2 threads each, and a kernel launched on each
 * from two host threads runs on both pools at once. The proof is a rendezvous, not a
 * timing: each of the 4 chunks (2 per launch) arrives, then waits (up to 20 s) until all 4
 * have arrived. On one shared pool, jobs run one at a time, so a launch's chunks could
 * never meet the other's and the first two would time out. Then tensors: a matmul on each
 * device from two threads at once equals a float64 reference. (Named test_threads_*:
 * test.sh runs it under TSan too.) */
#include "check.h"
#include "meet_kernel.h"
#include "runtime/device.h"
#include "runtime/threadpool.h"
#include <cgrad.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
  rt_device *dev;
  rt_program *p;
  int64_t *c;
  uint64_t *who;
  cg_status st;
} job;

static void *launch_job(void *arg) {
  job *j = arg;
  j->st = j->dev->launch(j->p, (void *[]){j->c, j->who}, (int64_t[]){4, 20}, 2);
  return NULL;
}

static void test_rendezvous(void) {
  rt_device *d0 = rt_get_device("CPU"), *d1 = rt_get_device("CPU:1");
  CHECK(d0 && d1 && d0 != d1, "two instances: %s", cg_last_error());
  if (!d0 || !d1) return;
  CHECK(rt_pool_threads(rt_pool_of(0)) == 2 && rt_pool_threads(rt_pool_of(1)) == 2, "4 threads over 2 devices: %d + %d",
        rt_pool_threads(rt_pool_of(0)), rt_pool_threads(rt_pool_of(1)));
  CHECK(rt_pool_of(0) != rt_pool_of(1) && rt_pool_of(1) == rt_pool_of(1), "a pool per instance, made once");
  rt_program *p = d0->compile("meet", MEET);
  CHECK(p != NULL, "compile: %s", cg_last_error());
  if (!p) return;
  int64_t c[2] = {0, 0};
  uint64_t who[8] = {0};
  job a = {d0, p, c, who, CG_OK}, b = {d1, p, c, who, CG_OK};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, launch_job, &a);
  pthread_create(&tb, NULL, launch_job, &b);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  CHECK(a.st == CG_OK && b.st == CG_OK, "launches");
  CHECK(c[0] == 4, "4 chunks ran (%lld)", (long long)c[0]);
  CHECK(c[1] == 4, "all 4 chunks of the two launches were running at once (%lld met the others)", (long long)c[1]);
  int distinct = 0;
  for (int i = 0; i < 4; i++) {
    bool seen = false;
    for (int k = 0; k < i; k++) seen = seen || who[k] == who[i];
    distinct += !seen;
  }
  CHECK(distinct == 4, "on 4 different threads (%d)", distinct);
  d0->program_free(p);
}

enum { M = 48, K = 40, N = 36 };

typedef struct {
  const char *dev;
  float a[M * K], b[K * N], out[M * N];
  cg_status st;
} mm_job;

static void *matmul_on(void *arg) {
  mm_job *j = arg;
  cg_set_device(j->dev);
  cg_scope_begin();
  cg_tensor *a = cg_from_data(j->a, CG_FLOAT32, (int64_t[]){M, K}, 2), *b = cg_from_data(j->b, CG_FLOAT32, (int64_t[]){K, N}, 2);
  cg_tensor *c = cg_relu(cg_matmul(a, b));
  j->st = c && !strcmp(cg_device_of(c), j->dev) ? cg_read(c, CG_FLOAT32, j->out, sizeof j->out) : CG_ERR_INVALID;
  cg_scope_end();
  cg_set_device(NULL);
  return NULL;
}

static void test_tensors(void) {
  static mm_job j[2] = {{.dev = "CPU"}, {.dev = "CPU:1"}};
  uint64_t s = (uint64_t)time(NULL);
  printf("seed %llu\n", (unsigned long long)s);
  for (int d = 0; d < 2; d++) {
    for (int i = 0; i < M * K; i++) s = s * 6364136223846793005ull + 1442695040888963407ull, j[d].a[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
    for (int i = 0; i < K * N; i++) s = s * 6364136223846793005ull + 1442695040888963407ull, j[d].b[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
  }
  pthread_t t[2];
  for (int d = 0; d < 2; d++) pthread_create(&t[d], NULL, matmul_on, &j[d]);
  for (int d = 0; d < 2; d++) pthread_join(t[d], NULL);
  for (int d = 0; d < 2; d++) {
    CHECK(j[d].st == CG_OK, "%s: %s", j[d].dev, cg_last_error());
    double worst = 0;
    for (int r = 0; r < M; r++)
      for (int c = 0; c < N; c++) {
        double ref = 0;
        for (int k = 0; k < K; k++) ref += (double)j[d].a[r * K + k] * j[d].b[k * N + c];
        ref = ref > 0 ? ref : 0;
        double e = fabs(j[d].out[r * N + c] - ref);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
      }
    /* float32 sums of 40 products of values in [-0.5, 0.5) */
    CHECK(worst <= 1e-5, "relu(a @ b) on %s, computed beside the other device: max error %g", j[d].dev, worst);
  }
}

int main(void) {
  setenv("CG_THREADS", "4", 1);
  setenv("CG_DEVICES", "2", 1);
  test_rendezvous();
  test_tensors();
  return test_summary();
}
