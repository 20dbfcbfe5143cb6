/* Quantization (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, the integer and
 * QLinear matmul/conv), the window functions, scatters and Einsum.
 *
 * Integer products are computed in float64: exact for 8-bit operands and the sums these
 * models make (below 2^53). */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* v (per-axis (n,) or scalar) shaped to broadcast along axis of an nd-dim tensor */
static cg_tensor *along(cg_tensor *v, int axis, int nd) {
  if (cg_ndim(v) == 0 || cg_numel(v) == 1) return cg_reshape(v, NULL, 0);
  int64_t s[CG_MAX_DIMS];
  for (int d = 0; d < nd; d++) s[d] = d == axis ? cg_numel(v) : 1;
  return cg_reshape(v, s, nd);
}

static cg_tensor *saturate(cg_tensor *v, cg_dtype dt) {
  double lo = dt == CG_INT8 ? -128 : dt == CG_UINT8 ? 0 : dt == CG_INT32 ? -2147483648.0 : 0;
  double hi = dt == CG_INT8 ? 127 : dt == CG_UINT8 ? 255 : dt == CG_INT32 ? 2147483647.0 : 65535;
  return cg_cast(cg_clamp(cg_round(v), lo, hi), dt);
}

static cg_status op_QuantizeLinear(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *sc = onnx_in(c, 1), *zp = c->nin > 2 ? c->in[2] : NULL;
  if (!x || !sc) return cg_last_status();
  int nd = cg_ndim(x), ax = cg_numel(sc) == 1 ? 0 : onnx_axis(c, onnx_attr_i(c, "axis", 1), nd);
  if (ax < 0) return cg_last_status();
  cg_dtype od = zp ? cg_dtype_of(zp) : CG_UINT8;
  cg_tensor *v = cg_div(cg_cast(x, CG_FLOAT64), along(cg_cast(sc, CG_FLOAT64), ax, nd));
  v = cg_round(v);
  if (zp) v = cg_add(v, along(cg_cast(zp, CG_FLOAT64), ax, nd));
  return onnx_set(c, 0, saturate(v, od));
}

static cg_status op_DequantizeLinear(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *sc = onnx_in(c, 1), *zp = c->nin > 2 ? c->in[2] : NULL;
  if (!x || !sc) return cg_last_status();
  int nd = cg_ndim(x), ax = cg_numel(sc) == 1 ? 0 : onnx_axis(c, onnx_attr_i(c, "axis", 1), nd);
  if (ax < 0) return cg_last_status();
  cg_tensor *v = cg_cast(x, CG_FLOAT32);
  if (zp) v = cg_sub(v, along(cg_cast(zp, CG_FLOAT32), ax, nd));
  return onnx_set(c, 0, cg_mul(v, along(sc, ax, nd)));
}

static cg_status op_DynamicQuantizeLinear(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  /* in float64, as ONNX's reference computes it (NumPy promotes its scalars) */
  cg_tensor *x64 = cg_cast(x, CG_FLOAT64), *zero = onnx_const(0, CG_FLOAT64);
  cg_tensor *mx = cg_maximum(cg_max(x64, NULL, 0, false), zero), *mn = cg_minimum(cg_min(x64, NULL, 0, false), zero);
  cg_tensor *sc = cg_div(cg_sub(mx, mn), onnx_const(255, CG_FLOAT64));
  cg_tensor *zp = saturate(cg_sub(zero, cg_div(mn, sc)), CG_UINT8);
  cg_tensor *y = saturate(cg_add(cg_round(cg_div(x64, sc)), cg_cast(zp, CG_FLOAT64)), CG_UINT8);
  if (onnx_set(c, 0, y) != CG_OK || (c->nout > 1 && onnx_set(c, 1, cg_cast(sc, CG_FLOAT32)) != CG_OK)) return cg_last_status();
  return c->nout > 2 ? onnx_set(c, 2, zp) : CG_OK;
}

static cg_tensor *centered(cg_tensor *v, cg_tensor *zp, int axis) {
  cg_tensor *f = cg_cast(v, CG_FLOAT64);
  return zp ? cg_sub(f, along(cg_cast(zp, CG_FLOAT64), axis, cg_ndim(v))) : f;
}

