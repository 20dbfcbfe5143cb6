/* Norms, embedding, linear and dropout against torch.nn.functional (float32): outputs and
 * gradients of input, weight and bias. Dropout is random, so it is checked by its
 * statistics and its gradient (mask / (1-p)). Then bad-input messages. */
#include "test_functional_ref.h"

static const double RT = 1e-4, AT = 1e-5;

static void cases(void) {
  cg_tensor *x, *w, *b, *rm, *rv;

  ref_case("batch_norm train (4d)", RT, AT);
  x = ref_float("4,3,3,3", -2, 2, true), w = ref_float("3", 0.5, 1.5, true), b = ref_float("3", -1, 1, true);
  rm = ref_float("3", -0.5, 0.5, false), rv = ref_float("3", 0.5, 1.5, false);
  ref_out(cg_batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5), "out = F.batch_norm(x[0], x[3], x[4], x[1], x[2], True, 0.1, 1e-5); extra = [x[3], x[4]]");
  ref_extra(rm), ref_extra(rv);

  ref_case("batch_norm train (2d, no affine, momentum 0.3)", RT, AT);
  x = ref_float("5,4", -2, 2, true), rm = ref_float("4", -0.5, 0.5, false), rv = ref_float("4", 0.5, 1.5, false);
  ref_out(cg_batch_norm(x, rm, rv, NULL, NULL, true, 0.3, 1e-3), "out = F.batch_norm(x[0], x[1], x[2], None, None, True, 0.3, 1e-3); extra = [x[1], x[2]]");
  ref_extra(rm), ref_extra(rv);

  ref_case("batch_norm eval", RT, AT);
  x = ref_float("2,3,4", -2, 2, true), w = ref_float("3", 0.5, 1.5, true), b = ref_float("3", -1, 1, true);
  rm = ref_float("3", -0.5, 0.5, false), rv = ref_float("3", 0.5, 1.5, false);
  ref_out(cg_batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5), "out = F.batch_norm(x[0], x[3], x[4], x[1], x[2], False, 0.1, 1e-5)");

  ref_case("layer_norm over (3,4)", RT, AT);
  x = ref_float("2,3,4", -2, 2, true), w = ref_float("3,4", 0.5, 1.5, true), b = ref_float("3,4", -1, 1, true);
  ref_out(cg_layer_norm(x, (int64_t[]){3, 4}, 2, w, b, 1e-5), "out = F.layer_norm(x[0], (3,4), x[1], x[2], 1e-5)");

  ref_case("layer_norm no affine", RT, AT);
  x = ref_float("4,6", -2, 2, true);
  ref_out(cg_layer_norm(x, (int64_t[]){6}, 1, NULL, NULL, 1e-5), "out = F.layer_norm(x[0], (6,))");

  ref_case("rms_norm", RT, AT);
  x = ref_float("3,5", -2, 2, true), w = ref_float("5", 0.5, 1.5, true);
  ref_out(cg_rms_norm(x, (int64_t[]){5}, 1, w, 1e-6), "out = x[0] * torch.rsqrt(x[0].pow(2).mean(-1, keepdim=True) + 1e-6) * x[1]");

  ref_case("group_norm 2 groups", RT, AT);
  x = ref_float("2,4,3,3", -2, 2, true), w = ref_float("4", 0.5, 1.5, true), b = ref_float("4", -1, 1, true);
  ref_out(cg_group_norm(x, 2, w, b, 1e-5), "out = F.group_norm(x[0], 2, x[1], x[2], 1e-5)");

  ref_case("embedding", RT, AT);
  cg_tensor *idx = ref_int("2,3", 0, 5);
  w = ref_float("5,4", -1, 1, true);
  ref_out(cg_embedding_fn(idx, w), "out = F.embedding(x[0], x[1])");

  ref_case("linear (3-d input)", RT, AT);
  x = ref_float("2,3,5", -1, 1, true), w = ref_float("4,5", -1, 1, true), b = ref_float("4", -1, 1, true);
  ref_out(cg_linear_fn(x, w, b), "out = F.linear(x[0], x[1], x[2])");
}

