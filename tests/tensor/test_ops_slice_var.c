/* Views at a kernel-variable offset (cg_slice_var, cg_pad_var): for every value of the var,
 * the same results as the constant slice / pad (float64 reference on the host, exact:
 * these are copies and a doubling), with no compile after the first value; inside a
 * reduction (a matmul with a var-offset operand: float32, |d| <= 1e-5 (1 + sum|ab|));
 * gradients (the slice's is the pad and the pad's the slice, checked against the
 * reference); bounds refused with a message. Runs on the CPU backend and, as
 * test_ops_slice_var_interp, on the interpreter. */
#include "check.h"
#include "cgrad.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

static uint64_t rng;
static double unif(void) {
  uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53 * 2 - 1;
}
static cg_tensor *rnd(const int64_t *s, int nd, double *host) {
  int64_t n = 1;
  for (int i = 0; i < nd; i++) n *= s[i];
  for (int64_t i = 0; i < n; i++) host[i] = (float)unif(); /* exact in float32 */
  cg_tensor *t = cg_cast(cg_from_data(host, CG_FLOAT64, s, nd), CG_FLOAT32);
  cg_realize(t);
  return t;
}
static bool read(cg_tensor *t, double *out, int64_t n) { return t && cg_read(cg_cast(t, CG_FLOAT64), CG_FLOAT64, out, sizeof(double) * (size_t)n) == CG_OK; }
static uint64_t compiles(void) {
  cg_stats s = cg_get_stats();
  return s.kernels_compiled + s.kernels_cached;
}

enum { A = 3, N = 21, L = 8, M = 4 }; /* x (A, N, 5); windows of L at offsets M * b, b in [0, 3] */

static void slice_and_pad(void) {
  double x[A * N * 5], y[A * L * 5], got[A * N * 5];
  cg_scope_begin();
  cg_tensor *xt = rnd((int64_t[]){A, N, 5}, 3, x), *yt = rnd((int64_t[]){A, L, 5}, 3, y);
  cg_tensor *b = cg_variable_int("blk", 0, 0, 3);
  uint64_t c0 = 0;
  for (int bv = 0; bv <= 3; bv++) {
    cg_variable_set(b, bv);
    cg_scope_begin();
    cg_tensor *s = cg_mul(cg_slice_var(xt, 1, b, M, L), cg_scalar(2)); /* exact in float32 */
    cg_tensor *p = cg_pad_var(yt, -2, b, M, N);
    bool ok = read(s, got, A * L * 5);
    CHECK(ok, "slice_var b=%d: %s", bv, cg_last_error());
    int bad = 0;
    for (int i = 0; ok && i < A; i++)
      for (int j = 0; j < L; j++)
        for (int e = 0; e < 5; e++) bad += got[(i * L + j) * 5 + e] != 2 * x[(i * N + M * bv + j) * 5 + e];
    CHECK(ok && bad == 0, "slice_var b=%d: %d values differ from x[:, %d:%d] * 2", bv, bad, M * bv, M * bv + L);
    ok = read(p, got, A * N * 5);
    bad = 0;
    for (int i = 0; ok && i < A; i++)
      for (int j = 0; j < N; j++)
        for (int e = 0; e < 5; e++) {
          int r = j - M * bv;
          bad += got[(i * N + j) * 5 + e] != (r >= 0 && r < L ? y[(i * L + r) * 5 + e] : 0);
        }
    CHECK(ok && bad == 0, "pad_var b=%d: %d values differ from y placed at %d", bv, bad, M * bv);
    if (bv == 0) c0 = compiles();
    else CHECK(compiles() == c0, "b=%d compiled %llu kernels more (a var offset compiles nothing new)", bv, (unsigned long long)(compiles() - c0));
    cg_scope_end();
  }
  cg_scope_end();
}

