/* Weight layouts. nn_conv_pack_weight (a constant convolution weight laid out once, output
 * channels innermost): the packed weight keeps its shape and values (read back bit for bit), a
 * convolution with it equals a float64 reference in plain C (float32: rtol 1e-4, atol
 * 1e-5) and launches one kernel fewer than with the unpacked weight (the per-use layout
 * copy is gone); nothing changes where no copy was made (< 8 output channels per group),
 * for a weight that requires grad, or for shapes a convolution refuses. nn_weight_relayout
 * (a transposed GEMM operand stored transposed): same values, a matmul through it equals
 * the float64 reference, a second call changes nothing, a bad permutation is refused.
 * Random inputs from a fresh seed (CG_TEST_SEED replays one). */
#include "check.h"
#include "cgrad.h"
#include "nn/conv_weight.h"
#include "tensor/tensor.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static float *rnd(int64_t n) {
  float *p = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) p[i] = (float)(2.0 * rand() / RAND_MAX - 1.0);
  return p;
}

/* conv2d, float64: x (N, C, H, W), w (CO, C/G, KH, KW), stride s, padding p */
static void ref_conv2d(const float *x, const float *w, double *y, int64_t N, int64_t C, int64_t H, int64_t W, int64_t CO, int64_t KH,
                       int64_t KW, int64_t s, int64_t p, int64_t G, int64_t OH, int64_t OW) {
  int64_t cg = C / G, cog = CO / G;
  for (int64_t n = 0; n < N; n++)
    for (int64_t co = 0; co < CO; co++)
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          double acc = 0;
          int64_t g = co / cog;
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t kh = 0; kh < KH; kh++)
              for (int64_t kw = 0; kw < KW; kw++) {
                int64_t ih = oh * s - p + kh, iw = ow * s - p + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += (double)x[((n * C + g * cg + ci) * H + ih) * W + iw] * w[((co * cg + ci) * KH + kh) * KW + kw];
              }
          y[((n * CO + co) * OH + oh) * OW + ow] = acc;
        }
}

static uint64_t kernels_of(cg_tensor *t) {
  uint64_t before = cg_get_stats().kernels_run;
  CHECK(cg_realize(t) == CG_OK, "%s", cg_last_error());
  return cg_get_stats().kernels_run - before;
}

/* One case: the unpacked and the packed weight give the reference; packing drops
 * `fewer` kernels from the convolution's realize. */
static void conv_case(const char *name, int64_t N, int64_t C, int64_t H, int64_t CO, int64_t K, int64_t s, int64_t p, int64_t G, int fewer) {
  int64_t W = H + 1, OH = (H + 2 * p - K) / s + 1, OW = (W + 2 * p - K) / s + 1;
  int64_t xs[4] = {N, C, H, W}, ws[4] = {CO, C / G, K, K}, nw = CO * (C / G) * K * K, ny = N * CO * OH * OW;
  float *xd = rnd(N * C * H * W), *wd = rnd(nw), *back = malloc(sizeof(float) * (size_t)nw), *yd = malloc(sizeof(float) * (size_t)ny);
  double *ref = malloc(sizeof(double) * (size_t)ny);
  ref_conv2d(xd, wd, ref, N, C, H, W, CO, K, K, s, p, G, OH, OW);
  cg_scope_begin();
  cg_tensor *x = cg_from_data(xd, CG_FLOAT32, xs, 4), *w = cg_from_data(wd, CG_FLOAT32, ws, 4);
  int64_t st[2] = {s, s}, pd[2] = {p, p};
  for (int packed = 0; packed < 2; packed++) {
    static uint64_t k_plain;
    if (packed) {
      CHECK(nn_conv_pack_weight(w, 2, G) == CG_OK, "%s: %s", name, cg_last_error());
      int64_t got[4];
      memcpy(got, cg_shape(w), sizeof got);
      CHECK(cg_ndim(w) == 4 && !memcmp(got, ws, sizeof got), "%s: the packed weight changed shape", name);
      /* through a copy: realizing w itself would make it a plain buffer again */
      CHECK(cg_read(cg_contiguous(w), CG_FLOAT32, back, sizeof(float) * (size_t)nw) == CG_OK, "%s", cg_last_error());
      CHECK(!memcmp(back, wd, sizeof(float) * (size_t)nw), "%s: the packed weight reads back other values", name);
    }
    cg_tensor *y = cg_conv2d(x, w, NULL, st, pd, NULL, G);
    CHECK(y != NULL, "%s: %s", name, cg_last_error());
    if (!y) break;
    uint64_t k = kernels_of(y);
    if (!packed) k_plain = k;
    else CHECK(k + (uint64_t)fewer == k_plain, "%s: %llu kernels packed, %llu unpacked (expected %d fewer)", name, (unsigned long long)k,
               (unsigned long long)k_plain, fewer);
    CHECK(cg_read(y, CG_FLOAT32, yd, sizeof(float) * (size_t)ny) == CG_OK, "%s", cg_last_error());
    double worst = 0;
    for (int64_t i = 0; i < ny; i++) {
      double e = fabs(yd[i] - ref[i]) - (1e-5 + 1e-4 * fabs(ref[i]));
      if (e > worst) worst = e;
    }
    CHECK(worst <= 0, "%s (%s): off the reference by %g beyond the tolerance", name, packed ? "packed" : "plain", worst);
  }
  cg_scope_end();
  free(xd), free(wd), free(back), free(yd), free(ref);
}

