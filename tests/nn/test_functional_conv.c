/* Convolutions (1d/2d/3d, groups, stride, padding, dilation, depthwise), transposed
 * convolutions and pools against torch.nn.functional: outputs and the gradients of input,
 * weight and bias (float32; rtol 1e-4, atol 1e-5). Then the bad-input messages. */
#include "test_functional_ref.h"

#define A2(a, b) ((const int64_t[]){a, b})
#define A1(a) ((const int64_t[]){a})
#define A3(a, b, c) ((const int64_t[]){a, b, c})

static const double RT = 1e-4, AT = 1e-5;

static void conv_cases(void) {
  cg_tensor *x, *w, *b;

  ref_case("conv2d plain", RT, AT);
  x = ref_float("2,3,6,6", -1, 1, true), w = ref_float("4,3,3,3", -1, 1, true), b = ref_float("4", -1, 1, true);
  ref_out(cg_conv2d(x, w, b, NULL, NULL, NULL, 1), "out = F.conv2d(x[0], x[1], x[2])");

  ref_case("conv2d stride2 pad1 groups2", RT, AT);
  x = ref_float("2,4,7,7", -1, 1, true), w = ref_float("6,2,3,3", -1, 1, true), b = ref_float("6", -1, 1, true);
  ref_out(cg_conv2d(x, w, b, A2(2, 2), A2(1, 1), NULL, 2), "out = F.conv2d(x[0], x[1], x[2], stride=2, padding=1, groups=2)");

  ref_case("conv2d dilation2 pad2 non-square", RT, AT);
  x = ref_float("1,3,7,6", -1, 1, true), w = ref_float("2,3,3,3", -1, 1, true);
  ref_out(cg_conv2d(x, w, NULL, NULL, A2(2, 2), A2(2, 2), 1), "out = F.conv2d(x[0], x[1], padding=2, dilation=2)");

  ref_case("conv2d depthwise pad1", RT, AT);
  x = ref_float("2,4,6,6", -1, 1, true), w = ref_float("4,1,3,3", -1, 1, true), b = ref_float("4", -1, 1, true);
  ref_out(cg_conv2d(x, w, b, NULL, A2(1, 1), NULL, 4), "out = F.conv2d(x[0], x[1], x[2], padding=1, groups=4)");

  ref_case("conv2d kernel 2x3 stride (2,1) pad (0,1) dil (1,2)", RT, AT);
  x = ref_float("1,2,7,8", -1, 1, true), w = ref_float("3,2,2,3", -1, 1, true), b = ref_float("3", -1, 1, true);
  ref_out(cg_conv2d(x, w, b, A2(2, 1), A2(0, 1), A2(1, 2), 1),
          "out = F.conv2d(x[0], x[1], x[2], stride=(2,1), padding=(0,1), dilation=(1,2))");

  ref_case("conv2d stride 3 > kernel 2", RT, AT);
  x = ref_float("1,2,8,7", -1, 1, true), w = ref_float("2,2,2,2", -1, 1, true);
  ref_out(cg_conv2d(x, w, NULL, A2(3, 3), NULL, NULL, 1), "out = F.conv2d(x[0], x[1], stride=3)");

  ref_case("conv2d unbatched 1x1 stride 2", RT, AT);
  x = ref_float("3,5,5", -1, 1, true), w = ref_float("2,3,1,1", -1, 1, true), b = ref_float("2", -1, 1, true);
  ref_out(cg_conv2d(x, w, b, A2(2, 2), NULL, NULL, 1), "out = F.conv2d(x[0], x[1], x[2], stride=2)");

  ref_case("conv1d stride2 pad1 groups3", RT, AT);
  x = ref_float("2,3,10", -1, 1, true), w = ref_float("6,1,3", -1, 1, true), b = ref_float("6", -1, 1, true);
  ref_out(cg_conv1d(x, w, b, A1(2), A1(1), NULL, 3), "out = F.conv1d(x[0], x[1], x[2], stride=2, padding=1, groups=3)");

  ref_case("conv3d stride (1,2,1) pad 1", RT, AT);
  x = ref_float("1,2,4,5,4", -1, 1, true), w = ref_float("3,2,2,3,2", -1, 1, true), b = ref_float("3", -1, 1, true);
  ref_out(cg_conv3d(x, w, b, A3(1, 2, 1), A3(1, 1, 1), NULL, 1), "out = F.conv3d(x[0], x[1], x[2], stride=(1,2,1), padding=1)");
}

