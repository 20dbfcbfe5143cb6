/* Sequence ops (ONNX seq(tensor)): a sequence is a list of lazy tensors held by the run
 * (onnx_seq); these ops build new lists, never copy tensor data. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

static onnx_seq *seq_in(onnx_ctx *c, int i) {
  if (i < c->nin && c->sin[i]) return c->sin[i];
  onnx_fail(c, "input %d must be a sequence", i);
  return NULL;
}

static cg_tensor *same(cg_tensor *t) { return cg_reshape(t, cg_shape(t), cg_ndim(t)); }

/* pos (optional input i) normalized into [0, n + extra); dflt if absent */
static int seq_pos(onnx_ctx *c, int i, int n, int extra, int dflt, int *pos) {
  int64_t p = dflt;
  if (i < c->nin && c->in[i] && onnx_in_ints(c, i, &p, 1) != 1) return -1;
  if (p < 0) p += n;
  if (p < 0 || p >= n + extra) return onnx_fail(c, "position %lld is out of range for a sequence of %d", (long long)p, n), -1;
  *pos = (int)p;
  return 0;
}

static cg_status op_SequenceEmpty(onnx_ctx *c) {
  int d = onnx_dtype((int32_t)onnx_attr_i(c, "dtype", 1));
  onnx_seq *q = onnx_seq_new(c->rs, 0, d);
  if (!q) return CG_ERR_NOMEM;
  c->sout[0] = q;
  return CG_OK;
}

static cg_status op_SequenceConstruct(onnx_ctx *c) {
  onnx_seq *q = onnx_seq_new(c->rs, c->nin, c->nin && c->in[0] ? (int)cg_dtype_of(c->in[0]) : -1);
  if (!q) return CG_ERR_NOMEM;
  for (int i = 0; i < c->nin; i++) {
    if (!(q->items[i] = onnx_in(c, i))) return cg_last_status();
    if ((int)cg_dtype_of(q->items[i]) != q->dtype) return onnx_fail(c, "input %d has another dtype than input 0", i);
  }
  c->sout[0] = q;
  return CG_OK;
}

static cg_status op_SequenceInsert(onnx_ctx *c) {
  onnx_seq *s = seq_in(c, 0);
  cg_tensor *t = onnx_in(c, 1);
  int pos;
  if (!s || !t || seq_pos(c, 2, s->n, 1, s->n, &pos)) return cg_last_status();
  if (s->dtype >= 0 && (int)cg_dtype_of(t) != s->dtype) return onnx_fail(c, "the tensor's dtype differs from the sequence's");
  onnx_seq *q = onnx_seq_new(c->rs, s->n + 1, (int)cg_dtype_of(t));
  if (!q) return CG_ERR_NOMEM;
  for (int i = 0, k = 0; i <= s->n; i++) q->items[i] = i == pos ? t : s->items[k++];
  c->sout[0] = q;
  return CG_OK;
}

static cg_status op_SequenceErase(onnx_ctx *c) {
  onnx_seq *s = seq_in(c, 0);
  int pos;
  if (!s || seq_pos(c, 1, s->n, 0, -1, &pos)) return cg_last_status();
  onnx_seq *q = onnx_seq_new(c->rs, s->n - 1, s->dtype);
  if (!q) return CG_ERR_NOMEM;
  for (int i = 0, k = 0; i < s->n; i++)
    if (i != pos) q->items[k++] = s->items[i];
  c->sout[0] = q;
  return CG_OK;
}

static cg_status op_SequenceAt(onnx_ctx *c) {
  onnx_seq *s = seq_in(c, 0);
  int pos;
  if (!s || seq_pos(c, 1, s->n, 0, 0, &pos)) return cg_last_status();
  return onnx_set(c, 0, same(s->items[pos]));
}

static cg_status op_SequenceLength(onnx_ctx *c) {
  onnx_seq *s = seq_in(c, 0);
  if (!s) return cg_last_status();
  int64_t n = s->n;
  return onnx_set(c, 0, onnx_i64(&n, 1, 0));
}

