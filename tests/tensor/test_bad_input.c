/* Bad input: every call returns NULL (or a negative status), cg_last_error() names the
 * shapes or dtypes involved (shapes print as "(2, 3)"), and the program carries on —
 * a good op right after each failure still works. */
#include "ref.h"

/* An axis error: NULL, and the message names the shape, or both the axis and the rank. */
static bool has_token(const char *e, const char *tok) {
  size_t n = strlen(tok);
  for (const char *p = strstr(e, tok); p; p = strstr(p + 1, tok)) {
    bool before = p == e || !(p[-1] == '-' || (p[-1] >= '0' && p[-1] <= '9'));
    bool after = !(p[n] >= '0' && p[n] <= '9');
    if (before && after) return true;
  }
  return false;
}
static void expect_axis_error_at(int line, const char *what, const void *res, const char *shape, int axis, int ndim) {
  const char *e = cg_last_error();
  char a[16], n[16];
  snprintf(a, sizeof a, "%d", axis);
  snprintf(n, sizeof n, "%d", ndim);
  bool ok = res == NULL && e && (strstr(e, shape) || (has_token(e, a) && has_token(e, n)));
  if (ok) t_pass++;
  else {
    t_fail++;
    fprintf(stderr, "FAIL %s:%d %s: want NULL and an error naming %s or axis %d and rank %d; got %s, \"%s\"\n", __FILE__, line, what,
            shape, axis, ndim, res ? "non-NULL" : "NULL", e ? e : "(null)");
  }
  cg_clear_error();
}
#define EXPECT_AXIS_ERROR(what, res, shape, axis, ndim) expect_axis_error_at(__LINE__, what, res, shape, axis, ndim)

static void good_after(const char *after) {
  /* the library is still usable after a failure */
  int64_t s[2] = {2, 2};
  double v[4] = {1, 2, 3, 4};
  tp a = tp_from_values(CG_FLOAT32, s, 2, v);
  double w = 0;
  cg_tensor *t = cg_sum(cg_add(a.t, a.t), NULL, 0, false);
  w = t ? cg_item(t) : NAN;
  CHECK(w == 20, "after %s: sum(a + a) = %g, want 20 (%s)", after, w, cg_last_error());
  trace_clear();
}

