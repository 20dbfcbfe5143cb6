/* Shape and movement ops, constants, and indexing. Shape-valued inputs (Reshape's shape,
 * Slice's bounds, Expand's shape ...) are computed when the node runs: the graph's shapes
 * follow from the actual inputs. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

#define X0()                       \
  cg_tensor *x = onnx_in(c, 0);    \
  if (!x) return cg_last_status(); \
  int nd = cg_ndim(x);             \
  const int64_t *sh = cg_shape(x); \
  (void)nd;                        \
  (void)sh

static cg_status op_Reshape(onnx_ctx *c) {
  X0();
  int64_t s[CG_MAX_DIMS + 1];
  int n;
  if (c->opset < 5) n = onnx_attr_ints(c, "shape", s, CG_MAX_DIMS);
  else n = onnx_in_ints(c, 1, s, CG_MAX_DIMS);
  if (n < 0) return cg_last_status() ? cg_last_status() : onnx_fail(c, "no shape");
  bool allowzero = onnx_attr_i(c, "allowzero", 0);
  for (int i = 0; i < n; i++)
    if (s[i] == 0 && !allowzero) {
      if (i >= nd) return onnx_fail(c, "shape entry %d is 0 (copy) but the input has %d dims", i, nd);
      s[i] = sh[i];
    }
  return onnx_set(c, 0, cg_reshape(x, s, n));
}

static cg_status op_Flatten(onnx_ctx *c) {
  X0();
  int ax = (int)onnx_attr_i(c, "axis", 1);
  if (ax < 0) ax += nd;
  if (ax < 0 || ax > nd) return onnx_fail(c, "axis %d out of range for %d dims", ax, nd);
  int64_t s[2] = {1, 1};
  for (int d = 0; d < nd; d++) s[d >= ax] *= sh[d];
  return onnx_set(c, 0, cg_reshape(x, s, 2));
}

/* Axes from the attribute (before `since`) or input 1; -1 if none given. */
static int axes_of(onnx_ctx *c, int64_t since, int64_t *ax) {
  if (c->opset < since) return onnx_attr_ints(c, "axes", ax, CG_MAX_DIMS);
  if (c->nin > 1 && c->in[1]) return onnx_in_ints(c, 1, ax, CG_MAX_DIMS);
  return -1;
}

static cg_status op_Squeeze(onnx_ctx *c) {
  X0();
  int64_t ax[CG_MAX_DIMS], s[CG_MAX_DIMS];
  int n = axes_of(c, 13, ax), m = 0;
  if (n < -1) return cg_last_status();
  bool drop[CG_MAX_DIMS] = {0};
  for (int i = 0; i < n; i++) {
    int a = onnx_axis(c, ax[i], nd);
    if (a < 0) return cg_last_status();
    if (sh[a] != 1) return onnx_fail(c, "cannot squeeze axis %d of size %lld", a, (long long)sh[a]);
    drop[a] = true;
  }
  for (int d = 0; d < nd; d++)
    if (!(n < 0 ? sh[d] == 1 : drop[d])) s[m++] = sh[d];
  return onnx_set(c, 0, cg_reshape(x, s, m));
}

static cg_status op_Unsqueeze(onnx_ctx *c) {
  X0();
  int64_t ax[CG_MAX_DIMS], s[CG_MAX_DIMS];
  int n = axes_of(c, 13, ax);
  if (n < 0) return cg_last_status() ? cg_last_status() : onnx_fail(c, "axes are required");
  int out = nd + n;
  if (out > CG_MAX_DIMS) return onnx_fail(c, "%d dims, at most %d", out, CG_MAX_DIMS);
  bool ins[CG_MAX_DIMS] = {0};
  for (int i = 0; i < n; i++) {
    int a = onnx_axis(c, ax[i], out);
    if (a < 0) return cg_last_status();
    if (ins[a]) return onnx_fail(c, "axis %d given twice", a);
    ins[a] = true;
  }
  for (int d = 0, k = 0; d < out; d++) s[d] = ins[d] ? 1 : sh[k++];
  return onnx_set(c, 0, cg_reshape(x, s, out));
}

