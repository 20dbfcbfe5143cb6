/* The C backend (device CPU, gcc) and the x86 machine code (device X86) give the same bits
 * for the same kernels: both fuse exactly the multiply-adds renderer/contract.c chooses (the
 * C kernels build with -ffp-contract=off and spell them as fma), evaluate EXP2 / LOG2 with
 * vmath.h's polynomials in one order, and share every other op's IEEE meaning. That is
 * what lets tiering (CG_TIER) swap gcc's function in at any launch without a run's bits
 * depending on when the compiler finished. Checked, on fresh random inputs of odd sizes:
 * multiply-add chains, transcendentals and the composites built on them (sigmoid, tanh,
 * gelu, softmax, log_softmax, logsumexp), reductions, matmul, conv2d forward with its
 * input and weight gradients, max-pool, batch norm and layer norm with gradients, a
 * cross-entropy loss's gradient. Every output element must be bit-identical (NaNs: both
 * NaN). Skips where the CPU lacks AVX-512 (X86 then compiles everything with gcc). */
#include "check.h"
#include "cgrad.h"
#include "runtime/cpu_features.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_s;
static double urand(void) {
  rng_s = rng_s * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rng_s >> 11) / 9007199254740992.0;
}
static float *fill(int64_t n, double lo, double hi) {
  float *v = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * urand());
  return v;
}

#define MAXOUT 16
typedef struct {
  int n;
  cg_tensor *t[MAXOUT];
} outs;
static void out(outs *o, cg_tensor *t) {
  if (o->n < MAXOUT) o->t[o->n++] = t;
}

/* one case: a graph of inputs built on the current device; its outputs are compared */
typedef void (*builder)(float *const *in, outs *o);
typedef struct {
  const char *name;
  builder build;
  int nin;
  int64_t shape[4][4];
  int rank[4];
  double lo, hi;
} bcase;

static cg_tensor *T(const float *d, const int64_t *sh, int r) { return cg_from_data(d, CG_FLOAT32, sh, r); }
static cg_tensor *param(const float *d, const int64_t *sh, int r) {
  cg_tensor *t = T(d, sh, r);
  cg_set_requires_grad(t, true);
  return t;
}

static void b_fma(float *const *in, outs *o) { /* a*b+c, a*b+c*d, (a*b+c)*d+a, sums of products */
  int64_t n = 4099;
  cg_tensor *a = T(in[0], &n, 1), *b = T(in[1], &n, 1), *c = T(in[2], &n, 1);
  out(o, cg_add(cg_mul(a, b), c));
  out(o, cg_add(cg_mul(a, b), cg_mul(c, a)));
  out(o, cg_add(cg_mul(cg_add(cg_mul(a, b), c), b), a));
  out(o, cg_sub(cg_mul(a, b), cg_mul(b, c)));
  out(o, cg_sum(cg_mul(a, b), (int[]){0}, 1, false));
  out(o, cg_div(a, cg_add(cg_abs(b), cg_scalar(0.5))));
  out(o, cg_sqrt(cg_add(cg_mul(a, a), cg_mul(b, b))));
}
static void b_trans(float *const *in, outs *o) {
  int64_t sh[2] = {37, 61};
  cg_tensor *a = T(in[0], sh, 2);
  out(o, cg_exp(a)), out(o, cg_log(cg_abs(a))), out(o, cg_exp2(cg_mul(a, cg_scalar(9.0)))), out(o, cg_log2(cg_add(cg_abs(a), cg_scalar(1e-3))));
  out(o, cg_sigmoid(a)), out(o, cg_tanh(a)), out(o, cg_gelu(a)), out(o, cg_silu(a)), out(o, cg_softplus(a, 1.0, 20.0));
  out(o, cg_softmax(a, 1)), out(o, cg_log_softmax(a, 0)), out(o, cg_logsumexp(a, (int[]){1}, 1, false));
  out(o, cg_pow(cg_add(cg_abs(a), cg_scalar(0.1)), cg_scalar(1.7)));
}
static void b_reduce(float *const *in, outs *o) {
  int64_t sh[3] = {7, 33, 130};
  cg_tensor *a = T(in[0], sh, 3);
  out(o, cg_sum(a, (int[]){2}, 1, false)), out(o, cg_sum(a, (int[]){0, 2}, 2, true)), out(o, cg_max(a, (int[]){1}, 1, false));
  out(o, cg_mean(a, (int[]){1, 2}, 2, false)), out(o, cg_var(a, (int[]){2}, 1, 1, false));
}
static void b_matmul(float *const *in, outs *o) {
  cg_tensor *a = T(in[0], (int64_t[]){67, 129}, 2), *b = T(in[1], (int64_t[]){129, 45}, 2), *c = T(in[2], (int64_t[]){64, 128}, 2);
  out(o, cg_matmul(a, b));
  out(o, cg_matmul(c, cg_transpose(c, 0, 1)));
  out(o, cg_relu(cg_add(cg_matmul(a, b), cg_scalar(0.25))));
}
/* a small CNN step's kernels: conv (+ bias) relu, batch norm, max-pool, a linear layer,
 * cross entropy; the gradients of every parameter and of the input */
