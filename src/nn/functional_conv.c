/* Convolutions and pooling, built from movement ops, one multiply and one reduction, so
 * that autograd and the scheduler see nothing special (tinygrad's approach).
 *
 *   x (N, Cin, I...) ──pad──► (N, Cin, I+2p...) ──pool_windows──► (N*Cin, O..., K...)
 *        windows ─reshape─► (N, G, 1,      Cin/G, Oflat, Kflat) ┐
 *        weight  ─reshape─► (1, G, Cout/G, Cin/G, 1,     Kflat) ┴─ mul ─ sum(Cin/G, Kflat)
 *                                                        ─► (N, Cout, O...) (+ bias)
 *
 * pool_windows works one spatial dim at a time on a (pre, I, post) view of the tensor, so
 * no intermediate has more than 5 dims and conv3d stays inside CG_MAX_DIMS. Along one dim
 * (length i, kernel k, stride s, dilation d, o = ceil((i - d*(k-1)) / s) outputs):
 *   - k <= s and d == 1: pad/shrink to o*s, reshape (o, s), keep the first k of each row;
 *   - otherwise: repeat the row r times and cut the repeats into k rows of length
 *     L = i*f + d (f >= 1 so that L >= o*s): row j then starts at element j*d (mod i),
 *     which is tap j of every window; keep every s-th of the first o*s columns.
 * A transposed convolution is the gradient of a convolution w.r.t. its input: dilate x
 * with stride-1 zeros, pad by d*(k-1) - p (a negative pad shrinks), flip the kernel and
 * swap its in/out channels per group, then convolve with stride 1.
 *
 * Gradients: convolutions and pools record a backward of their own (tensor/composite.h).
 * Autograd through the window view would sum overlapping windows through a tensor of
 * every window, (N, C, O..., K...); instead
 *   - conv, input:  the transposed convolution of the output gradient (itself a conv);
 *   - conv, weight: windows of x times the output gradient, summed over N and O...
 *                   (one reduction, the forward's structure with N reduced);
 *   - pools: each input position gathers, through the same dilate-pad-window view of the
 *     (small) output gradient, the windows it lies in: sum them (avg) or keep those whose
 *     first max it is (max; torch's max_pool2d convention for ties).
 * Every one is a single reduction over a view, nothing larger than its input or output.
 *
 * Winograd: a stride-1, dilation-1, ungrouped float32 2-d convolution with 3 or 5 taps per
 * dim may instead go through functional_wino.c (wino_wanted: the WINO knob, else a measured
 * rule); it records the same composite, so both gradients stay the ones above (the input
 * gradient, itself a stride-1 convolution, may take the Winograd path again), except that
 * where the forward took the rows path the weight gradient does too (same input transform). */
#include "core/error.h"
#include "tensor/composite.h"
#include "tensor/tensor.h"
#include "uop/shape.h"
#include "nn/conv_weight.h"
#include "wino.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAXSP 3 /* spatial dims supported (conv1d .. conv3d) */

static int64_t cdiv(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }
static int64_t prod(const int64_t *v, int n) {
  int64_t p = 1;
  for (int i = 0; i < n; i++) p *= v[i];
  return p;
}
static const char *tup(const int64_t *v, int n) { return shape_str(v, n); }

/* One dim: t (P, i, Q) -> (P, o, k, Q) windows. */
static cg_tensor *pool1(cg_tensor *t, int64_t k, int64_t s, int64_t d) {
  const int64_t *sh = cg_shape(t);
  int64_t P = sh[0], i = sh[1], Q = sh[2];
  int64_t o = cdiv(i - d * (k - 1), s);
  if (k <= s && d == 1) {
    if (o * s > i) {
      int64_t pads[6] = {0, 0, 0, o * s - i, 0, 0};
      t = cg_pad(t, pads, 0);
    } else {
      int64_t box[6] = {0, P, 0, o * s, 0, Q};
      t = cg_shrink(t, box);
    }
    int64_t s4[4] = {P, o, s, Q};
    t = cg_reshape(t, s4, 4);
    int64_t box[8] = {0, P, 0, o, 0, k, 0, Q};
    return cg_shrink(t, box);
  }
  int64_t f = o * s - d > 0 ? cdiv(o * s - d, i) : 1;
  if (f < 1) f = 1;
  int64_t L = i * f + d, r = cdiv(k * L, i);
  int64_t reps[3] = {1, r, 1};
  t = cg_repeat(t, reps, 3);
  int64_t b1[6] = {0, P, 0, k * L, 0, Q};
  t = cg_shrink(t, b1);
  int64_t s4[4] = {P, k, L, Q};
  t = cg_reshape(t, s4, 4);
  int64_t b2[8] = {0, P, 0, k, 0, o * s, 0, Q};
  t = cg_shrink(t, b2);
  int64_t s5[5] = {P, k, o, s, Q};
  t = cg_reshape(t, s5, 5);
  int64_t b3[10] = {0, P, 0, k, 0, o, 0, 1, 0, Q};
  t = cg_shrink(t, b3);
  int64_t s4b[4] = {P, k, o, Q};
  t = cg_reshape(t, s4b, 4);
  int perm[4] = {0, 2, 1, 3};
  return cg_permute(t, perm, 4);
}

/* x (lead..., I1..In) -> (B, O1..On, K1..Kn) with B = prod(lead). The caller checked that
 * every dilated kernel fits. Intermediates stay in the caller's scope. */