static cg_status op_Transpose(onnx_ctx *c) {
  X0();
  int64_t p[CG_MAX_DIMS];
  int perm[CG_MAX_DIMS];
  int n = onnx_attr_ints(c, "perm", p, CG_MAX_DIMS);
  if (n < -1) return cg_last_status();
  if (n >= 0 && n != nd) return onnx_fail(c, "perm has %d entries for %d dims", n, nd);
  for (int d = 0; d < nd; d++) perm[d] = n < 0 ? nd - 1 - d : (int)p[d];
  return onnx_set(c, 0, cg_permute(x, perm, nd));
}

static cg_status op_Concat(onnx_ctx *c) {
  X0();
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  cg_tensor *ts[64];
  int n = 0;
  for (int i = 0; i < c->nin; i++) {
    cg_tensor *t = onnx_in(c, i);
    if (!t) return cg_last_status();
    if (cg_ndim(t) == nd && cg_shape(t)[ax] == 0) continue; /* empty pieces add nothing */
    ts[n++] = t;
  }
  if (n == 0) return onnx_set(c, 0, cg_reshape(x, sh, nd));
  return onnx_set(c, 0, n == 1 ? cg_reshape(ts[0], cg_shape(ts[0]), nd) : cg_cat(ts, n, ax));
}

static cg_status op_Split(onnx_ctx *c) {
  X0();
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  int64_t sp[64];
  int n;
  if (c->opset < 13) n = onnx_attr_ints(c, "split", sp, 64);
  else n = c->nin > 1 && c->in[1] ? onnx_in_ints(c, 1, sp, 64) : -1;
  if (n < -1) return cg_last_status();
  if (n < 0) {
    int64_t parts = c->nout, len = sh[ax];
    if (parts <= 0) return onnx_fail(c, "no outputs");
    int64_t each = (len + parts - 1) / parts;
    if (c->opset < 18 && len % parts) return onnx_fail(c, "dim %lld does not split evenly in %lld", (long long)len, (long long)parts);
    for (int i = 0; i < parts; i++) sp[i] = i < parts - 1 ? each : len - each * (parts - 1);
    n = (int)parts;
  }
  if (n != c->nout) return onnx_fail(c, "%d split sizes for %d outputs", n, c->nout);
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (sp[i] < 0 || at + sp[i] > sh[ax]) return onnx_fail(c, "split sizes exceed dim %lld", (long long)sh[ax]);
    if (onnx_set(c, i, cg_slice(x, ax, at, at + sp[i], 1)) != CG_OK) return cg_last_status();
    at += sp[i];
  }
  if (at != sh[ax]) return onnx_fail(c, "split sizes sum to %lld, dim is %lld", (long long)at, (long long)sh[ax]);
  return CG_OK;
}

static int64_t clampi(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static cg_status op_Slice(onnx_ctx *c) {
  X0();
  int64_t st[CG_MAX_DIMS], en[CG_MAX_DIMS], ax[CG_MAX_DIMS], sp[CG_MAX_DIMS];
  int n, ne, na = -1, ns = -1;
  if (c->opset < 10) {
    n = onnx_attr_ints(c, "starts", st, CG_MAX_DIMS);
    ne = onnx_attr_ints(c, "ends", en, CG_MAX_DIMS);
    na = onnx_attr_ints(c, "axes", ax, CG_MAX_DIMS);
  } else {
    n = onnx_in_ints(c, 1, st, CG_MAX_DIMS);
    ne = onnx_in_ints(c, 2, en, CG_MAX_DIMS);
    if (n >= 0 && ne >= 0 && c->nin > 3 && c->in[3]) na = onnx_in_ints(c, 3, ax, CG_MAX_DIMS);
    if (n >= 0 && ne >= 0 && c->nin > 4 && c->in[4]) ns = onnx_in_ints(c, 4, sp, CG_MAX_DIMS);
  }
  if (n < 0 || ne < 0 || na < -1 || ns < -1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "starts and ends are required");
  if (ne != n || (na >= 0 && na != n) || (ns >= 0 && ns != n)) return onnx_fail(c, "starts, ends, axes, steps differ in length");
  cg_tensor *r = x;
  for (int i = 0; i < n; i++) {
    int a = onnx_axis(c, na >= 0 ? ax[i] : i, nd);
    if (a < 0) return cg_last_status();
    int64_t step = ns >= 0 ? sp[i] : 1, dim = sh[a], s = st[i], e = en[i];
    if (step == 0) return onnx_fail(c, "step 0 on axis %d", a);
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = clampi(s, 0, dim);
      e = clampi(e, 0, dim);
      if (e < s) e = s;
      r = cg_slice(r, a, s, e, step);
    } else { /* walk the flipped axis forward */
      s = clampi(s, 0, dim - 1);
      e = clampi(e, -1, dim - 1);
      int64_t fs = dim - 1 - s, fe = dim - 1 - e;
      if (fe < fs) fe = fs;
      r = cg_slice(cg_flip(r, &a, 1), a, fs, fe, -step);
    }
  }
  if (r == x) r = cg_reshape(x, sh, nd);
  return onnx_set(c, 0, r);
}

