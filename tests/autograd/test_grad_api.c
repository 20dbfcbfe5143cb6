/* The autograd API: requires_grad, backward / backward_with, accumulation, zero_grad,
 * ownership of gradients, DETACH, errors, and that backward runs nothing. */
#include "cgrad.h"
#include "check.h"
#include <math.h>
#include <string.h>

static const int64_t S23[2] = {2, 3};

static bool read2x3(cg_tensor *t, float *v) { return t && cg_read(t, CG_FLOAT32, v, 6 * sizeof(float)) == CG_OK; }

static void test_basic_and_accumulate(void) {
  cg_scope_begin();
  float xd[6] = {1, 2, 3, 4, 5, 6}, g[6];
  cg_tensor *x = cg_from_data(xd, CG_FLOAT32, S23, 2);
  CHECK(cg_grad(x) == NULL, "no gradient before backward");
  CHECK(cg_set_requires_grad(x, true) == CG_OK, "%s", cg_last_error());
  /* L = sum(x * x): dL/dx = 2x */
  cg_stats s0 = cg_get_stats();
  CHECK(cg_backward(cg_sum(cg_mul(x, x), NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  cg_stats s1 = cg_get_stats();
  CHECK(s1.kernels_run == s0.kernels_run, "backward ran %llu kernels", (unsigned long long)(s1.kernels_run - s0.kernels_run));
  cg_tensor *gx = cg_grad(x);
  CHECK(gx && cg_dtype_of(gx) == CG_FLOAT32 && cg_ndim(gx) == 2 && cg_shape(gx)[0] == 2 && cg_shape(gx)[1] == 3, "grad shape/dtype");
  CHECK(read2x3(gx, g), "%s", cg_last_error());
  for (int i = 0; i < 6; i++) CHECK(g[i] == 2 * xd[i], "2x: [%d] = %g", i, g[i]);
  /* a second backward accumulates, into the same handle */
  CHECK(cg_backward(cg_sum(x, NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  CHECK(cg_grad(x) == gx, "the gradient handle is stable");
  CHECK(read2x3(gx, g), "%s", cg_last_error());
  for (int i = 0; i < 6; i++) CHECK(g[i] == 2 * xd[i] + 1, "accumulated: [%d] = %g", i, g[i]);
  cg_zero_grad(x);
  CHECK(cg_grad(x) == gx && read2x3(gx, g), "zero_grad keeps the handle");
  for (int i = 0; i < 6; i++) CHECK(g[i] == 0, "zeroed: [%d] = %g", i, g[i]);
  CHECK(cg_backward(cg_mean(x, NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  CHECK(read2x3(gx, g), "%s", cg_last_error());
  for (int i = 0; i < 6; i++) CHECK(fabsf(g[i] - 1.0f / 6) < 1e-7f, "mean: [%d] = %g", i, g[i]);
  cg_scope_end();
}

/* Two equal constants are two parameters: each gets its own gradient. */
static void test_equal_constants(void) {
  cg_scope_begin();
  float ad[6] = {1, 1, 1, 1, 1, 1}, bd[6] = {2, 2, 2, 2, 2, 2}, g[6];
  cg_tensor *w1 = cg_ones(CG_FLOAT32, S23, 2), *w2 = cg_ones(CG_FLOAT32, S23, 2);
  CHECK(cg_set_requires_grad(w1, true) == CG_OK && cg_set_requires_grad(w2, true) == CG_OK, "%s", cg_last_error());
  cg_tensor *a = cg_from_data(ad, CG_FLOAT32, S23, 2), *b = cg_from_data(bd, CG_FLOAT32, S23, 2);
  CHECK(cg_backward(cg_sum(cg_add(cg_mul(w1, a), cg_mul(w2, b)), NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  CHECK(read2x3(cg_grad(w1), g) && g[0] == 1 && g[5] == 1, "w1's gradient is a: %g", g[0]);
  CHECK(read2x3(cg_grad(w2), g) && g[0] == 2 && g[5] == 2, "w2's gradient is b: %g", g[0]);
  cg_scope_end();
}

/* Gradient through a non-leaf that requires grad; DETACH stops it; leaves not in the graph
 * keep no gradient; a leaf reached only through a comparison gets zeros. */
static void test_graph_shapes(void) {
  cg_scope_begin();
  float xd[6] = {1, -2, 3, -4, 5, -6}, g[6];
  cg_tensor *x = cg_from_data(xd, CG_FLOAT32, S23, 2), *y = cg_from_data(xd, CG_FLOAT32, S23, 2);
  cg_tensor *unused = cg_from_data(xd, CG_FLOAT32, S23, 2);
  cg_set_requires_grad(x, true);
  cg_set_requires_grad(y, true);
  cg_set_requires_grad(unused, true);
  cg_tensor *h = cg_mul(x, cg_scalar(3));
  CHECK(cg_set_requires_grad(h, true) == CG_OK, "%s", cg_last_error());
  /* L = sum(h * detach(x) + (y > 0) * 1): dL/dh = x, dL/dx = 3x (not through detach), dy = 0 */
  cg_tensor *l = cg_add(cg_sum(cg_mul(h, cg_detach(x)), NULL, 0, false), cg_sum(cg_cast(cg_gt(y, cg_scalar(0)), CG_FLOAT32), NULL, 0, false));
  CHECK(cg_backward(l) == CG_OK, "%s", cg_last_error());
  CHECK(read2x3(cg_grad(h), g) && g[1] == -2, "dL/dh = x: %g", g[1]);
  CHECK(read2x3(cg_grad(x), g) && g[1] == -6 && g[4] == 15, "dL/dx = 3x: %g %g", g[1], g[4]);
  CHECK(read2x3(cg_grad(y), g) && g[0] == 0 && g[1] == 0, "dL/dy = 0 (comparison only)");
  CHECK(cg_grad(unused) == NULL, "a leaf outside the graph has no gradient");
  cg_scope_end();
}

/* The gradient has the leaf's dtype; broadcasting reduces to the leaf's shape. */
static void test_dtypes_and_broadcast(void) {
  cg_scope_begin();
  uint16_t hd[3];
  for (int i = 0; i < 3; i++) hd[i] = cg_f32_to_f16((float)(i + 1));
  cg_tensor *b = cg_from_data(hd, CG_FLOAT16, (int64_t[]){3}, 1);
  cg_tensor *m = cg_ones(CG_FLOAT32, S23, 2);
  cg_set_requires_grad(b, true);
  CHECK(cg_backward(cg_sum(cg_mul(m, b), NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  cg_tensor *gb = cg_grad(b);
  CHECK(gb && cg_dtype_of(gb) == CG_FLOAT16 && cg_ndim(gb) == 1 && cg_shape(gb)[0] == 3, "float16 leaf, float16 (3,) gradient");
  uint16_t g[3];
  CHECK(gb && cg_read(gb, CG_FLOAT16, g, sizeof g) == CG_OK && cg_f16_to_f32(g[0]) == 2 && cg_f16_to_f32(g[2]) == 2,
        "summed over the broadcast rows: %g", gb ? cg_f16_to_f32(g[0]) : -1.0);
  cg_scope_end();
}

/* A gradient belongs to its tensor: freed with it, not by the scope it was made in. */
static void test_ownership(void) {
  float xd[6] = {1, 2, 3, 4, 5, 6}, g[6];
  cg_tensor *x = cg_from_data(xd, CG_FLOAT32, S23, 2); /* the caller's */
  cg_set_requires_grad(x, true);
  cg_scope_begin();
  CHECK(cg_backward(cg_sum(x, NULL, 0, false)) == CG_OK, "%s", cg_last_error());
  cg_scope_end();
  CHECK(read2x3(cg_grad(x), g) && g[3] == 1, "the gradient outlives the scope of backward");
  cg_free(x); /* frees the gradient too (ASan would report a leak otherwise) */
}

static void test_errors(void) {
  cg_scope_begin();
  float xd[6] = {1, 2, 3, 4, 5, 6};
  int32_t id[6] = {1, 2, 3, 4, 5, 6};
  cg_tensor *x = cg_from_data(xd, CG_FLOAT32, S23, 2), *i = cg_from_data(id, CG_INT32, S23, 2);
  CHECK(cg_set_requires_grad(i, true) == CG_ERR_INVALID && strstr(cg_last_error(), "int32"), "int tensor: %s", cg_last_error());
  CHECK(cg_set_requires_grad(NULL, true) == CG_ERR_INVALID, "NULL");
  cg_set_requires_grad(x, true);
  CHECK(cg_backward(cg_mul(x, x)) == CG_ERR_INVALID && strstr(cg_last_error(), "(2, 3)"), "non-scalar loss: %s", cg_last_error());
  CHECK(cg_backward(cg_sum(i, NULL, 0, false)) == CG_ERR_INVALID && strstr(cg_last_error(), "int64"), "int loss: %s", cg_last_error());
  CHECK(cg_backward(NULL) == CG_ERR_INVALID, "NULL loss");
  cg_tensor *ones3 = cg_ones(CG_FLOAT32, (int64_t[]){3}, 1);
  CHECK(cg_backward_with(cg_mul(x, x), ones3) == CG_ERR_INVALID && strstr(cg_last_error(), "(3,)") && strstr(cg_last_error(), "(2, 3)"),
        "grad_out shape: %s", cg_last_error());
  CHECK(cg_backward(cg_sum(cg_detach(x), NULL, 0, false)) == CG_ERR_INVALID && strstr(cg_last_error(), "does not depend"),
        "no path: %s", cg_last_error());
  cg_tensor *l = cg_sum(x, NULL, 0, false);
  CHECK(cg_item(l) == 21, "loss value");
  /* read before backward (torch's habit): the one-element loss kept its graph, once */
  float g[6];
  CHECK(cg_backward(l) == CG_OK && cg_read(cg_grad(x), CG_FLOAT32, g, sizeof g) == CG_OK && g[0] == 1 && g[5] == 1,
        "loss read before backward: %s", cg_last_error());
  CHECK(cg_backward(l) == CG_ERR_INVALID && strstr(cg_last_error(), "compute the output again"), "second backward: %s", cg_last_error());
  CHECK(cg_grad(NULL) == NULL, "grad of NULL");
  cg_zero_grad(NULL);
  cg_scope_end();
}

/* backward_with: a vector-Jacobian product. */
static void test_backward_with(void) {
  cg_scope_begin();
  float xd[6] = {1, 2, 3, 4, 5, 6}, wd[2] = {10, -1}, g[6];
  cg_tensor *x = cg_from_data(xd, CG_FLOAT32, S23, 2);
  cg_set_requires_grad(x, true);
  cg_tensor *w = cg_from_data(wd, CG_FLOAT32, (int64_t[]){2}, 1);
  CHECK(cg_backward_with(cg_sum(x, (int[]){1}, 1, false), w) == CG_OK, "%s", cg_last_error());
  CHECK(read2x3(cg_grad(x), g) && g[0] == 10 && g[2] == 10 && g[3] == -1, "rows get 10 and -1: %g %g", g[0], g[3]);
  cg_scope_end();
}

int main(void) {
  test_basic_and_accumulate();
  test_equal_constants();
  test_graph_shapes();
  test_dtypes_and_broadcast();
  test_ownership();
  test_errors();
  test_backward_with();
  return test_summary();
}