static void transpose_cases(void) {
  cg_tensor *x, *w, *b;

  ref_case("conv_transpose2d stride2 pad1 outpad1", RT, AT);
  x = ref_float("2,4,4,4", -1, 1, true), w = ref_float("4,3,3,3", -1, 1, true), b = ref_float("3", -1, 1, true);
  ref_out(cg_conv_transpose2d(x, w, b, A2(2, 2), A2(1, 1), A2(1, 1), NULL, 1),
          "out = F.conv_transpose2d(x[0], x[1], x[2], stride=2, padding=1, output_padding=1)");

  ref_case("conv_transpose2d groups2 dilation2", RT, AT);
  x = ref_float("1,4,3,3", -1, 1, true), w = ref_float("4,3,3,3", -1, 1, true), b = ref_float("6", -1, 1, true);
  ref_out(cg_conv_transpose2d(x, w, b, NULL, NULL, NULL, A2(2, 2), 2), "out = F.conv_transpose2d(x[0], x[1], x[2], groups=2, dilation=2)");

  ref_case("conv_transpose2d stride3 pad3 outpad2 (shrinking pad)", RT, AT);
  x = ref_float("1,2,4,4", -1, 1, true), w = ref_float("2,3,3,3", -1, 1, true);
  ref_out(cg_conv_transpose2d(x, w, NULL, A2(3, 3), A2(3, 3), A2(2, 2), NULL, 1),
          "out = F.conv_transpose2d(x[0], x[1], stride=3, padding=3, output_padding=2)");

  ref_case("conv_transpose2d stride (2,1) kernel 2x3", RT, AT);
  x = ref_float("2,3,3,4", -1, 1, true), w = ref_float("3,2,2,3", -1, 1, true), b = ref_float("2", -1, 1, true);
  ref_out(cg_conv_transpose2d(x, w, b, A2(2, 1), A2(0, 1), NULL, NULL, 1),
          "out = F.conv_transpose2d(x[0], x[1], x[2], stride=(2,1), padding=(0,1))");

  ref_case("conv_transpose1d stride2", RT, AT);
  x = ref_float("1,2,5", -1, 1, true), w = ref_float("2,3,4", -1, 1, true);
  ref_out(cg_conv_transpose1d(x, w, NULL, A1(2), NULL, NULL, NULL, 1), "out = F.conv_transpose1d(x[0], x[1], stride=2)");
}

static void pool_cases(void) {
  cg_tensor *x;
  ref_case("max_pool2d k3 s2 p1", RT, AT);
  x = ref_float("2,3,7,7", -1, 1, true);
  ref_out(cg_max_pool2d(x, A2(3, 3), A2(2, 2), A2(1, 1)), "out = F.max_pool2d(x[0], 3, 2, 1)");

  ref_case("max_pool2d k2 default stride, odd width", RT, AT);
  x = ref_float("1,2,6,5", -1, 1, true);
  ref_out(cg_max_pool2d(x, A2(2, 2), NULL, NULL), "out = F.max_pool2d(x[0], 2)");

  ref_case("avg_pool2d k3 s2 p1 (count_include_pad)", RT, AT);
  x = ref_float("2,2,7,7", -1, 1, true);
  ref_out(cg_avg_pool2d(x, A2(3, 3), A2(2, 2), A2(1, 1)), "out = F.avg_pool2d(x[0], 3, 2, 1)");

  ref_case("avg_pool2d k (2,3) s (1,2) p (1,1) unbatched", RT, AT);
  x = ref_float("3,5,6", -1, 1, true);
  ref_out(cg_avg_pool2d(x, A2(2, 3), A2(1, 2), A2(1, 1)), "out = F.avg_pool2d(x[0], (2,3), (1,2), (1,1))");
}

/* Calls that must fail with a message holding every needle. */
static void expect_fail(const char *what, cg_tensor *r, const char *const *needles) {
  CHECK(r == NULL, "%s: expected an error", what);
  CHECK(ref_error_has(needles), "%s: message '%s'", what, cg_last_error());
  cg_clear_error();
}

