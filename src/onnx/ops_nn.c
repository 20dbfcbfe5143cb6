/* Neural-network ops: MatMul, Gemm, convolutions, pooling, normalizations, losses.
 *
 * Pooling pads explicitly and reduces nn's sliding windows rather than calling
 * cg_max_pool2d, because ONNX pools have 1 to 3 spatial dims, asymmetric pads, dilation
 * and ceil_mode. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "onnx/graph.h"
#include "nn/conv_weight.h"
#include "nn/pool_windows.h"
#include <math.h>
#include <string.h>

#define K(v) onnx_const((v), cg_dtype_of(x))

static cg_status op_MatMul(onnx_ctx *c) {
  cg_tensor *a = onnx_in(c, 0), *b = onnx_in(c, 1);
  if (!a || !b) return cg_last_status();
  return onnx_set(c, 0, cg_matmul(a, b));
}

static cg_status op_Gemm(onnx_ctx *c) {
  cg_tensor *a = onnx_in(c, 0), *b = onnx_in(c, 1);
  if (!a || !b) return cg_last_status();
  if (cg_ndim(a) != 2 || cg_ndim(b) != 2) return onnx_fail(c, "A and B must be 2-D");
  double alpha = onnx_attr_f(c, "alpha", 1), beta = onnx_attr_f(c, "beta", 1);
  if (onnx_attr_i(c, "transA", 0)) a = cg_transpose(a, 0, 1);
  if (onnx_attr_i(c, "transB", 0)) b = cg_transpose(b, 0, 1);
  cg_tensor *x = cg_matmul(a, b);
  if (!x) return onnx_set(c, 0, NULL);
  if (alpha != 1) x = cg_mul(x, K(alpha));
  if (c->nin > 2 && c->in[2]) x = cg_add(x, beta != 1 ? cg_mul(c->in[2], K(beta)) : c->in[2]);
  return onnx_set(c, 0, x);
}

/* ---- convolution and pooling geometry ---------------------------------------------------- */

typedef struct {
  int ns;                          /* spatial dims */
  int64_t k[3], s[3], d[3], pb[3], pe[3];
} geom;

/* kernel, strides, dilations, pads (explicit or auto_pad) for an input of spatial size in. */
static cg_status get_geom(onnx_ctx *c, const int64_t *in, int ns, const int64_t *kernel, geom *g) {
  if (ns < 1 || ns > 3) return onnx_fail(c, "%d spatial dims (1 to 3 are supported)", ns);
  g->ns = ns;
  int64_t v[6];
  for (int i = 0; i < ns; i++) g->k[i] = kernel[i], g->s[i] = 1, g->d[i] = 1, g->pb[i] = g->pe[i] = 0;
  int n;
  if ((n = onnx_attr_ints(c, "strides", v, 3)) >= 0) {
    if (n != ns) return onnx_fail(c, "strides has %d entries for %d spatial dims", n, ns);
    memcpy(g->s, v, sizeof(int64_t) * (size_t)ns);
  }
  if ((n = onnx_attr_ints(c, "dilations", v, 3)) >= 0) {
    if (n != ns) return onnx_fail(c, "dilations has %d entries for %d spatial dims", n, ns);
    memcpy(g->d, v, sizeof(int64_t) * (size_t)ns);
  }
  for (int i = 0; i < ns; i++)
    if (g->s[i] < 1 || g->d[i] < 1 || g->k[i] < 1) return onnx_fail(c, "kernel, strides and dilations must be positive");
  char buf[16];
  const char *ap = onnx_attr_s(c, "auto_pad", "NOTSET", buf, sizeof buf);
  if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
    for (int i = 0; i < ns; i++) {
      int64_t out = (in[i] + g->s[i] - 1) / g->s[i];
      int64_t tot = (out - 1) * g->s[i] + (g->k[i] - 1) * g->d[i] + 1 - in[i];
      if (tot < 0) tot = 0;
      g->pb[i] = ap[5] == 'U' ? tot / 2 : tot - tot / 2;
      g->pe[i] = tot - g->pb[i];
    }
  } else if (!strcmp(ap, "NOTSET")) {
    if ((n = onnx_attr_ints(c, "pads", v, 6)) >= 0) {
      if (n != 2 * ns) return onnx_fail(c, "pads has %d entries for %d spatial dims", n, ns);
      for (int i = 0; i < ns; i++) {
        g->pb[i] = v[i], g->pe[i] = v[i + ns];
        if (v[i] < 0 || v[i + ns] < 0) return onnx_fail(c, "negative pads");
      }
    }
  } else if (strcmp(ap, "VALID")) return onnx_fail(c, "auto_pad '%s' is not supported", ap);
  return CG_OK;
}

