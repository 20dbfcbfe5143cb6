/* Ops whose output shape depends on input values (Unique, NonMaxSuppression) or that are
 * small host algorithms (Det): the inputs are realized and read, the result is built on
 * the host. ReverseSequence reads its lengths and gathers. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The values of input i as float64 (malloc'd), its element count in *n. */
static double *host_f64(onnx_ctx *c, int i, int64_t *n) {
  cg_tensor *t = onnx_in(c, i);
  if (!t) return NULL;
  onnx_host_read(c, i);
  *n = cg_numel(t);
  double *v = cg_malloc(sizeof(double) * (size_t)(*n + 1));
  cg_tensor *d = cg_cast(t, CG_FLOAT64);
  if (v && (!d || cg_realize(d) != CG_OK || cg_read(d, CG_FLOAT64, v, sizeof(double) * (size_t)*n) != CG_OK)) {
    free(v);
    onnx_fail(c, "input %d could not be computed: %s", i, cg_last_error());
    return NULL;
  }
  return v;
}

/* ---- Unique ----------------------------------------------------------------------------- */

typedef struct {
  const double *v;
  int64_t len, idx;
} slice_key;

static int cmp_slices(const void *a, const void *b) {
  const slice_key *x = a, *y = b;
  for (int64_t k = 0; k < x->len; k++) {
    double p = x->v[k], q = y->v[k];
    if (p < q) return -1;
    if (p > q) return 1;
  }
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static cg_status op_Unique(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  const Onnx__AttributeProto *a = onnx_attr(c, "axis");
  bool sorted = onnx_attr_i(c, "sorted", 1);
  int nd = cg_ndim(x), ax = 0;
  cg_tensor *src = x;
  if (a) {
    if ((ax = onnx_axis(c, a->i, nd)) < 0) return cg_last_status();
    src = cg_contiguous(cg_transpose(x, 0, ax)); /* slices along ax become rows */
  } else {
    int64_t n = cg_numel(x);
    src = cg_reshape(x, &n, 1);
  }
  int64_t rows = cg_ndim(src) ? cg_shape(src)[0] : 1, n;
  int64_t len = rows ? cg_numel(src) / rows : 0;
  onnx_ctx c2 = *c;
  cg_tensor *in1[1] = {src};
  c2.in = in1, c2.nin = 1;
  double *v = host_f64(&c2, 0, &n);
  if (!v) return cg_last_status();
  slice_key *keys = cg_malloc(sizeof *keys * (size_t)(rows + 1));
  int64_t *first = cg_malloc(sizeof(int64_t) * (size_t)(rows + 1)), *inv = cg_malloc(sizeof(int64_t) * (size_t)(rows + 1));
  int64_t *cnt = cg_calloc((size_t)rows + 1, sizeof(int64_t)), *grp = cg_malloc(sizeof(int64_t) * (size_t)(rows + 1));
  cg_status st = keys && first && inv && cnt && grp ? CG_OK : CG_ERR_NOMEM;
  int64_t nu = 0;
  if (st == CG_OK) {
    for (int64_t r = 0; r < rows; r++) keys[r] = (slice_key){v + r * len, len, r};
    qsort(keys, (size_t)rows, sizeof *keys, cmp_slices);
    /* groups of equal slices in sorted order; each group's first index is its smallest */
    for (int64_t r = 0; r < rows; r++) {
      if (r == 0 || cmp_slices(&(slice_key){keys[r].v, len, 0}, &(slice_key){keys[r - 1].v, len, 0})) first[nu++] = keys[r].idx;
      grp[keys[r].idx] = nu - 1;
      cnt[nu - 1]++;
    }
    if (!sorted) { /* order the groups by first occurrence */
      int64_t *order = cg_malloc(sizeof(int64_t) * (size_t)(nu + 1)), *rank = cg_malloc(sizeof(int64_t) * (size_t)(nu + 1));
      int64_t *f2 = cg_malloc(sizeof(int64_t) * (size_t)(nu + 1)), *c2v = cg_malloc(sizeof(int64_t) * (size_t)(nu + 1));
      if (order && rank && f2 && c2v) {
        int64_t k = 0;
        for (int64_t r = 0; r < rows; r++)
          if (first[grp[r]] == r) order[k++] = grp[r];
        for (int64_t g = 0; g < nu; g++) rank[order[g]] = g, f2[g] = first[order[g]], c2v[g] = cnt[order[g]];
        for (int64_t r = 0; r < rows; r++) grp[r] = rank[grp[r]];
        memcpy(first, f2, sizeof(int64_t) * (size_t)nu);
        memcpy(cnt, c2v, sizeof(int64_t) * (size_t)nu);
      } else st = CG_ERR_NOMEM;
      free(order), free(rank), free(f2), free(c2v);
    }
    for (int64_t r = 0; r < rows; r++) inv[r] = grp[r];
  }
  if (st == CG_OK) {
    cg_tensor *y = cg_index_select(src, 0, onnx_i64(first, nu, 1));
    if (a) y = cg_transpose(y, 0, ax);
    st = onnx_set(c, 0, y);
    if (st == CG_OK && c->nout > 1) st = onnx_set(c, 1, onnx_i64(first, nu, 1));
    if (st == CG_OK && c->nout > 2) st = onnx_set(c, 2, onnx_i64(inv, rows, 1));
    if (st == CG_OK && c->nout > 3) st = onnx_set(c, 3, onnx_i64(cnt, nu, 1));
  }
  free(v), free(keys), free(first), free(inv), free(cnt), free(grp);
  return st;
}

/* ---- NonMaxSuppression -------------------------------------------------------------------- */

typedef struct {
  double s;
  int64_t i;
} scored;
static int by_score(const void *a, const void *b) {
  const scored *x = a, *y = b;
  return x->s > y->s ? -1 : x->s < y->s ? 1 : (x->i > y->i) - (x->i < y->i);
}

static void corners(const double *b, bool center, double *y1, double *x1, double *y2, double *x2) {
  if (center) { /* x_center, y_center, width, height */
    *x1 = b[0] - b[2] / 2, *x2 = b[0] + b[2] / 2, *y1 = b[1] - b[3] / 2, *y2 = b[1] + b[3] / 2;
  } else {
    *y1 = fmin(b[0], b[2]), *y2 = fmax(b[0], b[2]), *x1 = fmin(b[1], b[3]), *x2 = fmax(b[1], b[3]);
  }
}
static double iou(const double *a, const double *b, bool center) {
  double ay1, ax1, ay2, ax2, by1, bx1, by2, bx2;
  corners(a, center, &ay1, &ax1, &ay2, &ax2);
  corners(b, center, &by1, &bx1, &by2, &bx2);
  double ih = fmax(0, fmin(ay2, by2) - fmax(ay1, by1)), iw = fmax(0, fmin(ax2, bx2) - fmax(ax1, bx1));
  double inter = ih * iw, uni = (ay2 - ay1) * (ax2 - ax1) + (by2 - by1) * (bx2 - bx1) - inter;
  return uni > 0 ? inter / uni : 0;
}

static cg_status op_NonMaxSuppression(onnx_ctx *c) {
  cg_tensor *bt = onnx_in(c, 0), *st_ = onnx_in(c, 1);
  if (!bt || !st_) return cg_last_status();
  if (cg_ndim(bt) != 3 || cg_ndim(st_) != 3 || cg_shape(bt)[2] != 4 || cg_shape(bt)[0] != cg_shape(st_)[0] ||
      cg_shape(bt)[1] != cg_shape(st_)[2])
    return onnx_fail(c, "boxes (B, N, 4) and scores (B, C, N) do not match");
  int64_t B = cg_shape(bt)[0], N = cg_shape(bt)[1], C = cg_shape(st_)[1], nb, ns;
  int64_t maxout = 0;
  double iou_th = 0, score_th = -INFINITY;
  if (c->nin > 2 && c->in[2] && onnx_in_ints(c, 2, &maxout, 1) < 0) return cg_last_status();
  if (c->nin > 3 && c->in[3] && onnx_in_doubles(c, 3, &iou_th, 1) < 0) return cg_last_status();
  if (c->nin > 4 && c->in[4] && onnx_in_doubles(c, 4, &score_th, 1) < 0) return cg_last_status();
  bool center = onnx_attr_i(c, "center_point_box", 0);
  double *boxes = host_f64(c, 0, &nb), *scores = boxes ? host_f64(c, 1, &ns) : NULL;
  scored *cand = cg_malloc(sizeof *cand * (size_t)(N + 1));
  int64_t *sel = cg_malloc(sizeof(int64_t) * (size_t)(3 * B * C * N + 3)), nsel = 0;
  int64_t *kept = cg_malloc(sizeof(int64_t) * (size_t)(N + 1));
  cg_status st = boxes && scores && cand && sel && kept ? CG_OK : (cg_last_status() ? cg_last_status() : CG_ERR_NOMEM);
  for (int64_t b = 0; st == CG_OK && b < B; b++)
    for (int64_t k = 0; k < C; k++) {
      int64_t nc = 0, nk = 0;
      for (int64_t i = 0; i < N; i++) {
        double s = scores[(b * C + k) * N + i];
        if (s > score_th) cand[nc++] = (scored){s, i};
      }
      qsort(cand, (size_t)nc, sizeof *cand, by_score);
      for (int64_t j = 0; j < nc && nk < maxout; j++) {
        bool keep = true;
        for (int64_t q = 0; q < nk && keep; q++)
          keep = iou(boxes + (b * N + cand[j].i) * 4, boxes + (b * N + kept[q]) * 4, center) <= iou_th;
        if (!keep) continue;
        kept[nk++] = cand[j].i;
        sel[3 * nsel] = b, sel[3 * nsel + 1] = k, sel[3 * nsel + 2] = cand[j].i, nsel++;
      }
    }
  if (st == CG_OK) {
    int64_t shape[2] = {nsel, 3};
    st = onnx_set(c, 0, cg_from_data(sel, CG_INT64, shape, 2));
  }
  free(boxes), free(scores), free(cand), free(sel), free(kept);
  return st;
}

/* ---- Det: LU with partial pivoting, per matrix, in float64 ----------------------------------- */

static cg_status op_Det(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  if (nd < 2 || cg_shape(x)[nd - 1] != cg_shape(x)[nd - 2]) return onnx_fail(c, "input must be (..., n, n)");
  int64_t n = cg_shape(x)[nd - 1], cnt, mats = n ? cg_numel(x) / (n * n) : 0;
  double *v = host_f64(c, 0, &cnt), *out = cg_malloc(sizeof(double) * (size_t)(mats + 1));
  if (!v || !out) {
    free(v), free(out);
    return cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
  }
  for (int64_t m = 0; m < mats; m++) {
    double *a = v + m * n * n, det = 1;
    for (int64_t k = 0; k < n; k++) {
      int64_t p = k;
      for (int64_t i = k + 1; i < n; i++)
        if (fabs(a[i * n + k]) > fabs(a[p * n + k])) p = i;
      if (a[p * n + k] == 0) {
        det = 0;
        break;
      }
      if (p != k) {
        for (int64_t j = 0; j < n; j++) {
          double t = a[k * n + j];
          a[k * n + j] = a[p * n + j], a[p * n + j] = t;
        }
        det = -det;
      }
      det *= a[k * n + k];
      for (int64_t i = k + 1; i < n; i++) {
        double f = a[i * n + k] / a[k * n + k];
        for (int64_t j = k; j < n; j++) a[i * n + j] -= f * a[k * n + j];
      }
    }
    out[m] = det;
  }
  cg_tensor *r = cg_cast(cg_from_data(out, CG_FLOAT64, cg_shape(x), nd - 2), cg_dtype_of(x));
  free(v), free(out);
  return onnx_set(c, 0, r);
}

/* ---- ReverseSequence ------------------------------------------------------------------------ */

static cg_status op_ReverseSequence(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  int ta = onnx_axis(c, onnx_attr_i(c, "time_axis", 0), nd), ba = onnx_axis(c, onnx_attr_i(c, "batch_axis", 1), nd);
  if (ta < 0 || ba < 0 || ta == ba) return cg_last_status() ? cg_last_status() : onnx_fail(c, "time_axis equals batch_axis");
  int64_t T = cg_shape(x)[ta], B = cg_shape(x)[ba], lens[4096];
  if (B > 4096 || T * B > (1 << 24)) return onnx_fail(c, "batch too large");
  int n = onnx_in_ints(c, 1, lens, 4096);
  if (n < 0) return cg_last_status();
  if (n != B) return onnx_fail(c, "sequence_lens has %d entries for batch %lld", n, (long long)B);
  int64_t *idx = cg_malloc(sizeof(int64_t) * (size_t)(T * B + 1));
  if (!idx) return CG_ERR_NOMEM;
  /* idx laid out with the time and batch axes in their order in x */
  for (int64_t t = 0; t < T; t++)
    for (int64_t b = 0; b < B; b++) {
      int64_t l = lens[b] < 0 ? 0 : lens[b] > T ? T : lens[b];
      int64_t src = t < l ? l - 1 - t : t;
      idx[ta < ba ? t * B + b : b * T + t] = src;
    }
  int64_t s[CG_MAX_DIMS];
  for (int d = 0; d < nd; d++) s[d] = d == ta ? T : d == ba ? B : 1;
  int64_t two[2] = {ta < ba ? T : B, ta < ba ? B : T};
  cg_tensor *it = cg_reshape(cg_from_data(idx, CG_INT64, two, 2), s, nd);
  free(idx);
  return onnx_set(c, 0, cg_gather(x, ta, cg_expand(it, cg_shape(x), nd)));
}

/* ---- MaxUnpool: the pooled values back at their Indices, zeros elsewhere ---------------------- */

static cg_status op_MaxUnpool(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *ind = onnx_in(c, 1);
  if (!x || !ind) return cg_last_status();
  int nd = cg_ndim(x), ns = nd - 2;
  int64_t k[3], s[3] = {1, 1, 1}, p[6] = {0}, shape[CG_MAX_DIMS], want[CG_MAX_DIMS];
  if (ns < 1 || ns > 3 || onnx_attr_ints(c, "kernel_shape", k, 3) != ns) return onnx_fail(c, "kernel_shape must have %d entries", ns);
  if (onnx_attr_ints(c, "strides", s, 3) < -1 || onnx_attr_ints(c, "pads", p, 6) < -1) return cg_last_status();
  /* Indices address the inferred shape; an output_shape pads it at the end (ONNX's reference) */
  shape[0] = cg_shape(x)[0], shape[1] = cg_shape(x)[1];
  for (int i = 0; i < ns; i++) shape[2 + i] = (cg_shape(x)[2 + i] - 1) * s[i] - (p[i] + p[i + ns]) + k[i];
  bool given = c->nin > 2 && c->in[2];
  if (given && onnx_in_ints(c, 2, want, CG_MAX_DIMS) != nd)
    return cg_last_status() ? cg_last_status() : onnx_fail(c, "output_shape needs %d entries", nd);
  for (int d = 0; given && d < nd; d++)
    if (want[d] < shape[d]) return onnx_fail(c, "output_shape is smaller than the unpooled shape on dim %d", d);
  int64_t total = 1;
  for (int d = 0; d < nd; d++) {
    if (shape[d] < 0 || shape[d] > (1 << 24)) return onnx_fail(c, "output dim %lld", (long long)shape[d]);
    total *= shape[d];
  }
  if (total > (1 << 26)) return onnx_fail(c, "output of %lld elements", (long long)total);
  int64_t n, *pos = onnx_read_indices(c, 1, &n);
  if (!pos) return cg_last_status();
  cg_status st = n == cg_numel(x) ? CG_OK : onnx_fail(c, "I and X differ in size");
  for (int64_t j = 0; st == CG_OK && j < n; j++)
    if (pos[j] < 0 || pos[j] >= total) st = onnx_fail(c, "index %lld outside the output (%lld elements)", (long long)pos[j], (long long)total);
  if (st == CG_OK) st = onnx_scatter_flat(c, cg_zeros(cg_dtype_of(x), shape, nd), x, pos, n, "none");
  free(pos);
  if (st == CG_OK && given) {
    int64_t pads[2 * CG_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) pads[2 * d + 1] = want[d] - shape[d];
    st = onnx_set(c, 0, cg_pad(c->out[0], pads, 0));
  }
  return st;
}


/* ---- GridSample (PyTorch's grid_sample): taps and weights from the grid on the host, the
 * samples gathered lazily from X ------------------------------------------------------------- */

static double gs_reflect(double x, double twice_lo, double twice_hi) {
  if (twice_lo == twice_hi) return 0;
  double mn = twice_lo / 2, span = (twice_hi - twice_lo) / 2;
  x = fabs(x - mn);
  double extra = fmod(x, span);
  bool even = fmod(floor(x / span), 2.0) == 0; /* not through int64: x / span may be 1e300 */
  return even ? extra + mn : span - extra + mn;
}

/* padding applied to a coordinate (border, reflection); zeros leaves it */
static double gs_pad(double x, int64_t size, int pad, bool ac) {
  if (pad == 1) return fmin(fmax(x, 0), (double)(size - 1));
  if (pad == 2) {
    x = ac ? gs_reflect(x, 0, 2.0 * (double)(size - 1)) : gs_reflect(x, -1, 2.0 * (double)size - 1);
    return fmin(fmax(x, 0), (double)(size - 1));
  }
  return x;
}

static void gs_cubic(double t, double *w) {
  const double A = -0.75;
  double x1 = t + 1, x2 = 1 - t, x3 = 2 - t;
  w[0] = ((A * x1 - 5 * A) * x1 + 8 * A) * x1 - 4 * A;
  w[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
  w[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
  w[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;
}

static cg_status op_GridSample(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *grid = onnx_in(c, 1);
  if (!x || !grid) return cg_last_status();
  if (cg_ndim(x) != 4 || cg_ndim(grid) != 4 || cg_shape(grid)[3] != 2 || cg_shape(grid)[0] != cg_shape(x)[0])
    return onnx_fail(c, "X (N, C, H, W) and grid (N, Ho, Wo, 2) do not match");
  char mb[16], pb[16];
  const char *mode = onnx_attr_s(c, "mode", "bilinear", mb, sizeof mb), *padm = onnx_attr_s(c, "padding_mode", "zeros", pb, sizeof pb);
  bool ac = onnx_attr_i(c, "align_corners", 0);
  int pad = !strcmp(padm, "zeros") ? 0 : !strcmp(padm, "border") ? 1 : !strcmp(padm, "reflection") ? 2 : -1;
  int kind = !strcmp(mode, "nearest") ? 0 : !strcmp(mode, "bilinear") ? 1 : !strcmp(mode, "bicubic") ? 2 : -1;
  if (pad < 0 || kind < 0) return onnx_fail(c, "mode '%s' / padding_mode '%s' is not supported", mode, padm);
  int64_t N = cg_shape(x)[0], C = cg_shape(x)[1], H = cg_shape(x)[2], W = cg_shape(x)[3];
  int64_t Ho = cg_shape(grid)[1], Wo = cg_shape(grid)[2], P = Ho * Wo, ng;
  int taps = kind == 0 ? 1 : kind == 1 ? 4 : 16;
  if (N * P * taps > (1 << 26)) return onnx_fail(c, "grid too large");
  double *g = host_f64(c, 1, &ng);
  int64_t *idx = cg_malloc(sizeof(int64_t) * (size_t)(taps * N * P + 1));
  double *w = cg_malloc(sizeof(double) * (size_t)(taps * N * P + 1));
  if (!g || !idx || !w) {
    free(g), free(idx), free(w);
    return cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
  }
  for (int64_t n = 0; n < N; n++)
    for (int64_t p = 0; p < P; p++) {
      double gx = g[(n * P + p) * 2], gy = g[(n * P + p) * 2 + 1];
      double ix = ac ? (gx + 1) / 2 * (double)(W - 1) : ((gx + 1) * (double)W - 1) / 2;
      double iy = ac ? (gy + 1) / 2 * (double)(H - 1) : ((gy + 1) * (double)H - 1) / 2;
      int64_t at = n * P + p;
      if (kind < 2) ix = gs_pad(ix, W, pad, ac), iy = gs_pad(iy, H, pad, ac);
      for (int t = 0; t < taps; t++) idx[t * N * P + at] = 0, w[t * N * P + at] = 0;
      if (kind == 0) {
        double rx = nearbyint(ix), ry = nearbyint(iy);
        if (rx >= 0 && rx < (double)W && ry >= 0 && ry < (double)H) idx[at] = (int64_t)ry * W + (int64_t)rx, w[at] = 1;
        continue;
      }
      double fx = floor(ix), fy = floor(iy), tx = ix - fx, ty = iy - fy, wx[4], wy[4];
      int span = kind == 1 ? 2 : 4, off = kind == 1 ? 0 : -1;
      if (kind == 1) wx[0] = 1 - tx, wx[1] = tx, wy[0] = 1 - ty, wy[1] = ty;
      else gs_cubic(tx, wx), gs_cubic(ty, wy);
      for (int a = 0; a < span; a++)
        for (int b = 0; b < span; b++) {
          double yy = fy + off + a, xx = fx + off + b;
          if (kind == 2 && pad) yy = gs_pad(yy, H, pad, ac), xx = gs_pad(xx, W, pad, ac); /* per tap, as torch */
          int t = a * span + b;
          if (xx >= 0 && xx < (double)W && yy >= 0 && yy < (double)H)
            idx[t * N * P + at] = (int64_t)yy * W + (int64_t)xx, w[t * N * P + at] = wy[a] * wx[b];
        }
    }
  cg_dtype dt = cg_dtype_of(x);
  cg_tensor *xf = cg_reshape(x, (int64_t[]){N, C, H * W}, 3), *r = NULL;
  int64_t np[3] = {N, 1, P}, full[3] = {N, C, P};
  for (int t = 0; t < taps; t++) {
    cg_tensor *it = cg_expand(cg_from_data(idx + t * N * P, CG_INT64, np, 3), full, 3);
    cg_tensor *wt = cg_cast(cg_from_data(w + t * N * P, CG_FLOAT64, np, 3), dt);
    cg_tensor *v = cg_mul(cg_gather(xf, 2, it), wt);
    r = r ? cg_add(r, v) : v;
  }
  free(g), free(idx), free(w);
  return onnx_set(c, 0, cg_reshape(r, (int64_t[]){N, C, Ho, Wo}, 4));
}

/* ---- RoiAlign (as onnxruntime): per output bin, a grid of bilinear samples averaged ------ */

static cg_status op_RoiAlign(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *rt = onnx_in(c, 1), *bt = onnx_in(c, 2);
  if (!x || !rt || !bt) return cg_last_status();
  if (cg_ndim(x) != 4 || cg_ndim(rt) != 2 || cg_shape(rt)[1] != 4 || cg_numel(bt) != cg_shape(rt)[0])
    return onnx_fail(c, "X (N, C, H, W), rois (R, 4) and batch_indices (R,) do not match");
  char mb[8], cb[24];
  bool is_max = !strcmp(onnx_attr_s(c, "mode", "avg", mb, sizeof mb), "max");
  bool half = !strcmp(onnx_attr_s(c, "coordinate_transformation_mode", "half_pixel", cb, sizeof cb), "half_pixel");
  if (is_max) return onnx_fail(c, "mode max is not supported");
  int64_t oh = onnx_attr_i(c, "output_height", 1), ow = onnx_attr_i(c, "output_width", 1), sr = onnx_attr_i(c, "sampling_ratio", 0);
  double scale = onnx_attr_f(c, "spatial_scale", 1.0);
  int64_t N = cg_shape(x)[0], C = cg_shape(x)[1], H = cg_shape(x)[2], W = cg_shape(x)[3], R = cg_shape(rt)[0], nr, nb;
  if (oh < 1 || ow < 1 || oh * ow > (1 << 16) || sr < 0 || sr > 64) return onnx_fail(c, "bad output size or sampling_ratio");
  double *rois = host_f64(c, 1, &nr), *bis = rois ? host_f64(c, 2, &nb) : NULL;
  if (!rois || !bis) {
    free(rois), free(bis);
    return cg_last_status();
  }
  /* taps per bin: 4 per sample, grid up to ceil(roi/bin) per side */
  int64_t gmax = 1;
  for (int64_t r = 0; r < R; r++) {
    double rh = (rois[r * 4 + 3] - rois[r * 4 + 1]) * scale, rw = (rois[r * 4 + 2] - rois[r * 4]) * scale;
    if (!half) rh = rh > 1 ? rh : 1, rw = rw > 1 ? rw : 1;
    double ch = ceil(rh / (double)oh), cw = ceil(rw / (double)ow); /* hostile rois: clamp before converting */
    int64_t gh = sr ? sr : !(ch < 64) ? 64 : ch < 1 ? 1 : (int64_t)ch, gw = sr ? sr : !(cw < 64) ? 64 : cw < 1 ? 1 : (int64_t)cw;
    if (gh > gmax) gmax = gh;
    if (gw > gmax) gmax = gw;
  }
  if (gmax > 64) gmax = 64;
  int64_t T = 4 * gmax * gmax, P = oh * ow, total = R * P * T;
  if (total > (1 << 26)) {
    free(rois), free(bis);
    return onnx_fail(c, "too many samples");
  }
  int64_t *idx = cg_calloc((size_t)total + 1, sizeof(int64_t));
  double *w = cg_calloc((size_t)total + 1, sizeof(double));
  cg_status st = idx && w ? CG_OK : CG_ERR_NOMEM;
  for (int64_t r = 0; r < R && st == CG_OK; r++) {
    int64_t b = (int64_t)bis[r];
    if (b < 0 || b >= N) {
      st = onnx_fail(c, "batch index %lld out of range", (long long)b);
      break;
    }
    double off = half ? 0.5 : 0, sw = rois[r * 4] * scale - off, sh = rois[r * 4 + 1] * scale - off;
    double rw = rois[r * 4 + 2] * scale - off - sw, rh = rois[r * 4 + 3] * scale - off - sh;
    if (!half) rw = rw > 1 ? rw : 1, rh = rh > 1 ? rh : 1;
    double bh = rh / (double)oh, bw = rw / (double)ow;
    int64_t gh = sr ? sr : (int64_t)ceil(rh / (double)oh), gw = sr ? sr : (int64_t)ceil(rw / (double)ow);
    if (gh < 1) gh = 1;
    if (gw < 1) gw = 1;
    if (gh > gmax) gh = gmax;
    if (gw > gmax) gw = gmax;
    double cnt = (double)(gh * gw);
    for (int64_t ph = 0; ph < oh; ph++)
      for (int64_t pw = 0; pw < ow; pw++) {
        int64_t base = ((r * P) + ph * ow + pw) * T, t = 0;
        for (int64_t iy = 0; iy < gh; iy++)
          for (int64_t ix = 0; ix < gw; ix++, t += 4) {
            double y = sh + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
            double xx = sw + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
            if (y < -1.0 || y > (double)H || xx < -1.0 || xx > (double)W) continue;
            if (y <= 0) y = 0;
            if (xx <= 0) xx = 0;
            int64_t yl = (int64_t)y, xl = (int64_t)xx, yh, xh;
            if (yl >= H - 1) yh = yl = H - 1, y = (double)yl;
            else yh = yl + 1;
            if (xl >= W - 1) xh = xl = W - 1, xx = (double)xl;
            else xh = xl + 1;
            double ly = y - (double)yl, lx = xx - (double)xl, hy = 1 - ly, hx = 1 - lx;
            int64_t o = b * H * W;
            idx[base + t] = o + yl * W + xl, w[base + t] = hy * hx / cnt;
            idx[base + t + 1] = o + yl * W + xh, w[base + t + 1] = hy * lx / cnt;
            idx[base + t + 2] = o + yh * W + xl, w[base + t + 2] = ly * hx / cnt;
            idx[base + t + 3] = o + yh * W + xh, w[base + t + 3] = ly * lx / cnt;
          }
      }
  }
  cg_tensor *r = NULL;
  if (st == CG_OK) {
    /* X as (C, N*H*W); gather every tap for every channel; weight; sum the taps */
    cg_tensor *xf = cg_reshape(cg_permute(x, (int[]){1, 0, 2, 3}, 4), (int64_t[]){C, N * H * W}, 2);
    int64_t one[2] = {1, total}, full[2] = {C, total};
    cg_tensor *g = cg_gather(xf, 1, cg_expand(cg_from_data(idx, CG_INT64, one, 2), full, 2));
    g = cg_mul(g, cg_cast(cg_from_data(w, CG_FLOAT64, one, 2), cg_dtype_of(x)));
    r = cg_sum(cg_reshape(g, (int64_t[]){C, R, P, T}, 4), (int[]){3}, 1, false);
    r = cg_reshape(cg_permute(r, (int[]){1, 0, 2}, 3), (int64_t[]){R, C, oh, ow}, 4);
  }
  free(rois), free(bis), free(idx), free(w);
  return st == CG_OK ? onnx_set(c, 0, r) : st;
}

/* ---- MelWeightMatrix (ONNX's reference formula) ----------------------------------------------- */

static cg_status op_MelWeightMatrix(onnx_ctx *c) {
  int64_t bins, dft, rate;
  double lo, hi;
  if (onnx_in_ints(c, 0, &bins, 1) != 1 || onnx_in_ints(c, 1, &dft, 1) != 1 || onnx_in_ints(c, 2, &rate, 1) != 1 ||
      onnx_in_doubles(c, 3, &lo, 1) != 1 || onnx_in_doubles(c, 4, &hi, 1) != 1)
    return cg_last_status() ? cg_last_status() : onnx_fail(c, "inputs must be scalars");
  if (bins < 1 || dft < 1 || rate < 1 || bins > 4096 || dft > (1 << 20)) return onnx_fail(c, "bad sizes");
  int d = onnx_dtype((int32_t)onnx_attr_i(c, "output_datatype", 1));
  if (d < 0) return onnx_fail(c, "output_datatype is not supported");
  int64_t nspec = dft / 2 + 1, *f = cg_malloc(sizeof(int64_t) * (size_t)(bins + 2));
  double *out = cg_calloc((size_t)(nspec * bins + 1), sizeof(double));
  if (!f || !out) {
    free(f), free(out);
    return CG_ERR_NOMEM;
  }
  double lm = 2595 * log10(1 + lo / 700), hm = 2595 * log10(1 + hi / 700), step = (hm - lm) / (double)(bins + 2); /* sic: the reference divides by the bin count + 2 */
  for (int64_t i = 0; i < bins + 2; i++) {
    double hz = 700 * (pow(10, ((double)i * step + lm) / 2595) - 1);
    f[i] = (int64_t)floor((double)(dft + 1) * hz / (double)rate);
  }
  cg_status st = CG_OK;
  for (int64_t i = 0; i < bins && st == CG_OK; i++) {
    int64_t l = f[i], m = f[i + 1], h = f[i + 2];
    if (l < 0 || h >= nspec + 1 || m >= nspec) {
      st = onnx_fail(c, "mel bins fall outside the spectrogram");
      break;
    }
    if (m == l) out[m * bins + i] = 1;
    else
      for (int64_t j = l; j <= m; j++) out[j * bins + i] = (double)(j - l) / (double)(m - l);
    if (h > m)
      for (int64_t j = m; j < h && j < nspec; j++) out[j * bins + i] = (double)(h - j) / (double)(h - m);
  }
  int64_t s[2] = {nspec, bins};
  cg_tensor *t = st == CG_OK ? cg_cast(cg_from_data(out, CG_FLOAT64, s, 2), (cg_dtype)d) : NULL;
  free(f), free(out);
  return st == CG_OK ? onnx_set(c, 0, t) : st;
}

const onnx_op onnx_ops_host[] = {{"MaxUnpool", op_MaxUnpool, false},
                                 {"GridSample", op_GridSample, false},
                                 {"RoiAlign", op_RoiAlign, false},
                                 {"MelWeightMatrix", op_MelWeightMatrix, false},
                                 {"Unique", op_Unique, false},
                                 {"NonMaxSuppression", op_NonMaxSuppression, false},
                                 {"Det", op_Det, false},
                                 {"ReverseSequence", op_ReverseSequence, false},
                                 {NULL, NULL, false}};