static cg_status op_MatMulInteger(onnx_ctx *c) {
  cg_tensor *a = onnx_in(c, 0), *b = onnx_in(c, 1);
  if (!a || !b) return cg_last_status();
  cg_tensor *azp = c->nin > 2 ? c->in[2] : NULL, *bzp = c->nin > 3 ? c->in[3] : NULL;
  /* a's zero point is per row (axis -2), b's per column (axis -1) */
  cg_tensor *af = centered(a, azp, cg_ndim(a) - 2 >= 0 ? cg_ndim(a) - 2 : 0), *bf = centered(b, bzp, cg_ndim(b) - 1);
  return onnx_set(c, 0, cg_cast(cg_matmul(af, bf), CG_INT32));
}

static cg_status op_QLinearMatMul(onnx_ctx *c) {
  cg_tensor *in[8];
  for (int i = 0; i < 8; i++)
    if (!(in[i] = onnx_in(c, i))) return cg_last_status();
  cg_tensor *af = centered(in[0], in[2], cg_ndim(in[0]) - 2), *bf = centered(in[3], in[5], cg_ndim(in[3]) - 1);
  cg_tensor *s = cg_div(cg_mul(cg_cast(in[1], CG_FLOAT64), cg_cast(in[4], CG_FLOAT64)), cg_cast(in[6], CG_FLOAT64));
  cg_tensor *y = cg_add(cg_round(cg_mul(cg_matmul(af, bf), s)), cg_cast(in[7], CG_FLOAT64));
  return onnx_set(c, 0, saturate(y, cg_dtype_of(in[7])));
}

/* Conv through onnx_conv with other inputs, the result in *out. */
static cg_status conv_with(onnx_ctx *c, cg_tensor *x, cg_tensor *w, cg_tensor *b, cg_tensor **out) {
  cg_tensor *in[3] = {x, w, b}, *o[1] = {NULL};
  onnx_ctx c2 = *c;
  c2.in = in, c2.nin = b ? 3 : 2, c2.out = o, c2.nout = 1;
  cg_status st = onnx_conv(&c2);
  *out = o[0];
  return st;
}

static cg_status op_ConvInteger(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0), *w = onnx_in(c, 1), *r;
  if (!x || !w) return cg_last_status();
  cg_tensor *xf = centered(x, c->nin > 2 ? c->in[2] : NULL, 1), *wf = centered(w, c->nin > 3 ? c->in[3] : NULL, 0);
  if (conv_with(c, xf, wf, NULL, &r) != CG_OK) return cg_last_status();
  return onnx_set(c, 0, cg_cast(r, CG_INT32));
}

static cg_status op_QLinearConv(onnx_ctx *c) {
  cg_tensor *in[9] = {0}, *r;
  for (int i = 0; i < 8; i++)
    if (!(in[i] = onnx_in(c, i))) return cg_last_status();
  if (c->nin > 8) in[8] = c->in[8];
  cg_tensor *xf = centered(in[0], in[2], 1), *wf = centered(in[3], in[5], 0);
  if (conv_with(c, xf, wf, in[8] ? cg_cast(in[8], CG_FLOAT64) : NULL, &r) != CG_OK) return cg_last_status();
  /* (x_scale * w_scale / y_scale), per output channel when w_scale is */
  cg_tensor *s = cg_div(cg_mul(cg_cast(in[1], CG_FLOAT64), cg_cast(in[4], CG_FLOAT64)), cg_cast(in[6], CG_FLOAT64));
  cg_tensor *y = cg_add(cg_round(cg_mul(r, along(s, 1, cg_ndim(r)))), cg_cast(in[7], CG_FLOAT64));
  return onnx_set(c, 0, saturate(y, cg_dtype_of(in[7])));
}

/* ---- windows ---------------------------------------------------------------------------- */