static cg_tensor *pool_windows(cg_tensor *x, int n, const int64_t *k, const int64_t *s, const int64_t *d) {
  int nd = cg_ndim(x), lead = nd - n;
  int64_t cur[1 + 2 * MAXSP];
  int nc = 1 + n;
  cur[0] = prod(cg_shape(x), lead);
  for (int j = 0; j < n; j++) cur[1 + j] = cg_shape(x)[lead + j];
  for (int j = 0; j < n && x; j++) {
    int p = 1 + 2 * j; /* position of I_j: lead, then (O, K) pairs of the dims done */
    int64_t i = cur[p], o = cdiv(i - d[j] * (k[j] - 1), s[j]);
    int64_t s3[3] = {prod(cur, p), i, prod(cur + p + 1, nc - p - 1)};
    cg_tensor *t = pool1(cg_reshape(x, s3, 3), k[j], s[j], d[j]);
    memmove(cur + p + 2, cur + p + 1, sizeof(int64_t) * (size_t)(nc - p - 1));
    cur[p] = o, cur[p + 1] = k[j];
    nc++;
    x = cg_reshape(t, cur, nc);
  }
  int perm[1 + 2 * MAXSP];
  perm[0] = 0;
  for (int j = 0; j < n; j++) perm[1 + j] = 1 + 2 * j, perm[1 + n + j] = 2 + 2 * j;
  return cg_permute(x, perm, nc);
}

/* Pad the last n dims by [before, after] each (negative values shrink). */
static cg_tensor *pad_spatial(cg_tensor *x, int n, const int64_t *before, const int64_t *after, double value) {
  int nd = cg_ndim(x), lead = nd - n;
  int64_t pads[2 * CG_MAX_DIMS] = {0}, box[2 * CG_MAX_DIMS];
  bool shrink = false;
  for (int i = 0; i < nd; i++) box[2 * i] = 0, box[2 * i + 1] = cg_shape(x)[i];
  for (int j = 0; j < n; j++) {
    int64_t b = before[j], a = after[j];
    pads[2 * (lead + j)] = b > 0 ? b : 0;
    pads[2 * (lead + j) + 1] = a > 0 ? a : 0;
    if (b < 0) box[2 * (lead + j)] = -b, shrink = true;
    if (a < 0) box[2 * (lead + j) + 1] += a, shrink = true;
  }
  if (shrink) x = cg_shrink(x, box);
  return cg_pad(x, pads, value);
}

/* Spread the last n dims with s-1 zeros between elements: (.., i, ..) -> (.., (i-1)*s+1, ..).
 * Per dim: (pre, i, 1, post) -> pad (0, s-1) -> (pre, i*s, post) -> first i*s - (s-1). */
static cg_tensor *dilate_spatial(cg_tensor *x, int n, const int64_t *s) {
  int xd = cg_ndim(x), lead = xd - n;
  for (int j = 0; j < n; j++) {
    if (s[j] == 1) continue;
    const int64_t *cs = cg_shape(x);
    int64_t i = cs[lead + j], full[CG_MAX_DIMS];
    memcpy(full, cs, sizeof(int64_t) * (size_t)xd);
    int64_t s4[4] = {prod(cs, lead + j), i, 1, prod(cs + lead + j + 1, xd - lead - j - 1)};
    int64_t pads[8] = {0, 0, 0, 0, 0, s[j] - 1, 0, 0};
    cg_tensor *t = cg_pad(cg_reshape(x, s4, 4), pads, 0);
    int64_t s3[3] = {s4[0], i * s[j], s4[3]};
    int64_t box[6] = {0, s4[0], 0, i * s[j] - (s[j] - 1), 0, s4[3]};
    t = cg_shrink(cg_reshape(t, s3, 3), box);
    full[lead + j] = i * s[j] - (s[j] - 1);
    x = cg_reshape(t, full, xd);
  }
  return x;
}

/* A weight (Cin, Cout/G, K...) used as a transposed convolution's becomes the plain
 * convolution's (Cout, Cin/G, K...): (G, Cin/G, Cout/G, K...) -> swap -> flip K -> reshape. */
static cg_tensor *transpose_weight(cg_tensor *w, int n, int64_t G) {
  const int64_t *ws = cg_shape(w);
  int64_t cin = ws[0], cog = ws[1], wg[3 + MAXSP] = {G, cin / G, cog};
  for (int j = 0; j < n; j++) wg[3 + j] = ws[2 + j];
  cg_tensor *wt = cg_reshape(w, wg, n + 3);
  int perm[3 + MAXSP] = {0, 2, 1, 3, 4, 5};
  wt = cg_permute(wt, perm, n + 3);
  int fl[MAXSP] = {3, 4, 5};
  wt = cg_flip(wt, fl, n);
  int64_t wf[2 + MAXSP] = {G * cog, cin / G};
  for (int j = 0; j < n; j++) wf[2 + j] = wg[3 + j];
  return cg_reshape(wt, wf, n + 2);
}

/* A layout step: w (Cout, Cin/G, K...) with its output channels innermost in memory
 * (G, Cin/G, K..., Cout/G), seen through a view as the same (Cout, Cin/G, K...) tensor. The
 * convolution's kernel then reads a vector of output channels at one address step (the
 * heuristic vectorizes along them, codegen/opt_vector.c), which NCHW's short spatial rows
 * cannot give. One small copy kernel per use, O(weights), unless w is laid out so already
 * (nn_conv_pack_weight: a constant weight packed once). Only where a group has a vector of
 * output channels. realize: the copy is realized here (else it stays lazy). */
static cg_tensor *channels_inner_(cg_tensor *w, int n, int64_t G, bool realize) {
  const int64_t *ws = cg_shape(w);
  int64_t cog = ws[0] / G, wg[3 + MAXSP] = {G, cog, ws[1]};
  if (cog % 8) return w;
  for (int j = 0; j < n; j++) wg[3 + j] = ws[2 + j];
  int to[3 + MAXSP] = {0, 2}, back[3 + MAXSP] = {0, n + 2, 1};
  for (int j = 0; j < n; j++) to[2 + j] = 3 + j, back[3 + j] = 2 + j;
  to[n + 2] = 1;
  /* packed already: a view permuting a buffer back to (G, Cout/G, Cin/G, K...) */
  const uop *u = w->u->op == OP_RESHAPE ? w->u->src[0] : w->u;
  bool packed = u->op == OP_PERMUTE && shape_eq(u->shape, u->ndim, wg, n + 3);
  for (int i = 0; packed && i < n + 3; i++) packed = u->arg.v[i] == back[i];
  if (packed) {
    const uop *b = u->src[0]->op == OP_RESHAPE ? u->src[0]->src[0] : u->src[0];
    if (b->op == OP_BUFFER) return w;
  }
  int64_t keep[2 + MAXSP];
  memcpy(keep, ws, sizeof(int64_t) * (size_t)(n + 2));
  cg_tensor *t = cg_contiguous(cg_permute(cg_reshape(w, wg, n + 3), to, n + 3));
  if (realize && cg_realize(t) != CG_OK) return NULL;
  return cg_reshape(cg_permute(t, back, n + 3), keep, n + 2);
}
static cg_tensor *channels_inner(cg_tensor *w, int n, int64_t G) { return channels_inner_(w, n, G, false); }

