/* Winograd convolution (nn/functional_wino.c):
 *   1. the F(m, r) matrices (Cook-Toom) give the exact correlation in float64, for every
 *      tile the code can make (m = 2 to 6; r = 3, 5);
 *   2. the float32 error of tiles 2, 3 and 4 against a float64 direct convolution in C, next
 *      to the direct float32 algorithm's, printed and bounded (with tile 6, the figures
 *      that chose the default tile are in bench/RESULTS.md: F(6,5) is 100x worse);
 *   3. forward, input, weight and bias gradients with WINO=1 against torch: 3x3, 5x5 and
 *      5x3 kernels, image sizes 1, 7, 10, 33 (not multiples of the tile), batch 1 and 2,
 *      channels 1, 3 and 64, padding 0/1/2, bias, a stride-1 transposed convolution (a
 *      Winograd convolution of the padded input with flipped weights), and the cases
 *      that fall back to the direct algorithm (groups, stride, dilation, 7x7, float64);
 *   4. which convolutions take which path (wino_wanted) under WINO=0/1/2 and unset, and
 *      the rows path's tile for a number of output rows (wino_rows_tile); the default
 *      rule's rows for a 64-channel 3x3 layer (the CNN's conv4) against torch.
 * Parts 2 and 3 run the 2-d path (WINO=1) and the rows path (WINO=2: F(m, r) along H, the
 * direct algorithm along W; its weight gradient is Winograd too, F(r, m) along H) alike.
 * Tolerances: see WT below (derived from part 2's measured error). */
#include "nn/wino.h"
#include "test_functional_ref.h"

#define A2(a, b) ((const int64_t[]){a, b})

/* float32 Winograd error, measured in part 2 as max |y - y64| / max |y64| (32 channels,
 * values in [-1, 1]): F(4,3) 4.2e-6, F(4,5) 5.9e-6, the direct algorithm 0.5-1e-6. The
 * outputs and gradients here reach |y| ~ 30 (sums of up to 64*9 products), so the error
 * reaches ~2e-4 absolute on the largest: atol 5e-4 plus rtol 1e-4 keeps a factor >= 2. */
static const double WRT = 1e-4, WAT = 5e-4;

static void matrices_exact(void) {
  for (int r = 3; r <= 5; r += 2)
    for (int m = 2; m <= 6; m++) {
      int a = m + r - 1;
      double AT[WINO_MAX_ALPHA * WINO_MAX_ALPHA], G[WINO_MAX_ALPHA * WINO_MAX_ALPHA], BT[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
      CHECK(wino_matrices(m, r, AT, G, BT), "F(%d,%d)", m, r);
      double worst = 0;
      for (int trial = 0; trial < 20; trial++) {
        double d[WINO_MAX_ALPHA], g[5], u[WINO_MAX_ALPHA], v[WINO_MAX_ALPHA];
        for (int i = 0; i < a; i++) d[i] = ref_unif(-1, 1);
        for (int k = 0; k < r; k++) g[k] = ref_unif(-1, 1);
        for (int j = 0; j < a; j++) {
          u[j] = v[j] = 0;
          for (int k = 0; k < r; k++) u[j] += G[j * r + k] * g[k];
          for (int l = 0; l < a; l++) v[j] += BT[j * a + l] * d[l];
        }
        for (int i = 0; i < m; i++) {
          double y = 0, want = 0;
          for (int j = 0; j < a; j++) y += AT[i * a + j] * u[j] * v[j];
          for (int k = 0; k < r; k++) want += g[k] * d[i + k];
          worst = fmax(worst, fabs(y - want));
        }
      }
      CHECK(worst < 1e-9, "F(%d,%d) in float64: error %g", m, r, worst);
    }
  double AT[WINO_MAX_ALPHA * WINO_MAX_ALPHA], G[WINO_MAX_ALPHA * WINO_MAX_ALPHA], BT[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
  CHECK(!wino_matrices(8, 5, AT, G, BT), "F(8,5) has alpha 12 > %d: refused", WINO_MAX_ALPHA);
}

/* Direct convolution in float64 (stride 1, no padding): x (N, C, H, W), w (Co, C, k, k). */
static void conv64(const float *x, const float *w, double *y, int N, int C, int Co, int H, int W, int k) {
  int OH = H - k + 1, OW = W - k + 1;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < Co; o++)
      for (int i = 0; i < OH; i++)
        for (int j = 0; j < OW; j++) {
          double s = 0;
          for (int c = 0; c < C; c++)
            for (int p = 0; p < k; p++)
              for (int q = 0; q < k; q++) s += (double)x[((n * C + c) * H + i + p) * W + j + q] * w[((o * C + c) * k + p) * k + q];
          y[((n * Co + o) * OH + i) * OW + j] = s;
        }
}

static double rel_err(cg_tensor *t, const double *want, int64_t n) {
  float *got = malloc(sizeof(float) * (size_t)n);
  double e = INFINITY, mx = 0;
  if (t && cg_realize(t) == CG_OK && cg_read(t, CG_FLOAT32, got, sizeof(float) * (size_t)n) == CG_OK) {
    e = 0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs(got[i] - want[i])), mx = fmax(mx, fabs(want[i]));
    e /= mx;
  }
  free(got);
  return e;
}

