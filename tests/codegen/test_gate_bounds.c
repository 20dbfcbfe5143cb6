/* Loop bounds from gates (codegen/gate_bounds.c): a sum over a padded view runs only the
 * trips where its gates can hold. Checked here:
 *   - convolutions with padding (forward) and their input gradients (transposed
 *     convolutions: the output gradient padded by k-1), of awkward sizes (1, 7, 13, 33,
 *     primes; kernels 1, 3, 5; padding 0-4; stride 1 and 2; dilation 1 and 2) against
 *     float64 references in plain C, with the heuristic's opts, with none (NOOPT=1), with
 *     the bounds off (GATE_BOUNDS=0) and, for the small ones, on the interpreter;
 *   - that the bounds are there: the input gradient's kernel has reduce loops whose trip
 *     count is computed (not a constant), and none with GATE_BOUNDS=0; a padded input
 *     flipped before a convolution (gates of step -1 in the tap) too, against float64;
 *   - padding is skipped, not multiplied: an infinite weight tap that only ever meets the
 *     padding leaves the result finite (PyTorch's convolutions skip padding too; the
 *     all-trip loop gave 0 * inf = NaN).
 * Fresh random inputs (seed printed; CG_TEST_SEED replays one). */
#include "check.h"
#include "cgrad.h"
#include "codegen/codegen.h"
#include "renderer/render.h"
#include "schedule/schedule.h"
#include "tensor/tensor.h"
#include <math.h>
#include <string.h>
#include <time.h>

static uint64_t rng;
static float frand(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}
static float *rand_buf(int64_t n) {
  float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
  for (int64_t i = 0; i < n; i++) h[i] = frand();
  return h;
}

typedef struct {
  int64_t n, cin, cout, h, w, k, pad, stride, dil;
} conv_case;

static int64_t out_size(const conv_case *c, int64_t in) { return (in + 2 * c->pad - c->dil * (c->k - 1) - 1) / c->stride + 1; }

/* y[n,co,oy,ox] = sum x[n,ci,oy*s+ky*d-p, ox*s+kx*d-p] w[co,ci,ky,kx], in float64; with
 * transpose, the input gradient of that for output gradient g: the same terms scattered. */
static void ref_conv(const conv_case *c, const float *x, const float *w, double *y) {
  int64_t oh = out_size(c, c->h), ow = out_size(c, c->w);
  for (int64_t n = 0; n < c->n; n++)
    for (int64_t co = 0; co < c->cout; co++)
      for (int64_t oy = 0; oy < oh; oy++)
        for (int64_t ox = 0; ox < ow; ox++) {
          double s = 0;
          for (int64_t ci = 0; ci < c->cin; ci++)
            for (int64_t ky = 0; ky < c->k; ky++)
              for (int64_t kx = 0; kx < c->k; kx++) {
                int64_t iy = oy * c->stride + ky * c->dil - c->pad, ix = ox * c->stride + kx * c->dil - c->pad;
                if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                s += (double)x[((n * c->cin + ci) * c->h + iy) * c->w + ix] * w[((co * c->cin + ci) * c->k + ky) * c->k + kx];
              }
          y[((n * c->cout + co) * oh + oy) * ow + ox] = s;
        }
}
static void ref_input_grad(const conv_case *c, const float *g, const float *w, double *dx) {
  int64_t oh = out_size(c, c->h), ow = out_size(c, c->w);
  memset(dx, 0, sizeof(double) * (size_t)(c->n * c->cin * c->h * c->w));
  for (int64_t n = 0; n < c->n; n++)
    for (int64_t co = 0; co < c->cout; co++)
      for (int64_t oy = 0; oy < oh; oy++)
        for (int64_t ox = 0; ox < ow; ox++)
          for (int64_t ci = 0; ci < c->cin; ci++)
            for (int64_t ky = 0; ky < c->k; ky++)
              for (int64_t kx = 0; kx < c->k; kx++) {
                int64_t iy = oy * c->stride + ky * c->dil - c->pad, ix = ox * c->stride + kx * c->dil - c->pad;
                if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                dx[((n * c->cin + ci) * c->h + iy) * c->w + ix] +=
                    (double)g[((n * c->cout + co) * oh + oy) * ow + ox] * w[((co * c->cin + ci) * c->k + ky) * c->k + kx];
              }
}

/* |got - ref| <= 1e-5 * (1 + sum of |terms|) bounds float32 sums of these lengths (the
 * terms are at most 1 in size: the bound grows with the reduction) */
static void compare(const char *what, const conv_case *c, const float *got, const double *ref, int64_t count, int64_t terms) {
  int64_t bad = -1;
  for (int64_t i = 0; i < count && bad < 0; i++)
    if (!(fabs(got[i] - ref[i]) <= 1e-5 * (1 + (double)terms))) bad = i;
  CHECK(bad < 0, "%s n%lld cin%lld cout%lld %lldx%lld k%lld p%lld s%lld d%lld: element %lld is %.7g, float64 gives %.7g", what, (long long)c->n,
        (long long)c->cin, (long long)c->cout, (long long)c->h, (long long)c->w, (long long)c->k, (long long)c->pad, (long long)c->stride,
        (long long)c->dil, (long long)bad, bad < 0 ? 0 : got[bad], bad < 0 ? 0 : ref[bad]);
}

