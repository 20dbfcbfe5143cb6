/* INTERP_MAX_STEPS: a launch on the interpreter that runs past the budget fails with an
 * error naming the knob (not a hang); the host keeps running, the same tensor realizes once
 * the budget is lifted, and a budget the kernel fits in changes no bit of the result. */
#include "check.h"
#include "cgrad.h"
#include <stdint.h>

enum { M = 24, K = 40, N = 32 };

/* a fresh lazy product of the same inputs: C = A @ B */
static cg_tensor *product(const float *a, const float *b) {
  int64_t sa[2] = {M, K}, sb[2] = {K, N};
  return cg_matmul(cg_from_data(a, CG_FLOAT32, sa, 2), cg_from_data(b, CG_FLOAT32, sb, 2));
}

int main(void) {
  CHECK(cg_set_config("DEVICE", "INTERP") == CG_OK, "%s", cg_last_error());
  static float a[M * K], b[K * N], got[M * N], again[M * N];
  static double want[M * N];
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < M * K + K * N; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    float r = (float)((s >> 40) / (double)(1 << 24) * 2 - 1);
    if (i < M * K) a[i] = r;
    else b[i - M * K] = r;
  }
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = 0;
      for (int k = 0; k < K; k++) acc += (double)a[i * K + k] * b[k * N + j];
      want[i * N + j] = acc;
    }

  /* ~M*N*K/8 trips of a few instructions: far past 1000 */
  cg_set_config("INTERP_MAX_STEPS", "1000");
  cg_tensor *c = product(a, b);
  cg_status st = cg_realize(c);
  CHECK(st == CG_ERR_RUNTIME, "status %d", (int)st);
  CHECK(strstr(cg_last_error(), "INTERP_MAX_STEPS") != NULL, "error: %s", cg_last_error());
  cg_clear_error();

  /* lifted: the same tensor realizes, and equals float64 C (fp32 sums of 40 terms) */
  cg_set_config("INTERP_MAX_STEPS", "0");
  CHECK(cg_realize(c) == CG_OK, "%s", cg_last_error());
  CHECK(cg_read(c, CG_FLOAT32, got, sizeof got) == CG_OK, "%s", cg_last_error());
  CHECK(near(got, want, M * N, 1e-5, "C"), "bounded-then-lifted product vs float64");
  cg_free(c);

  /* a budget the kernel fits in: the same bits as no budget */
  cg_set_config("INTERP_MAX_STEPS", "1000000000");
  c = product(a, b);
  CHECK(cg_read(c, CG_FLOAT32, again, sizeof again) == CG_OK, "%s", cg_last_error());
  CHECK(memcmp(got, again, sizeof got) == 0, "a budget changed the result");
  cg_free(c);
  return test_summary();
}