/* edge / reflect padding of one dim by slicing and concatenating */
static cg_tensor *pad_dim(cg_tensor *x, int d, int64_t before, int64_t after, bool reflect) {
  int64_t n = cg_shape(x)[d];
  cg_tensor *parts[3];
  int k = 0;
  if (before > 0) {
    cg_tensor *p = reflect ? cg_flip(cg_slice(x, d, 1, before + 1, 1), &d, 1) : cg_slice(x, d, 0, 1, 1);
    if (!reflect) {
      int64_t s[CG_MAX_DIMS];
      memcpy(s, cg_shape(x), sizeof(int64_t) * (size_t)cg_ndim(x));
      s[d] = before;
      p = cg_expand(p, s, cg_ndim(x));
    }
    parts[k++] = p;
  }
  parts[k++] = x;
  if (after > 0) {
    cg_tensor *p = reflect ? cg_flip(cg_slice(x, d, n - 1 - after, n - 1, 1), &d, 1) : cg_slice(x, d, n - 1, n, 1);
    if (!reflect) {
      int64_t s[CG_MAX_DIMS];
      memcpy(s, cg_shape(x), sizeof(int64_t) * (size_t)cg_ndim(x));
      s[d] = after;
      p = cg_expand(p, s, cg_ndim(x));
    }
    parts[k++] = p;
  }
  return k == 1 ? x : cg_cat(parts, k, d);
}

