/* Resize (and the older Upsample), one axis at a time: for every output index the source
 * coordinate, taps and weights are computed on the host (as ONNX's reference does:
 * coordinate transform, nearest rounding, linear or cubic coefficients, edge clamping),
 * then the axis becomes sum_t w_t * index_select(x, axis, idx_t). */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  char mode[16], coord[32], nearest[24];
  double cubic_a, extrapolation;
  bool exclude_outside;
} resize_opts;

/* out is in * scale unrounded, as ONNX's reference has it (align_corners downsampling by
 * a scale differs from by a size). */
static double src_coord(const resize_opts *o, int64_t i, int64_t in, double out, double scale, double r0, double r1) {
  double x = (double)i;
  const char *c = o->coord;
  if (!strcmp(c, "half_pixel")) return (x + 0.5) / scale - 0.5;
  if (!strcmp(c, "pytorch_half_pixel")) return out > 1 ? (x + 0.5) / scale - 0.5 : 0;
  if (!strcmp(c, "align_corners")) return out == 1 ? 0 : x * (double)(in - 1) / (out - 1);
  if (!strcmp(c, "tf_half_pixel_for_nearest") || !strcmp(c, "tf_half_pixel_for_nn")) return (x + 0.5) / scale;
  if (!strcmp(c, "tf_crop_and_resize"))
    return out > 1 ? r0 * (double)(in - 1) + x * (r1 - r0) * (double)(in - 1) / (out - 1) : 0.5 * (r0 + r1) * (double)(in - 1);
  return x / scale; /* asymmetric */
}

/* A whole double as int64, saturating (a hostile scale or roi gives 1e30 or NaN: casting
 * those is undefined); callers clamp indices to the axis after. */
static int64_t sat_i64(double x) {
  if (!(x == x)) return 0;
  return x >= 9.2e18 ? INT64_MAX : x <= -9.2e18 ? INT64_MIN : (int64_t)x;
}

static int64_t nearest_index(const resize_opts *o, double x) {
  const char *m = o->nearest;
  if (!strcmp(m, "floor")) return sat_i64(floor(x));
  if (!strcmp(m, "ceil")) return sat_i64(ceil(x));
  double f = floor(x);
  if (x - f == 0.5) return sat_i64(!strcmp(m, "round_prefer_ceil") ? f + 1 : f);
  return sat_i64(floor(x + 0.5));
}

static void cubic_coeffs(double r, double A, double *c) {
  double t = r + 1, u = 1 - r, v = 2 - r;
  c[0] = ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
  c[2] = ((A + 2) * u - (A + 3)) * u * u + 1;
  c[3] = ((A * v - 5 * A) * v + 8 * A) * v - 4 * A;
}

/* Resize axis d of x from in to out. */
static cg_tensor *resize_axis(cg_tensor *x, int d, int64_t out, double scale, double r0, double r1, const resize_opts *o) {
  int64_t in = cg_shape(x)[d];
  int taps = !strcmp(o->mode, "nearest") ? 1 : !strcmp(o->mode, "linear") ? 2 : 4;
  int64_t *idx = cg_malloc(sizeof(int64_t) * (size_t)(taps * out + 1));
  double *w = cg_malloc(sizeof(double) * (size_t)(taps * out + 1));
  uint8_t *outside = cg_calloc((size_t)out + 1, 1);
  cg_tensor *r = NULL;
  if (!idx || !w || !outside) goto done;
  bool tfcrop = !strcmp(o->coord, "tf_crop_and_resize"), any_out = false;
  for (int64_t i = 0; i < out; i++) {
    double xs = src_coord(o, i, in, (double)in * scale, scale, r0, r1);
    if (tfcrop && (xs < 0 || xs > (double)(in - 1))) outside[i] = 1, any_out = true;
    if (taps == 1) {
      int64_t k = nearest_index(o, xs);
      idx[i] = k < 0 ? 0 : k >= in ? in - 1 : k;
      w[i] = 1;
      continue;
    }
    double f = floor(xs), rr = xs - f, c[4];
    int64_t base = sat_i64(f); /* far outside (a hostile roi): every tap is outside either way */
    base = (base < -8 ? -8 : base > in + 8 ? in + 8 : base) - (taps == 4 ? 1 : 0);
    if (taps == 2) c[0] = 1 - rr, c[1] = rr;
    else cubic_coeffs(rr, o->cubic_a, c);
    double sum = 0;
    for (int t = 0; t < taps; t++) {
      int64_t k = base + t;
      if (o->exclude_outside && (k < 0 || k >= in)) c[t] = 0;
      sum += c[t];
    }
    for (int t = 0; t < taps; t++) {
      int64_t k = base + t;
      idx[t * out + i] = k < 0 ? 0 : k >= in ? in - 1 : k;
      w[t * out + i] = o->exclude_outside && sum != 0 ? c[t] / sum : c[t];
    }
  }
  int nd = cg_ndim(x);
  int64_t ws[CG_MAX_DIMS];
  for (int k = 0; k < nd; k++) ws[k] = k == d ? out : 1;
  cg_dtype dt = cg_dtype_of(x);
  for (int t = 0; t < taps; t++) {
    cg_tensor *g = cg_index_select(x, d, onnx_i64(idx + t * out, out, 1));
    if (taps > 1) {
      cg_tensor *wt = cg_reshape(cg_cast(cg_from_data(w + t * out, CG_FLOAT64, &out, 1), onnx_is_float(dt) ? dt : CG_FLOAT32), ws, nd);
      g = cg_mul(onnx_is_float(dt) ? g : cg_cast(g, CG_FLOAT32), wt);
    }
    r = r ? cg_add(r, g) : g;
  }
  if (taps > 1 && !onnx_is_float(dt)) r = cg_cast(cg_round(r), dt);
  if (any_out) {
    cg_tensor *m = cg_reshape(cg_cast(cg_from_data(outside, CG_UINT8, &out, 1), CG_BOOL), ws, nd);
    r = cg_where(m, onnx_const(o->extrapolation, dt), r);
  }
done:
  free(idx);
  free(w);
  free(outside);
  return r;
}

