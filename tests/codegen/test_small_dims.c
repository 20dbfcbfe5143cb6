/* Kernels with short inner dims (merge_dims.c, opt_small.c): pools and their gradients,
 * BatchNorm, per-channel and per-column elementwise ops over maps of 20x20, 7x9, 6x6 ...
 *   - max-pool forward and input gradient against a float64 reference in plain C (torch's
 *     convention: the gradient goes to the first max of the window, row-major), with ties
 *     (small integers after a ReLU) and without, for strides 1-3, padding, odd sizes;
 *   - avg-pool and BatchNorm (training: output and the gradients of x, weight and bias)
 *     with the heuristic's opts against the same graphs under NOOPT=1;
 *   - white-box: which output dims the lowering merges (read together) and keeps apart.
 * Fresh random inputs each run (CG_TEST_SEED repeats one). */
#include "check.h"
#include "cgrad.h"
#include "codegen/codegen.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include "uop/uopset.h"
#include <math.h>
#include <string.h>
#include <time.h>

static uint64_t rs;
static double urand(void) {
  rs = rs * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(rs >> 11) / 9007199254740992.0;
}

/* x with values from ties ? {0, 1, 2} (a ReLU'd small integer: many equal maxima) : U(-1, 1) */
static float *fill(int64_t n, bool ties) {
  float *h = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    int v = (int)(urand() * 4) - 1;
    h[i] = ties ? (float)(v > 0 ? v : 0) : (float)(urand() * 2 - 1);
  }
  return h;
}

static int64_t outd(int64_t i, int64_t k, int64_t s, int64_t p) { return (i + 2 * p - k) / s + 1; }

/* float64 max-pool forward and gradient (g at each output) in plain C, torch's rules */
static void ref_maxpool(const float *x, const float *g, int64_t B, int64_t H, int64_t W, const int64_t *k, const int64_t *s, const int64_t *p,
                        double *y, double *dx) {
  int64_t OH = outd(H, k[0], s[0], p[0]), OW = outd(W, k[1], s[1], p[1]);
  memset(dx, 0, sizeof(double) * (size_t)(B * H * W));
  for (int64_t b = 0; b < B; b++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        double m = -INFINITY;
        int64_t at = -1;
        for (int64_t i = 0; i < k[0]; i++)
          for (int64_t j = 0; j < k[1]; j++) {
            int64_t h = oh * s[0] - p[0] + i, w = ow * s[1] - p[1] + j;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            double v = x[(b * H + h) * W + w];
            if (v > m) m = v, at = (b * H + h) * W + w;
          }
        int64_t o = (b * OH + oh) * OW + ow;
        y[o] = m;
        if (at >= 0) dx[at] += g[o];
      }
}