/* (C,) -> (1, C, 1, ...) for an nd-dim input */
static cg_tensor *per_channel(cg_tensor *v, int nd) {
  int64_t s[CG_MAX_DIMS];
  for (int d = 0; d < nd; d++) s[d] = d == 1 ? cg_numel(v) : 1;
  return cg_reshape(v, s, nd);
}

cg_status onnx_conv(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *w = onnx_in(c, 1), *b = c->nin > 2 ? c->in[2] : NULL;
  if (!x || !w) return cg_last_status();
  int nd = cg_ndim(x), ns = nd - 2;
  if (cg_ndim(w) != nd) return onnx_fail(c, "W has %d dims, X has %d", cg_ndim(w), nd);
  geom g;
  if (get_geom(c, cg_shape(x) + 2, ns, cg_shape(w) + 2, &g) != CG_OK) return cg_last_status();
  int64_t groups = onnx_attr_i(c, "group", 1), pad[3];
  bool sym = true, padded = false;
  int64_t reuse = groups > 0 ? cg_shape(w)[0] / groups : 1; /* reads of each input element */
  for (int i = 0; i < ns; i++) sym = sym && g.pb[i] == g.pe[i], pad[i] = g.pb[i], padded |= g.pb[i] || g.pe[i], reuse *= g.k[i];
  /* a padded input read many times is padded once, in a buffer of its own: read through
   * the pad, every tap of the convolution's inner loop tests (and branches on) whether it
   * fell on the border, which costs it about a third of its speed; the copy costs one read
   * and write of x, as much as a depthwise convolution itself (those keep the pad) */
  bool copy = padded && reuse >= 64;
  if (!sym || copy) {
    int64_t p[2 * CG_MAX_DIMS] = {0};
    for (int i = 0; i < ns; i++) p[2 * (i + 2)] = g.pb[i], p[2 * (i + 2) + 1] = g.pe[i], pad[i] = 0;
    x = cg_pad(x, p, 0);
    if (copy) x = cg_contiguous(x);
  }
  cg_tensor *r = ns == 1 ? cg_conv1d(x, w, b, g.s, pad, g.d, groups)
                 : ns == 2 ? cg_conv2d(x, w, b, g.s, pad, g.d, groups)
                           : cg_conv3d(x, w, b, g.s, pad, g.d, groups);
  return onnx_set(c, 0, r);
}

/* Weights that are initializers of gr are laid out once, as their op reads them, instead
 * of copied (or read across rows) by every run: Conv's with the output channels innermost,
 * Gemm's transposed B as B. At batch 1 a weight costs as much to read as the activations.
 * The values stay the same, so a failure (out of memory) only leaves the per-run cost. */
static cg_tensor *init_of(onnx_graph *gr, int node, int k) {
  if (gr->g->node[node]->n_input <= (size_t)k) return NULL;
  int sl = gr->node_in[node][k];
  for (int j = 0; j < gr->n_init; j++)
    if (gr->init_slot[j] == sl) return gr->init[j];
  return NULL;
}

void onnx_pack_weights(onnx_graph *gr) {
  for (int i = 0; i < gr->n_nodes; i++) {
    onnx_ctx c = {.node = gr->g->node[i], .opset = gr->opset, .idx = i, .graph = gr};
    cg_tensor *w;
    cg_status st = CG_OK;
    if (gr->ops[i]->fn == onnx_conv && (w = init_of(gr, i, 1)))
      st = nn_conv_pack_weight(w, cg_ndim(w) - 2, onnx_attr_i(&c, "group", 1));
    else if (gr->ops[i]->fn == op_Gemm && onnx_attr_i(&c, "transB", 0) && (w = init_of(gr, i, 1)) && cg_ndim(w) == 2)
      st = nn_weight_relayout(w, (const int[]){1, 0});
    if (st != CG_OK) return;
  }
}

