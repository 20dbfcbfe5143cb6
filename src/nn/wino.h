/* Winograd convolution (Lavin & Gray 2015) for stride-1, dilation-1 2-d float32 convolutions
 * with 3x3 and 5x5 kernels (each kernel dim 3 or 5), at the tensor level: the transforms are
 * small constant matrices applied with movement ops and scalar multiplies, the per-tile
 * product a batched matmul over input channels (see functional_wino.c). */
#ifndef CG_NN_WINO_H
#define CG_NN_WINO_H
#include "cgrad.h"
#include <stdbool.h>

#define WINO_MAX_ALPHA 10 /* m + r - 1 for the largest tile supported (F(6,5)) */

/* The output tile m used for a kernel size r (3 or 5): WINO_TILE when set (2 to 6), else
 * the default chosen by the measured float32 error (functional_wino.c). 0: no Winograd. */
int wino_tile(int64_t r);

/* The tile of the rows path (F(m, r) along H) for o output rows: WINO_TILE when set, else
 * m = 4, 3 or 2, whichever computes the fewest products for o rows (6 rows: F(3, r)). */
int wino_rows_tile(int64_t r, int64_t o);

/* F(m, r)'s matrices by Cook-Toom over the points 0, 1, -1, 2, -2, 1/2, -1/2, 3, -3 and
 * infinity (alpha = m + r - 1 <= WINO_MAX_ALPHA): AT (m x alpha), G (alpha x r) and BT
 * (alpha x alpha), row-major, in float64, so that for a row d of alpha inputs and a kernel
 * g of r taps, y = AT ((G g) * (BT d)) is the correlation y_i = sum_k g_k d_(i+k).
 * Returns false for sizes out of range. */
bool wino_matrices(int m, int r, double *AT, double *G, double *BT);

/* Which path conv_nd takes: WINO_2D (wino_conv2d), WINO_ROWS (wino_conv2d_rows) or
 * WINO_NONE (direct). Knob WINO: 1 the 2-d path wherever both kernel dims are 3 or 5, 2 rows
 * wherever the kernel height is, 0 never; unset: where measured faster (functional_wino.c).
 * xs is the batched input shape (N, C, H, W), ws the weight's (Cout, C/G, KH, KW), pb/pa
 * the pads before and after per spatial dim. */
enum { WINO_NONE, WINO_2D, WINO_ROWS };
int wino_wanted(cg_dtype dt, int n, const int64_t *xs, const int64_t *ws, const int64_t *stride, const int64_t *dil,
                const int64_t *pb, const int64_t *pa, int64_t groups);

/* y (N, Cout, OH, OW) = the stride-1 convolution of x (N, C, H, W) with w (Cout, C, KH, KW),
 * padded by pb before and pa after (per spatial dim; negative pads shrink), no bias. The
 * caller's scope owns the intermediates. */
cg_tensor *wino_conv2d(cg_tensor *x, cg_tensor *w, const int64_t *pb, const int64_t *pa);

/* The same with Winograd F(m, r) along H only and the direct algorithm along W (a 1 x r1
 * convolution per point of the tile, grouped by point): alpha/m of the products along H
 * (8/4 for F(4,5)) and transforms that expand the data only alpha/m times. pb/pa as above. */
cg_tensor *wino_conv2d_rows(cg_tensor *x, cg_tensor *w, const int64_t *pb, const int64_t *pa);

/* The weight gradient of a convolution that took the rows path (same x, ws, pb, pa) from its
 * output gradient gy (N, Cout, OH, OW): Winograd F(KH, m) along H (the same points and
 * input transform as the forward), the direct algorithm along W. (Cout, C, KH, KW). */
cg_tensor *wino_rows_weight_grad(cg_tensor *x, cg_tensor *gy, const int64_t *ws, const int64_t *pb, const int64_t *pa);

#endif