static void bad_inputs(void) {
  cg_scope_begin();
  int64_t s4[4] = {1, 3, 5, 5}, w4[4] = {4, 2, 3, 3}, s2[2] = {5, 5}, small[4] = {1, 1, 2, 2}, big[4] = {1, 1, 3, 3};
  cg_tensor *x = cg_zeros(CG_FLOAT32, s4, 4), *w = cg_zeros(CG_FLOAT32, w4, 4);
  expect_fail("channel mismatch", cg_conv2d(x, w, NULL, NULL, NULL, NULL, 1),
              (const char *[]){"conv2d", "(1, 3, 5, 5)", "3 channels", "(4, 2, 3, 3)", "expects 2", NULL});
  expect_fail("groups do not divide", cg_conv2d(x, w, NULL, NULL, NULL, NULL, 2),
              (const char *[]){"conv2d", "(1, 3, 5, 5)", "groups=2", NULL});
  expect_fail("wrong rank", cg_conv2d(cg_zeros(CG_FLOAT32, s2, 2), w, NULL, NULL, NULL, NULL, 1),
              (const char *[]){"conv2d", "4 dims", "(5, 5)", NULL});
  expect_fail("weight rank", cg_conv2d(x, cg_zeros(CG_FLOAT32, s2, 2), NULL, NULL, NULL, NULL, 1),
              (const char *[]){"conv2d", "weight", "(5, 5)", NULL});
  cg_tensor *xs = cg_zeros(CG_FLOAT32, small, 4), *wb = cg_zeros(CG_FLOAT32, big, 4);
  expect_fail("kernel larger than input", cg_conv2d(xs, wb, NULL, NULL, NULL, NULL, 1),
              (const char *[]){"conv2d", "kernel (3, 3)", "padded input (2, 2)", "(1, 1, 2, 2)", NULL});
  expect_fail("dilated kernel larger than padded input", cg_conv2d(xs, wb, NULL, NULL, A2(1, 1), A2(2, 2), 1),
              (const char *[]){"conv2d", "spans (5, 5)", "padded input (4, 4)", NULL});
  expect_fail("bias shape", cg_conv2d(x, cg_zeros(CG_FLOAT32, (int64_t[]){4, 3, 3, 3}, 4), cg_zeros(CG_FLOAT32, A1(3), 1), NULL, NULL, NULL, 1),
              (const char *[]){"conv2d", "bias", "(4,)", "(3,)", NULL});
  expect_fail("negative padding", cg_conv2d(x, cg_zeros(CG_FLOAT32, (int64_t[]){4, 3, 3, 3}, 4), NULL, NULL, A2(-1, 0), NULL, 1),
              (const char *[]){"conv2d", "padding", "(-1, 0)", NULL});
  expect_fail("conv1d rank", cg_conv1d(x, w, NULL, NULL, NULL, NULL, 1), (const char *[]){"conv1d", "3 dims", "(1, 3, 5, 5)", NULL});
  expect_fail("conv_transpose channels", cg_conv_transpose2d(x, w, NULL, NULL, NULL, NULL, NULL, 1),
              (const char *[]){"conv_transpose2d", "(1, 3, 5, 5)", "(4, 2, 3, 3)", NULL});
  expect_fail("conv_transpose output_padding", cg_conv_transpose2d(x, cg_zeros(CG_FLOAT32, (int64_t[]){3, 2, 3, 3}, 4), NULL, A2(2, 2), NULL, A2(2, 2), NULL, 1),
              (const char *[]){"conv_transpose2d", "output_padding (2, 2)", "stride (2, 2)", NULL});
  expect_fail("pool kernel larger than input", cg_max_pool2d(xs, A2(3, 3), NULL, NULL),
              (const char *[]){"max_pool2d", "kernel (3, 3)", "padded input (2, 2)", "(1, 1, 2, 2)", NULL});
  expect_fail("pool padding over half kernel", cg_avg_pool2d(x, A2(2, 2), NULL, A2(2, 2)),
              (const char *[]){"avg_pool2d", "padding (2, 2)", "kernel (2, 2)", NULL});
  expect_fail("pool rank", cg_max_pool2d(cg_zeros(CG_FLOAT32, s2, 2), A2(2, 2), NULL, NULL), (const char *[]){"max_pool2d", "(5, 5)", NULL});
  expect_fail("NULL input", cg_conv2d(NULL, w, NULL, NULL, NULL, NULL, 1), (const char *[]){"conv2d", "input is NULL", NULL});
  cg_scope_end();
}

/* A conv whose output is checked by hand (no torch needed): all-ones input and weight. */
static void ones_check(void) {
  cg_scope_begin();
  int64_t xs[4] = {1, 2, 4, 4}, ws[4] = {1, 2, 3, 3};
  cg_tensor *y = cg_conv2d(cg_ones(CG_FLOAT32, xs, 4), cg_ones(CG_FLOAT32, ws, 4), NULL, NULL, A2(1, 1), NULL, 1);
  float v[16] = {0};
  CHECK(y && cg_ndim(y) == 4 && cg_shape(y)[2] == 4 && cg_read(y, CG_FLOAT32, v, sizeof v) == CG_OK, "ones conv: %s", cg_last_error());
  /* corner: 2 channels * 4 taps, edge: 2 * 6, inside: 2 * 9 */
  CHECK(v[0] == 8 && v[1] == 12 && v[5] == 18, "ones conv: got %g %g %g", v[0], v[1], v[5]);
  cg_scope_end();
}

int main(void) {
  cg_manual_seed(1);
  ref_init();
  ones_check();
  cg_scope_begin();
  conv_cases();
  transpose_cases();
  pool_cases();
  cg_scope_end();
  ref_finish();
  bad_inputs();
  return test_summary();
}