static void dropout_checks(void) {
  cg_scope_begin();
  int64_t s[2] = {64, 64};
  cg_tensor *x = cg_ones(CG_FLOAT32, s, 2);
  cg_set_requires_grad(x, true);
  cg_tensor *y = cg_dropout_fn(x, 0.25, true);
  CHECK(y && cg_backward(cg_sum(y, NULL, 0, false)) == CG_OK, "dropout: %s", cg_last_error());
  static float v[64 * 64], g[64 * 64];
  CHECK(cg_read(y, CG_FLOAT32, v, sizeof v) == CG_OK && cg_read(cg_grad(x), CG_FLOAT32, g, sizeof g) == CG_OK, "dropout read: %s", cg_last_error());
  int zeros = 0, bad = 0;
  for (int i = 0; i < 64 * 64; i++) {
    if (v[i] == 0) zeros++;
    else if (fabsf(v[i] - 1 / 0.75f) > 1e-6f) bad++;
    if (g[i] != v[i]) bad++; /* d(sum y)/dx = mask / (1-p) = y for x = 1 */
  }
  CHECK(bad == 0, "dropout: %d values are neither 0 nor 1/(1-p), or differ from the gradient", bad);
  CHECK(zeros > 900 && zeros < 1150, "dropout p=0.25: %d of 4096 zeroed (expected about 1024)", zeros);
  cg_tensor *e = cg_dropout_fn(x, 0.25, false);
  float ev[4];
  CHECK(e && cg_numel(e) == 4096 && cg_read(cg_shrink(e, (int64_t[]){0, 1, 0, 4}), CG_FLOAT32, ev, sizeof ev) == CG_OK && ev[0] == 1 && ev[3] == 1,
        "dropout eval is identity: %s", cg_last_error());
  cg_tensor *all = cg_dropout_fn(x, 1, true);
  CHECK(all && cg_item(cg_sum(all, NULL, 0, false)) == 0, "dropout p=1 zeroes everything");
  CHECK(cg_dropout_fn(x, 1.5, true) == NULL && strstr(cg_last_error(), "1.5"), "dropout p=1.5: %s", cg_last_error());
  cg_scope_end();
}

static void expect_fail(const char *what, cg_tensor *r, const char *const *needles) {
  CHECK(r == NULL, "%s: expected an error", what);
  CHECK(ref_error_has(needles), "%s: message '%s'", what, cg_last_error());
  cg_clear_error();
}

static void bad_inputs(void) {
  cg_scope_begin();
  cg_tensor *x = cg_zeros(CG_FLOAT32, (int64_t[]){2, 3, 4}, 3), *c4 = cg_zeros(CG_FLOAT32, (int64_t[]){4}, 1);
  expect_fail("batch_norm weight", cg_batch_norm(x, NULL, NULL, c4, NULL, true, 0.1, 1e-5), (const char *[]){"batch_norm", "(3,)", "(4,)", NULL});
  expect_fail("batch_norm eval without stats", cg_batch_norm(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5), (const char *[]){"batch_norm", "running", NULL});
  expect_fail("batch_norm one value", cg_batch_norm(cg_zeros(CG_FLOAT32, (int64_t[]){1, 3}, 2), NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
              (const char *[]){"batch_norm", "more than 1 value", "(1, 3)", NULL});
  expect_fail("layer_norm shape", cg_layer_norm(x, (int64_t[]){3}, 1, NULL, NULL, 1e-5), (const char *[]){"layer_norm", "(3,)", "(2, 3, 4)", NULL});
  expect_fail("group_norm groups", cg_group_norm(x, 2, NULL, NULL, 1e-5), (const char *[]){"group_norm", "3 channels", "2 groups", NULL});
  expect_fail("embedding float index", cg_embedding_fn(x, cg_zeros(CG_FLOAT32, (int64_t[]){5, 2}, 2)), (const char *[]){"embedding", "integer", "float32", NULL});
  expect_fail("linear features", cg_linear_fn(x, cg_zeros(CG_FLOAT32, (int64_t[]){2, 3}, 2), NULL), (const char *[]){"linear", "(2, 3, 4)", "(2, 3)", NULL});
  cg_scope_end();
}

int main(void) {
  cg_manual_seed(2);
  ref_init();
  cg_scope_begin();
  cases();
  cg_scope_end();
  ref_finish();
  dropout_checks();
  bad_inputs();
  return test_summary();
}