static cg_status op_ConvTranspose(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *w = onnx_in(c, 1), *b = c->nin > 2 ? c->in[2] : NULL;
  if (!x || !w) return cg_last_status();
  int nd = cg_ndim(x), ns = nd - 2;
  if (cg_ndim(w) != nd) return onnx_fail(c, "W has %d dims, X has %d", cg_ndim(w), nd);
  const int64_t *in = cg_shape(x) + 2, *ks = cg_shape(w) + 2;
  geom g;
  char buf[16];
  const char *ap = onnx_attr_s(c, "auto_pad", "NOTSET", buf, sizeof buf);
  bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
  if (get_geom(c, in, ns, ks, &g) != CG_OK) return cg_last_status();
  int64_t groups = onnx_attr_i(c, "group", 1), op[3] = {0, 0, 0}, os[3], v[6];
  int n;
  if ((n = onnx_attr_ints(c, "output_padding", v, 3)) >= 0) {
    if (n != ns) return onnx_fail(c, "output_padding has %d entries", n);
    memcpy(op, v, sizeof(int64_t) * (size_t)ns);
  }
  int nos = onnx_attr_ints(c, "output_shape", v, 6);
  if (nos >= ns) memcpy(os, v + (nos - ns), sizeof(int64_t) * (size_t)ns);
  for (int i = 0; i < ns; i++) {
    int64_t full = g.s[i] * (in[i] - 1) + op[i] + (ks[i] - 1) * g.d[i] + 1;
    if (nos >= ns || same) {
      int64_t want = nos >= ns ? os[i] : in[i] * g.s[i];
      int64_t tot = full - want; /* negative: the output grows, as output_padding does */
      bool lower = !strcmp(ap, "SAME_LOWER");
      g.pb[i] = lower ? tot - tot / 2 : tot / 2;
      g.pe[i] = tot - g.pb[i];
    }
  }
  /* the full transposed conv without bias, then output_padding and the pads (crop where
   * positive, zeros where negative), then the bias everywhere */
  int64_t zero[3] = {0, 0, 0}, p[2 * CG_MAX_DIMS] = {0};
  cg_tensor *r = ns == 1 ? cg_conv_transpose1d(x, w, NULL, g.s, zero, zero, g.d, groups)
                 : ns == 2 ? cg_conv_transpose2d(x, w, NULL, g.s, zero, zero, g.d, groups)
                           : cg_conv_transpose3d(x, w, NULL, g.s, zero, zero, g.d, groups);
  if (!r) return onnx_set(c, 0, NULL);
  for (int i = 0; i < ns; i++) {
    int64_t before = -g.pb[i], after = op[i] - g.pe[i], len = cg_shape(r)[i + 2];
    if (len + before + after < 0) return onnx_fail(c, "pads larger than the output");
    p[2 * (i + 2)] = before, p[2 * (i + 2) + 1] = after;
  }
  bool any = false;
  for (int d = 0; d < 2 * nd; d++) any = any || p[d];
  if (any) { /* cg_pad takes non-negative pads: crop first, then pad */
    int64_t box[2 * CG_MAX_DIMS], pp[2 * CG_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
      int64_t b0 = p[2 * d], a0 = p[2 * d + 1];
      box[2 * d] = b0 < 0 ? -b0 : 0;
      box[2 * d + 1] = cg_shape(r)[d] + (a0 < 0 ? a0 : 0);
      pp[2 * d] = b0 > 0 ? b0 : 0, pp[2 * d + 1] = a0 > 0 ? a0 : 0;
    }
    r = cg_pad(cg_shrink(r, box), pp, 0);
  }
  if (b) r = cg_add(r, per_channel(b, nd));
  return onnx_set(c, 0, r);
}

/* Pool x over its spatial dims: max, or sum divided by the count of (padding-included or
 * not) elements. */