cg_status nn_conv_pack_weight(cg_tensor *w, int n, int64_t groups) {
  if (!w) return cg_fail(CG_NULL_INPUT, "conv weight packing: the weight is NULL");
  /* anything a convolution would refuse is left alone for it to refuse */
  if (n < 1 || n > MAXSP || cg_ndim(w) != n + 2 || groups < 1 || cg_shape(w)[0] % groups || w->requires_grad || w->graph) return CG_OK;
  cg_scope_begin();
  cg_tensor *t = channels_inner_(w, n, groups, true);
  cg_status st = t ? CG_OK : cg_last_status();
  if (t && t != w) tensor_realized(w, t->u); /* w now views the packed buffer */
  cg_scope_end();
  return st;
}

cg_status nn_weight_relayout(cg_tensor *w, const int *perm) {
  if (!w || !perm) return cg_fail(CG_NULL_INPUT, "weight relayout: the %s is NULL", w ? "permutation" : "weight");
  int nd = cg_ndim(w), inv[CG_MAX_DIMS];
  bool seen[CG_MAX_DIMS] = {0}, id = true;
  for (int i = 0; i < nd; i++) {
    if (perm[i] < 0 || perm[i] >= nd || seen[perm[i]]) return cg_fail(CG_ERR_INVALID, "weight relayout: not a permutation of %d dims", nd);
    seen[perm[i]] = true, inv[perm[i]] = i, id = id && perm[i] == i;
  }
  if (id || w->requires_grad || w->graph) return CG_OK;
  const uop *u = w->u; /* done already: a permuted view of a buffer */
  bool done = u->op == OP_PERMUTE && (u->src[0]->op == OP_BUFFER || (u->src[0]->op == OP_RESHAPE && u->src[0]->src[0]->op == OP_BUFFER));
  for (int i = 0; done && i < nd; i++) done = u->arg.v[i] == inv[i];
  if (done) return CG_OK;
  cg_scope_begin();
  cg_tensor *t = cg_contiguous(cg_permute(w, perm, nd));
  cg_status st = t ? cg_realize(t) : cg_last_status();
  cg_tensor *v = st == CG_OK ? cg_permute(t, inv, nd) : NULL;
  if (v) tensor_realized(w, v->u);
  else if (st == CG_OK) st = cg_last_status();
  cg_scope_end();
  return st;
}

/* The same for an output gradient (N, C, O...): channels innermost, (N, O..., C) in
 * memory; the weight gradient then vectorizes along C. */
static cg_tensor *channels_last(cg_tensor *g, int n) {
  int to[2 + MAXSP] = {0}, back[2 + MAXSP] = {0, n + 1};
  for (int j = 0; j < n; j++) to[1 + j] = 2 + j, back[2 + j] = 1 + j;
  to[n + 1] = 1;
  return cg_permute(cg_contiguous(cg_permute(g, to, n + 2)), back, n + 2);
}

/* The windows of a strided op seen from its input: a (lead..., O...) per-window tensor a
 * of an op over an input of spatial size in (kernel k, stride s, dilation d, padding pb
 * before) becomes (lead..., in..., K...), where [.., i, .., t] is a's value for the window
 * whose tap k-1-t sits on input position i (0 where no window puts a tap there). Summing
 * over K gives each input position the sum over the windows it lies in. */
static cg_tensor *windows_at_input(cg_tensor *a, int n, const int64_t *in, const int64_t *k, const int64_t *s, const int64_t *d,
                                   const int64_t *pb) {
  int lead = cg_ndim(a) - n;
  int64_t before[MAXSP] = {0}, after[MAXSP] = {0}, one[MAXSP] = {1, 1, 1};
  for (int j = 0; j < n; j++) {
    int64_t o = cg_shape(a)[lead + j];
    before[j] = d[j] * (k[j] - 1) - pb[j];
    after[j] = in[j] + pb[j] - (o - 1) * s[j] - 1;
  }
  cg_tensor *t = pad_spatial(dilate_spatial(a, n, s), n, before, after, 0);
  int64_t shp[CG_MAX_DIMS];
  memcpy(shp, cg_shape(a), sizeof(int64_t) * (size_t)lead);
  for (int j = 0; j < n; j++) shp[lead + j] = in[j], shp[lead + n + j] = k[j];
  return cg_reshape(pool_windows(t, n, k, one, d), shp, lead + 2 * n);
}

/* t's node as a gradient of dtype dt, handed to the caller's pool (it outlives the scope
 * that built t). */
static uop *grad_out(cg_tensor *t, dtype dt) {
  if (!t) return NULL;
  return uop_pool_keep(uop_retain(cast_to(t->u, dt)));
}

static cg_tensor *finish(cg_tensor *r) {
  r = cg_keep(r);
  cg_scope_end();
  return r;
}

static cg_tensor *conv_nd(const char *who, int n, cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *pb,
                          const int64_t *pa, const int64_t *dil, int64_t groups);

/* The gradients of a convolution's reduction node (N, G, Cout/G, 1, O..., 1...) (or
 * (N, G, Cout/G, 1, Oflat, 1) for 3d): d[0] for x (N, Cin, I...), d[1] for w. */