static cg_status op_Pad(onnx_ctx *c) {
  X0();
  int64_t p[2 * CG_MAX_DIMS], ax[CG_MAX_DIMS];
  int n, na = -1;
  double value = 0;
  char buf[16];
  const char *mode = onnx_attr_s(c, "mode", "constant", buf, sizeof buf);
  if (c->opset < 11) {
    n = onnx_attr_ints(c, "pads", p, 2 * CG_MAX_DIMS);
    value = onnx_attr_f(c, "value", 0);
  } else {
    n = onnx_in_ints(c, 1, p, 2 * CG_MAX_DIMS);
    if (n >= 0 && c->nin > 2 && c->in[2]) {
      if (onnx_in_doubles(c, 2, &value, 1) < 0) return cg_last_status();
    }
    if (n >= 0 && c->nin > 3 && c->in[3]) na = onnx_in_ints(c, 3, ax, CG_MAX_DIMS);
  }
  if (n < 0 || na < -1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "pads are required");
  int m = na >= 0 ? na : nd;
  if (n != 2 * m) return onnx_fail(c, "%d pads for %d axes", n, m);
  int64_t before[CG_MAX_DIMS] = {0}, after[CG_MAX_DIMS] = {0};
  for (int i = 0; i < m; i++) {
    int a = na >= 0 ? onnx_axis(c, ax[i], nd) : i;
    if (a < 0) return cg_last_status();
    before[a] = p[i];
    after[a] = p[i + m];
  }
  /* negative pads crop first */
  int64_t box[2 * CG_MAX_DIMS];
  bool crop = false;
  for (int d = 0; d < nd; d++) {
    box[2 * d] = before[d] < 0 ? -before[d] : 0;
    box[2 * d + 1] = sh[d] + (after[d] < 0 ? after[d] : 0);
    if (before[d] < 0 || after[d] < 0) crop = true;
    if (box[2 * d + 1] < box[2 * d]) return onnx_fail(c, "pads crop more than dim %d has", d);
    if (before[d] < 0) before[d] = 0;
    if (after[d] < 0) after[d] = 0;
  }
  cg_tensor *r = crop ? cg_shrink(x, box) : x;
  if (!strcmp(mode, "constant")) {
    int64_t pp[2 * CG_MAX_DIMS];
    for (int d = 0; d < nd; d++) pp[2 * d] = before[d], pp[2 * d + 1] = after[d];
    r = cg_pad(r, pp, onnx_saturate(value, cg_dtype_of(x)));
  } else if (!strcmp(mode, "edge") || !strcmp(mode, "reflect")) {
    bool refl = mode[0] == 'r';
    for (int d = 0; d < nd && r; d++) {
      if (refl && (before[d] >= cg_shape(r)[d] || after[d] >= cg_shape(r)[d]))
        return onnx_fail(c, "reflect pad %lld/%lld is not smaller than dim %d (%lld)", (long long)before[d], (long long)after[d], d,
                         (long long)cg_shape(r)[d]);
      r = pad_dim(r, d, before[d], after[d], refl);
    }
  } else return onnx_fail(c, "mode '%s' is not supported (constant, reflect, edge)", mode);
  if (r == x) r = cg_reshape(x, sh, nd);
  return onnx_set(c, 0, r);
}

/* NumPy broadcast of two shapes into out; its rank, or -1. */
static int bcast(const int64_t *a, int na, const int64_t *b, int nb, int64_t *out) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int64_t x = i < n - na ? 1 : a[i - (n - na)], y = i < n - nb ? 1 : b[i - (n - nb)];
    if (x != y && x != 1 && y != 1) return -1;
    out[i] = x == 1 ? y : x;
  }
  return n;
}

static cg_status op_Expand(onnx_ctx *c) {
  X0();
  int64_t s[CG_MAX_DIMS], o[CG_MAX_DIMS], xs[CG_MAX_DIMS];
  int n = onnx_in_ints(c, 1, s, CG_MAX_DIMS);
  if (n < 0) return cg_last_status();
  int m = bcast(sh, nd, s, n, o);
  if (m < 0) return onnx_fail(c, "input shape does not broadcast to the requested shape");
  for (int i = 0; i < m; i++) xs[i] = i < m - nd ? 1 : sh[i - (m - nd)];
  return onnx_set(c, 0, cg_expand(cg_reshape(x, xs, m), o, m));
}

static cg_status op_Tile(onnx_ctx *c) {
  X0();
  int64_t r[CG_MAX_DIMS];
  int n = onnx_in_ints(c, 1, r, CG_MAX_DIMS);
  if (n < 0) return cg_last_status();
  if (n != nd) return onnx_fail(c, "%d repeats for %d dims", n, nd);
  return onnx_set(c, 0, cg_repeat(x, r, n));
}

/* Indices with negative entries counted from the end of a dim of size n. */
static cg_tensor *wrap_index(cg_tensor *i, int64_t n) {
  cg_tensor *i64 = cg_cast(i, CG_INT64);
  return cg_where(cg_lt(i64, onnx_const(0, CG_INT64)), cg_add(i64, onnx_const((double)n, CG_INT64)), i64);
}