static void error_table(void) {
  const int N = 2, C = 32, Co = 8, H = 20, W = 19;
  printf("float32 error, max |y - y64| / max |y64|, x and w uniform in [-1, 1], %d channels:\n", C);
  for (int k = 3; k <= 5; k += 2) {
    int OH = H - k + 1, OW = W - k + 1;
    int64_t nx = (int64_t)N * C * H * W, nw = (int64_t)Co * C * k * k, ny = (int64_t)N * Co * OH * OW;
    float *x = malloc(sizeof(float) * (size_t)nx), *w = malloc(sizeof(float) * (size_t)nw);
    double *y = malloc(sizeof(double) * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) x[i] = (float)ref_unif(-1, 1);
    for (int64_t i = 0; i < nw; i++) w[i] = (float)ref_unif(-1, 1);
    conv64(x, w, y, N, C, Co, H, W, k);
    cg_scope_begin();
    cg_tensor *xt = cg_from_data(x, CG_FLOAT32, (const int64_t[]){N, C, H, W}, 4);
    cg_tensor *wt = cg_from_data(w, CG_FLOAT32, (const int64_t[]){Co, C, k, k}, 4);
    cg_set_config("WINO", "0");
    double direct = rel_err(cg_conv2d(xt, wt, NULL, NULL, NULL, NULL, 1), y, ny);
    printf("  %dx%d direct %.2e", k, k, direct);
    CHECK(direct < 1e-5, "direct %dx%d: %g", k, k, direct);
    cg_set_config("WINO", "1");
    for (int m = 2; m <= 4; m++) { /* F(6,r) too: WINO_TILE=6 (RESULTS.md); slow to compile */
      char tile[4];
      snprintf(tile, sizeof tile, "%d", m);
      cg_set_config("WINO_TILE", tile);
      CHECK(wino_tile(k) == m, "WINO_TILE=%d gives %d", m, wino_tile(k));
      double e = rel_err(cg_conv2d(xt, wt, NULL, NULL, NULL, NULL, 1), y, ny);
      printf("  F(%d,%d) %.2e", m, k, e);
      CHECK(e < 2e-5, "F(%d,%d): error %g", m, k, e); /* within the torch cases' tolerance */
      cg_set_config("WINO", "2"); /* along H only */
      e = rel_err(cg_conv2d(xt, wt, NULL, NULL, NULL, NULL, 1), y, ny);
      printf("  rows F(%d,%d) %.2e", m, k, e);
      CHECK(e < 2e-5, "rows F(%d,%d): error %g", m, k, e);
      cg_set_config("WINO", "1");
    }
    printf("\n");
    cg_set_config("WINO_TILE", "");
    cg_set_config("WINO", "");
    cg_scope_end();
    free(x), free(w), free(y);
  }
}

typedef struct {
  const char *x, *w;
  int64_t s[2], p[2], d[2], g;
  bool bias, wino; /* wino: the case takes the Winograd path under WINO=1 */
} conv_c;