static void conv_grad(const composite *c, uop *g, uop **d) {
  int n = (int)c->p[0];
  int64_t G = c->p[1], s[MAXSP], pb[MAXSP], pa[MAXSP], dil[MAXSP], k[MAXSP], in[MAXSP], o[MAXSP], one[MAXSP] = {1, 1, 1};
  int64_t tb[MAXSP], ta[MAXSP];
  cg_scope_begin();
  cg_tensor *x = tensor_new(c->in[0]), *w = tensor_new(c->in[1]), *gt = tensor_new(g);
  const int64_t *xs = cg_shape(x), *ws = cg_shape(w);
  int64_t N = xs[0], cin = xs[1], cout = ws[0], cg = cin / G, cog = cout / G;
  for (int j = 0; j < n; j++) {
    s[j] = c->p[2 + 4 * j], pb[j] = c->p[3 + 4 * j], pa[j] = c->p[4 + 4 * j], dil[j] = c->p[5 + 4 * j];
    k[j] = ws[2 + j], in[j] = xs[2 + j];
    o[j] = (in[j] + pb[j] + pa[j] - dil[j] * (k[j] - 1) - 1) / s[j] + 1;
    tb[j] = dil[j] * (k[j] - 1) - pb[j], ta[j] = in[j] + pb[j] - (o[j] - 1) * s[j] - 1;
  }
  int64_t gs[2 + MAXSP] = {N, cout};
  for (int j = 0; j < n; j++) gs[2 + j] = o[j];
  /* both gradients read each element of g once per tap and channel: a producer fused
   * into them (a ReLU mask, BatchNorm's backward) would be recomputed that many times */
  /* channels innermost where the weight gradient vectorizes along them (enough outputs:
   * codegen/opt_vector.c); else NCHW, whose rows its reduction reads as vectors. Where
   * the forward took Winograd rows (whose shapes take rows for the input gradient too),
   * NCHW as well: their input transforms read rows along W
   * (the input gradient's from channels-last was a transposing read, 2x slower), and the
   * gradient's own pass is then no transposing copy (conv2 of the CNN, one thread: 9.7 + 9.4
   * ms for the copy and the input gradient's transform, 2.4 + 4.8 now; the weight
   * gradient's transform, which now transposes, 2.2 -> 4.3) */
  bool rows = wino_wanted(cg_dtype_of(x), n, xs, ws, s, dil, pb, pa, G) == WINO_ROWS;
  bool clast = !rows && cog % 8 == 0 && cout * cg * prod(k, n) >= 4096;
  cg_tensor *gy = clast ? channels_last(cg_reshape(gt, gs, n + 2), n) : cg_contiguous(cg_reshape(gt, gs, n + 2));
  /* input: the stride-dilated, padded gradient convolved with the flipped, transposed
   * weights (stride 1, the same dilation) */
  cg_tensor *dx = conv_nd("conv backward", n, dilate_spatial(gy, n, s), transpose_weight(w, n, G), NULL, one, tb, ta, dil, G);
  /* weight: windows of x times the gradient, summed over the batch and the outputs; or
   * Winograd along H where the forward took the rows path (functional_wino.c) */
  cg_tensor *win = NULL, *dw;
  if (rows) {
    dw = wino_rows_weight_grad(x, gy, ws, pb, pa);
    goto done;
  }
  win = pool_windows(pad_spatial(x, n, pb, pa, 0), n, k, s, dil);
  /* vectorized along the output channels, every tile of the weight gradient streams the
   * whole batch: in chunks of images whose x and gradient fit in L2 (1 MB) the tiles of
   * one chunk reuse it; a partial per chunk, then their sum (a second, small reduction) */
  int64_t chunk = 0, per_image = 4 * (cin * prod(in, n) + cout * prod(o, n));
  for (int64_t c2 = N / 2; clast && G == 1 && 4 + 2 * n <= CG_MAX_DIMS && c2 >= 1 && !chunk; c2--)
    if (N % c2 == 0 && c2 * per_image <= (1 << 20)) chunk = c2;
  if (chunk) {
    int64_t sx[CG_MAX_DIMS] = {N / chunk, chunk, 1, cg}, sg[CG_MAX_DIMS] = {N / chunk, chunk, cout, 1};
    int axes[1 + MAXSP] = {1};
    for (int j = 0; j < n; j++) {
      sx[4 + j] = sg[4 + j] = o[j], sx[4 + n + j] = k[j], sg[4 + n + j] = 1;
      axes[1 + j] = 4 + j;
    }
    cg_tensor *part = cg_sum(cg_mul(cg_reshape(win, sx, 4 + 2 * n), cg_reshape(gy, sg, 4 + 2 * n)), axes, 1 + n, false);
    dw = cg_sum(cg_contiguous(part), (int[]){0}, 1, false);
  } else if (4 + 2 * n <= CG_MAX_DIMS) {
    int64_t sx[CG_MAX_DIMS] = {N, G, 1, cg}, sg[CG_MAX_DIMS] = {N, G, cog, 1};
    int axes[1 + MAXSP] = {0};
    for (int j = 0; j < n; j++) {
      sx[4 + j] = sg[4 + j] = o[j], sx[4 + n + j] = k[j], sg[4 + n + j] = 1;
      axes[1 + j] = 4 + j;
    }
    dw = cg_sum(cg_mul(cg_reshape(win, sx, 4 + 2 * n), cg_reshape(gy, sg, 4 + 2 * n)), axes, 1 + n, false);
  } else {
    int64_t s6[6] = {N, G, 1, cg, prod(o, n), prod(k, n)}, g6[6] = {N, G, cog, 1, prod(o, n), 1};
    int axes[2] = {0, 4};
    dw = cg_sum(cg_mul(cg_reshape(win, s6, 6), cg_reshape(gy, g6, 6)), axes, 2, false);
  }
done:
  dw = cg_reshape(dw, ws, n + 2);
  d[0] = grad_out(dx, c->in[0]->dt), d[1] = grad_out(dw, c->in[1]->dt);
  if (c->nin == 3) { /* the bias: the sum of the gradient realized above, one read of it */
    int axes[1 + MAXSP] = {0};
    for (int j = 0; j < n; j++) axes[1 + j] = 2 + j;
    d[2] = grad_out(cg_sum(gy, axes, 1 + n, false), c->in[2]->dt);
  }
  cg_scope_end();
}

/* The general convolution; pads are per side and may be negative. who names the public
 * op in messages. Checks everything. */