/* c = a @ x[:, 8b : 8b + 8] with x (K, 40): the var offset inside a reduction's operand */
static void in_matmul(void) {
  enum { R = 5, K = 16, C = 40, W = 8 };
  double a[R * K], x[K * C], got[R * W];
  cg_scope_begin();
  cg_tensor *at = rnd((int64_t[]){R, K}, 2, a), *xt = rnd((int64_t[]){K, C}, 2, x);
  cg_tensor *b = cg_variable_int("col", 0, 0, C / W - 1);
  for (int bv = 0; bv < C / W; bv++) {
    cg_variable_set(b, bv);
    cg_scope_begin();
    bool ok = read(cg_matmul(at, cg_slice_var(xt, -1, b, W, W)), got, R * W);
    CHECK(ok, "matmul with slice_var: %s", cg_last_error());
    int bad = 0;
    for (int i = 0; ok && i < R; i++)
      for (int j = 0; j < W; j++) {
        double want = 0, mag = 0;
        for (int k = 0; k < K; k++) want += a[i * K + k] * x[k * C + W * bv + j], mag += fabs(a[i * K + k] * x[k * C + W * bv + j]);
        bad += !(fabs(got[i * W + j] - want) <= 1e-5 * (1 + mag));
      }
    CHECK(ok && bad == 0, "matmul with slice_var b=%d: %d of %d differ", bv, bad, R * W);
    cg_scope_end();
  }
  cg_scope_end();
}

/* d sum(w * slice_var(x)) / dx = w placed at the offset; d sum(v * pad_var(y)) / dy = the
 * window of v */
static void gradients(void) {
  double x[A * N * 5], w[A * L * 5], y[A * L * 5], v[A * N * 5], gx[A * N * 5], gy[A * L * 5];
  cg_scope_begin();
  cg_tensor *xt = rnd((int64_t[]){A, N, 5}, 3, x), *wt = rnd((int64_t[]){A, L, 5}, 3, w);
  cg_tensor *yt = rnd((int64_t[]){A, L, 5}, 3, y), *vt = rnd((int64_t[]){A, N, 5}, 3, v);
  cg_set_requires_grad(xt, true), cg_set_requires_grad(yt, true);
  cg_tensor *b = cg_variable_int("gblk", 2, 0, 3);
  cg_tensor *loss = cg_add(cg_sum(cg_mul(cg_slice_var(xt, 1, b, M, L), wt), NULL, 0, false),
                           cg_sum(cg_mul(cg_pad_var(yt, 1, b, M, N), vt), NULL, 0, false));
  bool ok = loss && cg_backward(loss) == CG_OK && read(cg_grad(xt), gx, A * N * 5) && read(cg_grad(yt), gy, A * L * 5);
  CHECK(ok, "gradients through slice_var / pad_var: %s", cg_last_error());
  int bad = 0;
  for (int i = 0; ok && i < A; i++)
    for (int j = 0; j < N; j++)
      for (int e = 0; e < 5; e++) {
        int r = j - M * 2;
        bad += gx[(i * N + j) * 5 + e] != (r >= 0 && r < L ? w[(i * L + r) * 5 + e] : 0);
      }
  for (int i = 0; ok && i < A; i++)
    for (int j = 0; j < L; j++)
      for (int e = 0; e < 5; e++) bad += gy[(i * L + j) * 5 + e] != v[(i * N + M * 2 + j) * 5 + e];
  CHECK(ok && bad == 0, "gradients at b=2: %d values differ", bad);
  cg_scope_end();
}

static void bad_input(void) {
  cg_scope_begin();
  cg_tensor *x = cg_zeros(CG_FLOAT32, (int64_t[]){4, 10}, 2);
  cg_tensor *b = cg_variable_int("bad", 0, 0, 2), *f = cg_variable("fvar", 1, CG_FLOAT32);
  CHECK(!cg_slice_var(x, 1, b, 4, 4) && strstr(cg_last_error(), "inside [0, 10)"), "slice past the end refused: %s", cg_last_error());
  CHECK(cg_slice_var(x, 1, b, 3, 4) != NULL, "slice up to the end accepted: %s", cg_last_error());
  CHECK(!cg_slice_var(x, 1, f, 1, 2) && strstr(cg_last_error(), "int32 kernel variable"), "float var refused: %s", cg_last_error());
  CHECK(!cg_slice_var(x, 1, x, 1, 2) && strstr(cg_last_error(), "not a variable"), "non-var refused: %s", cg_last_error());
  CHECK(!cg_slice_var(x, 2, b, 1, 2), "bad dim refused: %s", cg_last_error());
  CHECK(!cg_pad_var(x, 1, b, 2, 13) && strstr(cg_last_error(), "inside [0, 13)"), "pad too small refused: %s", cg_last_error());
  CHECK(!cg_slice_var(NULL, 1, b, 1, 2), "NULL refused");
  cg_scope_end();
}

int main(void) {
  const char *s = getenv("CG_TEST_SEED");
  rng = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
  printf("seed = %llu (set CG_TEST_SEED to repeat)\n", (unsigned long long)rng);
  slice_and_pad();
  in_matmul();
  gradients();
  bad_input();
  return test_summary();
}