static void maxpool_case(int64_t N, int64_t C, int64_t H, int64_t W, int64_t k0, int64_t k1, int64_t s0, int64_t s1, int64_t p0, int64_t p1,
                         bool ties) {
  cg_scope_begin();
  int64_t k[2] = {k0, k1}, s[2] = {s0, s1}, p[2] = {p0, p1}, B = N * C, OH = outd(H, k0, s0, p0), OW = outd(W, k1, s1, p1);
  int64_t n = B * H * W, no = B * OH * OW;
  float *hx = fill(n, ties), *hg = fill(no, false), *y = malloc(sizeof(float) * (size_t)no), *dx = malloc(sizeof(float) * (size_t)n);
  double *ry = malloc(sizeof(double) * (size_t)no), *rdx = malloc(sizeof(double) * (size_t)n);
  cg_tensor *x = cg_from_data(hx, CG_FLOAT32, (int64_t[]){N, C, H, W}, 4);
  cg_tensor *g = cg_from_data(hg, CG_FLOAT32, (int64_t[]){N, C, OH, OW}, 4);
  cg_set_requires_grad(x, true);
  cg_tensor *out = cg_max_pool2d(x, k, s, p);
  cg_backward(cg_sum(cg_mul(out, g), NULL, 0, false));
  bool ok = cg_read(out, CG_FLOAT32, y, sizeof(float) * (size_t)no) == CG_OK && cg_read(cg_grad(x), CG_FLOAT32, dx, sizeof(float) * (size_t)n) == CG_OK;
  CHECK(ok, "max_pool2d (%lld,%lld,%lld,%lld) k(%lld,%lld) s(%lld,%lld) p(%lld,%lld): %s", (long long)N, (long long)C, (long long)H, (long long)W,
        (long long)k0, (long long)k1, (long long)s0, (long long)s1, (long long)p0, (long long)p1, cg_last_error());
  if (ok) {
    ref_maxpool(hx, hg, B, H, W, k, s, p, ry, rdx);
    int64_t by = -1, bd = -1;
    for (int64_t i = 0; i < no && by < 0; i++)
      if (y[i] != (float)ry[i]) by = i;
    for (int64_t i = 0; i < n && bd < 0; i++)
      if (fabs(dx[i] - rdx[i]) > 1e-6 * (1 + fabs(rdx[i]))) bd = i;
    CHECK(by < 0, "max_pool2d (%lld,%lld,%lld,%lld) k(%lld,%lld) s(%lld,%lld) p(%lld,%lld)%s: output %lld is %g, expected %g", (long long)N, (long long)C,
          (long long)H, (long long)W, (long long)k0, (long long)k1, (long long)s0, (long long)s1, (long long)p0, (long long)p1, ties ? " ties" : "",
          (long long)by, by < 0 ? 0 : y[by], by < 0 ? 0 : ry[by]);
    CHECK(bd < 0, "max_pool2d (%lld,%lld,%lld,%lld) k(%lld,%lld) s(%lld,%lld) p(%lld,%lld)%s: input gradient %lld is %g, expected %g", (long long)N,
          (long long)C, (long long)H, (long long)W, (long long)k0, (long long)k1, (long long)s0, (long long)s1, (long long)p0, (long long)p1,
          ties ? " ties" : "", (long long)bd, bd < 0 ? 0 : dx[bd], bd < 0 ? 0 : rdx[bd]);
  }
  free(hx), free(hg), free(y), free(dx), free(ry), free(rdx);
  cg_scope_end();
}

/* The values of outs (n each) computed with the heuristic's opts and under NOOPT=1 agree
 * within tol (relative + absolute). build makes the graph from the same host inputs. */
typedef int (*build_fn)(const float *in, int64_t n_in, cg_tensor **outs, int64_t *sizes, const void *arg);
static void agree_noopt(const char *what, build_fn build, const void *arg, int64_t n_in, double tol) {
  float *in = fill(n_in, false), *res[2][4] = {{0}};
  int64_t sizes[4] = {0};
  int nout = 0;
  for (int pass = 0; pass < 2; pass++) {
    cg_set_config("NOOPT", pass ? "1" : "0");
    cg_scope_begin();
    cg_tensor *outs[4];
    nout = build(in, n_in, outs, sizes, arg);
    cg_realize_many(outs, nout);
    for (int i = 0; i < nout; i++) {
      res[pass][i] = malloc(sizeof(float) * (size_t)sizes[i]);
      CHECK(cg_read(outs[i], CG_FLOAT32, res[pass][i], sizeof(float) * (size_t)sizes[i]) == CG_OK, "%s (NOOPT=%d) output %d: %s", what, pass, i,
            cg_last_error());
    }
    cg_scope_end();
  }
  cg_set_config("NOOPT", "0");
  for (int i = 0; i < nout; i++) {
    int64_t bad = -1;
    for (int64_t j = 0; j < sizes[i] && bad < 0; j++)
      if (!(fabs(res[0][i][j] - res[1][i][j]) <= tol * (1 + fabs(res[1][i][j])))) bad = j;
    CHECK(bad < 0, "%s output %d: element %lld is %g, NOOPT gives %g", what, i, (long long)bad, bad < 0 ? 0 : res[0][i][bad], bad < 0 ? 0 : res[1][i][bad]);
    free(res[0][i]), free(res[1][i]);
  }
  free(in);
}