static cg_tensor *conv_nd(const char *who, int n, cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride,
                          const int64_t *pb, const int64_t *pa, const int64_t *dil, int64_t groups) {
  if (!x || !w) return cg_fail_null(CG_NULL_INPUT, "%s: %s is NULL", who, x ? "weight" : "input");
  int xd = cg_ndim(x), wd = cg_ndim(w);
  const int64_t *xs = cg_shape(x), *ws = cg_shape(w);
  if (xd != n + 2 && xd != n + 1)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected an input of %d dims (N, C, spatial...) or %d (C, spatial...), got shape %s", who, n + 2,
                        n + 1, shape_str(xs, xd));
  if (wd != n + 2)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected a weight of %d dims (Cout, Cin/groups, kernel...), got shape %s", who, n + 2,
                        shape_str(ws, wd));
  if (groups < 1) return cg_fail_null(CG_ERR_INVALID, "%s: groups must be >= 1, got %lld", who, (long long)groups);
  int64_t cin = xs[xd - n - 1], cout = ws[0];
  if (ws[1] * groups != cin)
    return cg_fail_null(CG_ERR_INVALID, "%s: input %s has %lld channels but weight %s with groups=%lld expects %lld", who, shape_str(xs, xd),
                        (long long)cin, shape_str(ws, wd), (long long)groups, (long long)(ws[1] * groups));
  if (cout % groups)
    return cg_fail_null(CG_ERR_INVALID, "%s: weight %s has %lld output channels, not divisible by groups=%lld", who, shape_str(ws, wd),
                        (long long)cout, (long long)groups);
  if (b && (cg_ndim(b) != 1 || cg_shape(b)[0] != cout))
    return cg_fail_null(CG_ERR_INVALID, "%s: expected a bias of shape (%lld,), got %s", who, (long long)cout, shape_str(cg_shape(b), cg_ndim(b)));
  int64_t k[MAXSP], o[MAXSP], padded[MAXSP], span[MAXSP];
  for (int j = 0; j < n; j++) {
    if (stride[j] < 1 || dil[j] < 1)
      return cg_fail_null(CG_ERR_INVALID, "%s: stride and dilation must be >= 1, got stride %s and dilation %s", who, tup(stride, n), tup(dil, n));
    k[j] = ws[2 + j];
    padded[j] = xs[xd - n + j] + pb[j] + pa[j];
    span[j] = dil[j] * (k[j] - 1) + 1;
  }
  for (int j = 0; j < n; j++)
    if (k[j] < 1 || span[j] > padded[j])
      return cg_fail_null(CG_ERR_INVALID, "%s: kernel %s with dilation %s spans %s, larger than the padded input %s (input %s)", who, tup(k, n),
                          tup(dil, n), tup(span, n), tup(padded, n), shape_str(xs, xd));
  for (int j = 0; j < n; j++) o[j] = (padded[j] - span[j]) / stride[j] + 1;

  cg_scope_begin();
  bool unbatched = xd == n + 1;
  if (unbatched) x = cg_unsqueeze(x, 0);
  int64_t N = cg_shape(x)[0], G = groups, cg = cin / G, cog = cout / G, K = prod(k, n), O = prod(o, n);
  cg_tensor *y, *win = NULL;
  int64_t xs4[2 + MAXSP];
  memcpy(xs4, cg_shape(x), sizeof(int64_t) * (size_t)(n + 2));
  int wino = wino_wanted(cg_dtype_of(x), n, xs4, ws, stride, dil, pb, pa, G);
  if (wino != WINO_NONE) {
    y = wino == WINO_ROWS ? wino_conv2d_rows(x, w, pb, pa) : wino_conv2d(x, w, pb, pa); /* functional_wino.c */
    goto record;
  }
  win = pool_windows(pad_spatial(x, n, pb, pa, 0), n, k, stride, dil);
  /* windows (N, G, 1, cg, O..., K...) times weights (1, G, cog, cg, 1..., K...), summed
   * over cg and K...; spatial dims stay separate when they fit in CG_MAX_DIMS, so the
   * kernel's index math is affine (no div/mod of flattened windows) */
  if (4 + 2 * n <= CG_MAX_DIMS) {
    int64_t sx[CG_MAX_DIMS] = {N, G, 1, cg}, sw[CG_MAX_DIMS] = {1, G, cog, cg};
    int axes[1 + MAXSP] = {3};
    for (int j = 0; j < n; j++) {
      sx[4 + j] = o[j], sx[4 + n + j] = k[j];
      sw[4 + j] = 1, sw[4 + n + j] = k[j];
      axes[1 + j] = 4 + n + j;
    }
    y = cg_mul(cg_reshape(win, sx, 4 + 2 * n), cg_reshape(channels_inner(w, n, G), sw, 4 + 2 * n));
    y = cg_sum(y, axes, 1 + n, false);
  } else {
    int64_t s6[6] = {N, G, 1, cg, O, K}, w6[6] = {1, G, cog, cg, 1, K};
    y = cg_mul(cg_reshape(win, s6, 6), cg_reshape(channels_inner(w, n, G), w6, 6));
    int axes[2] = {3, 5};
    y = cg_sum(y, axes, 2, false);
  }
record:
  if (y) {
    int64_t p[2 + 4 * MAXSP] = {n, G};
    for (int j = 0; j < n; j++) p[2 + 4 * j] = stride[j], p[3 + 4 * j] = pb[j], p[4 + 4 * j] = pa[j], p[5 + 4 * j] = dil[j];
    uop *in[2] = {x->u, w->u}, *r = y->u;
    while (r->op == OP_RESHAPE) r = r->src[0]; /* the reduction (see composite.h) */
    composite_record(r, in, 2, conv_grad, p, 2 + 4 * n);
  }
  int64_t os[2 + MAXSP] = {N, cout};
  for (int j = 0; j < n; j++) os[2 + j] = o[j];
  y = cg_reshape(y, os, n + 2);
  if (b) {
    int64_t bs[2 + MAXSP] = {1, cout, 1, 1, 1};
    y = cg_add(y, cg_reshape(b, bs, n + 2));
    /* with the bias inside the composite its gradient reads the output gradient that
     * conv_grad realizes; through the add's own rule it summed the lazy gradient, which
     * fused and recomputed whatever produced it (a ReLU mask, BatchNorm's backward: the
     * CNN's bias gradients read 2-8 buffers instead of 1) */
    if (y && y->u->op == OP_ADD) {
      int64_t p[2 + 4 * MAXSP] = {n, G};
      for (int j = 0; j < n; j++) p[2 + 4 * j] = stride[j], p[3 + 4 * j] = pb[j], p[4 + 4 * j] = pa[j], p[5 + 4 * j] = dil[j];
      uop *in[3] = {x->u, w->u, b->u};
      composite_record(y->u, in, 3, conv_grad, p, 2 + 4 * n);
    }
  }
  if (unbatched) y = cg_squeeze(y, 0);
  return finish(y);
}

