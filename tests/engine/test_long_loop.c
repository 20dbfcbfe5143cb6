/* A training-shaped loop (forward, backward, in-place SGD update) run many times: the
 * loss goes down, the kernels compile once, and resident memory stops growing after
 * warm-up (skipped under AddressSanitizer, whose quarantine holds freed memory). */
#include "cgrad.h"
#include "check.h"
#include <stdio.h>
#include <string.h>

int main(void) {
  long steps = test_env_long("CG_LOOP_STEPS", 300);
  cg_manual_seed(3);
  int64_t sx[2] = {64, 32}, sw1[2] = {32, 64}, sw2[2] = {64, 8}, sy[2] = {64, 8};
  cg_tensor *x = cg_randn(CG_FLOAT32, sx, 2), *y = cg_randn(CG_FLOAT32, sy, 2);
  cg_tensor *w1 = cg_mul(cg_randn(CG_FLOAT32, sw1, 2), cg_scalar(0.2)), *w2 = cg_mul(cg_randn(CG_FLOAT32, sw2, 2), cg_scalar(0.2));
  CHECK(cg_realize_many((cg_tensor *[]){x, y, w1, w2}, 4) == CG_OK);
  CHECK(cg_set_requires_grad(w1, true) == CG_OK && cg_set_requires_grad(w2, true) == CG_OK, "%s", cg_last_error());
  double first = 0, last = 0;
  long rss_warm = 0, rss_end = 0;
  uint64_t compiled_warm = 0;
  for (long step = 0; step < steps; step++) {
    cg_scope_begin();
    cg_tensor *d = cg_sub(cg_matmul(cg_relu(cg_matmul(x, w1)), w2), y);
    cg_tensor *loss = cg_mean(cg_mul(d, d), NULL, 0, false);
    CHECK(cg_backward(loss) == CG_OK, "%s", cg_last_error());
    cg_tensor *g1 = cg_grad(w1), *g2 = cg_grad(w2);
    cg_assign(w1, cg_sub(w1, cg_mul(g1, cg_scalar(0.05))));
    cg_assign(w2, cg_sub(w2, cg_mul(g2, cg_scalar(0.05))));
    CHECK(cg_realize_many((cg_tensor *[]){loss, w1, w2}, 3) == CG_OK, "%s", cg_last_error());
    double l = cg_item(loss);
    if (step == 0) first = l;
    last = l;
    cg_zero_grad(w1);
    cg_zero_grad(w2);
    cg_scope_end();
    if (step == steps / 3) rss_warm = test_rss_kb(), compiled_warm = cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached;
  }
  rss_end = test_rss_kb();
  printf("loss %.4f -> %.4f; RSS %ld kB after warm-up, %ld kB at the end\n", first, last, rss_warm, rss_end);
  CHECK(last < 0.5 * first, "the loss goes down (%g -> %g)", first, last);
  CHECK(cg_get_stats().kernels_compiled + cg_get_stats().kernels_cached == compiled_warm, "no new kernels after warm-up");
#if defined(__SANITIZE_ADDRESS__)
  printf("RSS check skipped under AddressSanitizer\n");
#else
  CHECK(rss_end <= rss_warm + rss_warm / 100 + 64, "resident memory grows by less than 1%% after warm-up (%ld -> %ld kB)", rss_warm, rss_end);
#endif
  return test_summary();
}