static void run_case(const conv_case *c) {
  int64_t oh = out_size(c, c->h), ow = out_size(c, c->w);
  int64_t nx = c->n * c->cin * c->h * c->w, nw = c->cout * c->cin * c->k * c->k, ny = c->n * c->cout * oh * ow;
  float *x = rand_buf(nx), *w = rand_buf(nw), *g = rand_buf(ny), *got = malloc(sizeof(float) * (size_t)(nx > ny ? nx : ny));
  double *ref_y = malloc(sizeof(double) * (size_t)ny), *ref_dx = malloc(sizeof(double) * (size_t)nx);
  ref_conv(c, x, w, ref_y);
  ref_input_grad(c, g, w, ref_dx);
  /* the interpreter (DEVICE=INTERP, the reference backend: loops with computed trip
   * counts) on the small cases */
  static const char *const modes[4][2] = {{"NOOPT", "0"}, {"GATE_BOUNDS", "1"}, {"GATE_BOUNDS", "0"}, {"DEVICE", "INTERP"}};
  bool small = c->n * c->cin * c->cout * c->h * c->w * c->k * c->k <= 200000;
  for (int m = 0; m < (small ? 4 : 3); m++) {
    cg_set_config("NOOPT", m == 0 ? "1" : "0");
    cg_set_config("GATE_BOUNDS", m == 2 ? "0" : "1");
    cg_set_config("DEVICE", m == 3 ? "INTERP" : "CPU");
    cg_scope_begin();
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){c->n, c->cin, c->h, c->w}, 4);
    cg_tensor *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){c->cout, c->cin, c->k, c->k}, 4);
    cg_tensor *tg = cg_from_data(g, CG_FLOAT32, (int64_t[]){c->n, c->cout, oh, ow}, 4);
    int64_t s[2] = {c->stride, c->stride}, p[2] = {c->pad, c->pad}, d[2] = {c->dil, c->dil};
    /* the input gradient as conv2d's backward computes it; output_padding covers the rows
     * a stride leaves over */
    int64_t op[2] = {(c->h + 2 * c->pad - c->dil * (c->k - 1) - 1) % c->stride, (c->w + 2 * c->pad - c->dil * (c->k - 1) - 1) % c->stride};
    cg_tensor *y = cg_conv2d(tx, tw, NULL, s, p, d, 1), *dx = cg_conv_transpose2d(tg, tw, NULL, s, p, op, d, 1);
    char what[64];
    snprintf(what, sizeof what, "forward (%s=%s)", modes[m][0], modes[m][1]);
    CHECK(y && cg_read(y, CG_FLOAT32, got, sizeof(float) * (size_t)ny) == CG_OK, "%s: %s", what, cg_last_error());
    if (y) compare(what, c, got, ref_y, ny, c->cin * c->k * c->k);
    snprintf(what, sizeof what, "input gradient (%s=%s)", modes[m][0], modes[m][1]);
    CHECK(dx && cg_read(dx, CG_FLOAT32, got, sizeof(float) * (size_t)nx) == CG_OK, "%s: %s", what, cg_last_error());
    if (dx) compare(what, c, got, ref_dx, nx, c->cout * c->k * c->k);
    cg_scope_end();
  }
  cg_set_config("NOOPT", "0");
  cg_set_config("GATE_BOUNDS", "1");
  cg_set_config("DEVICE", "CPU");
  free(x), free(w), free(g), free(got), free(ref_y), free(ref_dx);
}

/* How many reduce loops with a computed trip count the kernels of t's schedule have. */
static int bounded_loops(cg_tensor *t) {
  int found = 0;
  uop_pool_push();
  schedule s;
  bool ok = sched_build(&t->u, 1, &s);
  CHECK(ok, "schedule: %s", cg_last_error());
  for (int i = 0; ok && i < s.n; i++) {
    ckernel k = {.ast = s.k[i].ast, .ren = renderer_find("c")};
    snprintf(k.name, sizeof k.name, "k%d", i);
    bool run = codegen_run(&k);
    CHECK(run, "codegen: %s", cg_last_error());
    for (int j = 0; run && j < k.lin.n; j++) {
      uop *u = k.lin.ins[j];
      found += u->op == OP_RANGE && u->arg.v[1] == RANGE_REDUCE && u->src[0]->op != OP_CONST;
    }
    ckernel_free(&k);
  }
  if (ok) sched_free(&s);
  uop_pool_pop();
  return found;
}

