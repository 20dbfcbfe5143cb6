/* What a new user hits first (issue 11): a NULL array with a positive count, shapes whose
 * element count or byte size overflows 64 bits, messages that name the NULL argument, an
 * error chain that keeps its root cause, and reading the loss before cg_backward. Every
 * failing call must return NULL / a negative status with a message, never crash. */
#include "check.h"
#include <cgrad.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* res must be the failure value and the message must contain want. */
#define EXPECT_ERR(failed, want)                                                                                        \
  do {                                                                                                                \
    bool f_ = (failed);                                                                                               \
    CHECK(f_ && strstr(cg_last_error(), want) != NULL, "want a failure saying '%s', got %s: \"%s\"", want,           \
          f_ ? "a failure" : "success", cg_last_error());                                                             \
    cg_clear_error();                                                                                                 \
  } while (0)

static double frand(void) { return (double)rand() / RAND_MAX * 2 - 1; }

static void null_arrays(void) {
  cg_scope_begin();
  cg_tensor *a = cg_ones(CG_FLOAT32, (int64_t[]){2, 4}, 2), *out[4];
  EXPECT_ERR(!cg_reshape(a, NULL, 1), "reshape: shape is NULL");
  EXPECT_ERR(!cg_sum(a, NULL, 2, false), "sum: axes is NULL");
  EXPECT_ERR(!cg_max(a, NULL, 1, false), "max: axes is NULL");
  EXPECT_ERR(!cg_mean(a, NULL, 1, true), "mean: axes is NULL");
  EXPECT_ERR(!cg_var(a, NULL, 1, 1, true), "var: axes is NULL");
  EXPECT_ERR(!cg_logsumexp(a, NULL, 1, true), "logsumexp: axes is NULL");
  EXPECT_ERR(!cg_sum(a, (int[]){0}, -1, false), "expected 0 to 2 axes");
  EXPECT_ERR(!cg_permute(a, NULL, 2), "permute: perm is NULL");
  EXPECT_ERR(!cg_expand(a, NULL, 2), "expand: shape is NULL");
  EXPECT_ERR(!cg_pad(a, NULL, 0), "pad: pads is NULL");
  EXPECT_ERR(!cg_shrink(a, NULL), "shrink: box is NULL");
  EXPECT_ERR(!cg_flip(a, NULL, 1), "flip: dims is NULL");
  EXPECT_ERR(!cg_repeat(a, NULL, 2), "repeat: reps is NULL");
  EXPECT_ERR(cg_split(a, 2, 0, NULL, 4) == -1, "split: out is NULL");
  EXPECT_ERR(cg_chunk(a, 2, 1, NULL, 4) == -1, "chunk: out is NULL");
  EXPECT_ERR(cg_realize_many(NULL, 2) == CG_ERR_INVALID, "realize: the tensor array is NULL");
  EXPECT_ERR(!cg_cat(NULL, 2, 0), "cat");
  EXPECT_ERR(!cg_layer_norm(a, NULL, 1, NULL, NULL, 1e-5), "normalized_shape is NULL");
  EXPECT_ERR(!cg_layernorm(NULL, 1, 1e-5, true), "normalized_shape is NULL");
  /* a NULL array with 0 entries is fine: split with max_out 0 just counts */
  CHECK(cg_split(a, 2, 1, NULL, 0) == 2, "split counts the pieces: %s", cg_last_error());
  CHECK(cg_realize_many(NULL, 0) == CG_OK, "realizing nothing: %s", cg_last_error());
  /* a good op still works */
  cg_tensor *s = cg_sum(a, (int[]){1}, 1, false);
  float v[2] = {0};
  CHECK(s && cg_read(s, CG_FLOAT32, v, sizeof v) == CG_OK && v[0] == 4 && v[1] == 4, "sum after the failures");
  CHECK(cg_split(a, 3, 1, out, 4) == 2 && cg_numel(out[1]) == 2, "split into out");
  cg_scope_end();
}

