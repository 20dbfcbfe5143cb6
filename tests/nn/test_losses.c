/* Losses against torch.nn.functional (float32, mean reduction): the loss and the gradients
 * of logits / inputs; label smoothing and ignore_index; then bad-input messages. */
#include "test_functional_ref.h"

static const double RT = 1e-4, AT = 1e-6;

static void cases(void) {
  cg_tensor *x, *y;
  ref_case("cross_entropy", RT, AT);
  x = ref_float("5,4", -3, 3, true), y = ref_int("5", 0, 4);
  ref_out(cg_cross_entropy(x, y, 0), "out = F.cross_entropy(x[0], x[1])");

  ref_case("cross_entropy label_smoothing 0.1", RT, AT);
  x = ref_float("6,5", -3, 3, true), y = ref_int("6", 0, 5);
  ref_out(cg_cross_entropy(x, y, 0.1), "out = F.cross_entropy(x[0], x[1], label_smoothing=0.1)");

  ref_case("cross_entropy (N, C, d) label_smoothing 0.25", RT, AT);
  x = ref_float("2,4,3", -3, 3, true), y = ref_int("2,3", 0, 4);
  ref_out(cg_cross_entropy(x, y, 0.25), "out = F.cross_entropy(x[0], x[1], label_smoothing=0.25)");

  ref_case("sparse_categorical_crossentropy ignore_index 1, smoothing 0.2", RT, AT);
  x = ref_float("8,3", -3, 3, true), y = ref_int("8", 0, 3);
  ref_out(cg_sparse_categorical_crossentropy(x, y, 1, 0.2), "out = F.cross_entropy(x[0], x[1], ignore_index=1, label_smoothing=0.2)");

  ref_case("mse_loss", RT, AT);
  x = ref_float("3,4", -2, 2, true), y = ref_float("3,4", -2, 2, true);
  ref_out(cg_mse_loss(x, y), "out = F.mse_loss(x[0], x[1])");

  ref_case("binary_cross_entropy", RT, AT);
  x = ref_float("4,3", 0.02, 0.98, true), y = ref_float("4,3", 0, 1, true);
  ref_out(cg_binary_cross_entropy(x, y), "out = F.binary_cross_entropy(x[0], x[1])");

  ref_case("binary_cross_entropy_with_logits", RT, AT);
  x = ref_float("10", -30, 30, true), y = ref_float("10", 0, 1, true);
  ref_out(cg_binary_cross_entropy_with_logits(x, y), "out = F.binary_cross_entropy_with_logits(x[0], x[1])");
}

static void expect_fail(const char *what, cg_tensor *r, const char *const *needles) {
  CHECK(r == NULL, "%s: expected an error", what);
  CHECK(ref_error_has(needles), "%s: message '%s'", what, cg_last_error());
  cg_clear_error();
}

static void bad_inputs(void) {
  cg_scope_begin();
  cg_tensor *x = cg_zeros(CG_FLOAT32, (int64_t[]){4, 3}, 2), *yi = cg_zeros(CG_INT32, (int64_t[]){5}, 1), *yf = cg_zeros(CG_FLOAT32, (int64_t[]){4}, 1);
  expect_fail("ce target shape", cg_cross_entropy(x, yi, 0), (const char *[]){"cross_entropy", "(4, 3)", "(4,)", "(5,)", NULL});
  expect_fail("ce float targets", cg_cross_entropy(x, yf, 0), (const char *[]){"cross_entropy", "integer", "float32", NULL});
  expect_fail("ce smoothing", cg_cross_entropy(x, cg_zeros(CG_INT32, (int64_t[]){4}, 1), 1.5), (const char *[]){"label_smoothing", "1.5", NULL});
  expect_fail("mse shapes", cg_mse_loss(x, yf), (const char *[]){"mse_loss", "(4, 3)", "(4,)", NULL});
  expect_fail("bce shapes", cg_binary_cross_entropy(x, yf), (const char *[]){"binary_cross_entropy", "(4, 3)", "(4,)", NULL});
  cg_scope_end();
}

/* A hand-checked value: uniform logits give log(C); int32 targets work too. */
static void hand_check(void) {
  cg_scope_begin();
  cg_tensor *x = cg_zeros(CG_FLOAT32, (int64_t[]){3, 4}, 2), *y = cg_from_data((int32_t[]){0, 3, 1}, CG_INT32, (int64_t[]){3}, 1);
  double l = cg_item(cg_cross_entropy(x, y, 0.3));
  CHECK(fabs(l - log(4.0)) < 1e-6, "uniform logits: %.9g, expected log 4 = %.9g", l, log(4.0));
  cg_scope_end();
}

int main(void) {
  ref_init();
  cg_scope_begin();
  cases();
  cg_scope_end();
  ref_finish();
  hand_check();
  bad_inputs();
  return test_summary();
}