static void torch_cases(void) {
  static const conv_c cs[] = {
      {"1,1,1,1", "1,1,3,3", {1, 1}, {1, 1}, {1, 1}, 1, true, true},       /* a 1x1 image, batch 1, 1 channel */
      {"2,3,7,10", "4,3,3,3", {1, 1}, {1, 1}, {1, 1}, 1, true, true},      /* 7, 10: not multiples of the tile */
      {"1,3,33,7", "2,3,5,5", {1, 1}, {0, 2}, {1, 1}, 1, false, true},     /* 5x5, 33, padding 0 and 2 */
      {"1,64,10,33", "64,64,5,3", {1, 1}, {2, 1}, {1, 1}, 1, true, true},  /* 64 channels, a 5x3 kernel */
      {"2,5,8,9", "3,5,3,3", {1, 1}, {0, 0}, {1, 1}, 1, true, true},       /* 6 output rows: rows take F(3,3) */
      {"1,4,13,11", "3,4,5,5", {1, 1}, {0, 1}, {1, 1}, 1, false, true},    /* 9 output rows: rows take F(3,5) */
      {"1,4,9,9", "4,2,3,3", {1, 1}, {1, 1}, {1, 1}, 2, true, false},      /* groups: direct */
      {"1,3,9,9", "4,3,3,3", {2, 2}, {1, 1}, {1, 1}, 1, true, false},      /* stride 2: direct */
      {"1,3,9,9", "4,3,3,3", {1, 1}, {2, 2}, {2, 2}, 1, false, false},     /* dilation 2: direct */
      {"1,2,9,9", "2,2,7,7", {1, 1}, {3, 3}, {1, 1}, 1, false, false},     /* 7x7: direct */
  };
  for (int mode = 1; mode <= 2; mode++) /* the 2-d path, then rows (H only) */
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    const conv_c *c = &cs[i];
    int64_t xs[4], ws[4];
    ref_parse(c->x, xs), ref_parse(c->w, ws);
    cg_set_config("WINO", mode == 1 ? "1" : "2");
    CHECK(wino_wanted(CG_FLOAT32, 2, xs, ws, c->s, c->d, c->p, c->p, c->g) == (c->wino ? (mode == 1 ? WINO_2D : WINO_ROWS) : WINO_NONE),
          "case %zu, WINO=%d: wino_wanted", i, mode);
    char name[96], code[256], bs[16];
    snprintf(name, sizeof name, "wino%s x %s w %s s%lld p(%lld,%lld) d%lld g%lld", mode == 1 ? "" : " rows", c->x, c->w, (long long)c->s[0],
             (long long)c->p[0], (long long)c->p[1], (long long)c->d[0], (long long)c->g);
    ref_case(name, WRT, WAT);
    cg_tensor *x = ref_float(c->x, -1, 1, true), *w = ref_float(c->w, -1, 1, true);
    snprintf(bs, sizeof bs, "%lld", (long long)ws[0]);
    cg_tensor *b = c->bias ? ref_float(bs, -1, 1, true) : NULL;
    snprintf(code, sizeof code, "out = F.conv2d(x[0], x[1], %s, stride=(%lld,%lld), padding=(%lld,%lld), dilation=(%lld,%lld), groups=%lld)",
             c->bias ? "x[2]" : "None", (long long)c->s[0], (long long)c->s[1], (long long)c->p[0], (long long)c->p[1], (long long)c->d[0],
             (long long)c->d[1], (long long)c->g);
    ref_out(cg_conv2d(x, w, b, c->s, c->p, c->d, c->g), code);
  }
  /* the default rule's 3x3 rows (64 input channels, 6 output rows: F(3,3)), forward and
   * gradients, the weight gradient by the rows path too */
  cg_set_config("WINO", "");
  CHECK(wino_wanted(CG_FLOAT32, 2, (const int64_t[]){2, 64, 8, 8}, (const int64_t[]){32, 64, 3, 3}, A2(1, 1), A2(1, 1), A2(0, 0), A2(0, 0), 1) ==
            WINO_ROWS,
        "default: 64->32 3x3 onto 6x6 takes rows");
  ref_case("wino default rows x 2,64,8,8 w 32,64,3,3 bias", WRT, WAT);
  cg_tensor *x4 = ref_float("2,64,8,8", -1, 1, true), *w4 = ref_float("32,64,3,3", -1, 1, true), *b4 = ref_float("32", -1, 1, true);
  ref_out(cg_conv2d(x4, w4, b4, NULL, NULL, NULL, 1), "out = F.conv2d(x[0], x[1], x[2])");
  /* a stride-1 transposed convolution is a Winograd convolution too (padding k-1-p) */
  cg_set_config("WINO", "1");
  ref_case("wino conv_transpose2d x 2,6,9,8 w 6,4,3,3 p1", WRT, WAT);
  cg_tensor *x = ref_float("2,6,9,8", -1, 1, true), *w = ref_float("6,4,3,3", -1, 1, true);
  ref_out(cg_conv_transpose2d(x, w, NULL, NULL, A2(1, 1), NULL, NULL, 1), "out = F.conv_transpose2d(x[0], x[1], padding=1)");
  /* and a float64 convolution falls back (Winograd is for float32) */
  x = cg_randn(CG_FLOAT64, (const int64_t[]){1, 2, 6, 6}, 4), w = cg_randn(CG_FLOAT64, (const int64_t[]){2, 2, 3, 3}, 4);
  CHECK(!wino_wanted(CG_FLOAT64, 2, cg_shape(x), cg_shape(w), A2(1, 1), A2(1, 1), A2(0, 0), A2(0, 0), 1), "float64 falls back");
  cg_set_config("WINO", "");
}

