/* The program cache is bounded (engine/programs.h): a loop over ever new shapes with a
 * small bound (CG_PROGRAM_CACHE 16, schedule cache 8) gives right sums (float64 in C) for
 * every shape, takes programs out of the table (the count stays under the bound plus what
 * the schedule cache pins), keeps resident memory flat once the bound is reached, and a
 * JIT replay made before the loop, whose programs left the table, still launches them
 * (same bits as before). Then two host threads run shape loops at once over one tiny
 * bound (TSan: test.sh runs the test_threads_* tests under ThreadSanitizer). */
#include "check.h"
#include "engine/programs.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sum(relu(a * b + 0.25)) of n values of a and b from seed, and its float64 reference */
static bool shape_ok(int n, uint64_t seed, double *got_out) {
  float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  double want = 0;
  for (int i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    a[i] = (float)((double)(s >> 40) / (double)(1 << 24) - 0.5);
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    b[i] = (float)((double)(s >> 40) / (double)(1 << 24) * 2.0);
    double v = (double)a[i] * b[i] + 0.25;
    want += v > 0 ? v : 0;
  }
  cg_scope_begin();
  int64_t sh[1] = {n};
  cg_tensor *ta = cg_from_data(a, CG_FLOAT32, sh, 1), *tb = cg_from_data(b, CG_FLOAT32, sh, 1);
  double got = cg_item(cg_sum(cg_relu(cg_add(cg_mul(ta, tb), cg_scalar(0.25))), NULL, 0, false));
  cg_scope_end();
  free(a), free(b);
  if (got_out) *got_out = got;
  return fabs(got - want) <= 1e-5 * (1 + fabs(want)) + 1e-6 * n; /* float32 sums: ~n ulp */
}

static cg_status jit_fn(cg_tensor *const *in, int n_in, cg_tensor **out, int n_out, void *user) {
  (void)n_in, (void)n_out, (void)user;
  out[0] = cg_sum(cg_mul(cg_exp(cg_mul(in[0], cg_scalar(0.5))), in[0]), NULL, 0, false);
  return out[0] ? CG_OK : cg_last_status();
}

static float jit_value(cg_jit *j, cg_tensor *x) {
  cg_tensor *o = NULL;
  cg_status st = cg_jit_call(j, &x, 1, &o);
  float v = st == CG_OK ? (float)cg_item(o) : NAN;
  cg_free(o);
  return v;
}

typedef struct {
  int first, bad;
} loop_arg;

static void *shape_loop(void *p) {
  loop_arg *a = p;
  for (int n = a->first; n < a->first + 60; n++)
    if (!shape_ok(n, (uint64_t)n, NULL)) a->bad++;
  return NULL;
}

int main(void) {
  CHECK(cg_set_config("CG_PROGRAM_CACHE", "16") == CG_OK && cg_set_config("CG_SCHED_CACHE_ENTRIES", "8") == CG_OK);
  cg_manual_seed(5);
  int64_t xs[1] = {1000};
  cg_tensor *x = cg_randn(CG_FLOAT32, xs, 1);
  CHECK(cg_realize(x) == CG_OK);
  cg_jit *j = cg_jit_new(jit_fn, 1, NULL);
  float v1 = jit_value(j, x), v2 = jit_value(j, x); /* a capture, then replays */
  float v3 = jit_value(j, x);
  CHECK(isfinite(v1) && v1 == v2 && v2 == v3, "the JIT's calls agree (%.9g %.9g %.9g)", v1, v2, v3);

  int bad = 0;
  long rss_mid = 0;
  for (int n = 17; n < 17 + 400; n++) {
    double got;
    if (!shape_ok(n, (uint64_t)n, &got) && bad++ < 3) CHECK(false, "shape %d: the sum %.9g is off", n, got);
    if (n == 17 + 200) rss_mid = test_rss_kb();
  }
  long rss_end = test_rss_kb();
  uint64_t ev = 0;
  size_t live = programs_count(&ev);
  CHECK(bad == 0, "%d of 400 shapes summed wrong", bad);
  CHECK(ev > 300, "programs left the table for the bound (%llu evictions)", (unsigned long long)ev);
  CHECK(live <= 16 + 8 * 4 + 8, "the table stays bounded (%zu entries)", live);
  float v4 = jit_value(j, x);
  CHECK(v4 == v1, "the replay still runs its programs after they left the table (%.9g vs %.9g)", v4, v1);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  printf("RSS check skipped under a sanitizer\n");
  (void)rss_mid, (void)rss_end;
#else
  printf("RSS %ld kB after 200 shapes, %ld kB after 400 (%zu programs cached, %llu out)\n", rss_mid, rss_end, live, (unsigned long long)ev);
  CHECK(rss_end <= rss_mid + 2048, "resident memory stays flat over new shapes (%ld -> %ld kB)", rss_mid, rss_end);
#endif
  cg_jit_free(j);
  cg_free(x);

  /* two host threads, shapes overlapping (shared kernels), a bound of 2 */
  CHECK(cg_set_config("CG_PROGRAM_CACHE", "2") == CG_OK);
  loop_arg a[2] = {{500, 0}, {530, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, shape_loop, &a[i]) == 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  CHECK(a[0].bad == 0 && a[1].bad == 0, "two threads over a tiny bound: %d and %d wrong sums", a[0].bad, a[1].bad);
  return test_summary();
}