typedef struct {
  int64_t shape[4], k[2], s[2], p[2];
} pool_arg;
static int build_avgpool(const float *in, int64_t n_in, cg_tensor **outs, int64_t *sizes, const void *arg) {
  (void)n_in;
  const pool_arg *a = arg;
  cg_tensor *x = cg_from_data(in, CG_FLOAT32, a->shape, 4);
  cg_set_requires_grad(x, true);
  cg_tensor *y = cg_avg_pool2d(x, a->k, a->s, a->p);
  cg_backward(cg_sum(cg_mul(y, cg_sin(y)), NULL, 0, false)); /* a gradient that varies */
  outs[0] = y, outs[1] = cg_grad(x);
  sizes[0] = cg_numel(y), sizes[1] = cg_numel(x);
  return 2;
}
static int build_bn(const float *in, int64_t n_in, cg_tensor **outs, int64_t *sizes, const void *arg) {
  (void)n_in;
  const int64_t *shape = arg;
  int64_t C = shape[1], cs[1] = {C};
  cg_tensor *x = cg_from_data(in, CG_FLOAT32, shape, 4);
  cg_tensor *w = cg_add(cg_from_data(in, CG_FLOAT32, cs, 1), cg_scalar(1.5)), *b = cg_from_data(in + C, CG_FLOAT32, cs, 1);
  cg_realize(w);
  cg_set_requires_grad(x, true), cg_set_requires_grad(w, true), cg_set_requires_grad(b, true);
  cg_tensor *y = cg_relu(cg_batch_norm(x, NULL, NULL, w, b, true, 0.1, 1e-5));
  cg_backward(cg_sum(cg_mul(y, cg_cos(x)), NULL, 0, false));
  outs[0] = y, outs[1] = cg_grad(x), outs[2] = cg_grad(w), outs[3] = cg_grad(b);
  sizes[0] = sizes[1] = cg_numel(x), sizes[2] = sizes[3] = C;
  return 4;
}