static cg_status op_Gather(onnx_ctx *c) {
  X0();
  cg_tensor *idx = onnx_in(c, 1);
  if (!idx) return cg_last_status();
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  int ni = cg_ndim(idx);
  if (nd - 1 + ni > CG_MAX_DIMS) return onnx_fail(c, "result has more than %d dims", CG_MAX_DIMS);
  int64_t flat = cg_numel(idx), s[CG_MAX_DIMS];
  cg_tensor *g = cg_index_select(x, ax, cg_reshape(wrap_index(idx, sh[ax]), &flat, 1));
  int m = 0;
  for (int d = 0; d < ax; d++) s[m++] = sh[d];
  for (int d = 0; d < ni; d++) s[m++] = cg_shape(idx)[d];
  for (int d = ax + 1; d < nd; d++) s[m++] = sh[d];
  return onnx_set(c, 0, cg_reshape(g, s, m));
}

static cg_status op_GatherElements(onnx_ctx *c) {
  X0();
  cg_tensor *idx = onnx_in(c, 1);
  if (!idx) return cg_last_status();
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  return onnx_set(c, 0, cg_gather(x, ax, wrap_index(idx, sh[ax])));
}

static cg_status op_GatherND(onnx_ctx *c) {
  X0();
  cg_tensor *idx = onnx_in(c, 1);
  if (!idx) return cg_last_status();
  int b = (int)onnx_attr_i(c, "batch_dims", 0), ni = cg_ndim(idx);
  const int64_t *is = cg_shape(idx);
  if (ni < 1) return onnx_fail(c, "indices must have at least 1 dim");
  int k = (int)is[ni - 1];
  if (b < 0 || b >= ni || b + k > nd) return onnx_fail(c, "indices' last dim %d with batch_dims %d does not fit %d data dims", k, b, nd);
  /* data viewed as (B, prod(sh[b:b+k]), rest...), the index tuple made linear */
  int64_t B = 1, K = 1, rest[CG_MAX_DIMS], s[CG_MAX_DIMS];
  int nrest = 0;
  for (int d = 0; d < b; d++) B *= sh[d];
  for (int d = b; d < b + k; d++) K *= sh[d];
  for (int d = b + k; d < nd; d++) rest[nrest++] = sh[d];
  int64_t stride = 1;
  cg_tensor *lin = onnx_const(0, CG_INT64);
  for (int j = k - 1; j >= 0; j--) {
    cg_tensor *ij = wrap_index(cg_slice(idx, ni - 1, j, j + 1, 1), sh[b + j]);
    lin = cg_add(lin, cg_mul(ij, onnx_const((double)stride, CG_INT64)));
    stride *= sh[b + j];
  }
  /* lin has idx's shape with the last dim 1: (batch..., m..., 1); flatten to (B, M) */
  int64_t M = 1;
  for (int d = b; d < ni - 1; d++) M *= is[d];
  int64_t bm[2] = {B, M};
  lin = cg_reshape(lin, bm, 2);
  lin = cg_add(lin, cg_mul(cg_reshape(cg_arange(0, (double)B, 1, CG_INT64), (int64_t[]){B, 1}, 2), onnx_const((double)K, CG_INT64)));
  int64_t flat = B * M, ds[CG_MAX_DIMS];
  ds[0] = B * K;
  for (int d = 0; d < nrest; d++) ds[1 + d] = rest[d];
  cg_tensor *g = cg_index_select(cg_reshape(x, ds, 1 + nrest), 0, cg_reshape(lin, &flat, 1));
  int m = 0;
  for (int d = 0; d < ni - 1; d++) s[m++] = is[d];
  for (int d = 0; d < nrest; d++) s[m++] = rest[d];
  return onnx_set(c, 0, cg_reshape(g, s, m));
}

static cg_status op_Shape(onnx_ctx *c) {
  X0();
  int64_t s = onnx_attr_i(c, "start", 0), e = onnx_attr_i(c, "end", nd);
  if (s < 0) s += nd;
  if (e < 0) e += nd;
  s = clampi(s, 0, nd);
  e = clampi(e, s, nd);
  return onnx_set(c, 0, onnx_i64(sh + s, e - s, 1));
}

static cg_status op_Size(onnx_ctx *c) {
  X0();
  int64_t n = cg_numel(x);
  return onnx_set(c, 0, onnx_i64(&n, 1, 0));
}