static void messages(void) {
  EXPECT_ERR(!cg_zeros(CG_FLOAT32, NULL, 1), "shape is NULL (with ndim 1)");
  EXPECT_ERR(!cg_rand(CG_FLOAT32, NULL, 2), "rand: shape is NULL");
  EXPECT_ERR(!cg_from_data(NULL, CG_FLOAT32, NULL, 1), "from_data: shape is NULL");
  EXPECT_ERR(!cg_adam(NULL, 3, 1e-3, 0.9, 0.999, 1e-8, 0), "adam: params is NULL");
  EXPECT_ERR(!cg_sgd(NULL, 1, 1e-3, 0, 0, 0, false), "sgd: params is NULL");
  EXPECT_ERR(cg_set_config(NULL, "1") == CG_ERR_INVALID, "cg_set_config: name is NULL");
  EXPECT_ERR(cg_set_config("DEBUG", NULL) == CG_ERR_INVALID, "cg_set_config: value is NULL");
  EXPECT_ERR(!cg_get_config(NULL) && cg_last_status() == CG_ERR_INVALID, "cg_get_config: name is NULL");
  cg_tensor *t = cg_ones(CG_FLOAT32, (int64_t[]){2}, 1);
  EXPECT_ERR(cg_save_safetensors("/tmp/never-written.safetensors", NULL, &t, 1) == CG_ERR_INVALID, "save_safetensors: names is NULL");
  EXPECT_ERR(cg_load_safetensors("/tmp/never-read.safetensors", (const char *[]){"t"}, NULL, 1) == CG_ERR_INVALID,
             "load_safetensors: ts is NULL");
  EXPECT_ERR(!cg_sequential(NULL, 2), "sequential: modules is NULL");
  cg_free(t);

  /* a chain checked once at its end keeps the first failure's message */
  cg_scope_begin();
  cg_tensor *x = cg_ones(CG_FLOAT32, (int64_t[]){2, 3}, 2);
  cg_tensor *bad = cg_reshape(x, (int64_t[]){7}, 1); /* fails: 6 elements */
  cg_tensor *loss = cg_cross_entropy(cg_relu(bad), cg_zeros(CG_INT32, (int64_t[]){2}, 1), 0);
  CHECK(!loss && strstr(cg_last_error(), "cross_entropy") && strstr(cg_last_error(), "after: reshape: cannot reshape (2, 3)"),
        "the root cause reaches the end of the chain: \"%s\"", cg_last_error());
  cg_clear_error();
  CHECK(!cg_relu(NULL) && !strstr(cg_last_error(), "after"), "a NULL with no earlier error says just that: \"%s\"", cg_last_error());
  cg_clear_error();
  cg_scope_end();
}

static void overflow(void) {
  const int64_t big = (int64_t)1 << 40;
  EXPECT_ERR(!cg_empty(CG_FLOAT32, (int64_t[]){big, big}, 2), "empty: shape (1099511627776, 1099511627776) is too large");
  EXPECT_ERR(!cg_zeros(CG_FLOAT32, (int64_t[]){big, big}, 2), "too large");
  EXPECT_ERR(!cg_rand(CG_FLOAT32, (int64_t[]){big, big}, 2), "rand: shape");
  EXPECT_ERR(!cg_full(1, CG_FLOAT32, (int64_t[]){3, (int64_t)1 << 62}, 2), "too large");
  EXPECT_ERR(!cg_full(1, CG_FLOAT32, (int64_t[]){INT64_MAX}, 1), "too large");     /* 2^65 bytes */
  EXPECT_ERR(!cg_full(1, CG_UINT8, (int64_t[]){INT64_MAX, 2}, 2), "too large");
  EXPECT_ERR(!cg_arange(0, 1e300, 1, CG_FLOAT32), "arange");
  EXPECT_ERR(!cg_linspace(0, 1, INT64_MAX / 2, CG_FLOAT64), "linspace: shape");
  EXPECT_ERR(!cg_eye((int64_t)1 << 40, CG_FLOAT32), "eye");
  cg_scope_begin();
  cg_tensor *a = cg_ones(CG_FLOAT32, (int64_t[]){1, 1, 1}, 3);
  EXPECT_ERR(!cg_expand(a, (int64_t[]){big, big, 4}, 3), "expand: shape");
  EXPECT_ERR(!cg_repeat(a, (int64_t[]){big, big, 4}, 3), "repeat");
  EXPECT_ERR(!cg_pad(a, (int64_t[]){0, INT64_MAX, 0, 0, 0, 0}, 0), "pad");
  EXPECT_ERR(!cg_reshape(cg_ones(CG_FLOAT32, (int64_t[]){4}, 1), (int64_t[]){big, big, 4}, 3), "reshape: shape");
  cg_tensor *e = cg_reshape(cg_ones(CG_FLOAT32, (int64_t[]){0}, 1), (int64_t[]){big, big, 0}, 3);
  CHECK(e && cg_numel(e) == 0, "an empty tensor reshapes to (2^40, 2^40, 0): %s", cg_last_error());
  cg_tensor *r = cg_ones(CG_FLOAT32, (int64_t[]){big, 1}, 2), *c = cg_ones(CG_FLOAT32, (int64_t[]){1, big}, 2);
  CHECK(r && c, "a (2^40, 1) constant is a fine lazy tensor: %s", cg_last_error());
  EXPECT_ERR(!cg_add(r, c), "add: shape (1099511627776, 1099511627776) is too large");
  /* a zero dim makes a huge product harmless */
  cg_tensor *z = cg_zeros(CG_FLOAT32, (int64_t[]){0, INT64_MAX}, 2);
  CHECK(z && cg_numel(z) == 0 && cg_realize(z) == CG_OK, "a (0, INT64_MAX) tensor is empty: %s", cg_last_error());
  cg_scope_end();
}

