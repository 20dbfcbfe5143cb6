/* The thread-safety contract of cgrad.h: independent tensors on different threads work,
 * and each thread's random generator is its own, so two threads training at once with
 * fixed seeds get the same bits as one thread doing the same runs in turn, on every run.
 * Each run is a small linear regression trained by SGD (init from cg_randn, data from
 * cg_rand), checked against the same arithmetic in float64 plain C. Also built with
 * ThreadSanitizer by test.sh (the "tsan" step), which must report no data race. */
#include "check.h"
#include <cgrad.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

enum { N = 64, D = 8, STEPS = 5 };

typedef struct {
  uint64_t seed;
  float loss[STEPS];
  float w_end[D];
  double ref_loss[STEPS]; /* float64 reference from the same initial values */
  char err[256];
} run_t;

static void *train(void *arg) {
  run_t *r = arg;
  cg_manual_seed(r->seed);
  cg_scope_begin();
  cg_tensor *w = cg_keep(cg_randn(CG_FLOAT32, (int64_t[]){D, 1}, 2));
  cg_tensor *x = cg_rand(CG_FLOAT32, (int64_t[]){N, D}, 2);
  cg_tensor *y = cg_rand(CG_FLOAT32, (int64_t[]){N, 1}, 2);
  float xs[N * D], ys[N], ws[D];
  if (!w || !x || !y || cg_read(x, CG_FLOAT32, xs, sizeof xs) || cg_read(y, CG_FLOAT32, ys, sizeof ys) ||
      cg_read(w, CG_FLOAT32, ws, sizeof ws) || cg_set_requires_grad(w, true)) {
    snprintf(r->err, sizeof r->err, "setup: %s", cg_last_error());
    cg_scope_end();
    return NULL;
  }
  cg_optimizer *opt = cg_sgd(&w, 1, 0.1, 0, 0, 0, false);
  double wd[D];
  for (int j = 0; j < D; j++) wd[j] = ws[j];
  for (int s = 0; s < STEPS && !r->err[0]; s++) {
    /* reference: loss = mean((x w - y)^2), dL/dw = 2/N x^T (x w - y) */
    double loss = 0, g[D] = {0};
    for (int i = 0; i < N; i++) {
      double p = -ys[i];
      for (int j = 0; j < D; j++) p += (double)xs[i * D + j] * wd[j];
      loss += p * p / N;
      for (int j = 0; j < D; j++) g[j] += 2.0 / N * p * xs[i * D + j];
    }
    r->ref_loss[s] = loss;
    for (int j = 0; j < D; j++) wd[j] -= 0.1 * g[j];
    cg_scope_begin();
    cg_tensor *d = cg_sub(cg_matmul(x, w), y);
    cg_tensor *l = cg_mean(cg_mul(d, d), NULL, 0, false);
    if (!l || cg_backward(l) || cg_realize(l) || cg_optimizer_step(opt)) snprintf(r->err, sizeof r->err, "step %d: %s", s, cg_last_error());
    else r->loss[s] = (float)cg_item(l);
    cg_optimizer_zero_grad(opt);
    cg_scope_end();
  }
  if (!r->err[0] && cg_read(w, CG_FLOAT32, r->w_end, sizeof r->w_end)) snprintf(r->err, sizeof r->err, "read w: %s", cg_last_error());
  cg_optimizer_free(opt);
  cg_free(w);
  cg_scope_end();
  return NULL;
}

static bool same_bits(const run_t *a, const run_t *b) { return !memcmp(a->loss, b->loss, sizeof a->loss) && !memcmp(a->w_end, b->w_end, sizeof a->w_end); }

int main(void) {
  const uint64_t seeds[2] = {11, 2024};
  run_t seq[2] = {{.seed = seeds[0]}, {.seed = seeds[1]}};
  for (int i = 0; i < 2; i++) {
    train(&seq[i]);
    CHECK(!seq[i].err[0], "sequential run %d: %s", i, seq[i].err);
    for (int s = 0; s < STEPS; s++)
      CHECK(fabs(seq[i].loss[s] - seq[i].ref_loss[s]) <= 1e-4 * fabs(seq[i].ref_loss[s]) + 1e-6,
            "seed %llu step %d: loss %.7g, float64 reference %.7g (float32: rel 1e-4)", (unsigned long long)seeds[i], s, seq[i].loss[s],
            seq[i].ref_loss[s]);
    CHECK(seq[i].loss[STEPS - 1] < seq[i].loss[0], "training lowers the loss");
  }
  CHECK(memcmp(seq[0].loss, seq[1].loss, sizeof seq[0].loss) != 0, "two seeds give two runs");
  /* the same two runs on two threads at once, three times (and a thread's generator is
   * unaffected by the other thread's seeding and draws) */
  for (int rep = 0; rep < 3; rep++) {
    run_t par[2] = {{.seed = seeds[0]}, {.seed = seeds[1]}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, train, &par[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
      CHECK(!par[i].err[0], "threaded run %d: %s", i, par[i].err);
      CHECK(same_bits(&par[i], &seq[i]), "repeat %d, thread %d: the losses and weights equal the single-thread run bit for bit", rep, i);
    }
  }
  /* the main thread's generator is its own: seeding here does not move a thread's */
  cg_manual_seed(seeds[0]);
  cg_tensor *a = cg_rand(CG_FLOAT32, (int64_t[]){4}, 1);
  run_t other = {.seed = seeds[1]};
  pthread_t t;
  CHECK(pthread_create(&t, NULL, train, &other) == 0);
  pthread_join(t, NULL);
  cg_tensor *b = cg_rand(CG_FLOAT32, (int64_t[]){4}, 1);
  cg_manual_seed(seeds[0]);
  cg_tensor *a2 = cg_rand(CG_FLOAT32, (int64_t[]){4}, 1), *b2 = cg_rand(CG_FLOAT32, (int64_t[]){4}, 1);
  float va[4], vb[4], va2[4], vb2[4];
  CHECK(!cg_read(a, CG_FLOAT32, va, 16) && !cg_read(b, CG_FLOAT32, vb, 16) && !cg_read(a2, CG_FLOAT32, va2, 16) &&
        !cg_read(b2, CG_FLOAT32, vb2, 16));
  CHECK(!memcmp(va, va2, 16) && !memcmp(vb, vb2, 16), "the main thread's draws do not depend on another thread's");
  CHECK(same_bits(&other, &seq[1]), "and the other thread's run is unchanged");
  cg_stats st = cg_get_stats();
  CHECK(st.kernels_run > 0 && st.schedules > 0, "the counters count (%llu kernels)", (unsigned long long)st.kernels_run);
  cg_free(a), cg_free(b), cg_free(a2), cg_free(b2);
  return test_summary();
}