static void b_cnn(float *const *in, outs *o) {
  cg_tensor *x = param(in[0], (int64_t[]){6, 3, 13, 11}, 4), *w1 = param(in[1], (int64_t[]){8, 3, 3, 3}, 4), *b1 = param(in[2], (int64_t[]){8}, 1);
  cg_tensor *w2 = param(in[3], (int64_t[]){5, 8 * 6 * 4}, 2);
  cg_tensor *h = cg_relu(cg_conv2d(x, w1, b1, (int64_t[]){1, 1}, (int64_t[]){1, 0}, (int64_t[]){1, 1}, 1));
  h = cg_batch_norm(h, NULL, NULL, NULL, NULL, true, 0.1, 1e-5);
  h = cg_max_pool2d(h, (int64_t[]){2, 2}, (int64_t[]){2, 2}, (int64_t[]){0, 0});
  cg_tensor *logits = cg_matmul(cg_reshape(h, (int64_t[]){6, 8 * 6 * 4}, 2), cg_transpose(w2, 0, 1));
  int32_t lab[6] = {0, 4, 2, 1, 3, 4};
  cg_tensor *loss = cg_cross_entropy(logits, cg_from_data(lab, CG_INT32, (int64_t[]){6}, 1), 0.0);
  CHECK(cg_backward(loss) == CG_OK, "backward: %s", cg_last_error());
  out(o, loss), out(o, cg_grad(x)), out(o, cg_grad(w1)), out(o, cg_grad(b1)), out(o, cg_grad(w2));
}
static void b_conv_s2(float *const *in, outs *o) { /* stride 2, padding, dilation, groups */
  cg_tensor *x = param(in[0], (int64_t[]){3, 4, 17, 15}, 4), *w = param(in[1], (int64_t[]){6, 2, 3, 3}, 4);
  cg_tensor *y = cg_conv2d(x, w, NULL, (int64_t[]){2, 2}, (int64_t[]){1, 2}, (int64_t[]){1, 2}, 2);
  CHECK(cg_backward(cg_sum(cg_mul(y, y), (int[]){0, 1, 2, 3}, 4, false)) == CG_OK, "backward: %s", cg_last_error());
  out(o, y), out(o, cg_grad(x)), out(o, cg_grad(w));
}
static void b_norms(float *const *in, outs *o) {
  cg_tensor *x = param(in[0], (int64_t[]){9, 31}, 2), *g = param(in[1], (int64_t[]){31}, 1), *b = param(in[2], (int64_t[]){31}, 1);
  cg_tensor *y = cg_layer_norm(x, (int64_t[]){31}, 1, g, b, 1e-5);
  CHECK(cg_backward(cg_sum(cg_mul(y, cg_tanh(x)), (int[]){0, 1}, 2, false)) == CG_OK, "backward: %s", cg_last_error());
  out(o, y), out(o, cg_grad(x)), out(o, cg_grad(g)), out(o, cg_grad(b));
}
/* erf, GELU and its gradient, softplus, on their edges as well as random values: NaN, the
 * infinities, both zeros, erf's branch point and clamp (its |x| and sign are bit masks, the
 * clamps vminps / vmaxps in the C kernels: both must give the select's bits) */
static void b_special(float *const *in, outs *o) {
  static const float edge[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 4.0f, -4.0f, 0.927734375f, -0.927734375f, 1.3119891f,
                               -1.3119891f, 5.656854f, -5.656854f, 1e-30f, -1e-30f, 20.0f, 20.000002f, -88.0f, 3e38f};
  float *v = in[0];
  memcpy(v, edge, sizeof edge);
  cg_tensor *a = param(v, (int64_t[]){5, 67}, 2);
  cg_tensor *g = cg_gelu(a);
  CHECK(cg_backward(cg_sum(cg_mul(g, cg_scalar(1.5)), (int[]){0, 1}, 2, false)) == CG_OK, "backward: %s", cg_last_error());
  out(o, cg_erf(a)), out(o, g), out(o, cg_grad(a)), out(o, cg_softplus(a, 1.0, 20.0)), out(o, cg_gelu_tanh(a));
}

