/* A kernel split across threads gives the same bits as the same kernel run whole: the
 * pool hands a launch's THREAD range out in guided chunks that any thread may claim
 * (runtime/cpu.c, threadpool.c), so which thread computes which output changes from run
 * to run, but no output may depend on it. For matmuls (sizes 1, 7, 33, 1000, 1023 and
 * primes), a convolution, reductions (over a row and over the batch axis) and an
 * elementwise kernel: the heuristic's opts with THREAD, on 2 threads, equal bit for bit
 * the same opts without THREAD (one call over the whole range), three runs each, the last
 * after the workers fell asleep and were woken ahead of it (rt_pool_wake_all). (Named
 * test_threads_*: test.sh runs it under TSan too.) */
#include "check.h"
#include "codegen/codegen.h"
#include "engine/run_kernel.h"
#include "runtime/buffer.h"
#include "runtime/threadpool.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include <string.h>
#include <time.h>

static uint64_t rng = 29;
static cg_tensor *rand_t(const int64_t *shape, int nd) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= shape[i];
  float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    h[i] = (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
  }
  cg_tensor *t = cg_from_data(h, CG_FLOAT32, shape, nd);
  free(h);
  cg_realize(t);
  return t;
}

/* t's last kernel run with the heuristic's opts, with (thread) or without its THREAD opts,
 * into out; the earlier kernels (a packing copy) with the heuristic's. Returns whether
 * the list had a THREAD to drop. */
static bool run_last(cg_tensor *t, bool thread, float *out, int64_t count, cg_status *st) {
  uop_pool_push();
  schedule s;
  *st = sched_build(&t->u, 1, &s) ? CG_OK : cg_last_status();
  opt o[MAX_OPTS];
  int n = *st == CG_OK ? opt_heuristic(lower_kernel(s.k[s.n - 1].ast), o) : 0, m = 0;
  bool had = false;
  for (int i = 0; i < n; i++)
    if (o[i].kind != OPT_THREAD || thread) o[m++] = o[i];
    else had = true;
  for (int i = 0; *st == CG_OK && i < s.n; i++) {
    bool last = i == s.n - 1;
    *st = last ? kernel_run_with_opts(&s.k[i], o, m, NULL) : kernel_run_with_opts(&s.k[i], NULL, 0, NULL);
  }
  if (*st == CG_OK) memcpy(out, buffer_of(s.k[s.n - 1].bufs[0])->ptr, sizeof(float) * (size_t)count);
  if (s.k) sched_free(&s);
  uop_pool_pop();
  return had;
}

static void same_bits(const char *what, cg_tensor *t) {
  int64_t count = cg_numel(t);
  float *whole = malloc(sizeof(float) * (size_t)count), *split = malloc(sizeof(float) * (size_t)count);
  cg_status st;
  bool had = run_last(t, false, whole, count, &st);
  CHECK(st == CG_OK, "%s, whole: %s", what, cg_last_error());
  for (int r = 0; r < 3 && st == CG_OK; r++) {
    if (r == 2) { /* the workers asleep (past CG_SPIN_US), woken ahead of the launch */
      nanosleep(&(struct timespec){0, 5000000}, NULL);
      rt_pool_wake_all();
    }
    run_last(t, true, split, count, &st);
    CHECK(st == CG_OK, "%s, split: %s", what, cg_last_error());
    int64_t bad = -1;
    for (int64_t i = 0; st == CG_OK && i < count && bad < 0; i++)
      if (memcmp(&whole[i], &split[i], sizeof(float))) bad = i;
    CHECK(st == CG_OK && bad < 0, "%s (run %d): element %lld is %a split across threads, %a whole", what, r, (long long)bad,
          bad < 0 ? 0 : split[bad], bad < 0 ? 0 : whole[bad]);
  }
  /* sizes that leave one output trip have nothing to split; the rest must have had one */
  CHECK(had || count < 16, "%s: the heuristic threads it", what);
  free(whole), free(split);
}

static void matmul(int64_t m, int64_t k, int64_t n) {
  char what[64];
  snprintf(what, sizeof what, "matmul %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
  same_bits(what, cg_matmul(rand_t((int64_t[]){m, k}, 2), rand_t((int64_t[]){k, n}, 2)));
}

int main(void) {
  cg_set_config("CG_THREADS", "2");
  CHECK(rt_pool_size() == 2, "2 threads, got %d", rt_pool_size());
  cg_scope_begin();
  matmul(1, 1, 1);
  matmul(7, 13, 33);
  matmul(33, 17, 1023);
  matmul(1000, 64, 48);
  matmul(1023, 31, 67);
  matmul(131, 257, 67);
  matmul(257, 1000, 131); /* packed B (a copy kernel first), column blocks */
  matmul(520, 2048, 512); /* k blocks inside the column blocks (each adds to C) */
  same_bits("conv2d (5,3,13,11) * (8,3,3,3) p1",
            cg_conv2d(rand_t((int64_t[]){5, 3, 13, 11}, 4), rand_t((int64_t[]){8, 3, 3, 3}, 4), NULL, NULL, (const int64_t[]){1, 1}, NULL, 1));
  same_bits("sum over rows (1023, 1000)", cg_sum(rand_t((int64_t[]){1023, 1000}, 2), (int[]){1}, 1, false));
  same_bits("sum over the batch (1000, 33)", cg_sum(rand_t((int64_t[]){1000, 33}, 2), (int[]){0}, 1, false));
  cg_tensor *a = rand_t((int64_t[]){100003}, 1), *b = rand_t((int64_t[]){100003}, 1), *c = rand_t((int64_t[]){100003}, 1);
  same_bits("relu(a*b+c)*0.5-a, 100003", cg_sub(cg_mul(cg_relu(cg_add(cg_mul(a, b), c)), cg_scalar(0.5)), a));
  cg_scope_end();
  return test_summary();
}