static void defaults(int n, const int64_t *in, int64_t dflt, int64_t *out) {
  for (int j = 0; j < n; j++) out[j] = in ? in[j] : dflt;
}

static cg_tensor *conv_public(const char *who, int n, cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                              const int64_t *dilation, int64_t groups) {
  int64_t s[MAXSP], p[MAXSP], d[MAXSP];
  defaults(n, stride, 1, s), defaults(n, padding, 0, p), defaults(n, dilation, 1, d);
  for (int j = 0; j < n; j++)
    if (p[j] < 0) return cg_fail_null(CG_ERR_INVALID, "%s: padding must be >= 0, got %s", who, tup(p, n));
  return conv_nd(who, n, x, w, b, s, p, p, d, groups);
}

cg_tensor *cg_conv1d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding, const int64_t *dilation, int64_t groups) {
  return conv_public("conv1d", 1, x, w, b, stride, padding, dilation, groups);
}
cg_tensor *cg_conv2d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding, const int64_t *dilation, int64_t groups) {
  return conv_public("conv2d", 2, x, w, b, stride, padding, dilation, groups);
}
cg_tensor *cg_conv3d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding, const int64_t *dilation, int64_t groups) {
  return conv_public("conv3d", 3, x, w, b, stride, padding, dilation, groups);
}

/* ---- transposed convolution ------------------------------------------------------------ */

static cg_tensor *conv_transpose_nd(const char *who, int n, cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride_,
                                    const int64_t *padding_, const int64_t *outpad_, const int64_t *dilation_, int64_t groups) {
  if (!x || !w) return cg_fail_null(CG_NULL_INPUT, "%s: %s is NULL", who, x ? "weight" : "input");
  int64_t s[MAXSP], p[MAXSP], op[MAXSP], d[MAXSP];
  defaults(n, stride_, 1, s), defaults(n, padding_, 0, p), defaults(n, outpad_, 0, op), defaults(n, dilation_, 1, d);
  int xd = cg_ndim(x), wd = cg_ndim(w);
  const int64_t *xs = cg_shape(x), *ws = cg_shape(w);
  if (xd != n + 2 && xd != n + 1)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected an input of %d dims (N, C, spatial...) or %d (C, spatial...), got shape %s", who, n + 2,
                        n + 1, shape_str(xs, xd));
  if (wd != n + 2)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected a weight of %d dims (Cin, Cout/groups, kernel...), got shape %s", who, n + 2,
                        shape_str(ws, wd));
  if (groups < 1) return cg_fail_null(CG_ERR_INVALID, "%s: groups must be >= 1, got %lld", who, (long long)groups);
  int64_t cin = xs[xd - n - 1];
  if (ws[0] != cin || cin % groups)
    return cg_fail_null(CG_ERR_INVALID, "%s: input %s has %lld channels but weight %s with groups=%lld expects %lld (a multiple of groups)", who,
                        shape_str(xs, xd), (long long)cin, shape_str(ws, wd), (long long)groups, (long long)ws[0]);
  int64_t pb[MAXSP], pa[MAXSP];
  for (int j = 0; j < n; j++) {
    if (s[j] < 1 || d[j] < 1 || p[j] < 0 || op[j] < 0)
      return cg_fail_null(CG_ERR_INVALID, "%s: expected stride, dilation >= 1 and padding, output_padding >= 0, got stride %s dilation %s padding %s output_padding %s",
                          who, tup(s, n), tup(d, n), tup(p, n), tup(op, n));
    if (op[j] >= s[j] && op[j] >= d[j])
      return cg_fail_null(CG_ERR_INVALID, "%s: output_padding %s must be smaller than stride %s or dilation %s", who, tup(op, n), tup(s, n), tup(d, n));
    int64_t k = ws[2 + j], i = xs[xd - n + j];
    int64_t out = (i - 1) * s[j] - 2 * p[j] + d[j] * (k - 1) + op[j] + 1;
    if (out < 1 || i < 1 || k < 1)
      return cg_fail_null(CG_ERR_INVALID, "%s: input %s with weight %s, stride %s, padding %s, dilation %s gives an empty output", who, shape_str(xs, xd),
                          shape_str(ws, wd), tup(s, n), tup(p, n), tup(d, n));
    pb[j] = d[j] * (k - 1) - p[j];
    pa[j] = d[j] * (k - 1) - p[j] + op[j];
  }
  cg_scope_begin();
  /* dilate x by the stride; weight (Cin, Cout/G, K...) -> flipped (Cout, Cin/G, K...) */
  x = dilate_spatial(x, n, s);
  cg_tensor *wt = transpose_weight(w, n, groups);
  int64_t one[MAXSP] = {1, 1, 1};
  cg_tensor *y = conv_nd(who, n, x, wt, b, one, pb, pa, d, groups);
  return finish(y);
}

cg_tensor *cg_conv_transpose1d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                               const int64_t *output_padding, const int64_t *dilation, int64_t groups) {
  return conv_transpose_nd("conv_transpose1d", 1, x, w, b, stride, padding, output_padding, dilation, groups);
}
cg_tensor *cg_conv_transpose2d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                               const int64_t *output_padding, const int64_t *dilation, int64_t groups) {
  return conv_transpose_nd("conv_transpose2d", 2, x, w, b, stride, padding, output_padding, dilation, groups);
}
cg_tensor *cg_conv_transpose3d(cg_tensor *x, cg_tensor *w, cg_tensor *b, const int64_t *stride, const int64_t *padding,
                               const int64_t *output_padding, const int64_t *dilation, int64_t groups) {
  return conv_transpose_nd("conv_transpose3d", 3, x, w, b, stride, padding, output_padding, dilation, groups);
}