int main(void) {
  uint64_t seed = (uint64_t)test_env_long("CG_TEST_SEED", (long)time(NULL));
  printf("seed %llu (CG_TEST_SEED replays it)\n", (unsigned long long)seed);
  rng = seed;
  static const conv_case cases[] = {
      /* the CNN's small layers, scaled down: 3x3 over 10 and 8 wide, 5x5 over 24 */
      {3, 16, 32, 10, 10, 3, 0, 1, 1},
      {2, 32, 16, 8, 8, 3, 1, 1, 1},
      {2, 8, 16, 24, 24, 5, 0, 1, 1},
      /* awkward sizes */
      {1, 1, 1, 1, 1, 3, 1, 1, 1},
      {1, 7, 5, 7, 13, 3, 2, 1, 1},
      {7, 3, 16, 13, 7, 5, 4, 1, 1},
      {2, 5, 8, 33, 11, 1, 1, 1, 1},
      {1, 16, 16, 17, 19, 3, 1, 2, 1},
      {2, 4, 7, 11, 13, 3, 2, 1, 2},
      {3, 13, 33, 9, 9, 5, 2, 2, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);

  /* the bounds are there (the input gradient of the CNN's conv3, 64 -> 32 channels over
   * 8x8, at batch 16: a tile of channels x images, so the gates of both spatial dims are
   * the same in every lane and copy, and both tap loops are bounded), and not with
   * GATE_BOUNDS=0 */
  {
    cg_scope_begin();
    float *g = rand_buf(16 * 64 * 8 * 8), *w = rand_buf(64 * 32 * 9);
    cg_tensor *tg = cg_from_data(g, CG_FLOAT32, (int64_t[]){16, 64, 8, 8}, 4), *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){64, 32, 3, 3}, 4);
    cg_tensor *dx = cg_conv_transpose2d(tg, tw, NULL, NULL, NULL, NULL, NULL, 1);
    int on = bounded_loops(dx);
    cg_set_config("GATE_BOUNDS", "0");
    int off = bounded_loops(dx);
    cg_set_config("GATE_BOUNDS", "1");
    CHECK(on >= 2, "the input gradient's tap loops are bounded by its gates: %d bounded loops, expected 2 or more", on);
    CHECK(off == 0, "GATE_BOUNDS=0: %d bounded loops, expected none", off);
    free(g), free(w);
    cg_scope_end();
  }

  /* gates of step -1 in the tap (a padded input flipped before the convolution: tap k
   * reads padded position L-1-(o+k)), against float64, with bounds */
  {
    cg_scope_begin();
    enum { N = 3, C = 16, CO = 32, W = 13, K = 3, P = 2 };
    float *x = rand_buf(N * C * W), *w = rand_buf(CO * C * K);
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){N, C, W}, 3), *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){CO, C, K}, 3);
    cg_tensor *xp = cg_flip(cg_pad(tx, (int64_t[]){0, 0, 0, 0, P, P}, 0), (int[]){2}, 1);
    cg_tensor *y = cg_conv1d(xp, tw, NULL, NULL, NULL, NULL, 1);
    enum { L = W + 2 * P, O = L - K + 1 };
    float got[N * CO * O];
    int nb = y ? bounded_loops(y) : 0; /* before the read realizes it */
    CHECK(y && cg_read(y, CG_FLOAT32, got, sizeof got) == CG_OK, "%s", cg_last_error());
    int64_t bad = -1;
    double want_bad = 0;
    for (int n = 0; n < N && bad < 0; n++)
      for (int co = 0; co < CO && bad < 0; co++)
        for (int o = 0; o < O && bad < 0; o++) {
          double want = 0;
          for (int ci = 0; ci < C; ci++)
            for (int k = 0; k < K; k++) {
              int at = L - 1 - (o + k) - P; /* the flipped padded position, in x */
              if (at >= 0 && at < W) want += (double)x[(n * C + ci) * W + at] * w[(co * C + ci) * K + k];
            }
          if (!(fabs(got[(n * CO + co) * O + o] - want) <= 1e-5 * (1 + C * K))) bad = (n * CO + co) * O + o, want_bad = want;
        }
    CHECK(bad < 0, "flipped padded input: element %lld is %g, float64 gives %g", (long long)bad, bad < 0 ? 0 : got[bad], want_bad);
    CHECK(nb >= 1, "the flipped view's tap loop is bounded by its gates (step -1): %d bounded loops", nb);
    free(x), free(w);
    cg_scope_end();
  }

  /* padding is skipped: a 1x1 image, a 3x3 kernel, padding 1: only the centre tap meets
   * the image; infinite corners meet only padding */
  {
    cg_scope_begin();
    float x[2] = {0.75f, -1.5f}, w[9 * 2];
    for (int i = 0; i < 18; i++) w[i] = (i == 4 || i == 13) ? 0.5f : INFINITY;
    cg_tensor *tx = cg_from_data(x, CG_FLOAT32, (int64_t[]){1, 2, 1, 1}, 4), *tw = cg_from_data(w, CG_FLOAT32, (int64_t[]){1, 2, 3, 3}, 4);
    float y = NAN;
    cg_tensor *ty = cg_conv2d(tx, tw, NULL, NULL, (int64_t[]){1, 1}, NULL, 1);
    CHECK(ty && cg_read(ty, CG_FLOAT32, &y, sizeof y) == CG_OK, "%s", cg_last_error());
    CHECK(y == 0.75f * 0.5f - 1.5f * 0.5f, "padding met an infinite weight: got %g, expected %g (the centre taps only)", y, 0.75f * 0.5f - 1.5f * 0.5f);
    cg_scope_end();
  }
  return test_summary();
}
