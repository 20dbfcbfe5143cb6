/* Gradient norm and clipping (cg_grad_norm, cg_scale_grads, cg_clip_grad_norm) against
 * float64 in plain C: three parameters whose gradients are known (loss = sum(p * c) gives
 * grad c), one without a gradient; the norm, the clipped gradients for a max_norm below
 * and above the norm, lazily (no kernel runs before the realize), and bad input.
 * Tolerance: float32 sums of ~1000 squares, 1e-5 relative. */
#include "cgrad.h"
#include "check.h"
#include <math.h>
#include <string.h>
#include <time.h>

static uint64_t rng;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

int main(void) {
  rng = (uint64_t)test_env_long("CG_TEST_SEED", (long)time(NULL));
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)rng);
  enum { NP = 4 };
  const int64_t sizes[NP] = {7, 1000, 33, 5};
  static float c[NP][1000], got[1000];
  for (double max_norm = 0.5; max_norm < 1e4; max_norm *= 1000) {
    cg_scope_begin();
    cg_tensor *p[NP], *loss = NULL;
    double sq = 0;
    for (int i = 0; i < NP; i++) {
      for (int64_t j = 0; j < sizes[i]; j++) c[i][j] = frand(), p[i] = NULL;
      p[i] = cg_rand(CG_FLOAT32, (int64_t[]){sizes[i]}, 1);
      CHECK(p[i] && cg_realize(p[i]) == CG_OK && cg_set_requires_grad(p[i], true) == CG_OK, "param %d: %s", i, cg_last_error());
      if (i == NP - 1) continue; /* the last one gets no gradient */
      cg_tensor *t = cg_sum(cg_mul(p[i], cg_from_data(c[i], CG_FLOAT32, (int64_t[]){sizes[i]}, 1)), NULL, 0, false);
      loss = loss ? cg_add(loss, t) : t;
      for (int64_t j = 0; j < sizes[i]; j++) sq += (double)c[i][j] * c[i][j];
    }
    CHECK(cg_backward(loss) == CG_OK, "backward: %s", cg_last_error());
    double norm = sqrt(sq), coef = fmin(1.0, max_norm / (norm + 1e-6));
    uint64_t k0 = cg_get_stats().kernels_run;
    cg_tensor *n = cg_clip_grad_norm(p, NP, max_norm);
    CHECK(n != NULL, "clip_grad_norm: %s", cg_last_error());
    CHECK(cg_get_stats().kernels_run == k0, "clip_grad_norm ran a kernel before the realize");
    CHECK(fabs(cg_item(n) - norm) <= 1e-5 * norm, "max_norm %g: norm %.9g, want %.9g", max_norm, cg_item(n), norm);
    for (int i = 0; i < NP - 1; i++) {
      CHECK(cg_read(cg_grad(p[i]), CG_FLOAT32, got, (size_t)sizes[i] * sizeof(float)) == CG_OK, "read grad %d", i);
      double worst = 0;
      for (int64_t j = 0; j < sizes[i]; j++) worst = fmax(worst, fabs(got[j] - c[i][j] * coef) / (1e-6 + fabs(c[i][j] * coef)));
      CHECK(worst <= 1e-5, "max_norm %g: parameter %d's clipped gradient off by %.3g relative (coefficient %g)", max_norm, i, worst, coef);
    }
    CHECK(cg_grad(p[NP - 1]) == NULL, "a parameter with no gradient keeps none");
    cg_scope_end();
  }
  { /* a norm over many parameters (a 6-layer GPT has 76): more reductions than one
     * kernel's loops can hold, so the scheduler splits them */
    enum { MANY = 90 };
    cg_scope_begin();
    cg_tensor *p[MANY], *loss = NULL;
    static float cm[MANY][6];
    double sq = 0;
    for (int i = 0; i < MANY; i++) {
      for (int j = 0; j < 6; j++) cm[i][j] = frand(), sq += (double)cm[i][j] * cm[i][j];
      p[i] = cg_rand(CG_FLOAT32, (int64_t[]){2, 3}, 2);
      CHECK(p[i] && cg_realize(p[i]) == CG_OK && cg_set_requires_grad(p[i], true) == CG_OK, "param %d", i);
      cg_tensor *t = cg_sum(cg_mul(p[i], cg_from_data(cm[i], CG_FLOAT32, (int64_t[]){2, 3}, 2)), NULL, 0, false);
      loss = loss ? cg_add(loss, t) : t;
    }
    CHECK(cg_backward(loss) == CG_OK, "backward: %s", cg_last_error());
    cg_tensor *n = cg_grad_norm(p, MANY);
    CHECK(n && cg_realize(n) == CG_OK, "the norm of %d gradients realizes: %s", MANY, cg_last_error());
    CHECK(n && fabs(cg_item(n) - sqrt(sq)) <= 1e-5 * sqrt(sq), "norm of %d gradients %.9g, want %.9g", MANY, n ? cg_item(n) : NAN, sqrt(sq));
    cg_scope_end();
  }
  /* bad input: a message, no crash */
  CHECK(cg_clip_grad_norm(NULL, 1, 1.0) == NULL && strstr(cg_last_error(), "NULL"), "NULL params: '%s'", cg_last_error());
  cg_tensor *q = cg_zeros(CG_FLOAT32, (int64_t[]){3}, 1);
  CHECK(cg_clip_grad_norm(&q, 1, -1.0) == NULL && strstr(cg_last_error(), "max_norm"), "negative max_norm: '%s'", cg_last_error());
  CHECK(cg_scale_grads(&q, 1, q) != CG_OK && strstr(cg_last_error(), "0-d"), "non-scalar factor: '%s'", cg_last_error());
  cg_free(q);
  return test_summary();
}