static cg_status pool(onnx_ctx *c, bool is_max) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x), ns = nd - 2;
  int64_t ks[6];
  int nk = onnx_attr_ints(c, "kernel_shape", ks, 3);
  if (nk != ns) return onnx_fail(c, "kernel_shape has %d entries for %d spatial dims", nk, ns);
  geom g;
  const int64_t *in = cg_shape(x) + 2;
  if (get_geom(c, in, ns, ks, &g) != CG_OK) return cg_last_status();
  bool ceil_mode = onnx_attr_i(c, "ceil_mode", 0), incl = onnx_attr_i(c, "count_include_pad", 0);
  bool want_idx = is_max && c->nout > 1 && c->node->output[1] && *c->node->output[1];
  int64_t out[3], extra[3];
  for (int i = 0; i < ns; i++) {
    int64_t span = (g.k[i] - 1) * g.d[i] + 1, room = in[i] + g.pb[i] + g.pe[i] - span;
    if (room < 0) return onnx_fail(c, "kernel larger than the padded input");
    out[i] = (ceil_mode ? (room + g.s[i] - 1) / g.s[i] : room / g.s[i]) + 1;
    if (ceil_mode && (out[i] - 1) * g.s[i] >= in[i] + g.pb[i]) out[i]--; /* a window must start inside */
    extra[i] = (out[i] - 1) * g.s[i] + span - (in[i] + g.pb[i] + g.pe[i]);
    if (extra[i] < 0) extra[i] = 0;
  }
  int64_t p[2 * CG_MAX_DIMS] = {0};
  for (int i = 0; i < ns; i++) p[2 * (i + 2)] = g.pb[i], p[2 * (i + 2) + 1] = g.pe[i] + extra[i];
  /* max: padded with zeros, then the padding's taps set to the lowest value in the windows
   * (a mask of constants): padding x with that value directly makes the padded x a
   * computed tensor reached through the windows, which the scheduler realizes as a
   * kernel of its own (a copy of x with a border), where now x is read where it is */
  bool padded = false;
  for (int i = 0; i < 2 * nd; i++) padded |= p[i] != 0;
  cg_tensor *xp = cg_pad(x, p, 0), *mask = NULL, *inside = NULL;
  if (is_max && padded) {
    int64_t ms[CG_MAX_DIMS];
    for (int d = 0; d < nd; d++) ms[d] = d < 2 ? 1 : in[d - 2];
    inside = cg_pad(cg_ones(CG_BOOL, ms, nd), p, 0);
  }
  if (!is_max) { /* counts: 1 for input, incl for pads, 0 for the ceil_mode extra */
    int64_t ms[CG_MAX_DIMS], q[2 * CG_MAX_DIMS] = {0}, q2[2 * CG_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) ms[d] = d < 2 ? 1 : in[d - 2];
    for (int i = 0; i < ns; i++) q[2 * (i + 2)] = g.pb[i], q[2 * (i + 2) + 1] = g.pe[i], q2[2 * (i + 2) + 1] = extra[i];
    mask = cg_pad(cg_pad(cg_ones(cg_dtype_of(x), ms, nd), q, incl ? 1 : 0), q2, 0);
  }
  /* windows (B, O..., K...) reduced over the K dims */
  int red[3], nx = cg_ndim(x);
  for (int i = 0; i < ns; i++) red[i] = 1 + ns + i;
  cg_tensor *w = nn_pool_windows(xp, ns, g.k, g.s, g.d);
  if (inside) w = cg_where(nn_pool_windows(inside, ns, g.k, g.s, g.d), w, onnx_const(onnx_saturate(-INFINITY, cg_dtype_of(x)), cg_dtype_of(x)));
  if (!w) return onnx_set(c, 0, NULL);
  for (int i = 0; i < ns; i++) /* ceil_mode's extra padding may allow one window more */
    if (cg_shape(w)[1 + i] > out[i]) w = cg_slice(w, 1 + i, 0, out[i], 1);
  cg_tensor *acc = is_max ? cg_max(w, red, ns, false) : cg_sum(w, red, ns, false), *cnt = NULL;
  if (!is_max) {
    cg_tensor *mw = nn_pool_windows(mask, ns, g.k, g.s, g.d);
    for (int i = 0; i < ns && mw; i++)
      if (cg_shape(mw)[1 + i] > out[i]) mw = cg_slice(mw, 1 + i, 0, out[i], 1);
    cnt = cg_sum(mw, red, ns, false);
  }
  int64_t os[CG_MAX_DIMS];
  os[0] = cg_shape(x)[0], os[1] = cg_shape(x)[1];
  for (int i = 0; i < ns; i++) os[2 + i] = out[i];
  acc = cg_reshape(acc, os, nx);
  if (cnt) os[0] = os[1] = 1, cnt = cg_reshape(cnt, os, nx);
  if (!is_max) acc = cg_div(acc, cnt);
  if (onnx_set(c, 0, acc) != CG_OK || !want_idx) return cg_last_status() ? cg_last_status() : CG_OK;
  /* Indices: the flat input position of each window's first maximum. A position map
   * (row-major, or column-major for storage_order 1) is windowed like x, and the argmax
   * over each window's flattened taps picks from it. */
  int64_t S = 1, ms[CG_MAX_DIMS], K = 1, flat[CG_MAX_DIMS];
  for (int i = 0; i < ns; i++) S *= in[i], K *= g.k[i];
  bool col = onnx_attr_i(c, "storage_order", 0);
  if (col && ns != 2) return onnx_fail(c, "storage_order 1 needs 2 spatial dims");
  cg_tensor *posm = cg_arange(0, (double)S, 1, CG_FLOAT64);
  for (int d = 0; d < nd; d++) ms[d] = d < 2 ? 1 : in[d - 2];
  if (col) posm = cg_transpose(cg_reshape(posm, (int64_t[]){1, 1, in[1], in[0]}, 4), 2, 3);
  else posm = cg_reshape(posm, ms, nd);
  posm = cg_pad(posm, p, -1);
  cg_tensor *pw = nn_pool_windows(posm, ns, g.k, g.s, g.d);
  for (int i = 0; i < ns && pw; i++)
    if (cg_shape(pw)[1 + i] > out[i]) pw = cg_slice(pw, 1 + i, 0, out[i], 1);
  int64_t B = cg_shape(w)[0];
  flat[0] = B;
  for (int i = 0; i < ns; i++) flat[1 + i] = out[i];
  flat[1 + ns] = K;
  cg_tensor *wf = cg_reshape(w, flat, ns + 2);
  flat[0] = 1;
  cg_tensor *pf = cg_reshape(pw, flat, ns + 2);
  flat[0] = B;
  cg_tensor *am = cg_cast(cg_argmax(wf, ns + 1, true), CG_INT64);
  cg_tensor *pos = cg_squeeze(cg_gather(cg_expand(pf, flat, ns + 2), ns + 1, am), ns + 1);
  int64_t bs[CG_MAX_DIMS] = {B};
  for (int i = 0; i < ns; i++) bs[1 + i] = 1;
  cg_tensor *base = cg_reshape(cg_mul(cg_arange(0, (double)B, 1, CG_FLOAT64), onnx_const((double)S, CG_FLOAT64)), bs, ns + 1);
  return onnx_set(c, 1, cg_reshape(cg_cast(cg_add(pos, base), CG_INT64), os, nx));
}
static cg_status op_MaxPool(onnx_ctx *c) { return pool(c, true); }
static cg_status op_AveragePool(onnx_ctx *c) { return pool(c, false); }

