/* CG_THREADS set with cg_set_config after a process's first launch resizes the thread pool
 * (runtime/threadpool.c, pools_resize): 1 -> 2 -> 1 -> 3 threads in one process. That a
 * launch used n threads is a rendezvous, not a timing: each of its n chunks arrives, then
 * waits (up to 20 s) until all n have arrived, which n - 1 threads can never do. Going
 * down, the retired workers exit (the process's thread count drops back), and a pool
 * pointer read before a resize still runs its jobs (on the caller). A matmul gives the
 * same bits at every size, equal to a float64 reference; host threads launching while
 * the main thread flips CG_THREADS get every trip run once. (Named test_threads_*:
 * test.sh runs it under TSan too.) */
#include "check.h"
#include "meet_kernel.h"
#include "runtime/device.h"
#include "runtime/threadpool.h"
#include <cgrad.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *FILL = "#include <stdint.h>\n"
                          "void fill(void **bufs, const int64_t *vars, int64_t lo, int64_t hi) {\n"
                          "  for (int64_t i = lo; i < hi; i++) __atomic_fetch_add(&((int32_t *)bufs[0])[i], (int32_t)vars[0], __ATOMIC_RELAXED);\n"
                          "}\n";

static rt_device *cpu;
static rt_program *meet, *fill;

