/* Write-after-read ordering of assigns in one schedule: every kernel that reads a buffer's
 * value from before the realize runs before the assign that overwrites it, whatever order
 * the outputs are listed in (an optimizer step realized with the loss and gradients that
 * read the old weights). Results against float64 in plain C:
 *   - y = sum(w * x) and z = 2 w (lazy, read the old w) realized with w <- w + 1 listed first;
 *   - a chain: u <- u * 3 while v <- v + u_old and t = u_old - v_old, all in one realize;
 *   - a kernel that would need both the old and the new value fails with a message, and
 *     the library keeps working. */
#include "cgrad.h"
#include "check.h"
#include <math.h>
#include <string.h>
#include <time.h>

enum { N = 1000 };
static uint64_t rng = 11;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

int main(void) {
  rng = (uint64_t)test_env_long("CG_TEST_SEED", (long)time(NULL));
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)rng);
  static float W[N], X[N], U[N], V[N], out[N];
  static double ref[N];
  for (int i = 0; i < N; i++) W[i] = frand(), X[i] = frand(), U[i] = frand(), V[i] = frand();
  int64_t shape[] = {N};

  { /* the assign listed first: without the ordering its kernel would run first */
    cg_tensor *w = cg_from_data(W, CG_FLOAT32, shape, 1), *x = cg_from_data(X, CG_FLOAT32, shape, 1);
    cg_tensor *y = cg_sum(cg_mul(w, x), NULL, 0, false), *z = cg_contiguous(cg_mul(w, cg_scalar(2)));
    CHECK(cg_assign(w, cg_add(w, cg_scalar(1))) == CG_OK, "assign: %s", cg_last_error());
    cg_tensor *all[] = {w, y, z};
    CHECK(cg_realize_many(all, 3) == CG_OK, "realize: %s", cg_last_error());
    double s = 0;
    for (int i = 0; i < N; i++) s += (double)W[i] * X[i];
    CHECK(fabs(cg_item(y) - s) <= 1e-4 * (1 + fabs(s)), "sum(w*x) read the old w: got %.9g, want %.9g", cg_item(y), s);
    for (int i = 0; i < N; i++) ref[i] = 2.0 * W[i];
    CHECK(cg_read(z, CG_FLOAT32, out, sizeof out) == CG_OK && near(out, ref, N, 1e-6, "2w"), "2w read the old w");
    for (int i = 0; i < N; i++) ref[i] = (double)W[i] + 1;
    CHECK(cg_read(w, CG_FLOAT32, out, sizeof out) == CG_OK && near(out, ref, N, 1e-6, "w+1"), "w was updated");
    cg_free(w), cg_free(x), cg_free(y), cg_free(z);
  }
  { /* two assigns, each read by the other's update and by a third kernel */
    cg_tensor *u = cg_from_data(U, CG_FLOAT32, shape, 1), *v = cg_from_data(V, CG_FLOAT32, shape, 1);
    cg_tensor *t = cg_contiguous(cg_sub(u, v));
    cg_tensor *nu = cg_mul(u, cg_scalar(3)), *nv = cg_add(v, u);
    CHECK(cg_assign(u, nu) == CG_OK && cg_assign(v, nv) == CG_OK, "assign: %s", cg_last_error());
    cg_tensor *all[] = {v, u, t};
    CHECK(cg_realize_many(all, 3) == CG_OK, "realize: %s", cg_last_error());
    for (int i = 0; i < N; i++) ref[i] = 3.0 * U[i];
    CHECK(cg_read(u, CG_FLOAT32, out, sizeof out) == CG_OK && near(out, ref, N, 1e-6, "u"), "u <- 3u");
    for (int i = 0; i < N; i++) ref[i] = (double)V[i] + U[i];
    CHECK(cg_read(v, CG_FLOAT32, out, sizeof out) == CG_OK && near(out, ref, N, 1e-6, "v"), "v <- v + old u");
    for (int i = 0; i < N; i++) ref[i] = (double)U[i] - V[i];
    CHECK(cg_read(t, CG_FLOAT32, out, sizeof out) == CG_OK && near(out, ref, N, 1e-6, "t"), "t = old u - old v");
    cg_free(u), cg_free(v), cg_free(t), cg_free(nu), cg_free(nv);
  }
  { /* old and new value in one kernel: refused, and nothing is left broken */
    cg_tensor *w = cg_from_data(W, CG_FLOAT32, shape, 1);
    cg_tensor *old = cg_mul(w, cg_scalar(1));
    CHECK(cg_assign(w, cg_add(w, cg_scalar(1))) == CG_OK, "assign: %s", cg_last_error());
    cg_tensor *both = cg_add(old, cg_reshape(w, (int64_t[]){N}, 1));
    cg_tensor *all[] = {w, both};
    CHECK(cg_realize_many(all, 2) != CG_OK && strstr(cg_last_error(), "old and the new value"), "expected a refusal naming the old and new value, got '%s'",
          cg_last_error());
    CHECK(cg_realize(w) == CG_OK, "the assign alone still realizes: %s", cg_last_error());
    for (int i = 0; i < N; i++) ref[i] = (double)W[i] + 1;
    CHECK(cg_read(w, CG_FLOAT32, out, sizeof out) == CG_OK && near(out, ref, N, 1e-6, "w+1"), "w after the refusal");
    cg_free(w), cg_free(old), cg_free(both);
  }
  return test_summary();
}