static cg_status op_ConcatFromSequence(onnx_ctx *c) {
  onnx_seq *s = seq_in(c, 0);
  if (!s) return cg_last_status();
  if (s->n == 0) return onnx_fail(c, "the sequence is empty");
  bool newax = onnx_attr_i(c, "new_axis", 0);
  int nd = cg_ndim(s->items[0]) + (newax ? 1 : 0), ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  if (s->n == 1) return onnx_set(c, 0, newax ? cg_unsqueeze(s->items[0], ax) : same(s->items[0]));
  return onnx_set(c, 0, newax ? cg_stack(s->items, s->n, ax) : cg_cat(s->items, s->n, ax));
}

static cg_status op_SplitToSequence(onnx_ctx *c) {
  cg_tensor *x = onnx_in(c, 0);
  if (!x) return cg_last_status();
  int nd = cg_ndim(x), ax = onnx_axis(c, onnx_attr_i(c, "axis", 0), nd);
  if (ax < 0) return cg_last_status();
  int64_t len = cg_shape(x)[ax], sizes[4096];
  int n = 0;
  bool keep = onnx_attr_i(c, "keepdims", 1), given = c->nin > 1 && c->in[1];
  if (given) {
    cg_tensor *sp = c->in[1];
    if (cg_ndim(sp) == 0) {
      int64_t each;
      if (onnx_in_ints(c, 1, &each, 1) != 1 || each < 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "split must be positive");
      for (int64_t at = 0; at < len && n < 4096; at += each) sizes[n++] = at + each <= len ? each : len - at;
    } else if ((n = onnx_in_ints(c, 1, sizes, 4096)) < 0) return cg_last_status();
    keep = true;
  } else {
    if (len > 4096) return onnx_fail(c, "more than 4096 pieces");
    for (int64_t i = 0; i < len; i++) sizes[n++] = 1;
  }
  onnx_seq *q = onnx_seq_new(c->rs, n, (int)cg_dtype_of(x));
  if (!q) return CG_ERR_NOMEM;
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    if (sizes[i] < 0 || at + sizes[i] > len) return onnx_fail(c, "split sizes exceed the dim (%lld)", (long long)len);
    cg_tensor *p = cg_slice(x, ax, at, at + sizes[i], 1);
    q->items[i] = keep ? p : cg_squeeze(p, ax);
    if (!q->items[i]) return onnx_set(c, 0, NULL);
    at += sizes[i];
  }
  if (at != len) return onnx_fail(c, "split sizes sum to %lld, the dim is %lld", (long long)at, (long long)len);
  c->sout[0] = q;
  return CG_OK;
}

static cg_status op_SequenceMap(onnx_ctx *c) {
  onnx_seq *s = seq_in(c, 0);
  if (!s) return cg_last_status();
  if (c->nin > 64 || c->nout > 64) return onnx_fail(c, "too many inputs or outputs");
  for (int j = 1; j < c->nin; j++)
    if (c->sin[j] && c->sin[j]->n != s->n) return onnx_fail(c, "input %d has %d items, input 0 has %d", j, c->sin[j]->n, s->n);
  onnx_seq *outs[64];
  for (int k = 0; k < c->nout; k++)
    if (!(outs[k] = onnx_seq_new(c->rs, s->n, -1))) return CG_ERR_NOMEM;
  cg_tensor *in[64], *out[64];
  for (int i = 0; i < s->n; i++) {
    in[0] = s->items[i];
    for (int j = 1; j < c->nin; j++) in[j] = c->sin[j] ? c->sin[j]->items[i] : c->in[j];
    cg_status st = onnx_run_sub(c, "body", in, c->nin, out, c->nout);
    if (st != CG_OK) return st;
    for (int k = 0; k < c->nout; k++) outs[k]->items[i] = out[k], outs[k]->dtype = (int)cg_dtype_of(out[k]);
  }
  for (int k = 0; k < c->nout; k++) c->sout[k] = outs[k];
  return CG_OK;
}

const onnx_op onnx_ops_seq[] = {
#define E(n) {#n, op_##n, true},
    E(SequenceEmpty) E(SequenceConstruct) E(SequenceInsert) E(SequenceErase) E(SequenceAt) E(SequenceLength)
    E(ConcatFromSequence) E(SplitToSequence) E(SequenceMap)
#undef E
    {NULL, NULL, false}};