static cg_status window(onnx_ctx *c, double a0, double a1, double a2) {
  int64_t n;
  if (onnx_in_ints(c, 0, &n, 1) != 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "size must be a scalar");
  if (n < 0 || n > (1 << 28)) return onnx_fail(c, "size %lld", (long long)n);
  int d = onnx_dtype((int32_t)onnx_attr_i(c, "output_datatype", 1));
  if (d < 0) return onnx_fail(c, "output_datatype is not supported");
  double N = onnx_attr_i(c, "periodic", 1) ? (double)n : (double)n - 1;
  double *w = cg_malloc(sizeof(double) * (size_t)(n + 1));
  if (!w) return CG_ERR_NOMEM;
  for (int64_t i = 0; i < n; i++)
    w[i] = a0 - a1 * cos(2 * M_PI * (double)i / N) + a2 * cos(4 * M_PI * (double)i / N);
  cg_tensor *t = cg_cast(cg_from_data(w, CG_FLOAT64, &n, 1), (cg_dtype)d);
  free(w);
  return onnx_set(c, 0, t);
}
static cg_status op_HannWindow(onnx_ctx *c) { return window(c, 0.5, 0.5, 0); }
static cg_status op_HammingWindow(onnx_ctx *c) { return window(c, 25.0 / 46, 1 - 25.0 / 46, 0); }
static cg_status op_BlackmanWindow(onnx_ctx *c) { return window(c, 0.42, 0.5, 0.08); }

/* ---- scatters: target positions computed on the host, then gathers ---------------------- */

/* out = data with out[pos[j]] (reduction) updates[j]; the updates are read through gathers,
 * one round per duplicate of a position. */
cg_status onnx_scatter_flat(onnx_ctx *c, cg_tensor *data, cg_tensor *upd, const int64_t *pos, int64_t nupd, const char *red) {
  int64_t nd = cg_numel(data);
  cg_dtype dt = cg_dtype_of(data);
  cg_tensor *r = cg_reshape(data, &nd, 1), *uf = cg_reshape(upd, &nupd, 1);
  int64_t *src = cg_malloc(sizeof(int64_t) * (size_t)(nd + 1));
  uint8_t *has = cg_malloc((size_t)nd + 1);
  uint8_t *done = cg_calloc((size_t)nupd + 1, 1);
  cg_status st = CG_OK;
  bool none = !strcmp(red, "none");
  if (!src || !has || !done) st = CG_ERR_NOMEM;
  int64_t left = nupd;
  while (st == CG_OK && left > 0) {
    memset(has, 0, (size_t)nd);
    for (int64_t k = 0; k < nd; k++) src[k] = 0;
    for (int64_t j = 0; j < nupd; j++) {
      if (done[j]) continue;
      if (none) { /* the last write wins: take every pending one, later ones override */
        src[pos[j]] = j, has[pos[j]] = 1, done[j] = 1, left--;
      } else if (!has[pos[j]]) src[pos[j]] = j, has[pos[j]] = 1, done[j] = 1, left--;
    }
    cg_tensor *g = cg_index_select(uf, 0, onnx_i64(src, nd, 1));
    cg_tensor *m = cg_cast(cg_from_data(has, CG_UINT8, &nd, 1), CG_BOOL);
    cg_tensor *v = none ? g : !strcmp(red, "add") ? cg_add(r, g) : !strcmp(red, "mul") ? cg_mul(r, g)
                   : !strcmp(red, "max") ? cg_maximum(r, g) : !strcmp(red, "min") ? cg_minimum(r, g) : NULL;
    if (!v) {
      st = onnx_fail(c, "reduction '%s' is not supported", red);
      break;
    }
    r = cg_where(m, cg_cast(v, dt), r);
    if (!r) st = onnx_set(c, 0, NULL);
  }
  free(src);
  free(has);
  free(done);
  if (st != CG_OK) return st;
  return onnx_set(c, 0, cg_reshape(r, cg_shape(data), cg_ndim(data)));
}

int64_t *onnx_read_indices(onnx_ctx *c, int i, int64_t *n) {
  cg_tensor *t = onnx_in(c, i);
  if (!t) return NULL;
  onnx_host_read(c, i);
  *n = cg_numel(t);
  int64_t *v = cg_malloc(sizeof(int64_t) * (size_t)(*n + 1));
  cg_tensor *t64 = cg_cast(t, CG_INT64);
  if (v && (!t64 || cg_realize(t64) != CG_OK || cg_read(t64, CG_INT64, v, sizeof(int64_t) * (size_t)*n) != CG_OK)) {
    free(v);
    onnx_fail(c, "indices could not be computed: %s", cg_last_error());
    return NULL;
  }
  return v;
}