/* ---- pooling ------------------------------------------------------------------------------ */

/* The lowest value of dt, so that padding never wins a max. */
static double lowest(cg_dtype dt) {
  switch (dt) {
  case CG_BOOL: case CG_UINT8: case CG_UINT16: case CG_UINT32: case CG_UINT64: return 0;
  case CG_INT8: return -128;
  case CG_INT16: return -32768;
  case CG_INT32: return -2147483648.0;
  case CG_INT64: return -9223372036854775808.0;
  default: return -INFINITY;
  }
}

/* The gradient of a pool's reduction node (B, O..., 1...) (max, or the sum of avg) for
 * its input x (lead..., I...): each input position sums, over the windows it lies in, the
 * window's gradient (avg), or that of the windows whose first max (row-major) it is (max,
 * as torch.nn.functional.max_pool2d: ties in a window, common after ReLU and BatchNorm,
 * give everything to the first). */
/* Windows that do not overlap (k <= s in every dim): an input position lies in at most one
 * window, (i+p)/s, as its tap (i+p)%s when that is < k. A per-window tensor t (B, O...)
 * is then spread to the positions by movement ops alone, no reduction: t at every tap of
 * its window (B, O1, k1, O2, k2, ...), keep(t) where given (B, O1, k1, ...: a mask over
 * the taps), the taps padded to the stride, rows joined and the padding cut off. */
static cg_tensor *spread_disjoint(cg_tensor *t, cg_tensor *keep_if, int n, const int64_t *k, const int64_t *s, const int64_t *p,
                                  const int64_t *in) {
  int64_t B = cg_shape(t)[0], o[MAXSP], s1[1 + 2 * MAXSP] = {B}, e[1 + 2 * MAXSP] = {B}, pads[2 * (1 + 2 * MAXSP)] = {0};
  int64_t flat[1 + MAXSP] = {B}, before[MAXSP], after[MAXSP];
  for (int j = 0; j < n; j++) {
    o[j] = cg_shape(t)[1 + j];
    s1[1 + 2 * j] = e[1 + 2 * j] = o[j], s1[2 + 2 * j] = 1, e[2 + 2 * j] = k[j];
    pads[2 * (2 + 2 * j) + 1] = s[j] - k[j];
    flat[1 + j] = o[j] * s[j];
    before[j] = -p[j], after[j] = in[j] + p[j] - o[j] * s[j];
  }
  t = cg_expand(cg_reshape(t, s1, 1 + 2 * n), e, 1 + 2 * n);
  if (keep_if) t = cg_where(keep_if, t, cg_zeros(cg_dtype_of(t), NULL, 0));
  t = cg_reshape(cg_pad(t, pads, 0), flat, 1 + n);
  return pad_spatial(t, n, before, after, 0);
}

static void pool_grad(const composite *c, uop *g, uop **d) {
  int n = (int)c->p[0];
  bool is_max = c->p[1] != 0;
  int64_t k[MAXSP] = {0}, s[MAXSP] = {0}, p[MAXSP] = {0}, in[MAXSP] = {0}, one[MAXSP] = {1, 1, 1};
  cg_scope_begin();
  cg_tensor *x = tensor_new(c->in[0]), *a = tensor_new(g);
  int xd = cg_ndim(x), lead = xd - n;
  int64_t B = prod(cg_shape(x), lead), ao[1 + MAXSP] = {B};
  int axes[MAXSP];
  for (int j = 0; j < n; j++) {
    k[j] = c->p[2 + 3 * j], s[j] = c->p[3 + 3 * j], p[j] = c->p[4 + 3 * j];
    in[j] = cg_shape(x)[lead + j];
    ao[1 + j] = (in[j] + 2 * p[j] - k[j]) / s[j] + 1;
    axes[j] = 1 + n + j;
  }
  bool disjoint = true;
  for (int j = 0; j < n; j++) disjoint = disjoint && k[j] <= s[j];
  if (disjoint) {
    cg_tensor *a2 = cg_reshape(a, ao, 1 + n), *keep_if = NULL;
    if (is_max) { /* the window's first max (row-major), as below, compared at each tap */
      int64_t K = prod(k, n), ks[1 + 2 * MAXSP] = {1}, kt[1 + 2 * MAXSP] = {1};
      for (int j = 0; j < n; j++) ks[1 + j] = 1, ks[1 + n + j] = k[j], kt[1 + 2 * j] = 1, kt[2 + 2 * j] = k[j];
      cg_tensor *win = pool_windows(pad_spatial(x, n, p, p, lowest(cg_dtype_of(x))), n, k, s, one);
      /* int32 taps: a max of integers is one instruction (float MAX has NaN's rule to keep) */
      cg_tensor *rev = cg_arange((double)K - 1, -1, -1, CG_INT32);
      cg_tensor *first = cg_max(cg_where(cg_eq(win, tensor_new(c->out)), cg_reshape(rev, ks, 1 + 2 * n), cg_scalar(-1)), axes, n, false);
      int64_t fe[1 + 2 * MAXSP] = {B};
      for (int j = 0; j < n; j++) fe[1 + 2 * j] = ao[1 + j], fe[2 + 2 * j] = 1;
      keep_if = cg_eq(cg_reshape(first, fe, 1 + 2 * n), cg_reshape(rev, kt, 1 + 2 * n));
    }
    cg_tensor *dx = cg_reshape(spread_disjoint(a2, keep_if, n, k, s, p, in), cg_shape(x), xd);
    d[0] = grad_out(dx, c->in[0]->dt);
    cg_scope_end();
    return;
  }
  /* read once per tap: realized, in a's own shape (a convolution's input gradient fused
   * into the copy keeps its channel dim for its vectors) */
  int64_t full[CG_MAX_DIMS];
  memcpy(full, cg_shape(x), sizeof(int64_t) * (size_t)lead);
  for (int j = 0; j < n; j++) full[lead + j] = ao[1 + j];
  cg_tensor *aw = windows_at_input(cg_reshape(cg_contiguous(cg_reshape(a, full, xd)), ao, 1 + n), n, in, k, s, one, p);
  if (is_max) {
    /* per window, K-1 minus the first tap (row-major) holding its max: the max of
     * K-1-t over the taps t that hold it. Seen from an input position, tap t' of
     * windows_at_input is the window's tap K-1-t' (flattened), so the position is that
     * window's first max where the value equals t'. */
    int64_t K = prod(k, n), ks[1 + 2 * MAXSP] = {1};
    for (int j = 0; j < n; j++) ks[1 + j] = 1, ks[1 + n + j] = k[j];
    cg_tensor *win = pool_windows(pad_spatial(x, n, p, p, lowest(cg_dtype_of(x))), n, k, s, one);
    cg_tensor *rev = cg_reshape(cg_arange((double)K - 1, -1, -1, CG_INT32), ks, 1 + 2 * n);
    cg_tensor *first = cg_max(cg_where(cg_eq(win, tensor_new(c->out)), rev, cg_scalar(-1)), axes, n, true);
    cg_tensor *fw = windows_at_input(cg_contiguous(cg_reshape(first, ao, 1 + n)), n, in, k, s, one, p);
    cg_tensor *tap = cg_reshape(cg_arange(0, (double)K, 1, CG_INT32), ks, 1 + 2 * n);
    aw = cg_where(cg_eq(fw, tap), aw, cg_zeros(cg_dtype_of(a), NULL, 0));
  }
  cg_tensor *dx = cg_reshape(cg_sum(aw, axes, n, false), cg_shape(x), xd);
  d[0] = grad_out(dx, c->in[0]->dt);
  cg_scope_end();
}