/* loss.item(); loss.backward(): reading the loss first keeps its graph for backward. The
 * gradient of sum((w*x)^2)/n w.r.t. w is 2*w*x^2/n, checked in float64. */
static void read_then_backward(void) {
  enum { N = 37 };
  float w[N], x[N];
  for (int i = 0; i < N; i++) w[i] = (float)frand(), x[i] = (float)frand();
  cg_tensor *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){N}, 1);
  CHECK(cg_set_requires_grad(tw, true) == CG_OK);
  for (int round = 0; round < 2; round++) {
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){N}, 1);
    cg_tensor *y = cg_mul(tw, tx);
    cg_tensor *loss = cg_mean(cg_mul(y, y), NULL, 0, false);
    double want_loss = 0;
    for (int i = 0; i < N; i++) want_loss += (double)w[i] * x[i] * w[i] * x[i] / N;
    double got = cg_item(loss); /* realizes the loss */
    CHECK(fabs(got - want_loss) <= 1e-6 * fabs(want_loss) + 1e-7, "loss %g, want %g", got, want_loss);
    CHECK(cg_backward(loss) == CG_OK, "backward after reading the loss: %s", cg_last_error());
    float g[N];
    CHECK(cg_read(cg_grad(tw), CG_FLOAT32, g, sizeof g) == CG_OK, "%s", cg_last_error());
    double maxerr = 0;
    for (int i = 0; i < N; i++) {
      double want = 2.0 * w[i] * x[i] * x[i] / N * (round + 1); /* accumulates across rounds */
      double e = fabs(g[i] - want) / (fabs(want) + 1e-6);
      if (e > maxerr) maxerr = e;
    }
    CHECK(maxerr < 1e-5, "round %d: gradient after item() is right (max rel err %g, float32)", round, maxerr);
    /* the loss still reads its value after backward */
    CHECK(fabs(cg_item(loss) - want_loss) <= 1e-6 * fabs(want_loss) + 1e-7);
    cg_scope_end();
  }
  /* a second backward from the same realized loss: the graph was given up by the first
   * (as torch without retain_graph), and the message says what to do */
  cg_scope_begin();
  cg_tensor *loss = cg_sum(cg_mul(tw, tw), NULL, 0, false);
  cg_item(loss);
  CHECK(cg_backward(loss) == CG_OK, "%s", cg_last_error());
  EXPECT_ERR(cg_backward(loss) == CG_ERR_INVALID, "compute the output again");
  cg_scope_end();
  cg_free(tw);
}

int main(void) {
  srand(1234);
  null_arrays();
  messages();
  overflow();
  read_then_backward();
  return test_summary();
}
