/* Winograd convolution at the tensor level (Lavin & Gray 2015, "Fast Algorithms for
 * Convolutional Neural Networks"). For an output tile of m x m and a kernel of r x r,
 * F(m, r) reads an alpha x alpha input tile (alpha = m + r - 1) and computes
 *
 *   Y = AT [ (G g GT) * (BT d B) ] A      (* elementwise over the alpha x alpha points)
 *
 * so a layer does alpha^2 products per tile and channel pair where the direct algorithm
 * does m^2 r^2 (F(4,3): 36 vs 144; F(4,5): 64 vs 400). Over channels the elementwise
 * product becomes alpha^2 independent matrix products: M[p] = V[p] @ U[p] with V the
 * transformed input tiles (tiles x C) and U the transformed weights (C x Cout).
 *
 * Four steps, each an ordinary tensor expression the scheduler turns into kernels:
 *   U = G w GT               per (Cout, C): small, realized once per use
 *   V = BT d B               per (N, C, tile): realized in (alpha, alpha, N, tiles, C)
 *   M = V @ U                alpha^2 batched matmuls over C (the matmul path: GEMM opts)
 *   y = AT M A               per (N, Cout, tile), realized in (N, tiles, m, Cout) blocks
 * A matrix is applied along one axis at a time as a sum over a small constant tensor
 * (contract below), a loop in the kernel: V and Y take two small kernels each.
 *
 * Rows (wino_conv2d_rows): F(m, r) along H only and the direct algorithm along W, so the
 * data grow alpha/m (2x for F(4,5)) instead of (alpha/m)^2 and the per-point product is a
 * direct 1 x r convolution (compute-bound, K = C * r1) instead of a batched matmul over C
 * alone (memory-bound at 32 channels). The weight gradient follows (wino_rows_weight_grad).
 *
 * Error: the transforms' constants grow with the tile (F(6,3) and F(4,5) use the points
 * +-1/2), so float32 error grows too; tests/nn/test_wino.c measures each F(m, r) against
 * float64 and wino_tile's defaults come from those figures. */
#include "wino.h"
#include "core/config.h"
#include "core/error.h"
#include "pool_windows.h"
#include <math.h>
#include <string.h>

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int wino_tile(int64_t r) {
  if (r != 3 && r != 5) return 0;
  long t = cfg_int("WINO_TILE", 0);
  if (t >= 2 && t <= 6) return (int)t;
  return 4; /* F(4,3) and F(4,5): see the error figures in test_wino.c and RESULTS.md */
}

/* Products per output along one dim with F(m, r) over o outputs (tiles of m cover
 * cdiv(o, m) * m of them), relative to the direct algorithm's r: m r / (m + r - 1), less
 * what the last tile computes past o. */
static double rows_gain(int64_t m, int64_t r, int64_t o) { return (double)(m * r) / (double)(m + r - 1) * (double)o / (double)(cdiv(o, m) * m); }

int wino_rows_tile(int64_t r, int64_t o) {
  if (!wino_tile(r)) return 0;
  if (cfg_int("WINO_TILE", 0)) return wino_tile(r);
  /* the tile of 4, 3 or 2 rows that saves the most products (ties: the larger): 6 output
   * rows take F(3, r), which covers them exactly (F(4, r) computes 8); no larger tile, whose
   * points +-1/2, 3 cost float32 accuracy (test_wino.c) */
  int best = 4;
  for (int m = 3; m >= 2; m--)
    if (rows_gain(m, r, o) > rows_gain(best, r, o) + 1e-9) best = m;
  return best;
}