static cg_status scatter_elements(onnx_ctx *c) {
  cg_tensor *data = onnx_in(c, 0), *idx = onnx_in(c, 1), *upd = onnx_in(c, 2);
  if (!data || !idx || !upd) return cg_last_status();
  int nd = cg_ndim(data), ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  if (cg_ndim(idx) != nd || cg_ndim(upd) != nd) return onnx_fail(c, "data, indices and updates must have the same rank");
  for (int d = 0; d < nd; d++)
    if (cg_shape(idx)[d] != cg_shape(upd)[d] || cg_shape(idx)[d] > cg_shape(data)[d])
      return onnx_fail(c, "indices and updates must have one shape, within data's");
  int64_t n, *v = onnx_read_indices(c, 1, &n);
  if (!v) return cg_last_status();
  const int64_t *ds = cg_shape(data), *is = cg_shape(idx);
  for (int64_t j = 0; j < n; j++) {
    int64_t rem = j, p = 0, stride = 1;
    for (int d = nd - 1; d >= 0; d--) {
      int64_t k = rem % is[d];
      rem /= is[d];
      if (d == ax) {
        k = v[j] < 0 ? v[j] + ds[d] : v[j];
        if (k < 0 || k >= ds[d]) {
          long long bad = (long long)v[j];
          free(v);
          return onnx_fail(c, "index %lld out of range for dim %lld", bad, (long long)ds[d]);
        }
      }
      p += k * stride;
      stride *= ds[d];
    }
    v[j] = p;
  }
  char buf[16];
  cg_status st = onnx_scatter_flat(c, data, upd, v, n, onnx_attr_s(c, "reduction", "none", buf, sizeof buf));
  free(v);
  return st;
}
static cg_status op_ScatterElements(onnx_ctx *c) { return scatter_elements(c); }
static cg_status op_Scatter(onnx_ctx *c) { return scatter_elements(c); }

static cg_status op_ScatterND(onnx_ctx *c) {
  cg_tensor *data = onnx_in(c, 0), *idx = onnx_in(c, 1), *upd = onnx_in(c, 2);
  if (!data || !idx || !upd) return cg_last_status();
  int nd = cg_ndim(data), ni = cg_ndim(idx);
  if (ni < 1) return onnx_fail(c, "indices need at least 1 dim");
  int k = (int)cg_shape(idx)[ni - 1];
  if (k < 1 || k > nd) return onnx_fail(c, "indices' last dim %d must be in 1..%d", k, nd);
  const int64_t *ds = cg_shape(data);
  int64_t S = 1, T = cg_numel(idx) / k;
  for (int d = k; d < nd; d++) S *= ds[d];
  if (cg_numel(upd) != T * S) return onnx_fail(c, "updates have %lld elements, expected %lld", (long long)cg_numel(upd), (long long)(T * S));
  int64_t n, *v = onnx_read_indices(c, 1, &n);
  if (!v) return cg_last_status();
  int64_t *pos = cg_malloc(sizeof(int64_t) * (size_t)(T * S + 1));
  cg_status st = pos ? CG_OK : CG_ERR_NOMEM;
  for (int64_t t = 0; st == CG_OK && t < T; t++) {
    int64_t base = 0;
    for (int d = 0; d < k; d++) {
      int64_t i = v[t * k + d];
      if (i < 0) i += ds[d];
      if (i < 0 || i >= ds[d]) st = onnx_fail(c, "index %lld out of range for dim %lld", (long long)v[t * k + d], (long long)ds[d]);
      base = base * ds[d] + i;
    }
    for (int64_t s = 0; s < S; s++) pos[t * S + s] = base * S + s;
  }
  char buf[16];
  if (st == CG_OK) st = onnx_scatter_flat(c, data, upd, pos, T * S, onnx_attr_s(c, "reduction", "none", buf, sizeof buf));
  free(v);
  free(pos);
  return st;
}

/* ---- Einsum: every operand broadcast over all letters, multiplied, summed ------------------ */

