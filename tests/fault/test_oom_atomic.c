/* Out of memory, call by call (issue 14): with the N-th allocation failing (core/fault.h),
 *  - cg_backward either adds every gradient or none (nothing half-built reachable);
 *  - in a chain of ops, the NULL that an out-of-memory failure returns keeps that error
 *    (CG_ERR_NOMEM) through the later ops, which would otherwise say "tensor is NULL";
 *  - a failed op leaves no IR node behind (the live count returns to where it was). */
#include "check.h"
#include "cgrad.h"
#include "core/fault.h"
#include "uop/uop.h"
#include <math.h>
#include <string.h>

static void read3(cg_tensor *t, float *out) { CHECK(cg_read(t, CG_FLOAT32, out, 3 * sizeof(float)) == CG_OK, "%s", cg_last_error()); }

static void backward_all_or_nothing(void) {
  const float A[3] = {1, 2, -3}, B[3] = {0.5f, -1, 2}, C[3] = {4, -2, 0.25f};
  int64_t s[1] = {3};
  long ok = 0, nomem = 0;
  for (long n = 1; n < 400; n++) {
    cg_scope_begin();
    cg_tensor *a = cg_from_data(A, CG_FLOAT32, s, 1), *b = cg_from_data(B, CG_FLOAT32, s, 1), *c = cg_from_data(C, CG_FLOAT32, s, 1);
    cg_set_requires_grad(a, true), cg_set_requires_grad(b, true), cg_set_requires_grad(c, true);
    CHECK(cg_backward(cg_sum(cg_add(cg_mul(a, b), c), NULL, 0, false)) == CG_OK); /* ga = b, gb = a, gc = 1 */
    float g1[3][3], g2[3][3];
    cg_tensor *ts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) read3(cg_grad(ts[i]), g1[i]);
    cg_tensor *loss = cg_sum(cg_mul(cg_mul(a, a), c), NULL, 0, false); /* adds 2ac to ga, a^2 to gc */
    fault_arm(n, false);
    cg_status st = cg_backward(loss);
    bool fired = fault_fired();
    fault_arm(0, false);
    CHECK(st == CG_OK || (st == CG_ERR_NOMEM && cg_last_status() == CG_ERR_NOMEM), "N=%ld: status %d: %s", n, (int)st, cg_last_error());
    for (int i = 0; i < 3; i++) read3(cg_grad(ts[i]), g2[i]);
    for (int k = 0; k < 3; k++) {
      float ga = st == CG_OK ? B[k] + 2 * A[k] * C[k] : B[k], gc = st == CG_OK ? 1 + A[k] * A[k] : 1;
      CHECK(g2[0][k] == ga && g2[1][k] == g1[1][k] && g2[2][k] == gc, "N=%ld (%s): grads %g %g %g, want %g %g %g", n,
            st == CG_OK ? "succeeded" : "failed", g2[0][k], g2[1][k], g2[2][k], ga, g1[1][k], gc);
    }
    cg_scope_end();
    if (st == CG_OK) ok++;
    else nomem++;
    if (!fired) break; /* past the last allocation of the backward pass */
  }
  printf("backward: %ld runs failed with CG_ERR_NOMEM and changed nothing, %ld absorbed the failure\n", nomem, ok);
  CHECK(nomem > 10, "the injection reached the backward pass");
}

static void nomem_survives_a_chain(void) {
  int64_t s[2] = {2, 3};
  cg_tensor *x = cg_ones(CG_FLOAT32, s, 2), *y = cg_full(2, CG_FLOAT32, s, 2);
  long hits = 0;
  for (long n = 1; n < 200; n++) {
    cg_clear_error();
    fault_arm(n, true); /* this allocation and every later one fail */
    cg_scope_begin();
    cg_tensor *r = cg_keep(cg_sum(cg_exp(cg_mul(cg_add(x, y), y)), NULL, 0, false));
    cg_scope_end();
    bool fired = fault_fired();
    fault_arm(0, false);
    if (!fired) {
      CHECK(r && fabs(cg_item(r) - 6 * exp(6)) < 1e-2 * 6 * exp(6));
      cg_free(r);
      break;
    }
    CHECK(!r && cg_last_status() == CG_ERR_NOMEM, "N=%ld: %s", n, cg_last_error());
    cg_free(r);
    hits++;
  }
  CHECK(hits > 3);
  cg_clear_error();
  CHECK(!cg_exp(NULL) && cg_last_status() == CG_ERR_INVALID, "a NULL input with no earlier failure is a bad argument");
  cg_free(x), cg_free(y);
}

static void failed_ops_leave_no_nodes(void) {
  int64_t s[2] = {3, 4};
  cg_tensor *x = cg_ones(CG_FLOAT32, s, 2);
  int axis = 1;
  for (long n = 1; n < 100; n++) {
    size_t live = uop_live_count();
    cg_scope_begin();
    fault_arm(n, true);
    cg_softmax(cg_mul(cg_sub(x, cg_mean(x, &axis, 1, true)), x), 1);
    bool fired = fault_fired();
    fault_arm(0, false);
    cg_scope_end();
    CHECK(uop_live_count() == live, "N=%ld: %zu IR nodes before, %zu after", n, live, uop_live_count());
    if (!fired) break;
  }
  cg_free(x);
}

int main(void) {
  backward_all_or_nothing();
  nomem_survives_a_chain();
  failed_ops_leave_no_nodes();
  return test_summary();
}