static int spatial_axes(int nd, int *ax) {
  for (int d = 2; d < nd; d++) ax[d - 2] = d;
  return nd - 2;
}
static cg_status op_GlobalAveragePool(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  int ax[CG_MAX_DIMS];
  if (!x) return cg_last_status();
  return onnx_set(c, 0, cg_mean(x, ax, spatial_axes(cg_ndim(x), ax), true));
}
static cg_status op_GlobalMaxPool(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  int ax[CG_MAX_DIMS];
  if (!x) return cg_last_status();
  return onnx_set(c, 0, cg_max(x, ax, spatial_axes(cg_ndim(x), ax), true));
}


static cg_status op_BatchNormalization(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *sc = onnx_in(c, 1), *b = onnx_in(c, 2), *mean = onnx_in(c, 3), *var = onnx_in(c, 4);
  if (!x || !sc || !b || !mean || !var) return cg_last_status();
  int nd = cg_ndim(x);
  if (nd < 2) return onnx_fail(c, "X must have at least 2 dims");
  double eps = onnx_attr_f(c, "epsilon", 1e-5), mom = onnx_attr_f(c, "momentum", 0.9);
  bool training = c->opset >= 14 && onnx_attr_i(c, "training_mode", 0);
  if (training) {
    int ax[CG_MAX_DIMS], n = 0;
    for (int d = 0; d < nd; d++)
      if (d != 1) ax[n++] = d;
    cg_tensor *bm = cg_mean(x, ax, n, false), *bv = cg_var(x, ax, n, 0, false);
    cg_tensor *y = cg_add(cg_mul(cg_div(cg_sub(x, per_channel(bm, nd)), cg_sqrt(cg_add(per_channel(bv, nd), K(eps)))), per_channel(sc, nd)),
                          per_channel(b, nd));
    if (onnx_set(c, 0, y) != CG_OK) return cg_last_status();
    if (c->nout > 1) onnx_set(c, 1, cg_add(cg_mul(mean, K(mom)), cg_mul(bm, K(1 - mom))));
    if (c->nout > 2) onnx_set(c, 2, cg_add(cg_mul(var, K(mom)), cg_mul(bv, K(1 - mom))));
    return cg_last_status() == CG_OK ? CG_OK : cg_last_status();
  }
  cg_tensor *mul = cg_mul(sc, cg_rsqrt(cg_add(var, K(eps))));
  cg_tensor *add = cg_sub(b, cg_mul(mean, mul));
  return onnx_set(c, 0, cg_add(cg_mul(x, per_channel(mul, nd)), per_channel(add, nd)));
}