static const bcase cases[] = {
    {"multiply-adds", b_fma, 3, {{4099}, {4099}, {4099}}, {1, 1, 1}, -3, 3},
    {"transcendentals", b_trans, 1, {{37, 61}}, {2}, -6, 6},
    {"reductions", b_reduce, 1, {{7, 33, 130}}, {3}, -1, 1},
    {"matmul", b_matmul, 3, {{67, 129}, {129, 45}, {64, 128}}, {2, 2, 2}, -1, 1},
    {"CNN step", b_cnn, 4, {{6, 3, 13, 11}, {8, 3, 3, 3}, {8}, {5, 192}}, {4, 4, 1, 2}, -1, 1},
    {"strided grouped conv", b_conv_s2, 2, {{3, 4, 17, 15}, {6, 2, 3, 3}}, {4, 4}, -1, 1},
    {"erf, GELU and its gradient at their edges", b_special, 1, {{5, 67}}, {2}, -7, 7},
    {"layer norm", b_norms, 3, {{9, 31}, {31}, {31}}, {2, 1, 1}, -2, 2},
};

static int64_t numel(const int64_t *sh, int r) {
  int64_t n = 1;
  for (int i = 0; i < r; i++) n *= sh[i];
  return n;
}

/* the case's outputs on dev, read into res[k] (malloc'ed), their sizes in len[k] */
static int run_on(const char *dev, const bcase *c, float *const *in, float **res, int64_t *len) {
  cg_set_device(dev);
  cg_scope_begin();
  outs o = {0};
  c->build(in, &o);
  for (int k = 0; k < o.n; k++) {
    len[k] = o.t[k] ? cg_numel(o.t[k]) : 0;
    res[k] = malloc(sizeof(float) * (size_t)(len[k] ? len[k] : 1));
    CHECK(o.t[k] && cg_read(o.t[k], CG_FLOAT32, res[k], sizeof(float) * (size_t)len[k]) == CG_OK, "%s output %d on %s: %s", c->name, k, dev, cg_last_error());
  }
  cg_scope_end();
  cg_set_device(NULL);
  return o.n;
}

int main(void) {
  rng_s = (uint64_t)time(NULL);
  if (getenv("CG_TEST_SEED")) rng_s = strtoull(getenv("CG_TEST_SEED"), NULL, 10);
  printf("seed %llu\n", (unsigned long long)rng_s);
  if (!rt_cpu_avx512()) {
    printf("skipped: this CPU lacks AVX-512 F/BW/DQ/VL (X86 compiles every kernel with the C compiler)\n");
    return test_summary();
  }
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const bcase *c = &cases[ci];
    float *in[4] = {0};
    for (int i = 0; i < c->nin; i++) in[i] = fill(numel(c->shape[i], c->rank[i]), c->lo, c->hi);
    float *rx[MAXOUT] = {0}, *rc[MAXOUT] = {0};
    int64_t lx[MAXOUT] = {0}, lc[MAXOUT] = {0};
    int nx = run_on("X86", c, in, rx, lx), nc = run_on("CPU", c, in, rc, lc);
    CHECK(nx == nc && nx > 0, "%s: %d outputs on X86, %d on CPU", c->name, nx, nc);
    int64_t total = 0, diff = 0;
    for (int k = 0; k < nx && k < nc; k++) {
      CHECK(lx[k] == lc[k], "%s output %d: %lld elements on X86, %lld on CPU", c->name, k, (long long)lx[k], (long long)lc[k]);
      int64_t bad = 0, first = -1;
      for (int64_t i = 0; i < lx[k] && lx[k] == lc[k]; i++)
        if (!(isnan(rx[k][i]) && isnan(rc[k][i])) && memcmp(&rx[k][i], &rc[k][i], 4)) bad++, first = first < 0 ? i : first;
      CHECK(!bad, "%s output %d: %lld of %lld elements differ between X86 and CPU (first [%lld]: %a vs %a)", c->name, k, (long long)bad, (long long)lx[k],
            (long long)first, first >= 0 ? (double)rx[k][first] : 0.0, first >= 0 ? (double)rc[k][first] : 0.0);
      total += lx[k], diff += bad;
    }
    printf("%-22s %2d outputs, %7lld elements, %lld differ\n", c->name, nx, (long long)total, (long long)diff);
    for (int k = 0; k < MAXOUT; k++) free(rx[k]), free(rc[k]);
    for (int i = 0; i < 4; i++) free(in[i]);
  }
  return test_summary();
}