/* The output ranges (sizes, by axis) of the first kernel that computes t. */
static int kernel_dims(cg_tensor *t, int64_t *sizes) {
  uop_pool_push();
  schedule s;
  int nr = -1;
  if (sched_build(&t->u, 1, &s)) {
    uop *sink = lower_kernel(s.k[s.n - 1].ast);
    uop *rng[UOP_MAX_DIMS];
    nr = 0;
    uop *stack[4096];
    int sp = 0;
    uopset seen = {0};
    stack[sp++] = sink;
    while (sp) {
      uop *u = stack[--sp];
      if (uopset_add(&seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) continue;
      if (u->op == OP_RANGE && u->arg.v[1] == RANGE_LOOP && nr < UOP_MAX_DIMS) rng[nr++] = u;
      for (uint32_t i = 0; i < u->nsrc && sp < 4096; i++) stack[sp++] = u->src[i];
    }
    uopset_free(&seen);
    for (int i = 0; i < nr; i++) /* by axis */
      for (int j = i; j > 0 && rng[j]->arg.v[0] < rng[j - 1]->arg.v[0]; j--) {
        uop *x = rng[j];
        rng[j] = rng[j - 1], rng[j - 1] = x;
      }
    for (int i = 0; i < nr; i++) sizes[i] = rng[i]->src[0]->arg.i;
    sched_free(&s);
  }
  uop_pool_pop();
  return nr;
}
static void dims_case(const char *what, cg_tensor *t, const int64_t *want, int nwant) {
  int64_t got[UOP_MAX_DIMS];
  int n = kernel_dims(t, got);
  bool same = n == nwant;
  for (int i = 0; same && i < n; i++) same = got[i] == want[i];
  char g[128] = "", w[128] = "";
  for (int i = 0; i < n && i < 8; i++) snprintf(g + strlen(g), sizeof g - strlen(g), "%lld ", (long long)got[i]);
  for (int i = 0; i < nwant; i++) snprintf(w + strlen(w), sizeof w - strlen(w), "%lld ", (long long)want[i]);
  CHECK(same, "%s: output ranges ( %s), expected ( %s)", what, g, w);
}

int main(void) {
  uint64_t seed = (uint64_t)time(NULL);
  if (getenv("CG_TEST_SEED")) seed = strtoull(getenv("CG_TEST_SEED"), NULL, 10);
  printf("seed %llu (CG_TEST_SEED to repeat)\n", (unsigned long long)seed);
  rs = seed;
  cg_manual_seed(seed);

  /* max-pool: the CNN's shapes, odd sizes, overlapping windows, padding, strides 1-3 */
  for (int ties = 0; ties < 2; ties++) {
    maxpool_case(2, 3, 20, 20, 2, 2, 2, 2, 0, 0, ties);
    maxpool_case(3, 2, 6, 6, 2, 2, 2, 2, 0, 0, ties);
    maxpool_case(1, 3, 7, 9, 2, 2, 2, 2, 0, 0, ties);
    maxpool_case(2, 2, 11, 13, 3, 3, 2, 2, 1, 1, ties);
    maxpool_case(1, 2, 6, 7, 2, 2, 1, 1, 0, 0, ties);
    maxpool_case(2, 1, 10, 11, 3, 2, 3, 2, 1, 0, ties);
    maxpool_case(1, 1, 5, 5, 5, 5, 5, 5, 0, 0, ties);
  }
  /* avg-pool and BatchNorm, heuristic vs NOOPT */
  static const pool_arg pools[] = {
      {{2, 3, 20, 20}, {2, 2}, {2, 2}, {0, 0}}, {{1, 3, 7, 9}, {3, 3}, {2, 2}, {1, 1}}, {{2, 2, 6, 7}, {2, 3}, {1, 2}, {1, 1}}, {{1, 2, 9, 9}, {3, 3}, {3, 3}, {0, 0}}};
  for (int i = 0; i < 4; i++) {
    char what[96];
    snprintf(what, sizeof what, "avg_pool2d (%lld,%lld,%lld,%lld) k(%lld,%lld)", (long long)pools[i].shape[0], (long long)pools[i].shape[1],
             (long long)pools[i].shape[2], (long long)pools[i].shape[3], (long long)pools[i].k[0], (long long)pools[i].k[1]);
    agree_noopt(what, build_avgpool, &pools[i], pools[i].shape[0] * pools[i].shape[1] * pools[i].shape[2] * pools[i].shape[3], 1e-5);
  }
  static const int64_t bns[][4] = {{4, 3, 20, 20}, {5, 4, 6, 6}, {3, 2, 7, 9}};
  for (int i = 0; i < 3; i++) {
    char what[64];
    snprintf(what, sizeof what, "batch_norm (%lld,%lld,%lld,%lld)", (long long)bns[i][0], (long long)bns[i][1], (long long)bns[i][2], (long long)bns[i][3]);
    agree_noopt(what, build_bn, bns[i], bns[i][0] * bns[i][1] * bns[i][2] * bns[i][3], 1e-4);
  }

  /* which dims merge: a per-channel operand keeps C apart from H*W; one that varies along
   * W keeps W apart; a permute keeps everything apart */
  cg_scope_begin();
  cg_tensor *x = cg_rand(CG_FLOAT32, (int64_t[]){2, 3, 20, 20}, 4), *y = cg_rand(CG_FLOAT32, (int64_t[]){2, 3, 20, 20}, 4);
  cg_tensor *c = cg_rand(CG_FLOAT32, (int64_t[]){1, 3, 1, 1}, 4), *w = cg_rand(CG_FLOAT32, (int64_t[]){20}, 1);
  cg_realize(x), cg_realize(y), cg_realize(c), cg_realize(w);
  dims_case("x + y", cg_add(x, y), (int64_t[]){2400}, 1);
  dims_case("x * c (per channel)", cg_mul(x, c), (int64_t[]){2, 3, 400}, 3);
  dims_case("x + w (per column)", cg_add(x, w), (int64_t[]){120, 20}, 2);
  dims_case("x.permute(0,1,3,2)", cg_contiguous(cg_permute(x, (int[]){0, 1, 3, 2}, 4)), (int64_t[]){6, 20, 20}, 3);
  cg_scope_end();
  return test_summary();
}