static cg_status resize_all(onnx_ctx *c, cg_tensor *x, const double *scales, const int64_t *sizes, const double *roi, resize_opts *o) {
  int nd = cg_ndim(x);
  if (strcmp(o->mode, "nearest") && strcmp(o->mode, "linear") && strcmp(o->mode, "cubic"))
    return onnx_fail(c, "mode '%s' is not supported (nearest, linear, cubic)", o->mode);
  cg_tensor *r = x;
  for (int d = 0; d < nd && r; d++) {
    int64_t in = cg_shape(x)[d], out = sizes ? sizes[d] : sat_i64(floor((double)in * scales[d] + 1e-9));
    double scale = sizes ? (double)out / (double)in : scales[d];
    if (out < 0 || out > ((int64_t)1 << 31)) return onnx_fail(c, "output size %lld on axis %d", (long long)out, d);
    if (out == in && scale == 1.0 && strcmp(o->coord, "tf_crop_and_resize")) continue;
    r = resize_axis(r, d, out, scale, roi ? roi[d] : 0, roi ? roi[d + nd] : 1, o);
  }
  if (r == x) r = cg_reshape(x, cg_shape(x), nd);
  return onnx_set(c, 0, r);
}

static cg_status op_Resize(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  resize_opts o;
  char b1[16], b2[32], b3[24];
  snprintf(o.mode, sizeof o.mode, "%s", onnx_attr_s(c, "mode", "nearest", b1, sizeof b1));
  snprintf(o.coord, sizeof o.coord, "%s", onnx_attr_s(c, "coordinate_transformation_mode", c->opset >= 11 ? "half_pixel" : "asymmetric", b2, sizeof b2));
  snprintf(o.nearest, sizeof o.nearest, "%s", onnx_attr_s(c, "nearest_mode", c->opset >= 11 ? "round_prefer_floor" : "floor", b3, sizeof b3));
  o.cubic_a = onnx_attr_f(c, "cubic_coeff_a", -0.75);
  o.exclude_outside = onnx_attr_i(c, "exclude_outside", 0);
  o.extrapolation = onnx_attr_f(c, "extrapolation_value", 0);
  if (onnx_attr(c, "axes") || onnx_attr_i(c, "antialias", 0)) return onnx_fail(c, "axes and antialias (opset 18) are not supported");
  double scales[CG_MAX_DIMS], roi[2 * CG_MAX_DIMS];
  int64_t sizes[CG_MAX_DIMS];
  int ns = -1, nz = -1, nr = -1;
  if (c->opset < 11) {
    ns = onnx_in_doubles(c, 1, scales, CG_MAX_DIMS);
    if (ns < 0) return cg_last_status();
  } else {
    if (c->nin > 1 && c->in[1] && cg_numel(c->in[1]) > 0 && (nr = onnx_in_doubles(c, 1, roi, 2 * CG_MAX_DIMS)) < 0) return cg_last_status();
    if (c->nin > 2 && c->in[2] && cg_numel(c->in[2]) > 0 && (ns = onnx_in_doubles(c, 2, scales, CG_MAX_DIMS)) < 0) return cg_last_status();
    if (c->nin > 3 && c->in[3] && cg_numel(c->in[3]) > 0 && (nz = onnx_in_ints(c, 3, sizes, CG_MAX_DIMS)) < 0) return cg_last_status();
  }
  if ((ns < 0) == (nz < 0)) return onnx_fail(c, "exactly one of scales and sizes must be given");
  if ((ns >= 0 && ns != nd) || (nz >= 0 && nz != nd)) return onnx_fail(c, "scales/sizes need one entry per dim (%d)", nd);
  if (nr >= 0 && nr != 2 * nd) return onnx_fail(c, "roi needs %d entries", 2 * nd);
  for (int i = 0; ns >= 0 && i < nd; i++)
    if (!(scales[i] > 0)) return onnx_fail(c, "scale %g must be positive", scales[i]);
  return resize_all(c, x, ns >= 0 ? scales : NULL, nz >= 0 ? sizes : NULL, nr >= 0 ? roi : NULL, &o);
}

static cg_status op_Upsample(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  resize_opts o = {.cubic_a = -0.75};
  char b1[16];
  snprintf(o.mode, sizeof o.mode, "%s", onnx_attr_s(c, "mode", "nearest", b1, sizeof b1));
  strcpy(o.coord, "asymmetric");
  strcpy(o.nearest, "floor");
  double scales[CG_MAX_DIMS];
  int ns = c->opset >= 9 ? onnx_in_doubles(c, 1, scales, CG_MAX_DIMS) : onnx_attr_floats(c, "scales", scales, CG_MAX_DIMS);
  if (ns < 0) return cg_last_status() ? cg_last_status() : onnx_fail(c, "scales are required");
  if (ns != nd) return onnx_fail(c, "scales need one entry per dim (%d)", nd);
  if (!strcmp(o.mode, "bilinear")) strcpy(o.mode, "linear");
  return resize_all(c, x, scales, NULL, NULL, &o);
}

const onnx_op onnx_ops_resize[] = {{"Resize", op_Resize, false}, {"Upsample", op_Upsample, false}, {NULL, NULL, false}};