static cg_tensor *attr_tensor(onnx_ctx *c, const char *name) {
  const Onnx__AttributeProto *a = onnx_attr(c, name);
  if (!a || !a->t) return NULL;
  return onnx_tensor_from_proto(a->t, NULL, name);
}

static cg_status op_ConstantOfShape(onnx_ctx *c) {
  int64_t s[CG_MAX_DIMS];
  int n = onnx_in_ints(c, 0, s, CG_MAX_DIMS);
  if (n < 0) return cg_last_status();
  for (int i = 0; i < n; i++)
    if (s[i] < 0) return onnx_fail(c, "negative dim %lld", (long long)s[i]);
  cg_tensor *v = onnx_attr(c, "value") ? attr_tensor(c, "value") : onnx_const(0, CG_FLOAT32);
  if (!v) return onnx_set(c, 0, NULL);
  if (cg_numel(v) != 1) return onnx_fail(c, "value must have one element");
  return onnx_set(c, 0, cg_expand(cg_reshape(v, s, 0 * n), s, n));
}

static cg_status op_Constant(onnx_ctx *c) {
  const Onnx__AttributeProto *a;
  if ((a = onnx_attr(c, "value"))) return onnx_set(c, 0, attr_tensor(c, "value"));
  if ((a = onnx_attr(c, "value_float"))) return onnx_set(c, 0, onnx_const(a->f, CG_FLOAT32));
  if ((a = onnx_attr(c, "value_int"))) return onnx_set(c, 0, onnx_i64(&a->i, 1, 0));
  if ((a = onnx_attr(c, "value_ints"))) return onnx_set(c, 0, onnx_i64(a->ints, (int64_t)a->n_ints, 1));
  if ((a = onnx_attr(c, "value_floats"))) {
    int64_t n = (int64_t)a->n_floats;
    return onnx_set(c, 0, cg_from_data(a->floats, CG_FLOAT32, &n, 1));
  }
  return onnx_fail(c, "no supported value attribute (value, value_float(s), value_int(s))");
}

static cg_status op_Range(onnx_ctx *c) {
  double v[3];
  for (int i = 0; i < 3; i++)
    if (onnx_in_doubles(c, i, &v[i], 1) != 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "input %d must be a scalar", i);
  if (v[2] == 0) return onnx_fail(c, "delta is 0");
  cg_dtype dt = cg_dtype_of(c->in[0]);
  double nf = __builtin_ceil((v[1] - v[0]) / v[2]);
  if (nf > (double)((int64_t)1 << 32)) return onnx_fail(c, "%g elements (start %g, limit %g, delta %g)", nf, v[0], v[1], v[2]); /* before the cast: 1e34 is no int64 */
  int64_t n = nf > 0 ? (int64_t)nf : 0; /* NaN: none */
  cg_tensor *r = cg_add(cg_mul(cg_arange(0, (double)n, 1, CG_FLOAT64), onnx_const(v[2], CG_FLOAT64)), onnx_const(v[0], CG_FLOAT64));
  if (n == 0) r = cg_zeros(dt, &n, 1);
  return onnx_set(c, 0, cg_cast(r, dt));
}

static cg_status op_EyeLike(onnx_ctx *c) {
  X0();
  if (nd != 2) return onnx_fail(c, "input must be 2-D");
  int64_t k = onnx_attr_i(c, "k", 0), to = onnx_attr_i(c, "dtype", -1);
  int d = to >= 0 ? onnx_dtype((int32_t)to) : (int)cg_dtype_of(x);
  if (d < 0) return onnx_fail(c, "dtype %lld is not supported", (long long)to);
  cg_tensor *i = cg_reshape(cg_arange(0, (double)sh[0], 1, CG_INT64), (int64_t[]){sh[0], 1}, 2);
  cg_tensor *j = cg_reshape(cg_arange(0, (double)sh[1], 1, CG_INT64), (int64_t[]){1, sh[1]}, 2);
  return onnx_set(c, 0, cg_cast(cg_eq(cg_sub(j, i), onnx_const((double)k, CG_INT64)), (cg_dtype)d));
}