int main(void) {
  unsigned seed = (unsigned)test_env_long("CG_TEST_SEED", (long)time(NULL) % 100000);
  printf("seed %u (CG_TEST_SEED replays it)\n", seed);
  srand(seed);
  conv_case("16 out, 3x3 pad 1", 2, 8, 7, 16, 3, 1, 1, 1, 1);
  conv_case("32 out, groups 2, stride 2", 1, 8, 9, 32, 3, 2, 1, 2, 1);
  conv_case("64 out, 7x7 stride 2 pad 3 (a stem)", 1, 3, 16, 64, 7, 2, 3, 1, 1);
  conv_case("6 out (no vector of channels: nothing to pack)", 2, 4, 6, 6, 3, 1, 1, 1, 0);
  conv_case("depthwise 16 (1 channel per group)", 1, 16, 6, 16, 3, 1, 1, 16, 0);

  /* left alone: a weight that requires grad, shapes a convolution would refuse */
  cg_scope_begin();
  int64_t ws[4] = {16, 4, 3, 3};
  cg_tensor *w = cg_randn(CG_FLOAT32, ws, 4);
  CHECK(cg_set_requires_grad(w, true) == CG_OK, "%s", cg_last_error());
  const uop *u = w->u; /* the handle's node: unchanged */
  CHECK(nn_conv_pack_weight(w, 2, 1) == CG_OK && w->u == u, "a weight that requires grad was re-laid");
  cg_tensor *v = cg_randn(CG_FLOAT32, ws, 4);
  CHECK(cg_realize(v) == CG_OK, "%s", cg_last_error());
  u = v->u;
  CHECK(nn_conv_pack_weight(v, 2, 3) == CG_OK && v->u == u, "16 channels in 3 groups were re-laid");
  CHECK(nn_conv_pack_weight(v, 1, 1) == CG_OK && v->u == u, "a 4-d weight as conv1d's was re-laid");
  CHECK(nn_conv_pack_weight(NULL, 2, 1) != CG_OK && strstr(cg_last_error(), "NULL"), "a NULL weight: %s", cg_last_error());
  cg_scope_end();

  /* a Gemm's B (N, K) read as B^T: stored (K, N) */
  cg_scope_begin();
  int64_t M = 3, K = 37, N = 24, bs[2] = {N, K}, as[2] = {M, K};
  float *ad = rnd(M * K), *bd = rnd(N * K), *yd = malloc(sizeof(float) * (size_t)(M * N)), *back = malloc(sizeof(float) * (size_t)(N * K));
  cg_tensor *a = cg_from_data(ad, CG_FLOAT32, as, 2), *b = cg_from_data(bd, CG_FLOAT32, bs, 2);
  CHECK(nn_weight_relayout(b, (const int[]){1, 0}) == CG_OK, "%s", cg_last_error());
  const uop *bu = b->u;
  CHECK(bu->op == OP_PERMUTE, "the relaid weight is not a view of its transpose");
  CHECK(nn_weight_relayout(b, (const int[]){1, 0}) == CG_OK && b->u == bu, "relaying out twice made another copy");
  CHECK(cg_ndim(b) == 2 && cg_shape(b)[0] == N && cg_shape(b)[1] == K, "the relaid weight changed shape");
  CHECK(cg_read(cg_contiguous(b), CG_FLOAT32, back, sizeof(float) * (size_t)(N * K)) == CG_OK, "%s", cg_last_error());
  CHECK(!memcmp(back, bd, sizeof(float) * (size_t)(N * K)), "the relaid weight reads back other values");
  cg_tensor *y = cg_matmul(a, cg_transpose(b, 0, 1));
  CHECK(y && cg_read(y, CG_FLOAT32, yd, sizeof(float) * (size_t)(M * N)) == CG_OK, "%s", cg_last_error());
  double worst = 0;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double r = 0;
      for (int64_t k = 0; k < K; k++) r += (double)ad[i * K + k] * bd[j * K + k];
      double e = fabs(yd[i * N + j] - r) - (1e-5 + 1e-4 * fabs(r));
      if (e > worst) worst = e;
    }
  CHECK(worst <= 0, "matmul through the relaid weight: off the reference by %g beyond the tolerance", worst);
  CHECK(nn_weight_relayout(b, (const int[]){1, 1}) != CG_OK && strstr(cg_last_error(), "permutation"), "a bad permutation: %s", cg_last_error());
  free(ad), free(bd), free(yd), free(back);
  cg_scope_end();
  return test_summary();
}