static cg_tensor *pool_nd(const char *who, int n, bool is_max, cg_tensor *x, const int64_t *kernel, const int64_t *stride_, const int64_t *padding_) {
  if (!x) return cg_fail_null(CG_NULL_INPUT, "%s: input is NULL", who);
  if (!kernel) return cg_fail_null(CG_NULL_INPUT, "%s: kernel size is NULL", who);
  int xd = cg_ndim(x);
  const int64_t *xs = cg_shape(x);
  if (xd != n + 1 && xd != n + 2)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected an input of %d dims (N, C, spatial...) or %d (C, spatial...), got shape %s", who, n + 2,
                        n + 1, shape_str(xs, xd));
  int64_t k[MAXSP], s[MAXSP], p[MAXSP], one[MAXSP] = {1, 1, 1}, padded[MAXSP], o[MAXSP];
  defaults(n, kernel, 1, k), defaults(n, stride_ ? stride_ : kernel, 1, s), defaults(n, padding_, 0, p);
  for (int j = 0; j < n; j++) {
    if (k[j] < 1 || s[j] < 1 || p[j] < 0)
      return cg_fail_null(CG_ERR_INVALID, "%s: expected kernel, stride >= 1 and padding >= 0, got kernel %s stride %s padding %s", who, tup(k, n),
                          tup(s, n), tup(p, n));
    if (2 * p[j] > k[j])
      return cg_fail_null(CG_ERR_INVALID, "%s: padding %s must be at most half of kernel %s", who, tup(p, n), tup(k, n));
    padded[j] = xs[xd - n + j] + 2 * p[j];
  }
  for (int j = 0; j < n; j++)
    if (k[j] > padded[j])
      return cg_fail_null(CG_ERR_INVALID, "%s: kernel %s is larger than the padded input %s (input %s, padding %s)", who, tup(k, n), tup(padded, n),
                          shape_str(xs, xd), tup(p, n));
  for (int j = 0; j < n; j++) o[j] = (padded[j] - k[j]) / s[j] + 1;
  cg_scope_begin();
  cg_tensor *win = pool_windows(pad_spatial(x, n, p, p, is_max ? lowest(cg_dtype_of(x)) : 0), n, k, s, one);
  int axes[MAXSP];
  for (int j = 0; j < n; j++) axes[j] = 1 + n + j;
  cg_tensor *y = is_max ? cg_max(win, axes, n, false) : cg_sum(win, axes, n, false);
  if (y && dt_is_float(x->u->dt)) {
    int64_t prm[2 + 3 * MAXSP] = {n, is_max};
    for (int j = 0; j < n; j++) prm[2 + 3 * j] = k[j], prm[3 + 3 * j] = s[j], prm[4 + 3 * j] = p[j];
    uop *r = y->u;
    while (r->op == OP_RESHAPE) r = r->src[0]; /* the reduction (see composite.h) */
    composite_record(r, &x->u, 1, pool_grad, prm, 2 + 3 * n);
  }
  if (!is_max) y = cg_div(y, cg_scalar((double)prod(k, n)));
  int64_t os[CG_MAX_DIMS];
  memcpy(os, xs, sizeof(int64_t) * (size_t)(xd - n));
  for (int j = 0; j < n; j++) os[xd - n + j] = o[j];
  return finish(cg_reshape(y, os, xd));
}

cg_tensor *cg_max_pool2d(cg_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding) {
  return pool_nd("max_pool2d", 2, true, x, kernel, stride, padding);
}
cg_tensor *cg_avg_pool2d(cg_tensor *x, const int64_t *kernel, const int64_t *stride, const int64_t *padding) {
  return pool_nd("avg_pool2d", 2, false, x, kernel, stride, padding);
}

/* For the ONNX importer's pools (any rank, asymmetric pads, dilation, ceil_mode). */
cg_tensor *nn_pool_windows(cg_tensor *x, int n, const int64_t *k, const int64_t *s, const int64_t *d) {
  return n >= 1 && n <= MAXSP ? pool_windows(x, n, k, s, d) : cg_fail_null(CG_ERR_INVALID, "pool: %d spatial dims (1 to %d)", n, MAXSP);
}