bool wino_matrices(int m, int r, double *AT, double *G, double *BT) {
  static const double pts[] = {0, 1, -1, 2, -2, 0.5, -0.5, 3, -3};
  int a = m + r - 1;
  if (m < 1 || r < 1 || a > WINO_MAX_ALPHA || a - 1 > (int)(sizeof pts / sizeof *pts)) return false;
  /* V: the values at the points (and infinity: the leading coefficient) of a polynomial of
   * degree a-1; BT = V^-T. [V | I] reduced to [I | V^-1] with partial pivoting. */
  double V[WINO_MAX_ALPHA][2 * WINO_MAX_ALPHA] = {{0}};
  for (int j = 0; j < a; j++) {
    for (int k = 0; k < a; k++) V[j][k] = j < a - 1 ? pow(pts[j], k) : (k == a - 1);
    V[j][a + j] = 1;
  }
  for (int c = 0; c < a; c++) {
    int piv = c;
    for (int j = c + 1; j < a; j++)
      if (fabs(V[j][c]) > fabs(V[piv][c])) piv = j;
    for (int k = 0; k < 2 * a; k++) {
      double t = V[c][k];
      V[c][k] = V[piv][k], V[piv][k] = t;
    }
    double d = V[c][c];
    for (int k = 0; k < 2 * a; k++) V[c][k] /= d;
    for (int j = 0; j < a; j++) {
      if (j == c || V[j][c] == 0) continue;
      double f = V[j][c];
      for (int k = 0; k < 2 * a; k++) V[j][k] -= f * V[c][k];
    }
  }
  /* The Lagrange denominators f_j move from BT into G (wincnn's scaling): BT's rows then
   * hold small integers and halves, G the fractions. */
  for (int j = 0; j < a; j++) {
    double f = 1;
    for (int l = 0; j < a - 1 && l < a - 1; l++)
      if (l != j) f *= pts[j] - pts[l];
    for (int k = 0; k < a; k++) {
      double v = V[k][a + j] * f; /* (V^-1)[k][j] = BT[j][k] */
      BT[j * a + k] = fabs(v - nearbyint(v)) < 1e-9 ? nearbyint(v) : v;
    }
    for (int k = 0; k < r; k++) G[j * r + k] = (j < a - 1 ? pow(pts[j], k) : (k == r - 1)) / f;
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < a; j++) AT[i * a + j] = j < a - 1 ? pow(pts[j], i) : (i == m - 1);
  return true;
}

/* mat (rows x cols) applied along axis of t (length cols): a sum over a constant matrix,
 * so the kernel keeps the tile as a loop (a few dozen lines of C) where the sparse form
 * (each row a sum of slices, concatenated) unrolled every point and compiled for minutes.
 * perm (over t's dims plus one) orders the product's axes before the sum, so the
 * realized result is laid out as its consumer reads it; the contracted axis, axis + 1 in
 * the product, must be last in perm. */