int main(void) {
  ref_init();
  int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s24[2] = {2, 4}, s34[2] = {3, 4}, s45[2] = {4, 5}, s7[1] = {7};
  cg_scope_begin();
  cg_tensor *a23 = cg_ones(CG_FLOAT32, s23, 2), *a32 = cg_ones(CG_FLOAT32, s32, 2), *a24 = cg_ones(CG_FLOAT32, s24, 2);
  cg_tensor *a34 = cg_ones(CG_FLOAT32, s34, 2), *a45 = cg_ones(CG_FLOAT32, s45, 2), *i23 = cg_ones(CG_INT32, s23, 2);
  cg_tensor *v7 = cg_ones(CG_FLOAT32, s7, 1);

  /* broadcasting */
  EXPECT_ERROR("add (2, 3) + (2, 4)", cg_add(a23, a24), "(2, 3)", "(2, 4)");
  EXPECT_ERROR("mul (2, 3) * (3, 2)", cg_mul(a23, a32), "(2, 3)", "(3, 2)");
  EXPECT_ERROR("lt (2, 3) < (7,)", cg_lt(a23, v7), "(2, 3)", "(7,)");
  EXPECT_ERROR("where cond (2, 4) with (2, 3)", cg_where(cg_gt(a24, cg_scalar(0)), a23, a23), "(2, 4)", "(2, 3)");
  int64_t e5[2] = {5, 3};
  EXPECT_ERROR("expand (2, 3) to (5, 3)", cg_expand(a23, e5, 2), "(2, 3)", "(5, 3)");
  good_after("broadcast errors");

  /* reshape to another element count */
  int64_t r5[2] = {5, 2}, rneg[2] = {-1, 4}, rtwo[2] = {-1, -1};
  EXPECT_ERROR("reshape (2, 3) to (5, 2)", cg_reshape(a23, r5, 2), "(2, 3)", "(5, 2)");
  EXPECT_ERROR("reshape (2, 3) to (-1, 4)", cg_reshape(a23, rneg, 2), "(2, 3)", NULL);
  EXPECT_ERROR("reshape with two -1", cg_reshape(a23, rtwo, 2), NULL, NULL);
  good_after("reshape errors");

  /* permute / transpose / flip / squeeze with bad axes */
  int rep[2] = {0, 0}, oob[2] = {0, 2}, short1[1] = {0};
  EXPECT_ERROR("permute with a repeated axis", cg_permute(a23, rep, 2), "(2, 3)", NULL);
  EXPECT_AXIS_ERROR("permute with an axis out of range", cg_permute(a23, oob, 2), "(2, 3)", 2, 2);
  EXPECT_ERROR("permute with too few axes", cg_permute(a23, short1, 1), "(2, 3)", NULL);
  EXPECT_AXIS_ERROR("transpose dim 2 of a 2-d tensor", cg_transpose(a23, 0, 2), "(2, 3)", 2, 2);
  int fl[1] = {3};
  EXPECT_AXIS_ERROR("flip dim 3 of a 2-d tensor", cg_flip(a23, fl, 1), "(2, 3)", 3, 2);
  EXPECT_AXIS_ERROR("unsqueeze at 4 of a 2-d tensor", cg_unsqueeze(a23, 4), "(2, 3)", 4, 3);
  int64_t box[4] = {0, 3, 0, 3}, pads[4] = {-1, 0, 0, 0};
  EXPECT_ERROR("shrink (2, 3) past its end", cg_shrink(a23, box), "(2, 3)", NULL);
  EXPECT_ERROR("slice with step 0", cg_slice(a23, 0, 0, 2, 0), NULL, NULL);
  (void)pads;
  good_after("axis errors");

  /* reductions over an axis out of range */
  int ax2 = 2, axm3 = -3, ax01[2] = {0, 0};
  EXPECT_AXIS_ERROR("sum over axis 2 of (2, 3)", cg_sum(a23, &ax2, 1, false), "(2, 3)", 2, 2);
  EXPECT_AXIS_ERROR("max over axis -3 of (2, 3)", cg_max(a23, &axm3, 1, false), "(2, 3)", -3, 2);
  EXPECT_ERROR("mean over a repeated axis", cg_mean(a23, ax01, 2, false), NULL, NULL);
  EXPECT_AXIS_ERROR("argmax over axis 2 of (2, 3)", cg_argmax(a23, 2, false), "(2, 3)", 2, 2);
  EXPECT_AXIS_ERROR("softmax over axis 5 of (2, 3)", cg_softmax(a23, 5), "(2, 3)", 5, 2);
  EXPECT_AXIS_ERROR("cumsum over axis -3 of (2, 3)", cg_cumsum(a23, -3), "(2, 3)", -3, 2);
  good_after("reduction axis errors");

  /* matmul with mismatched inner dimensions */
  EXPECT_ERROR("matmul (2, 3) @ (4, 5)", cg_matmul(a23, a45), "(2, 3)", "(4, 5)");
  EXPECT_ERROR("matmul (3, 4) @ (3, 4)", cg_matmul(a34, a34), "(3, 4)", NULL);
  EXPECT_ERROR("matmul (7,) @ (2, 3)", cg_matmul(v7, a23), "(7,)", "(2, 3)");
  int64_t b1[3] = {2, 3, 4}, b2[3] = {3, 4, 5};
  EXPECT_ERROR("matmul batch (2, 3, 4) @ (3, 4, 5)", cg_matmul(cg_ones(CG_FLOAT32, b1, 3), cg_ones(CG_FLOAT32, b2, 3)), "(2, 3, 4)", "(3, 4, 5)");
  EXPECT_ERROR("dot of 2-d tensors", cg_dot(a23, a23), "(2, 3)", NULL);
  EXPECT_ERROR("matmul of a 0-d tensor", cg_matmul(cg_scalar(2), a23), NULL, NULL);
  good_after("matmul errors");

  /* cat / stack / gather with mismatched shapes */
  cg_tensor *pair[2] = {a23, a34};
  EXPECT_ERROR("cat (2, 3) and (3, 4) on dim 0", cg_cat(pair, 2, 0), "(2, 3)", "(3, 4)");
  EXPECT_ERROR("stack (2, 3) and (3, 4)", cg_stack(pair, 2, 0), "(2, 3)", "(3, 4)");
  cg_tensor *out[4];
  CHECK(cg_split(a23, 0, 0, out, 4) < 0 && *cg_last_error(), "split with size 0 fails (%s)", cg_last_error());
  cg_clear_error();
  EXPECT_ERROR("gather with a float index", cg_gather(a23, 0, a23), NULL, NULL);
  EXPECT_ERROR("index_select with a 2-d index", cg_index_select(a23, 0, i23), NULL, NULL);
  good_after("cat/gather errors");

  /* dtypes */
  EXPECT_ERROR("bitcast float32 to float16 (size differs)", cg_bitcast(a23, CG_FLOAT16), "float32", "float16");
  EXPECT_ERROR("cast to an invalid dtype", cg_cast(a23, (cg_dtype)99), NULL, NULL);
  EXPECT_ERROR("from_data with an invalid dtype", cg_from_data(&s23, (cg_dtype)99, s23, 2), NULL, NULL);
  int64_t negs[2] = {2, -3};
  EXPECT_ERROR("zeros with a negative dim", cg_zeros(CG_FLOAT32, negs, 2), NULL, NULL);
  EXPECT_ERROR("from_data with more than CG_MAX_DIMS dims", cg_zeros(CG_FLOAT32, (int64_t[9]){1, 1, 1, 1, 1, 1, 1, 1, 1}, 9), NULL, NULL);
  good_after("dtype errors");

  /* cg_read with a wrong dtype or a wrong size */
  float buf[6];
  int32_t ibuf[6];
  cg_status st = cg_read(a23, CG_INT32, ibuf, sizeof ibuf);
  CHECK(st != CG_OK && strstr(cg_last_error(), "int32") && strstr(cg_last_error(), "float32"),
        "cg_read float32 tensor as int32: status %d, error \"%s\"", (int)st, cg_last_error());
  cg_clear_error();
  st = cg_read(a23, CG_FLOAT32, buf, 5 * sizeof(float));
  CHECK(st != CG_OK && strstr(cg_last_error(), "24") && strstr(cg_last_error(), "20"),
        "cg_read with 20 bytes for 24: status %d, error \"%s\"", (int)st, cg_last_error());
  cg_clear_error();
  st = cg_read(i23, CG_FLOAT32, buf, sizeof buf);
  CHECK(st != CG_OK && strstr(cg_last_error(), "int32"), "cg_read int32 tensor as float32: status %d, error \"%s\"", (int)st,
        cg_last_error());
  cg_clear_error();
  st = cg_read(NULL, CG_FLOAT32, buf, sizeof buf);
  CHECK(st != CG_OK && *cg_last_error(), "cg_read(NULL) fails: status %d", (int)st);
  cg_clear_error();
  double it = cg_item(a23);
  CHECK(isnan(it) && *cg_last_error(), "cg_item of 6 elements is NaN with an error (\"%s\")", cg_last_error());
  cg_clear_error();
  st = cg_read(a23, CG_FLOAT32, buf, sizeof buf);
  CHECK(st == CG_OK && buf[0] == 1 && buf[5] == 1, "a good read after bad ones: status %d", (int)st);
  good_after("read errors");

  /* NULL propagation through a chain, checked once at its end */
  cg_clear_error();
  cg_tensor *bad = cg_add(a23, a24); /* fails here */
  const char *first = cg_last_error();
  char saved[256];
  snprintf(saved, sizeof saved, "%s", first);
  cg_tensor *chain = cg_sum(cg_exp(cg_mul(cg_reshape(bad, s32, 2), a32)), NULL, 0, false);
  CHECK(bad == NULL && chain == NULL, "a chain over a failed op gives NULL");
  CHECK(strstr(cg_last_error(), "(2, 3)") != NULL || strstr(saved, "(2, 3)") != NULL,
        "the chain's error still names the first failure's shapes: \"%s\"", cg_last_error());
  CHECK(cg_last_status() != CG_OK, "cg_last_status after a failure: %d", (int)cg_last_status());
  st = cg_realize(chain);
  CHECK(st != CG_OK, "cg_realize(NULL) fails");
  CHECK(isnan(cg_item(chain)), "cg_item(NULL) is NaN");
  cg_tensor *many[2] = {a23, NULL};
  CHECK(cg_realize_many(many, 2) != CG_OK, "cg_realize_many with a NULL fails");
  EXPECT_ERROR("neg(NULL)", cg_neg(NULL), NULL, NULL);
  EXPECT_ERROR("where(NULL, a, b)", cg_where(NULL, a23, a23), NULL, NULL);
  EXPECT_ERROR("cat with a NULL", cg_cat((cg_tensor *[]){a23, NULL}, 2, 0), NULL, NULL);
  cg_clear_error();
  CHECK(cg_last_status() == CG_OK && *cg_last_error() == 0, "cg_clear_error forgets the failure");
  good_after("NULL propagation");
  cg_scope_end();

  ref_shutdown();
  return test_summary();
}