static cg_status op_InstanceNormalization(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *sc = onnx_in(c, 1), *b = onnx_in(c, 2);
  if (!x || !sc || !b) return cg_last_status();
  int nd = cg_ndim(x), ax[CG_MAX_DIMS], n = spatial_axes(nd, ax);
  double eps = onnx_attr_f(c, "epsilon", 1e-5);
  cg_tensor *m = cg_mean(x, ax, n, true), *v = cg_var(x, ax, n, 0, true);
  cg_tensor *y = cg_mul(cg_sub(x, m), cg_rsqrt(cg_add(v, K(eps))));
  return onnx_set(c, 0, cg_add(cg_mul(y, per_channel(sc, nd)), per_channel(b, nd)));
}

static cg_status op_LayerNormalization(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *sc = onnx_in(c, 1), *b = c->nin > 2 ? c->in[2] : NULL;
  if (!x || !sc) return cg_last_status();
  int nd = cg_ndim(x), a = onnx_axis(c, onnx_attr_i(c, "axis", -1), nd), ax[CG_MAX_DIMS], n = 0;
  if (a < 0) return cg_last_status();
  double eps = onnx_attr_f(c, "epsilon", 1e-5);
  int64_t stash = onnx_attr_i(c, "stash_type", 1);
  cg_dtype dt = cg_dtype_of(x), st = stash == 1 ? CG_FLOAT32 : dt;
  for (int d = a; d < nd; d++) ax[n++] = d;
  cg_tensor *xs = cg_cast(x, st);
  cg_tensor *m = cg_mean(xs, ax, n, true), *v = cg_var(xs, ax, n, 0, true);
  cg_tensor *inv = cg_rsqrt(cg_add(v, onnx_const(eps, st)));
  cg_tensor *y = cg_cast(cg_mul(cg_sub(xs, m), inv), dt);
  y = cg_mul(y, sc);
  if (b) y = cg_add(y, b);
  if (onnx_set(c, 0, y) != CG_OK) return cg_last_status();
  if (c->nout > 1 && onnx_set(c, 1, m) != CG_OK) return cg_last_status();
  if (c->nout > 2 && onnx_set(c, 2, inv) != CG_OK) return cg_last_status();
  return CG_OK;
}

