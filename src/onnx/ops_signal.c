/* Signal and text ops: DFT and STFT (as matmuls with cosine and sine matrices, so they
 * stay lazy and differentiable), TfIdfVectorizer over integer tokens (n-gram counting on
 * the host). */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* (n_out, n) cosine and sine matrices of the DFT of length n, float64 -> dt */
static void dft_mats(int64_t n, int64_t nout, bool inverse, cg_dtype dt, cg_tensor **cm, cg_tensor **sm) {
  double *cv = cg_malloc(sizeof(double) * (size_t)(n * nout + 1)), *sv = cg_malloc(sizeof(double) * (size_t)(n * nout + 1));
  *cm = *sm = NULL;
  if (cv && sv) {
    for (int64_t k = 0; k < nout; k++)
      for (int64_t t = 0; t < n; t++) {
        double a = 2 * M_PI * (double)((k * t) % n) / (double)n;
        cv[k * n + t] = cos(a) / (inverse ? (double)n : 1);
        sv[k * n + t] = (inverse ? 1 : -1) * sin(a) / (inverse ? (double)n : 1);
      }
    int64_t s[2] = {nout, n};
    *cm = cg_cast(cg_from_data(cv, CG_FLOAT64, s, 2), dt);
    *sm = cg_cast(cg_from_data(sv, CG_FLOAT64, s, 2), dt);
  }
  free(cv);
  free(sv);
}

/* xr, xi (..., n) -> (..., nout, 2): X[k] = sum_t x[t] e^(-+2 pi i k t / n) */
static cg_tensor *dft_last(cg_tensor *xr, cg_tensor *xi, int64_t n, int64_t nout, bool inverse) {
  cg_tensor *cm, *sm;
  dft_mats(n, nout, inverse, cg_dtype_of(xr), &cm, &sm);
  if (!cm || !sm) return NULL;
  cg_tensor *ct = cg_transpose(cm, 0, 1), *st = cg_transpose(sm, 0, 1);
  /* (a + ib)(c + is) = (ac - bs) + i(as + bc) */
  cg_tensor *re = cg_matmul(xr, ct), *im = cg_matmul(xr, st);
  if (xi) re = cg_sub(re, cg_matmul(xi, st)), im = cg_add(im, cg_matmul(xi, ct));
  cg_tensor *parts[2] = {re, im};
  return cg_stack(parts, 2, -1);
}

static cg_status op_DFT(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x);
  if (nd < 2 || (cg_shape(x)[nd - 1] != 1 && cg_shape(x)[nd - 1] != 2)) return onnx_fail(c, "input must be (..., 1 or 2)");
  int ax = onnx_axis(c, onnx_attr_i(c, "axis", 1), nd - 1);
  if (ax < 0) return cg_last_status();
  bool inverse = onnx_attr_i(c, "inverse", 0), onesided = onnx_attr_i(c, "onesided", 0);
  cg_tensor *xr = cg_squeeze(cg_slice(x, nd - 1, 0, 1, 1), nd - 1);
  cg_tensor *xi = cg_shape(x)[nd - 1] == 2 ? cg_squeeze(cg_slice(x, nd - 1, 1, 2, 1), nd - 1) : NULL;
  int last = nd - 2;
  if (ax != last) {
    xr = cg_transpose(xr, ax, last);
    if (xi) xi = cg_transpose(xi, ax, last);
  }
  int64_t n = cg_shape(xr)[last];
  if (c->nin > 1 && c->in[1]) {
    int64_t len;
    if (onnx_in_ints(c, 1, &len, 1) != 1 || len < 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "bad dft_length");
    int64_t pads[2 * CG_MAX_DIMS] = {0};
    if (len > n) {
      pads[2 * last + 1] = len - n;
      xr = cg_pad(xr, pads, 0);
      if (xi) xi = cg_pad(xi, pads, 0);
    } else if (len < n) {
      xr = cg_slice(xr, last, 0, len, 1);
      if (xi) xi = cg_slice(xi, last, 0, len, 1);
    }
    n = len;
  }
  cg_tensor *r = dft_last(xr, xi, n, onesided ? n / 2 + 1 : n, inverse);
  if (r && ax != last) r = cg_transpose(r, ax, last);
  return onnx_set(c, 0, r);
}

static cg_status op_STFT(onnx_ctx *c) {
  cg_tensor *sig = onnx_in(c, 0), *win = c->nin > 2 ? c->in[2] : NULL;
  if (!sig) return cg_last_status();
  if (cg_ndim(sig) != 3) return onnx_fail(c, "signal must be (batch, length, 1 or 2)");
  int64_t step, L = -1;
  if (onnx_in_ints(c, 1, &step, 1) != 1 || step < 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "bad frame_step");
  if (c->nin > 3 && c->in[3] && onnx_in_ints(c, 3, &L, 1) != 1) return cg_last_status();
  if (L < 0 && win) L = cg_numel(win);
  int64_t B = cg_shape(sig)[0], len = cg_shape(sig)[1];
  if (L < 1 || L > len) return onnx_fail(c, "frame_length %lld for a signal of %lld", (long long)L, (long long)len);
  int64_t F = (len - L) / step + 1;
  int64_t *idx = cg_malloc(sizeof(int64_t) * (size_t)(F * L + 1));
  if (!idx) return CG_ERR_NOMEM;
  for (int64_t f = 0; f < F; f++)
    for (int64_t t = 0; t < L; t++) idx[f * L + t] = f * step + t;
  cg_tensor *sr = cg_squeeze(cg_slice(sig, 2, 0, 1, 1), 2);
  cg_tensor *si = cg_shape(sig)[2] == 2 ? cg_squeeze(cg_slice(sig, 2, 1, 2, 1), 2) : NULL;
  cg_tensor *it = onnx_i64(idx, F * L, 1);
  free(idx);
  int64_t fs[3] = {B, F, L};
  cg_tensor *fr = cg_reshape(cg_index_select(sr, 1, it), fs, 3), *fi = si ? cg_reshape(cg_index_select(si, 1, it), fs, 3) : NULL;
  if (win) {
    fr = cg_mul(fr, win);
    if (fi) fi = cg_mul(fi, win);
  }
  bool onesided = onnx_attr_i(c, "onesided", 1);
  return onnx_set(c, 0, dft_last(fr, fi, L, onesided ? L / 2 + 1 : L, false));
}