static cg_status op_Trilu(onnx_ctx *c) {
  X0();
  int64_t k = 0;
  if (c->nin > 1 && c->in[1] && onnx_in_ints(c, 1, &k, 1) != 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "k");
  if (nd < 2) return onnx_fail(c, "input must have at least 2 dims");
  return onnx_set(c, 0, onnx_attr_i(c, "upper", 1) ? cg_triu(x, k) : cg_tril(x, k));
}

static cg_status op_DepthToSpace(onnx_ctx *c) {
  X0();
  int64_t b = onnx_attr_i(c, "blocksize", 0);
  char buf[8];
  bool crd = !strcmp(onnx_attr_s(c, "mode", "DCR", buf, sizeof buf), "CRD");
  if (nd != 4 || b <= 0 || sh[1] % (b * b)) return onnx_fail(c, "needs a 4-D input with channels divisible by blocksize^2");
  int64_t N = sh[0], C = sh[1], H = sh[2], W = sh[3];
  cg_tensor *r;
  if (crd) {
    r = cg_reshape(x, (int64_t[]){N, C / (b * b), b, b, H, W}, 6);
    r = cg_permute(r, (int[]){0, 1, 4, 2, 5, 3}, 6);
  } else {
    r = cg_reshape(x, (int64_t[]){N, b, b, C / (b * b), H, W}, 6);
    r = cg_permute(r, (int[]){0, 3, 4, 1, 5, 2}, 6);
  }
  return onnx_set(c, 0, cg_reshape(r, (int64_t[]){N, C / (b * b), H * b, W * b}, 4));
}

static cg_status op_SpaceToDepth(onnx_ctx *c) {
  X0();
  int64_t b = onnx_attr_i(c, "blocksize", 0);
  if (nd != 4 || b <= 0 || sh[2] % b || sh[3] % b) return onnx_fail(c, "needs a 4-D input with H, W divisible by blocksize");
  int64_t N = sh[0], C = sh[1], H = sh[2], W = sh[3];
  cg_tensor *r = cg_reshape(x, (int64_t[]){N, C, H / b, b, W / b, b}, 6);
  r = cg_permute(r, (int[]){0, 3, 5, 1, 2, 4}, 6);
  return onnx_set(c, 0, cg_reshape(r, (int64_t[]){N, C * b * b, H / b, W / b}, 4));
}

static cg_status op_OneHot(onnx_ctx *c) {
  X0();
  double depth;
  if (onnx_in_doubles(c, 1, &depth, 1) != 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "depth must be a scalar");
  cg_tensor *vals = onnx_in(c, 2);
  if (!vals) return cg_last_status();
  if (cg_numel(vals) != 2) return onnx_fail(c, "values must have 2 elements");
  int64_t D = (int64_t)depth;
  if (D <= 0 || nd + 1 > CG_MAX_DIMS) return onnx_fail(c, "bad depth %lld", (long long)D);
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", -1), nd + 1);
  if (ax < 0) return cg_last_status();
  cg_tensor *i = wrap_index(cg_cast(x, CG_INT64), D), *u = cg_unsqueeze(i, ax);
  int64_t s[CG_MAX_DIMS];
  for (int d = 0; d <= nd; d++) s[d] = d == ax ? D : 1;
  cg_tensor *r = cg_reshape(cg_arange(0, (double)D, 1, CG_INT64), s, nd + 1);
  cg_tensor *v = cg_reshape(vals, (int64_t[]){2}, 1);
  return onnx_set(c, 0, cg_where(cg_eq(u, r), cg_slice(v, 0, 1, 2, 1), cg_slice(v, 0, 0, 1, 1)));
}