static cg_status op_LpNormalization(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int a = onnx_axis(c, onnx_attr_i(c, "axis", -1), cg_ndim(x));
  if (a < 0) return cg_last_status();
  int64_t p = onnx_attr_i(c, "p", 2);
  cg_tensor *nrm = p == 1 ? cg_sum(cg_abs(x), &a, 1, true) : cg_sqrt(cg_sum(cg_mul(x, x), &a, 1, true));
  return onnx_set(c, 0, cg_div(x, nrm));
}

static cg_status op_MeanVarianceNormalization(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int64_t a64[CG_MAX_DIMS] = {0, 2, 3};
  int n = onnx_attr_ints(c, "axes", a64, CG_MAX_DIMS), ax[CG_MAX_DIMS];
  if (n < -1) return cg_last_status();
  if (n < 0) n = 3;
  for (int i = 0; i < n; i++)
    if ((ax[i] = onnx_axis(c, a64[i], cg_ndim(x))) < 0) return cg_last_status();
  cg_tensor *m = cg_mean(x, ax, n, true);
  cg_tensor *v = cg_sub(cg_mean(cg_mul(x, x), ax, n, true), cg_mul(m, m));
  return onnx_set(c, 0, cg_div(cg_sub(x, m), cg_add(cg_sqrt(v), K(1e-9))));
}

static cg_status op_LRN(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  double alpha = onnx_attr_f(c, "alpha", 1e-4), beta = onnx_attr_f(c, "beta", 0.75), bias = onnx_attr_f(c, "bias", 1);
  int64_t size = onnx_attr_i(c, "size", 0), C = cg_shape(x)[1];
  if (size < 1 || nd < 2) return onnx_fail(c, "size must be positive");
  int64_t lo = (size - 1) / 2, hi = size - 1 - lo, p[2 * CG_MAX_DIMS] = {0};
  p[2] = lo, p[3] = hi;
  cg_tensor *sq = cg_pad(cg_mul(x, x), p, 0), *s = NULL;
  for (int64_t i = 0; i < size; i++) {
    cg_tensor *v = cg_slice(sq, 1, i, i + C, 1);
    s = s ? cg_add(s, v) : v;
  }
  cg_tensor *den = cg_pow(cg_add(K(bias), cg_mul(s, K(alpha / (double)size))), K(beta));
  return onnx_set(c, 0, cg_div(x, den));
}

static cg_status op_Dropout(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int64_t train = 0;
  if (c->nin > 2 && c->in[2] && onnx_in_ints(c, 2, &train, 1) != 1) return cg_last_status();
  double ratio = 0;
  if (c->nin > 1 && c->in[1] && onnx_in_doubles(c, 1, &ratio, 1) != 1) return cg_last_status();
  if (train && ratio > 0) return onnx_fail(c, "training mode (random dropout) is not supported");
  if (onnx_set(c, 0, cg_reshape(x, cg_shape(x), cg_ndim(x))) != CG_OK) return cg_last_status();
  if (c->nout > 1) return onnx_set(c, 1, cg_ones(CG_BOOL, cg_shape(x), cg_ndim(x)));
  return CG_OK;
}