/* ---- TfIdfVectorizer (integer tokens) --------------------------------------------------- */

static cg_status op_TfIdfVectorizer(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  const Onnx__AttributeProto *pool = onnx_attr(c, "pool_int64s"), *cnts = onnx_attr(c, "ngram_counts"),
                             *idxs = onnx_attr(c, "ngram_indexes");
  if (!pool || !cnts || !idxs) return onnx_fail(c, "pool_int64s, ngram_counts and ngram_indexes are required (string pools are not supported)");
  int64_t minn = onnx_attr_i(c, "min_gram_length", 1), maxn = onnx_attr_i(c, "max_gram_length", 1), skip = onnx_attr_i(c, "max_skip_count", 0);
  char mb[8];
  const char *mode = onnx_attr_s(c, "mode", "TF", mb, sizeof mb);
  const Onnx__AttributeProto *wa = onnx_attr(c, "weights");
  int nd = cg_ndim(x);
  if (nd < 1 || nd > 2 || minn < 1 || maxn < minn || maxn > (int64_t)cnts->n_ints || skip < 0) return onnx_fail(c, "bad attributes or input rank");
  int64_t rows = nd == 2 ? cg_shape(x)[0] : 1, cols = cg_shape(x)[nd - 1], width = 0, n;
  for (size_t i = 0; i < idxs->n_ints; i++) { /* computed on the host: indexes inside a bounded output */
    if (idxs->ints[i] < 0 || idxs->ints[i] >= (1 << 26)) return onnx_fail(c, "ngram_indexes[%zu] = %lld is not in [0, 2^26)", i, (long long)idxs->ints[i]);
    width = idxs->ints[i] + 1 > width ? idxs->ints[i] + 1 : width;
  }
  if (rows * width > (1 << 26)) return onnx_fail(c, "output of %lld x %lld elements", (long long)rows, (long long)width);
  if (wa && wa->n_floats != idxs->n_ints) return onnx_fail(c, "weights and ngram_indexes differ in length");
  for (int64_t gl = 1; gl <= maxn; gl++) { /* every gram length's pool slice, also those below min_gram_length */
    int64_t start = cnts->ints[gl - 1], end = gl < (int64_t)cnts->n_ints ? cnts->ints[gl] : (int64_t)pool->n_ints;
    if (start < 0 || end > (int64_t)pool->n_ints || start > end || (end - start) % gl)
      return onnx_fail(c, "ngram_counts do not split the pool into %lld-grams", (long long)gl);
  }
  int64_t *v = onnx_read_indices(c, 0, &n);
  double *out = cg_calloc((size_t)(rows * width + 1), sizeof(double));
  if (!v || !out) {
    free(v), free(out);
    return cg_last_status() ? cg_last_status() : CG_ERR_NOMEM;
  }
  if (skip > cols) skip = cols; /* a longer skip matches nothing more (and a hostile one would loop for ever) */
  for (int64_t gl = minn; gl <= maxn; gl++) {
    int64_t start = cnts->ints[gl - 1], end = gl < (int64_t)cnts->n_ints ? cnts->ints[gl] : (int64_t)pool->n_ints;
    int64_t before = 0; /* grams of shorter lengths come first in ngram_indexes */
    for (int64_t g2 = 1; g2 < gl; g2++) {
      int64_t s2 = cnts->ints[g2 - 1], e2 = g2 < (int64_t)cnts->n_ints ? cnts->ints[g2] : (int64_t)pool->n_ints;
      before += (e2 - s2) / g2;
    }
    for (int64_t r = 0; r < rows; r++)
      for (int64_t sk = 0; sk <= (gl == 1 ? 0 : skip); sk++)
        for (int64_t i = 0; i + (gl - 1) * (sk + 1) < cols; i++)
          for (int64_t p = start, k = before; p < end; p += gl, k++) {
            bool eq = true;
            for (int64_t j = 0; j < gl && eq; j++) eq = v[r * cols + i + j * (sk + 1)] == pool->ints[p + j];
            if (eq && k < (int64_t)idxs->n_ints) out[r * width + idxs->ints[k]] += 1;
          }
  }
  for (int64_t r = 0; r < rows; r++)
    for (size_t k = 0; k < idxs->n_ints; k++) {
      double *o = &out[r * width + idxs->ints[k]], w = wa ? wa->floats[k] : 1;
      if (!strcmp(mode, "IDF")) *o = *o > 0 ? w : 0;
      else if (!strcmp(mode, "TFIDF")) *o *= w;
    }
  int64_t os[2] = {rows, width};
  cg_tensor *t = cg_cast(cg_from_data(out, CG_FLOAT64, nd == 2 ? os : os + 1, nd), CG_FLOAT32);
  free(v), free(out);
  return onnx_set(c, 0, t);
}

const onnx_op onnx_ops_signal[] = {{"DFT", op_DFT, false}, {"STFT", op_STFT, false}, {"TfIdfVectorizer", op_TfIdfVectorizer, false}, {NULL, NULL, false}};