/* Data-dependent shapes: the values are read on the host. */
static cg_status op_NonZero(onnx_ctx *c) {
  X0();
  int64_t n = cg_numel(x);
  onnx_host_read(c, 0);
  uint8_t *nz = cg_malloc((size_t)n + 1);
  if (!nz) return CG_ERR_NOMEM;
  cg_tensor *b = cg_ne(x, onnx_const(0, cg_dtype_of(x)));
  if (!b || cg_realize(b) != CG_OK || cg_read(b, CG_BOOL, nz, (size_t)n) != CG_OK) {
    free(nz);
    return onnx_set(c, 0, NULL);
  }
  int64_t cnt = 0;
  for (int64_t i = 0; i < n; i++) cnt += nz[i];
  int64_t *out = cg_malloc(sizeof(int64_t) * (size_t)(cnt * (nd ? nd : 1) + 1));
  if (!out) {
    free(nz);
    return CG_ERR_NOMEM;
  }
  for (int64_t i = 0, k = 0; i < n; i++) {
    if (!nz[i]) continue;
    int64_t rem = i;
    for (int d = nd - 1; d >= 0; d--) {
      out[(int64_t)d * cnt + k] = rem % sh[d];
      rem /= sh[d];
    }
    k++;
  }
  int64_t os[2] = {nd, cnt};
  cg_tensor *r = cg_from_data(out, CG_INT64, os, 2);
  free(nz);
  free(out);
  return onnx_set(c, 0, r);
}

static cg_status op_Compress(onnx_ctx *c) {
  X0();
  cg_tensor *cond = onnx_in(c, 1);
  if (!cond) return cg_last_status();
  onnx_host_read(c, 1);
  const Onnx__AttributeProto *a = onnx_attr(c, "axis");
  cg_tensor *src = x;
  int ax = 0;
  if (a) {
    if ((ax = onnx_axis(c, a->i, nd)) < 0) return cg_last_status();
  } else {
    int64_t flat = cg_numel(x);
    src = cg_reshape(x, &flat, 1);
  }
  int64_t n = cg_numel(cond), lim = cg_shape(src)[ax];
  uint8_t *v = cg_malloc((size_t)n + 1);
  int64_t *idx = cg_malloc(sizeof(int64_t) * (size_t)(n + 1));
  cg_tensor *b = cg_cast(cond, CG_BOOL);
  cg_status st = CG_OK;
  if (!v || !idx || !b || cg_realize(b) != CG_OK || cg_read(b, CG_BOOL, v, (size_t)n) != CG_OK) st = onnx_set(c, 0, NULL);
  int64_t k = 0;
  for (int64_t i = 0; st == CG_OK && i < n && i < lim; i++)
    if (v[i]) idx[k++] = i;
  if (st == CG_OK) st = onnx_set(c, 0, cg_index_select(src, ax, onnx_i64(idx, k, 1)));
  free(v);
  free(idx);
  return st;
}

static cg_status op_TopK(onnx_ctx *c) {
  X0();
  int64_t k;
  if (c->opset < 10) k = onnx_attr_i(c, "k", -1);
  else if (onnx_in_ints(c, 1, &k, 1) != 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "K must have one value");
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", -1), nd);
  if (ax < 0) return cg_last_status();
  if (k < 0 || k > sh[ax]) return onnx_fail(c, "K %lld is not in 0..%lld", (long long)k, (long long)sh[ax]);
  bool largest = onnx_attr_i(c, "largest", 1), sorted = onnx_attr_i(c, "sorted", 1);
  cg_tensor *v = NULL, *i = NULL;
  if (cg_topk(x, k, ax, largest, sorted, &v, &i) != CG_OK) return onnx_set(c, 0, NULL);
  if (onnx_set(c, 0, v) != CG_OK) return cg_last_status();
  return c->nout > 1 ? onnx_set(c, 1, cg_cast(i, CG_INT64)) : CG_OK;
}

const onnx_op onnx_ops_shape[] = {
#define E(n) {#n, op_##n, false},
    E(Reshape) E(Flatten) E(Squeeze) E(Unsqueeze) E(Transpose) E(Concat) E(Split) E(Slice) E(Pad) E(Expand)
    E(Tile) E(Gather) E(GatherElements) E(GatherND) E(Shape) E(Size) E(ConstantOfShape) E(Constant) E(Range)
    E(EyeLike) E(Trilu) E(TopK) E(DepthToSpace) E(SpaceToDepth) E(OneHot) E(NonZero) E(Compress)
#undef E
    {NULL, NULL, false}};