static int task_count(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

/* A launch of n trips whose chunks wait for n arrivals (wait_s each at most): how many
 * chunks met the others; the chunks run and the threads they ran on. */
static int meet_on(int n, double wait_s, int *chunks, int *threads) {
  int64_t c[2] = {0, 0};
  uint64_t who[8] = {0};
  cg_status st = cpu->launch(meet, (void *[]){c, who}, (int64_t[]){n, (int64_t)wait_s}, n);
  CHECK(st == CG_OK, "launch: %s", cg_last_error());
  *chunks = (int)c[0];
  int distinct = 0;
  for (int i = 0; i < c[0] && i < 8; i++) {
    bool seen = false;
    for (int k = 0; k < i; k++) seen = seen || who[k] == who[i];
    distinct += !seen;
  }
  *threads = distinct;
  return (int)c[1];
}

enum { M = 37, K = 53, N = 41 };
static float A[M * K], B[K * N];

static void matmul(float *out) {
  cg_scope_begin();
  cg_tensor *a = cg_from_data(A, CG_FLOAT32, (int64_t[]){M, K}, 2), *b = cg_from_data(B, CG_FLOAT32, (int64_t[]){K, N}, 2);
  cg_tensor *c = cg_matmul(a, b);
  CHECK(c && cg_read(c, CG_FLOAT32, out, sizeof(float) * M * N) == CG_OK, "matmul: %s", cg_last_error());
  cg_scope_end();
}

static void check_matmul(const float *got, const float *first, const char *what) {
  double worst = 0;
  for (int r = 0; r < M; r++)
    for (int j = 0; j < N; j++) {
      double ref = 0;
      for (int k = 0; k < K; k++) ref += (double)A[r * K + k] * B[k * N + j];
      double e = fabs(got[r * N + j] - ref);
      if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
  CHECK(worst <= 1e-5, "%s: max error %g against float64", what, worst); /* sums of 53 products of values in [-0.5, 0.5) */
  if (first) CHECK(!memcmp(got, first, sizeof(float) * M * N), "%s: the bits of the 1-thread run", what);
}

typedef struct {
  int ran[8];
  uint64_t who[8];
} rec;
static void record(void *ctx, int c, int n) {
  rec *r = ctx;
  (void)n;
  __atomic_fetch_add(&r->ran[c], 1, __ATOMIC_RELAXED);
  r->who[c] = (uint64_t)pthread_self();
}

typedef struct {
  int32_t out[1000];
  int rounds;
  cg_status st;
} launcher;

static void *launch_loop(void *arg) {
  launcher *l = arg;
  for (int r = 0; r < l->rounds && l->st == CG_OK; r++) l->st = cpu->launch(fill, (void *[]){l->out}, (int64_t[]){1}, 1000);
  return NULL;
}

int main(void) {
  uint64_t s = (uint64_t)time(NULL);
  printf("seed %llu\n", (unsigned long long)s);
  for (int i = 0; i < M * K; i++) s = s * 6364136223846793005ull + 1442695040888963407ull, A[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
  for (int i = 0; i < K * N; i++) s = s * 6364136223846793005ull + 1442695040888963407ull, B[i] = (float)((double)(s >> 40) / 16777216.0 - 0.5);
  cpu = rt_get_device("CPU");
  CHECK(cpu != NULL, "CPU device");
  if (!cpu) return test_summary();
  cg_set_config("CG_THREADS", "1");
  static float c1[M * N], c[M * N];
  matmul(c1); /* the first launches: the pool is made at 1 thread */
  check_matmul(c1, NULL, "1 thread");
  CHECK(rt_pool_size() == 1, "CG_THREADS=1: 1 thread, got %d", rt_pool_size());
  meet = cpu->compile("meet", MEET), fill = cpu->compile("fill", FILL);
  CHECK(meet && fill, "compile: %s", cg_last_error());
  if (!meet || !fill) return test_summary();
  int base = task_count(), threads = 0, chunks = 0;

  cg_set_config("CG_THREADS", "2");
  CHECK(rt_pool_size() == 2, "CG_THREADS=2 after the first launch: 2 threads, got %d", rt_pool_size());
  CHECK(meet_on(2, 20, &chunks, &threads) == 2 && chunks == 2 && threads == 2, "2 chunks met on 2 threads (%d, %d)", chunks, threads);
  int up = task_count(); /* (TSan adds a thread of its own at the first pthread_create) */
  CHECK(up >= base + 1, "one worker more: %d threads, had %d", up, base);
  matmul(c);
  check_matmul(c, c1, "2 threads");

  rt_pool *stale = rt_pool_of(0);
  cg_set_config("CG_THREADS", "1");
  CHECK(rt_pool_size() == 1, "back to CG_THREADS=1: 1 thread, got %d", rt_pool_size());
  CHECK(task_count() == up - 1, "the retired worker exited: %d threads, want %d", task_count(), up - 1);
  meet_on(2, 0, &chunks, &threads);
  CHECK(chunks == 1 && threads == 1, "2 trips in one call on one thread (%d chunks, %d threads)", chunks, threads);
  /* a pointer read before the resize: its job still runs, every chunk on the caller */
  rec r = {{0}, {0}};
  rt_pool_run_on(stale, 6, record, &r);
  bool once = true, caller = true;
  for (int i = 0; i < 6; i++) once &= r.ran[i] == 1, caller &= r.who[i] == (uint64_t)pthread_self();
  CHECK(once && caller, "a retired pool runs each of 6 chunks once, on the caller");
  matmul(c);
  check_matmul(c, c1, "1 thread again");

  cg_set_config("CG_THREADS", "3");
  CHECK(rt_pool_size() == 3, "CG_THREADS=3: 3 threads, got %d", rt_pool_size());
  CHECK(meet_on(3, 20, &chunks, &threads) == 3 && chunks == 3 && threads == 3, "3 chunks met on 3 threads (%d, %d)", chunks, threads);
  matmul(c);
  check_matmul(c, c1, "3 threads");

  /* host threads launching while the pool is remade under them */
  static launcher l[2];
  pthread_t t[2];
  for (int i = 0; i < 2; i++) l[i].rounds = 200, l[i].st = CG_OK, pthread_create(&t[i], NULL, launch_loop, &l[i]);
  for (int r = 0; r < 20; r++) {
    cg_set_config("CG_THREADS", r % 2 ? "2" : "1");
    (void)rt_pool_of(0);
  }
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 2; i++) {
    bool all = l[i].st == CG_OK;
    for (int k = 0; k < 1000; k++) all &= l[i].out[k] == 200;
    CHECK(all, "launcher %d: 200 launches while CG_THREADS changed, every trip once each", i);
  }
  cpu->program_free(meet), cpu->program_free(fill);
  return test_summary();
}