static cg_status op_Einsum(onnx_ctx *c) {
  char eq[256];
  onnx_attr_s(c, "equation", "", eq, sizeof eq);
  char *arrow = strstr(eq, "->");
  char lhs[256], out[64] = "";
  snprintf(lhs, sizeof lhs, "%.*s", arrow ? (int)(arrow - eq) : (int)strlen(eq), eq);
  if (strchr(eq, '.')) return onnx_fail(c, "ellipsis in '%s' is not supported", eq);
  char letters[64] = "";
  int nl = 0;
  int64_t dim[64];
  char terms[16][32];
  int nt = 0;
  for (char *p = lhs, *tok; (tok = strtok(p, ",")); p = NULL) {
    if (nt == 16) return onnx_fail(c, "too many operands");
    int j = 0;
    for (char *q = tok; *q; q++)
      if (*q != ' ' && j < 31) terms[nt][j++] = *q;
    terms[nt++][j] = 0;
  }
  if (nt != c->nin) return onnx_fail(c, "equation has %d operands, the node %d inputs", nt, c->nin);
  for (int t = 0; t < nt; t++) {
    cg_tensor *x = onnx_in(c, t);
    if (!x) return cg_last_status();
    if ((int)strlen(terms[t]) != cg_ndim(x)) return onnx_fail(c, "operand %d: '%s' for %d dims", t, terms[t], cg_ndim(x));
    for (int j = 0; terms[t][j]; j++) {
      if (strchr(terms[t] + j + 1, terms[t][j])) return onnx_fail(c, "repeated index '%c' (diagonals) is not supported", terms[t][j]);
      char *at = strchr(letters, terms[t][j]);
      if (!at) {
        if (nl >= CG_MAX_DIMS) return onnx_fail(c, "more than %d distinct indices", CG_MAX_DIMS);
        letters[nl] = terms[t][j], dim[nl++] = cg_shape(x)[j], letters[nl] = 0;
      }
    }
  }
  if (arrow) {
    int j = 0;
    for (char *q = arrow + 2; *q && j < 63; q++)
      if (*q != ' ') out[j++] = *q;
    out[j] = 0;
  } else { /* implicit: letters seen once, alphabetically */
    int j = 0;
    for (char ch = 'A'; ch <= 'z'; ch++) {
      int cnt = 0;
      for (int t = 0; t < nt; t++) cnt += strchr(terms[t], ch) != NULL;
      if (cnt == 1) out[j++] = ch;
    }
    out[j] = 0;
  }
  cg_tensor *prod = NULL;
  for (int t = 0; t < nt; t++) {
    cg_tensor *x = c->in[t];
    int perm[CG_MAX_DIMS], m = 0;
    int64_t s[CG_MAX_DIMS];
    for (int l = 0; l < nl; l++) {
      char *at = strchr(terms[t], letters[l]);
      if (at) perm[m++] = (int)(at - terms[t]);
    }
    x = cg_permute(x, perm, m);
    for (int l = 0; l < nl; l++) s[l] = strchr(terms[t], letters[l]) ? dim[l] : 1;
    x = cg_reshape(x, s, nl);
    prod = prod ? cg_mul(prod, x) : x;
  }
  int red[CG_MAX_DIMS], nr = 0, perm[CG_MAX_DIMS], no = (int)strlen(out);
  for (int l = 0; l < nl; l++)
    if (!strchr(out, letters[l])) red[nr++] = l;
  cg_tensor *r = nr ? cg_sum(prod, red, nr, false) : prod;
  /* remaining letters are in `letters` order; permute to out's */
  char rem[64];
  int k = 0;
  for (int l = 0; l < nl; l++)
    if (strchr(out, letters[l])) rem[k++] = letters[l];
  for (int i = 0; i < no; i++) {
    char *at = memchr(rem, out[i], (size_t)k);
    if (!at) return onnx_fail(c, "output index '%c' is not in any operand", out[i]);
    perm[i] = (int)(at - rem);
  }
  return onnx_set(c, 0, no ? cg_permute(r, perm, no) : r);
}

const onnx_op onnx_ops_quant[] = {
#define E(n) {#n, op_##n, false},
    E(QuantizeLinear) E(DequantizeLinear) E(DynamicQuantizeLinear) E(MatMulInteger) E(QLinearMatMul) E(ConvInteger)
    E(QLinearConv) E(HannWindow) E(HammingWindow) E(BlackmanWindow) E(ScatterElements) E(Scatter) E(ScatterND) E(Einsum)
#undef E
    {NULL, NULL, false}};