static cg_tensor *contract(cg_tensor *t, int axis, const double *mat, int rows, int cols, const int *perm) {
  if (!t) return NULL;
  int nd = cg_ndim(t);
  float c[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
  int64_t cs[8];
  for (int i = 0; i < rows * cols; i++) c[i] = (float)mat[i];
  for (int i = 0; i <= nd; i++) cs[i] = i == axis ? rows : i == axis + 1 ? cols : 1;
  cg_tensor *u = cg_unsqueeze(t, axis), *k = cg_from_data(c, CG_FLOAT32, cs, nd + 1);
  /* the operands are permuted, not the product: an ALU node under a movement op inside a
   * reduction gets a buffer of its own (schedule.c), here the whole product */
  u = cg_permute(u, perm, nd + 1), k = cg_permute(k, perm, nd + 1);
  return cg_sum(cg_mul(u, k), (const int[]){nd}, 1, false);
}

/* t with mat (rows x cols) applied along axis as the sum of its nonzero terms per row, the
 * rows concatenated: the kernel unrolls the concatenation's axis (codegen/opt.c), so each
 * input is loaded once and only the nonzero products are computed. Along one axis the
 * unrolled kernel stays small (alpha rows). */
static cg_tensor *apply_sparse(cg_tensor *t, int axis, const double *mat, int rows, int cols) {
  cg_tensor *piece[WINO_MAX_ALPHA];
  for (int i = 0; i < rows; i++) {
    cg_tensor *acc = NULL;
    for (int k = 0; k < cols; k++) {
      double c = mat[i * cols + k];
      if (c == 0) continue;
      cg_tensor *s = cg_slice(t, axis, k, k + 1, 1);
      if (c == -1) acc = acc ? cg_sub(acc, s) : cg_neg(s);
      else {
        cg_tensor *term = c == 1 ? s : cg_mul(s, cg_scalar(c));
        acc = acc ? cg_add(acc, term) : term;
      }
    }
    if (!acc) acc = cg_mul(cg_slice(t, axis, 0, 1, 1), cg_scalar(0));
    piece[i] = acc;
  }
  return cg_cat(piece, rows, axis);
}

int wino_wanted(cg_dtype dt, int n, const int64_t *xs, const int64_t *ws, const int64_t *stride, const int64_t *dil,
                const int64_t *pb, const int64_t *pa, int64_t groups) {
  if (n != 2 || dt != CG_FLOAT32 || groups != 1) return WINO_NONE;
  for (int j = 0; j < 2; j++)
    if (stride[j] != 1 || dil[j] != 1) return WINO_NONE;
  if (!wino_tile(ws[2])) return WINO_NONE; /* rows need F(m, KH); 2-d F(m, KW) too */
  bool both = wino_tile(ws[3]) != 0;
  int64_t o[2], covered[2];
  double gain = 1, padded = 1;
  for (int j = 0; j < 2; j++) {
    int64_t r = ws[2 + j], m = j == 0 || both ? wino_tile(r) : 1;
    o[j] = xs[2 + j] + pb[j] + pa[j] - r + 1;
    covered[j] = cdiv(o[j], m) * m;
    gain *= (double)(m * r) / (double)(m + r - 1); /* direct / Winograd products, per dim */
    padded *= (double)(xs[2 + j] + (pb[j] > 0 ? pb[j] : 0) + (pa[j] > 0 ? pa[j] : 0)) / (double)xs[2 + j];
  }
  long mode = cfg_int("WINO", -1);
  if (mode == 0) return WINO_NONE;
  if (mode == 1) return both ? WINO_2D : WINO_NONE;
  if (mode == 2) return WINO_ROWS;
  /* Measured on the Zen 5 VM, one thread (bench/bench_wino.c, RESULTS.md): the transforms
   * write and read alpha^2/m^2 (2.25x for F(4,3), 4x for F(4,5)) the input and output
   * through memory, which the product over channels saves only where both channel counts
   * are large: 64->64 3x3 at 16x16 and 128->128 5x5 run 2x and 3-4x faster; the CNN's
   * 32->32 5x5 1.4x slower, 1->32 far slower (a product over one channel); 64->64 3x3 at
   * 6x6 outputs slower (tiles of 4 cover 8x8: 1.8x the outputs). And the direct algorithm
   * skips a padding's zeros (GATE_BOUNDS) where Winograd transforms them: an input
   * gradient (padded by k-1-p) pays only where the products saved outweigh the padding,
   * gain / padded area >= 2.7 (64->64 3x3 onto 16x16 from 16x16, pads 2: 2.56, direct
   * 7.4 ms against 8.9; 128->128 5x5, pads 4: 2.78, 93 against 42). */
  if (both && xs[1] >= 64 && ws[0] >= 64 && 10 * covered[0] * covered[1] <= 13 * o[0] * o[1] && gain >= 2.7 * padded) return WINO_2D;
  /* Rows (F(4,5) along H only) expand the data only 2x, so the CNN's 32->32 5x5 gains
   * (conv2, one thread, bench_wino: forward 33.0 vs 47.7 ms, weight gradient 32.2 vs 46.0
   * with the input transform, input gradient, padded by 4 rows whose zeros the direct
   * kernel skips, 39.1 vs 44.1). */
  int64_t mr = wino_rows_tile(ws[2], o[0]);
  if (ws[2] == 5 && xs[1] >= 32 && ws[0] >= 32 && pb[0] <= 4 && pa[0] <= 4 && 10 * cdiv(o[0], mr) * mr <= 13 * o[0]) return WINO_ROWS;
  /* 3x3 rows pay with >= 32 channels both sides where the tile covers the output rows
   * exactly enough to save >= 1.75x the products along H, with no padding along H. One
   * thread (bench_wino, RESULTS.md): conv4 (64->64 onto 6 rows, F(3,3), 1.8x) forward 4.7
   * vs 6.6 ms; conv3 (32->64 onto 8 rows, F(4,3), 2x) 5.0 vs 6.0 once its input transform
   * (10-wide rows) ran as vectors; their weight gradients follow. An input gradient
   * (padded by 2 rows, whose zeros the direct kernel skips) lost 3x (conv4's, 19.9 vs 6.2) */
  if (ws[2] == 3 && xs[1] >= 32 && ws[0] >= 32 && pb[0] <= 0 && pa[0] <= 0 && rows_gain(mr, 3, o[0]) >= 1.75) return WINO_ROWS;
  return WINO_NONE;
}

cg_tensor *wino_conv2d(cg_tensor *x, cg_tensor *w, const int64_t *pb, const int64_t *pa) {
  if (!x || !w) return NULL;
  const int64_t *xs = cg_shape(x), *ws = cg_shape(w);
  int64_t N = xs[0], C = xs[1], Co = ws[0], m[2], r[2], a[2], T[2], o[2];
  double AT[2][WINO_MAX_ALPHA * WINO_MAX_ALPHA], G[2][WINO_MAX_ALPHA * WINO_MAX_ALPHA], BT[2][WINO_MAX_ALPHA * WINO_MAX_ALPHA];
  int64_t box[8] = {0, N, 0, C, 0, 0, 0, 0}, pads[8] = {0};
  bool shrink = false;
  for (int j = 0; j < 2; j++) {
    r[j] = ws[2 + j], m[j] = wino_tile(r[j]), a[j] = m[j] + r[j] - 1;
    if (!wino_matrices((int)m[j], (int)r[j], AT[j], G[j], BT[j]))
      return cg_fail_null(CG_ERR_INVALID, "winograd: no F(%lld,%lld)", (long long)m[j], (long long)r[j]);
    o[j] = xs[2 + j] + pb[j] + pa[j] - r[j] + 1;
    T[j] = cdiv(o[j], m[j]);
    /* the input the tiles cover: T*m + r - 1 (at least the padded input: T*m >= o) */
    int64_t before = pb[j], after = T[j] * m[j] + r[j] - 1 - xs[2 + j] - pb[j];
    box[4 + 2 * j] = before < 0 ? -before : 0, box[5 + 2 * j] = xs[2 + j] + (after < 0 ? after : 0);
    shrink = shrink || before < 0 || after < 0;
    pads[4 + 2 * j] = before > 0 ? before : 0, pads[5 + 2 * j] = after > 0 ? after : 0;
  }
  if (shrink) x = cg_shrink(x, box);
  /* channels last first (one copy of the input, the smallest tensor here): every
   * transform then reads and writes along C, and V comes out as the product reads it */
  x = cg_contiguous(cg_permute(cg_pad(x, pads, 0), (const int[]){0, 2, 3, 1}, 4)); /* (N, Hp, Wp, C) */
  int64_t Wp = T[1] * m[1] + r[1] - 1;
  /* V = BT d B one dim at a time, each a small realized sum: along H over windows of the
   * rows (V1: (N, T0, a0, Wp, C), the width not yet cut into overlapping tiles), then
   * along W into (a0, a1, N, T0, T1, C) */
  cg_tensor *d = nn_pool_windows(cg_permute(x, (const int[]){0, 2, 3, 1}, 4), 1, &a[0], &m[0], (const int64_t[]){1});
  d = cg_reshape(d, (const int64_t[]){N, Wp, C, T[0], a[0]}, 5); /* (N, Wp, C, T0, k) */
  cg_tensor *V = contract(d, 4, BT[0], (int)a[0], (int)a[0], (const int[]){0, 3, 4, 1, 2, 5});
  d = nn_pool_windows(cg_permute(V, (const int[]){0, 1, 2, 4, 3}, 5), 1, &a[1], &m[1], (const int64_t[]){1});
  d = cg_reshape(d, (const int64_t[]){N, T[0], a[0], C, T[1], a[1]}, 6); /* (N, T0, a0, C, T1, l) */
  V = contract(d, 5, BT[1], (int)a[1], (int)a[1], (const int[]){2, 5, 0, 1, 4, 3, 6});
  V = cg_reshape(V, (const int64_t[]){a[0] * a[1], N * T[0] * T[1], C}, 3);
  /* U: a dense product with G0 x G1 (a constant tensor): the weights are few, and a small
   * reduction compiles to a loop where the unrolled transform would be thousands of lines */
  float gk[WINO_MAX_ALPHA * WINO_MAX_ALPHA * 25];
  for (int64_t i = 0; i < a[0]; i++)
    for (int64_t j = 0; j < a[1]; j++)
      for (int64_t p = 0; p < r[0]; p++)
        for (int64_t q = 0; q < r[1]; q++) gk[((i * a[1] + j) * r[0] + p) * r[1] + q] = (float)(G[0][i * r[0] + p] * G[1][j * r[1] + q]);
  cg_tensor *Gk = cg_from_data(gk, CG_FLOAT32, (const int64_t[]){a[0], a[1], 1, 1, r[0], r[1]}, 6);
  cg_tensor *U = cg_permute(cg_reshape(w, (const int64_t[]){1, 1, Co, C, r[0], r[1]}, 6), (const int[]){0, 1, 3, 2, 4, 5}, 6);
  U = cg_sum(cg_mul(U, cg_permute(Gk, (const int[]){0, 1, 3, 2, 4, 5}, 6)), (const int[]){4, 5}, 2, false); /* (a0, a1, C, Co) */
  U = cg_reshape(U, (const int64_t[]){a[0] * a[1], C, Co}, 3);
  cg_tensor *M = cg_reshape(cg_matmul(V, U), (const int64_t[]){a[0], a[1], N, T[0], T[1], Co}, 6);
  /* Y = AT M A: along a1 (Y1: (a0, N, T0, T1, m1, Co)), then along a0 into the output's
   * row order (N, T0, m0, T1, m1, Co) */
  cg_tensor *Y = contract(M, 1, AT[1], (int)m[1], (int)a[1], (const int[]){0, 3, 4, 5, 1, 6, 2});
  Y = cg_contiguous(contract(Y, 0, AT[0], (int)m[0], (int)a[0], (const int[]){2, 3, 0, 4, 5, 6, 1}));
  Y = cg_reshape(Y, (const int64_t[]){N, T[0] * m[0], T[1] * m[1], Co}, 4);
  if (T[0] * m[0] != o[0] || T[1] * m[1] != o[1]) Y = cg_shrink(Y, (const int64_t[]){0, N, 0, o[0], 0, o[1], 0, Co});
  return cg_permute(Y, (const int[]){0, 3, 1, 2}, 4);
}

/* The rows path's input side: x (N, C, H, W) cut into T tiles of a rows with stride m along
 * H (padded or shrunk by pb/pa; along W too where W's pads are not symmetric, else *wsym
 * and the caller's direct product pads W) and transformed, V1 = BT d: (N, T, a, C, Wd).
 * The forward and the weight gradient build the same nodes, so a training step computes
 * it once. Along one dim the sparse form (nonzero terms only, each input loaded once)
 * measured faster than the sum over the matrix (conv2: 36.9 vs 41.4 ms forward) and
 * unrolls to ~300 lines. */
static cg_tensor *rows_input(cg_tensor *x, int64_t m, int64_t r, const double *BT, const int64_t *pb, const int64_t *pa, int64_t *T,
                             bool *wsym) {
  const int64_t *xs = cg_shape(x);
  int64_t N = xs[0], C = xs[1], a = m + r - 1, o = xs[2] + pb[0] + pa[0] - r + 1;
  *T = cdiv(o, m);
  int64_t before = pb[0], after = *T * m + r - 1 - xs[2] - pb[0];
  *wsym = pb[1] == pa[1] && pb[1] >= 0;
  int64_t wb = *wsym ? 0 : pb[1], wa = *wsym ? 0 : pa[1];
  if (before < 0 || after < 0 || wb < 0 || wa < 0)
    x = cg_shrink(x, (const int64_t[]){0, N, 0, C, before < 0 ? -before : 0, xs[2] + (after < 0 ? after : 0), wb < 0 ? -wb : 0,
                                       xs[3] + (wa < 0 ? wa : 0)});
  x = cg_pad(x, (const int64_t[]){0, 0, 0, 0, before > 0 ? before : 0, after > 0 ? after : 0, wb > 0 ? wb : 0, wa > 0 ? wa : 0}, 0);
  int64_t Wd = cg_shape(x)[3];
  cg_tensor *d = nn_pool_windows(cg_permute(x, (const int[]){0, 1, 3, 2}, 4), 1, &a, &m, (const int64_t[]){1});
  d = cg_reshape(d, (const int64_t[]){N, C, Wd, *T, a}, 5);
  return cg_contiguous(cg_permute(apply_sparse(d, 4, BT, (int)a, (int)a), (const int[]){0, 3, 4, 1, 2}, 5));
}

cg_tensor *wino_conv2d_rows(cg_tensor *x, cg_tensor *w, const int64_t *pb, const int64_t *pa) {
  if (!x || !w) return NULL;
  const int64_t *xs = cg_shape(x), *ws = cg_shape(w);
  int64_t N = xs[0], C = xs[1], Co = ws[0], r = ws[2], r1 = ws[3], o = xs[2] + pb[0] + pa[0] - r + 1, m = wino_rows_tile(r, o), a = m + r - 1, T;
  double AT[WINO_MAX_ALPHA * WINO_MAX_ALPHA], G[WINO_MAX_ALPHA * WINO_MAX_ALPHA], BT[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
  if (!wino_matrices((int)m, (int)r, AT, G, BT)) return cg_fail_null(CG_ERR_INVALID, "winograd: no F(%lld,%lld)", (long long)m, (long long)r);
  bool wsym; /* W's pads go to the direct product below, which skips their zeros */
  cg_tensor *V = rows_input(x, m, r, BT, pb, pa, &T, &wsym);
  int64_t Wd = cg_shape(V)[4];
  /* U1 = G w along H: (a, Co, C, r1) */
  float g[WINO_MAX_ALPHA * 5];
  for (int i = 0; i < a * r; i++) g[i] = (float)G[i];
  cg_tensor *Gt = cg_from_data(g, CG_FLOAT32, (const int64_t[]){a, 1, 1, 1, r}, 5);
  cg_tensor *U = cg_mul(cg_reshape(cg_permute(w, (const int[]){0, 1, 3, 2}, 4), (const int64_t[]){1, Co, C, r1, r}, 5), Gt);
  U = cg_sum(U, (const int[]){4}, 1, false);
  /* per point of the tile, a 1 x r1 convolution along W over C: one grouped convolution
   * (groups = the a points), the direct kernel's implicit GEMM with K = C * r1 */
  cg_tensor *M = cg_conv2d(cg_reshape(V, (const int64_t[]){N * T, a * C, 1, Wd}, 4), cg_reshape(U, (const int64_t[]){a * Co, C, 1, r1}, 4), NULL,
                           NULL, (const int64_t[]){0, wsym ? pb[1] : 0}, NULL, a);
  int64_t Wo = Wd + (wsym ? 2 * pb[1] : 0) - r1 + 1;
  M = cg_reshape(M, (const int64_t[]){N, T, a, Co, Wo}, 5);
  /* Y = AT M along H, read by the consumer as (N, Co, T, m, Wo): NCHW */
  cg_tensor *Y = cg_permute(apply_sparse(M, 2, AT, (int)m, (int)a), (const int[]){0, 3, 1, 2, 4}, 5);
  Y = cg_reshape(Y, (const int64_t[]){N, Co, T * m, Wo}, 4);
  if (T * m != o) Y = cg_shrink(Y, (const int64_t[]){0, N, 0, Co, 0, o, 0, Wo});
  /* realized here: left elementwise, every reduction that reads the output (BatchNorm's
   * statistics) fused the transform and recomputed it */
  return cg_contiguous(Y);
}

cg_tensor *wino_rows_weight_grad(cg_tensor *x, cg_tensor *gy, const int64_t *ws, const int64_t *pb, const int64_t *pa) {
  if (!x || !gy) return NULL;
  const int64_t *xs = cg_shape(x);
  int64_t N = xs[0], C = xs[1], Co = ws[0], r = ws[2], r1 = ws[3], m = wino_rows_tile(r, xs[2] + pb[0] + pa[0] - r + 1), a = m + r - 1, T;
  /* dw[p] = sum_i x[i + p] g[i] along H, i cut into tiles of m: per tile a correlation of
   * a rows of x with m rows of g giving r outputs, F(r, m): the same alpha and points as
   * the forward's F(m, r), so the same BT, taken from F(m, r): V1 is the forward's input
   * transform */
  double AT[WINO_MAX_ALPHA * WINO_MAX_ALPHA], G[WINO_MAX_ALPHA * WINO_MAX_ALPHA], BT[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
  double ATf[WINO_MAX_ALPHA * WINO_MAX_ALPHA], Gf[WINO_MAX_ALPHA * WINO_MAX_ALPHA];
  if (!wino_matrices((int)r, (int)m, AT, G, BT) || !wino_matrices((int)m, (int)r, ATf, Gf, BT))
    return cg_fail_null(CG_ERR_INVALID, "winograd: no F(%lld,%lld)", (long long)r, (long long)m);
  bool wsym;
  /* V1 computed again from x + 0 (a node of its own: the forward's, shared through
   * hash-consing, was held from the forward to the backward, the CNN step's planned peak
   * 402.6 MB against 319.2 recomputed and 326.1 with direct 3x3 layers; recomputing costs
   * the transform, ~5 ms of one thread per step, mostly conv2's). -0 becomes +0: no
   * product changes */
  cg_tensor *V = rows_input(cg_add(x, cg_scalar(0.0)), m, r, BT, pb, pa, &T, &wsym); /* (N, T, a, C, Wd) */
  int64_t o = cg_shape(gy)[2], Wo = cg_shape(gy)[3];
  /* Ug = G g along H per tile of m rows (zeros past o): (N, T, a, Wo, Co), Co innermost */
  cg_tensor *h = cg_permute(gy, (const int[]){0, 2, 3, 1}, 4); /* (N, o, Wo, Co) */
  if (T * m != o) h = cg_pad(h, (const int64_t[]){0, 0, 0, T * m - o, 0, 0, 0, 0}, 0);
  h = cg_reshape(h, (const int64_t[]){N, T, m, Wo, Co}, 5);
  /* stored (N, T, Wo, a, Co): with the points next to the vector dims in both layouts the
   * kernel's dims merge and every vector computes all a pieces, masked (3x slower) */
  cg_tensor *Ug = cg_contiguous(cg_permute(apply_sparse(h, 2, G, (int)a, (int)m), (const int[]){0, 1, 3, 2, 4}, 5));
  Ug = cg_permute(Ug, (const int[]){0, 1, 3, 2, 4}, 5); /* (N, T, a, Wo, Co) */
  /* M[a, c, q, co] = sum over (n, t, j) of V1[n, t, a, c, j + q] Ug[n, t, a, j, co]: as the
   * direct weight gradient, a partial per chunk of tile rows whose V1 and Ug fit in L2,
   * then their sum */
  cg_tensor *Vw = cg_reshape(V, (const int64_t[]){N * T * a * C, 1, cg_shape(V)[4]}, 3);
  if (wsym) Vw = cg_pad(Vw, (const int64_t[]){0, 0, 0, 0, pb[1], pa[1]}, 0);
  Vw = nn_pool_windows(Vw, 1, &r1, (const int64_t[]){1}, (const int64_t[]){1}); /* (N*T*a*C, Wo, r1) */
  int64_t NT = N * T, per_row = 4 * a * (C * cg_shape(V)[4] + Wo * Co), chunk = 1;
  for (int64_t c2 = NT / 2; c2 >= 1; c2--)
    if (NT % c2 == 0 && c2 * per_row <= (1 << 20)) {
      chunk = c2;
      break;
    }
  /* (NT/chunk, chunk, a, Wo, C, r1, Co) */
  Vw = cg_permute(cg_reshape(Vw, (const int64_t[]){NT / chunk, chunk, a, C, Wo, r1, 1}, 7), (const int[]){0, 1, 2, 4, 3, 5, 6}, 7);
  cg_tensor *Uw = cg_reshape(Ug, (const int64_t[]){NT / chunk, chunk, a, Wo, 1, 1, Co}, 7);
  cg_tensor *M = cg_sum(cg_mul(Vw, Uw), (const int[]){1, 3}, 2, false); /* (NT/chunk, a, C, r1, Co) */
  M = cg_sum(cg_contiguous(M), (const int[]){0}, 1, false);          /* (a, C, r1, Co) */
  /* dw = AT M along the points: (r, C, r1, Co) -> (Co, C, r, r1) */
  cg_tensor *dw = contract(M, 0, AT, (int)r, (int)a, (const int[]){0, 2, 3, 4, 1});
  return cg_permute(dw, (const int[]){3, 1, 0, 2}, 4);
}