/* A transposed convolution with padding beyond the kernel's reach: the Winograd input is
 * shrunk (a negative pad) on one dim. WINO=1 against WINO=0, on the interpreter (no
 * compiles); the same tolerance as the torch cases. */
static void negative_pads(void) {
  cg_set_device("INTERP");
  cg_scope_begin();
  cg_tensor *x = cg_randn(CG_FLOAT32, (const int64_t[]){2, 3, 9, 8}, 4), *w = cg_randn(CG_FLOAT32, (const int64_t[]){3, 4, 3, 5}, 4);
  float a[240], b[240];
  for (int k = 0; k < 3; k++) { /* direct, 2-d, rows (H: pads -1, W: pads 1) */
    cg_set_config("WINO", k == 0 ? "0" : k == 1 ? "1" : "2");
    cg_tensor *y = cg_conv_transpose2d(x, w, NULL, NULL, A2(3, 3), NULL, NULL, 1);
    CHECK(y && cg_numel(y) == 240 && cg_read(y, CG_FLOAT32, k ? b : a, sizeof a) == CG_OK, "transpose p3: %s", cg_last_error());
    double worst = 0;
    for (int i = 0; k && i < 240; i++) worst = fmax(worst, fabs(a[i] - b[i]) - WRT * fabs(a[i]));
    CHECK(worst <= WAT, "transpose p3 (pad -1 on one dim), WINO=%d: Winograd vs direct %g", k, worst);
  }
  cg_set_config("WINO", "");
  cg_scope_end();
  cg_set_device(NULL); /* the DEVICE knob's again */
}