/* NLL loss of log-probabilities lp (N, C, d...) at targets (N, d...). */
static cg_tensor *nll(onnx_ctx *c, cg_tensor *lp, cg_tensor *t, cg_tensor *w, const char *red, bool has_ii, int64_t ii) {
  int nd = cg_ndim(lp);
  int64_t C = cg_shape(lp)[1], s[CG_MAX_DIMS];
  for (int d = 0; d < nd; d++) s[d] = d == 1 ? C : 1;
  cg_tensor *t64 = cg_unsqueeze(cg_cast(t, CG_INT64), 1);
  cg_tensor *hot = cg_eq(t64, cg_reshape(cg_arange(0, (double)C, 1, CG_INT64), s, nd));
  cg_dtype dt = cg_dtype_of(lp);
  cg_tensor *picked = cg_sum(cg_where(hot, lp, onnx_const(0, dt)), (int[]){1}, 1, false);
  cg_tensor *wt = w ? cg_sum(cg_where(hot, cg_reshape(w, s, nd), onnx_const(0, dt)), (int[]){1}, 1, false)
                    : cg_ones(dt, cg_shape(picked), cg_ndim(picked));
  if (has_ii) wt = cg_where(cg_eq(cg_cast(t, CG_INT64), onnx_const((double)ii, CG_INT64)), onnx_const(0, dt), wt);
  cg_tensor *loss = cg_neg(cg_mul(picked, wt));
  if (!strcmp(red, "none")) return loss;
  if (!strcmp(red, "sum")) return cg_sum(loss, NULL, 0, false);
  if (!strcmp(red, "mean")) return cg_div(cg_sum(loss, NULL, 0, false), cg_sum(wt, NULL, 0, false));
  onnx_fail(c, "reduction '%s' is not supported (none, sum, mean)", red);
  return NULL;
}

static cg_status op_NegativeLogLikelihoodLoss(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *t = onnx_in(c, 1), *w = c->nin > 2 ? c->in[2] : NULL;
  if (!x || !t) return cg_last_status();
  char buf[16];
  const char *red = onnx_attr_s(c, "reduction", "mean", buf, sizeof buf);
  const Onnx__AttributeProto *ii = onnx_attr(c, "ignore_index");
  if (cg_ndim(x) < 2 || cg_ndim(t) != cg_ndim(x) - 1) return onnx_fail(c, "input (N, C, ...) and target (N, ...) do not match");
  return onnx_set(c, 0, nll(c, x, t, w, red, ii != NULL, ii ? ii->i : 0));
}

static cg_status op_SoftmaxCrossEntropyLoss(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *t = onnx_in(c, 1), *w = c->nin > 2 ? c->in[2] : NULL;
  if (!x || !t) return cg_last_status();
  char buf[16];
  const char *red = onnx_attr_s(c, "reduction", "mean", buf, sizeof buf);
  const Onnx__AttributeProto *ii = onnx_attr(c, "ignore_index");
  if (cg_ndim(x) < 2 || cg_ndim(t) != cg_ndim(x) - 1) return onnx_fail(c, "scores (N, C, ...) and labels (N, ...) do not match");
  cg_tensor *lp = cg_log_softmax(x, 1);
  if (onnx_set(c, 0, nll(c, lp, t, w, red, ii != NULL, ii ? ii->i : 0)) != CG_OK) return cg_last_status();
  if (c->nout > 1) return onnx_set(c, 1, lp);
  return CG_OK;
}

const onnx_op onnx_ops_nn[] = {
#define E(n) {#n, op_##n, false},
    E(MatMul) E(Gemm) {"Conv", onnx_conv, false}, E(ConvTranspose) E(MaxPool) E(AveragePool) E(GlobalAveragePool) E(GlobalMaxPool)
    E(BatchNormalization) E(InstanceNormalization) E(LayerNormalization) E(LpNormalization)
    E(MeanVarianceNormalization) E(LRN) E(Dropout) E(NegativeLogLikelihoodLoss) E(SoftmaxCrossEntropyLoss)
#undef E
    {NULL, NULL, false}};

const onnx_op *onnx_find_op(const char *domain, const char *op_type) {
  if (domain && !strcmp(domain, ONNX_TRAINING_DOMAIN)) {
    for (const onnx_op *o = onnx_ops_train; o->name; o++)
      if (!strcmp(o->name, op_type)) return o;
    return NULL;
  }
  if (domain && *domain && strcmp(domain, "ai.onnx")) return NULL;
  const onnx_op *tables[] = {onnx_ops_elementwise, onnx_ops_reduce, onnx_ops_shape, onnx_ops_nn, onnx_ops_resize, onnx_ops_quant, onnx_ops_rnn, onnx_ops_host, onnx_ops_signal, onnx_ops_control, onnx_ops_seq};
  for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
    for (const onnx_op *o = tables[t]; o->name; o++)
      if (!strcmp(o->name, op_type)) return o;
  return NULL;
}
