/* RNN, GRU and LSTM, unrolled over the sequence: each step is a few matmuls and
 * elementwise ops, so the graph grows with the sequence length (fine for the lengths
 * exported models and ONNX's tests use; a long sequence wants a loop construct). */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include <stdio.h>
#include <string.h>

typedef enum { K_RNN, K_GRU, K_LSTM } rnn_kind;

static cg_tensor *act(const char *name, cg_tensor *x) {
  if (!strcmp(name, "Sigmoid")) return cg_sigmoid(x);
  if (!strcmp(name, "Tanh")) return cg_tanh(x);
  if (!strcmp(name, "Relu")) return cg_relu(x);
  return NULL;
}

/* rows [i*h, (i+1)*h) of a (G*h, ...) matrix or a (G*h,) vector */
static cg_tensor *part(cg_tensor *t, int i, int64_t h) { return t ? cg_slice(t, 0, i * h, (i + 1) * h, 1) : NULL; }
static cg_tensor *addb(cg_tensor *a, cg_tensor *b) { return b ? cg_add(a, b) : a; }

static cg_status rnn(onnx_ctx *c, rnn_kind kind) {
  cg_tensor *X = onnx_in(c, 0), *W = onnx_in(c, 1), *R = onnx_in(c, 2);
  if (!X || !W || !R) return cg_last_status();
  cg_tensor *B = c->nin > 3 ? c->in[3] : NULL, *h0 = c->nin > 5 ? c->in[5] : NULL;
  cg_tensor *c0 = kind == K_LSTM && c->nin > 6 ? c->in[6] : NULL, *P = kind == K_LSTM && c->nin > 7 ? c->in[7] : NULL;
  int64_t hs = onnx_attr_i(c, "hidden_size", 0), layout = onnx_attr_i(c, "layout", 0);
  if (cg_ndim(X) != 3 || cg_ndim(W) != 3 || cg_ndim(R) != 3) return onnx_fail(c, "X, W, R must be 3-D");
  if (layout) X = cg_transpose(X, 0, 1);
  int64_t T = cg_shape(X)[0], N = cg_shape(X)[1], G = kind == K_RNN ? 1 : kind == K_GRU ? 3 : 4;
  if (hs <= 0) hs = cg_shape(R)[2];
  if (cg_shape(W)[1] != G * hs || cg_shape(R)[1] != G * hs || cg_shape(R)[2] != hs)
    return onnx_fail(c, "W/R shapes do not match hidden_size %lld", (long long)hs);
  if (c->nin > 4 && c->in[4]) {
    int64_t lens[4096];
    int n = onnx_in_ints(c, 4, lens, 4096);
    if (n < 0) return cg_last_status();
    for (int i = 0; i < n; i++)
      if (lens[i] != T) return onnx_fail(c, "sequence_lens shorter than the sequence are not supported");
  }
  if (onnx_attr(c, "clip")) return onnx_fail(c, "clip is not supported");
  if (onnx_attr_i(c, "input_forget", 0)) return onnx_fail(c, "input_forget is not supported");
  char dbuf[24];
  const char *dir = onnx_attr_s(c, "direction", "forward", dbuf, sizeof dbuf);
  int ndir = !strcmp(dir, "bidirectional") ? 2 : 1;
  if (cg_shape(W)[0] != ndir) return onnx_fail(c, "W has %lld directions, direction '%s'", (long long)cg_shape(W)[0], dir);
  /* activations: f, g (GRU, LSTM), h (LSTM) per direction */
  const char *dflt[3] = {kind == K_RNN ? "Tanh" : "Sigmoid", "Tanh", "Tanh"};
  char names[6][24];
  const Onnx__AttributeProto *aa = onnx_attr(c, "activations");
  int na = kind == K_RNN ? 1 : kind == K_GRU ? 2 : 3;
  for (int d = 0; d < ndir; d++)
    for (int k = 0; k < na; k++) {
      size_t j = (size_t)(d * na + k);
      if (aa && j < aa->n_strings) snprintf(names[j], sizeof names[j], "%.*s", (int)aa->strings[j].len, aa->strings[j].data);
      else snprintf(names[j], sizeof names[j], "%s", dflt[k]);
      if (strcmp(names[j], "Sigmoid") && strcmp(names[j], "Tanh") && strcmp(names[j], "Relu"))
        return onnx_fail(c, "activation '%s' is not supported", names[j]);
    }
  bool lbr = onnx_attr_i(c, "linear_before_reset", 0);
  cg_tensor *ys[2], *hl[2], *cl[2];
  int64_t hshape[2] = {N, hs};
  for (int d = 0; d < ndir; d++) {
    bool rev = !strcmp(dir, "reverse") || d == 1;
    cg_tensor *w = cg_squeeze(cg_slice(W, 0, d, d + 1, 1), 0), *r = cg_squeeze(cg_slice(R, 0, d, d + 1, 1), 0);
    cg_tensor *bw = NULL, *br = NULL;
    if (B) {
      cg_tensor *b = cg_squeeze(cg_slice(B, 0, d, d + 1, 1), 0);
      bw = cg_slice(b, 0, 0, G * hs, 1), br = cg_slice(b, 0, G * hs, 2 * G * hs, 1);
    }
    cg_tensor *h = h0 ? cg_squeeze(cg_slice(h0, 0, d, d + 1, 1), 0) : cg_zeros(cg_dtype_of(X), hshape, 2);
    cg_tensor *cs = kind == K_LSTM ? (c0 ? cg_squeeze(cg_slice(c0, 0, d, d + 1, 1), 0) : cg_zeros(cg_dtype_of(X), hshape, 2)) : NULL;
    cg_tensor *p = P ? cg_squeeze(cg_slice(P, 0, d, d + 1, 1), 0) : NULL;
    const char *f = names[d * na], *g = na > 1 ? names[d * na + 1] : NULL, *hh = na > 2 ? names[d * na + 2] : NULL;
    cg_tensor *steps[4096];
    if (T > 4096) return onnx_fail(c, "sequence of %lld steps", (long long)T);
    /* input projections for all steps at once: (T, N, G*hs) */
    cg_tensor *xw = addb(cg_matmul(X, cg_transpose(w, 0, 1)), bw);
    for (int64_t s = 0; s < T; s++) {
      int64_t t = rev ? T - 1 - s : s;
      cg_tensor *xt = cg_squeeze(cg_slice(xw, 0, t, t + 1, 1), 0);
      if (kind == K_RNN) {
        h = act(f, cg_add(xt, addb(cg_matmul(h, cg_transpose(r, 0, 1)), br)));
      } else if (kind == K_GRU) {
        cg_tensor *rz = addb(cg_matmul(h, cg_transpose(part(r, 0, hs), 0, 1)), part(br, 0, hs));
        cg_tensor *rr = addb(cg_matmul(h, cg_transpose(part(r, 1, hs), 0, 1)), part(br, 1, hs));
        cg_tensor *z = act(f, cg_add(cg_slice(xt, 1, 0, hs, 1), rz));
        cg_tensor *rg = act(f, cg_add(cg_slice(xt, 1, hs, 2 * hs, 1), rr));
        cg_tensor *rh = cg_transpose(part(r, 2, hs), 0, 1), *hb = part(br, 2, hs);
        cg_tensor *cand = lbr ? cg_mul(rg, addb(cg_matmul(h, rh), hb)) : addb(cg_matmul(cg_mul(rg, h), rh), hb);
        cg_tensor *ht = act(g, cg_add(cg_slice(xt, 1, 2 * hs, 3 * hs, 1), cand));
        h = cg_add(cg_mul(cg_sub(onnx_const(1, cg_dtype_of(z)), z), ht), cg_mul(z, h));
      } else {
        cg_tensor *gates = cg_add(xt, addb(cg_matmul(h, cg_transpose(r, 0, 1)), br)); /* i o f c */
        cg_tensor *gi = cg_slice(gates, 1, 0, hs, 1), *go = cg_slice(gates, 1, hs, 2 * hs, 1);
        cg_tensor *gf = cg_slice(gates, 1, 2 * hs, 3 * hs, 1), *gc = cg_slice(gates, 1, 3 * hs, 4 * hs, 1);
        if (p) gi = cg_add(gi, cg_mul(part(p, 0, hs), cs)), gf = cg_add(gf, cg_mul(part(p, 2, hs), cs));
        cg_tensor *it = act(f, gi), *ft = act(f, gf), *ct = act(g, gc);
        cs = cg_add(cg_mul(ft, cs), cg_mul(it, ct));
        if (p) go = cg_add(go, cg_mul(part(p, 1, hs), cs));
        h = cg_mul(act(f, go), act(hh, cs));
      }
      steps[t] = h;
    }
    ys[d] = cg_stack(steps, (int)T, 0); /* (T, N, hs) */
    hl[d] = h, cl[d] = cs;
  }
  cg_tensor *Y = ndir == 2 ? cg_stack(ys, 2, 1) : cg_unsqueeze(ys[0], 1); /* (T, dirs, N, hs) */
  cg_tensor *Yh = ndir == 2 ? cg_stack(hl, 2, 0) : cg_unsqueeze(hl[0], 0);
  if (layout) {
    Y = cg_permute(Y, (int[]){2, 0, 1, 3}, 4);
    Yh = cg_transpose(Yh, 0, 1);
  }
  if (onnx_set(c, 0, Y) != CG_OK) return cg_last_status();
  if (c->nout > 1 && onnx_set(c, 1, Yh) != CG_OK) return cg_last_status();
  if (kind == K_LSTM && c->nout > 2) {
    cg_tensor *Yc = ndir == 2 ? cg_stack(cl, 2, 0) : cg_unsqueeze(cl[0], 0);
    return onnx_set(c, 2, layout ? cg_transpose(Yc, 0, 1) : Yc);
  }
  return CG_OK;
}
static cg_status op_RNN(onnx_ctx *c) { return rnn(c, K_RNN); }
static cg_status op_GRU(onnx_ctx *c) { return rnn(c, K_GRU); }
static cg_status op_LSTM(onnx_ctx *c) { return rnn(c, K_LSTM); }

const onnx_op onnx_ops_rnn[] = {{"RNN", op_RNN, false}, {"GRU", op_GRU, false}, {"LSTM", op_LSTM, false}, {NULL, NULL, false}};