static void knob(void) {
  const int64_t xs[4] = {512, 32, 24, 24}, ws[4] = {32, 32, 5, 5}, w3[4] = {32, 32, 3, 3}, one[2] = {1, 1}, zero[2] = {0, 0};
  cg_set_config("WINO", "0");
  CHECK(!wino_wanted(CG_FLOAT32, 2, xs, ws, one, one, zero, zero, 1), "WINO=0: never");
  cg_set_config("WINO", "2");
  CHECK(wino_wanted(CG_FLOAT32, 2, xs, w3, one, one, zero, zero, 1) == WINO_ROWS &&
            wino_wanted(CG_FLOAT32, 2, xs, (const int64_t[]){32, 32, 5, 7}, one, one, zero, zero, 1) == WINO_ROWS,
        "WINO=2: rows for kernel heights 3 and 5, any width");
  CHECK(!wino_wanted(CG_FLOAT32, 2, xs, (const int64_t[]){32, 32, 7, 5}, one, one, zero, zero, 1), "WINO=2: not for a kernel height of 7");
  cg_set_config("WINO", "1");
  CHECK(wino_wanted(CG_FLOAT32, 2, xs, ws, one, one, zero, zero, 1) && wino_wanted(CG_FLOAT32, 2, xs, w3, one, one, zero, zero, 1),
        "WINO=1: 3x3 and 5x5");
  CHECK(!wino_wanted(CG_FLOAT32, 1, xs, ws, one, one, zero, zero, 1), "WINO=1: 2-d only");
  cg_set_config("WINO_TILE", "3");
  CHECK(wino_tile(5) == 3 && wino_tile(3) == 3 && wino_tile(7) == 0 && wino_rows_tile(3, 8) == 3, "WINO_TILE=3: F(3, r) everywhere");
  cg_set_config("WINO_TILE", "7");
  CHECK(wino_tile(5) == 4 && wino_tile(3) == 4, "WINO_TILE=7 is not a tile: the default");
  cg_set_config("WINO_TILE", "");
  /* the rows tile covers the output rows with the fewest products: 4 where 4 divide them,
   * 3 for 6 or 9 rows, 2 for 1 or 2 rows */
  CHECK(wino_rows_tile(3, 8) == 4 && wino_rows_tile(3, 6) == 3 && wino_rows_tile(3, 9) == 3 && wino_rows_tile(5, 20) == 4 &&
            wino_rows_tile(5, 9) == 3 && wino_rows_tile(3, 1) == 2 && wino_rows_tile(3, 2) == 2 && wino_rows_tile(7, 6) == 0,
        "rows tiles: F(4,3) for 8 rows, F(3,3) for 6 and 9, F(2,3) for 1 and 2");
  /* unset: the measured rule (both channel counts >= 64, tiles covering <= 1.3x the output,
   * the products saved >= 2.7x the padded area's growth) */
  cg_set_config("WINO", "");
  const int64_t x64[4] = {64, 64, 16, 16}, w64[4] = {64, 64, 3, 3}, x8[4] = {512, 64, 8, 8}, x128[4] = {64, 128, 16, 16},
                w128[4] = {128, 128, 5, 5};
  CHECK(wino_wanted(CG_FLOAT32, 2, x64, w64, one, one, one, one, 1), "64->64 3x3 16x16: Winograd");
  CHECK(wino_wanted(CG_FLOAT32, 2, x128, w128, one, one, (const int64_t[]){2, 2}, (const int64_t[]){2, 2}, 1), "128->128 5x5: Winograd");
  CHECK(wino_wanted(CG_FLOAT32, 2, x8, w64, one, one, zero, zero, 1) == WINO_ROWS, "64->64 3x3 with 6x6 outputs (conv4): rows F(3,3)");
  CHECK(!wino_wanted(CG_FLOAT32, 2, x8, w64, one, one, one, one, 1), "64->64 3x3 on 8x8 padded by 1 (H padded): direct");
  CHECK(!wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 64, 7, 7}, w64, one, one, zero, zero, 1),
        "64->64 3x3 with 5 output rows (no tile saves 1.75x of the products): direct");
  CHECK(wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 64, 10, 10}, (const int64_t[]){32, 64, 3, 3}, one, one, zero, zero, 1) == WINO_ROWS,
        "64->32 3x3 with 8 output rows (F(4,3), 2x; 32 outputs: not 2-d): rows");
  CHECK(wino_wanted(CG_FLOAT32, 2, xs, ws, one, one, zero, zero, 1) == WINO_ROWS, "the CNN's 32->32 5x5 (conv2) forward: rows");
  CHECK(wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 32, 20, 20}, ws, one, one, (const int64_t[]){4, 4}, (const int64_t[]){4, 4}, 1) ==
            WINO_ROWS,
        "conv2's input gradient (padded by 4): rows");
  CHECK(wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 32, 10, 10}, (const int64_t[]){64, 32, 3, 3}, one, one, zero, zero, 1) == WINO_ROWS,
        "conv3 (32->64 3x3 onto 8 rows, F(4,3)): rows");
  CHECK(!wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 16, 10, 10}, (const int64_t[]){64, 16, 3, 3}, one, one, zero, zero, 1),
        "16->64 3x3: direct");
  CHECK(!wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 32, 10, 10}, (const int64_t[]){64, 32, 3, 3}, one, one, one, one, 1),
        "32->64 3x3 padded by 1 (H padded): direct");
  CHECK(!wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 16, 24, 24}, (const int64_t[]){32, 16, 5, 5}, one, one, zero, zero, 1),
        "16->32 5x5: direct");
  CHECK(!wino_wanted(CG_FLOAT32, 2, (const int64_t[]){512, 1, 28, 28}, (const int64_t[]){32, 1, 5, 5}, one, one, zero, zero, 1),
        "1->32: direct");
  /* input gradients: padded by k-1-p, whose zeros the direct algorithm skips */
  const int64_t two[2] = {2, 2}, four[2] = {4, 4}, g16[4] = {64, 64, 16, 16}, g6[4] = {512, 64, 6, 6}, g128[4] = {64, 128, 16, 16};
  CHECK(!wino_wanted(CG_FLOAT32, 2, g16, w64, one, one, two, two, 1), "64->64 3x3 input gradient of a p0 conv (pads 2): direct");
  CHECK(!wino_wanted(CG_FLOAT32, 2, g6, w64, one, one, two, two, 1), "conv4's input gradient (6x6 padded by 2): direct");
  CHECK(wino_wanted(CG_FLOAT32, 2, g128, w128, one, one, four, four, 1), "128->128 5x5 input gradient (pads 4): Winograd");
}

int main(void) {
  ref_init_seeded();
  cg_scope_begin();
  matrices_exact();
  knob();
  negative_pads();
  error_table();
  torch_cases();
  cg_scope_end();
  ref_finish();
  return test_summary();
}
