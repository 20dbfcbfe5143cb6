/* Control flow: If, Loop, Scan. Conditions and trip counts are read on the host; each
 * iteration runs the body subgraph, which builds lazy tensors like any other node. Loop
 * state is realized after every iteration so that graphs do not grow with the count. */
#include "onnx/onnx.h"
#include "onnx/ops.h"
#include "core/config.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

/* A hostile endless loop fails instead of spinning: at most ONNX_MAX_ITERS iterations of a
 * Loop or Scan (default 100000; the fuzzer lowers it so one input cannot take minutes). */
#define MAX_ITERS cfg_int("ONNX_MAX_ITERS", 100000)
#define MAX_VALS 64

static cg_status read_bool(onnx_ctx *c, cg_tensor *t, const char *what, bool *out) {
  uint8_t v = 0;
  c->rs->value_read = true; /* a branch on a value: never replayed */
  cg_tensor *b = t && cg_numel(t) == 1 ? cg_cast(t, CG_BOOL) : NULL;
  if (!b || cg_realize(b) != CG_OK || cg_read(b, CG_BOOL, &v, 1) != CG_OK)
    return onnx_fail(c, "%s must be one boolean%s%s", what, cg_last_error()[0] ? ": " : "", cg_last_error());
  *out = v;
  return CG_OK;
}

static cg_status op_If(onnx_ctx *c) {
  bool cond;
  cg_tensor *ct = onnx_in(c, 0);
  if (!ct || read_bool(c, ct, "cond", &cond) != CG_OK) return cg_last_status();
  cg_tensor *outs[MAX_VALS];
  onnx_seq *souts[MAX_VALS];
  if (c->nout > MAX_VALS) return onnx_fail(c, "too many outputs");
  cg_status st = onnx_run_sub_v(c, cond ? "then_branch" : "else_branch", NULL, NULL, 0, outs, souts, c->nout);
  for (int i = 0; i < c->nout && st == CG_OK; i++) {
    if (souts[i]) c->sout[i] = souts[i];
    else st = onnx_set(c, i, cg_reshape(outs[i], cg_shape(outs[i]), cg_ndim(outs[i])));
  }
  return st;
}

static cg_status op_Loop(onnx_ctx *c) {
  int64_t trip = -1;
  if (c->nin > 0 && c->in[0] && onnx_in_ints(c, 0, &trip, 1) != 1) return cg_last_status() ? cg_last_status() : onnx_fail(c, "M must be a scalar");
  bool cond = true;
  if (c->nin > 1 && c->in[1] && read_bool(c, c->in[1], "cond", &cond) != CG_OK) return cg_last_status();
  int nc = c->nin - 2, nscan = c->nout - nc;
  if (nc < 0 || nscan < 0 || nc + 2 > MAX_VALS || c->nout > MAX_VALS) return onnx_fail(c, "inputs and outputs do not match");
  cg_tensor *carried[MAX_VALS], *in[MAX_VALS], *out[MAX_VALS], *real[MAX_VALS];
  onnx_seq *scar[MAX_VALS], *sin[MAX_VALS], *sout[MAX_VALS];
  for (int k = 0; k < nc; k++) {
    scar[k] = c->sin[2 + k];
    if (!scar[k] && !(carried[k] = onnx_in(c, 2 + k))) return cg_last_status();
    if (scar[k]) carried[k] = NULL;
  }
  cg_tensor ***scans = cg_calloc((size_t)nscan + 1, sizeof *scans);
  int64_t n = 0, cap = 0;
  cg_status st = scans ? CG_OK : CG_ERR_NOMEM;
  for (int64_t it = 0; st == CG_OK && cond && (trip < 0 || it < trip); it++) {
    if (it >= MAX_ITERS) {
      st = onnx_fail(c, "more than %ld iterations (ONNX_MAX_ITERS)", MAX_ITERS);
      break;
    }
    uint8_t cv = 1;
    in[0] = onnx_i64(&it, 1, 0);
    in[1] = cg_from_data(&cv, CG_BOOL, NULL, 0);
    sin[0] = sin[1] = NULL;
    for (int k = 0; k < nc; k++) in[2 + k] = carried[k], sin[2 + k] = scar[k];
    if ((st = onnx_run_sub_v(c, "body", in, sin, nc + 2, out, sout, 1 + nc + nscan)) != CG_OK) break;
    if (sout[0] || (st = read_bool(c, out[0], "the body's cond output", &cond)) != CG_OK) {
      if (st == CG_OK) st = onnx_fail(c, "the body's cond output is a sequence");
      break;
    }
    int nr = 0;
    for (int k = 0; k < nc; k++) {
      carried[k] = out[1 + k], scar[k] = sout[1 + k];
      if (carried[k]) real[nr++] = carried[k];
    }
    for (int s = 0; s < nscan && st == CG_OK; s++)
      if (sout[1 + nc + s]) st = onnx_fail(c, "scan output %d is a sequence", s);
    if (st != CG_OK || (st = cg_realize_many(real, nr)) != CG_OK) break;
    if (n == cap) {
      cap = cap ? 2 * cap : 16;
      for (int s = 0; s < nscan && st == CG_OK; s++) {
        cg_tensor **g = cg_realloc(scans[s], sizeof(cg_tensor *) * (size_t)cap);
        if (!g) st = CG_ERR_NOMEM;
        else scans[s] = g;
      }
      if (st != CG_OK) break;
    }
    for (int s = 0; s < nscan; s++) scans[s][n] = out[1 + nc + s];
    n++;
  }
  for (int k = 0; k < nc && st == CG_OK; k++) {
    if (scar[k]) c->sout[k] = scar[k];
    else st = onnx_set(c, k, cg_reshape(carried[k], cg_shape(carried[k]), cg_ndim(carried[k])));
  }
  for (int s = 0; s < nscan && st == CG_OK; s++) {
    if (n == 0) st = onnx_fail(c, "scan output %d of a loop that ran no iteration has no known shape", s);
    else st = onnx_set(c, nc + s, n > (int64_t)1 << 30 ? NULL : cg_stack(scans[s], (int)n, 0));
  }
  for (int s = 0; scans && s < nscan; s++) free(scans[s]);
  free(scans);
  return st;
}

/* One Scan over state[0..ns) and scan inputs xs[0..nx) along their axes; results in res. */
static cg_status scan_once(onnx_ctx *c, cg_tensor **state, int ns, cg_tensor **xs, int nx, const int64_t *in_ax, const int64_t *in_dir,
                           const int64_t *out_ax, const int64_t *out_dir, int nso, cg_tensor **res) {
  int64_t T = -1;
  for (int j = 0; j < nx; j++) {
    int64_t len = cg_shape(xs[j])[in_ax[j]];
    if (T >= 0 && len != T) return onnx_fail(c, "scan inputs differ in length (%lld and %lld)", (long long)T, (long long)len);
    T = len;
  }
  if (T < 0 || T > MAX_ITERS) return onnx_fail(c, "scan length %lld (at most ONNX_MAX_ITERS = %ld)", (long long)T, MAX_ITERS);
  cg_tensor *in[MAX_VALS], *out[MAX_VALS], *st_[MAX_VALS];
  cg_tensor **outs = cg_calloc((size_t)(nso * T + 1), sizeof *outs);
  if (!outs) return CG_ERR_NOMEM;
  for (int k = 0; k < ns; k++) st_[k] = state[k];
  cg_status st = CG_OK;
  for (int64_t t = 0; t < T && st == CG_OK; t++) {
    for (int k = 0; k < ns; k++) in[k] = st_[k];
    for (int j = 0; j < nx; j++) {
      int64_t at = in_dir[j] ? T - 1 - t : t;
      in[ns + j] = cg_squeeze(cg_slice(xs[j], (int)in_ax[j], at, at + 1, 1), (int)in_ax[j]);
    }
    if ((st = onnx_run_sub(c, "body", in, ns + nx, out, ns + nso)) != CG_OK) break;
    for (int k = 0; k < ns; k++) st_[k] = out[k];
    for (int k = 0; k < nso; k++) outs[k * T + t] = out[ns + k];
  }
  for (int k = 0; k < ns && st == CG_OK; k++) res[k] = st_[k];
  for (int k = 0; k < nso && st == CG_OK; k++) {
    if (out_dir[k]) /* reverse: the last iteration's value first */
      for (int64_t a = 0, b = T - 1; a < b; a++, b--) {
        cg_tensor *tmp = outs[k * T + a];
        outs[k * T + a] = outs[k * T + b], outs[k * T + b] = tmp;
      }
    if (T == 0) st = onnx_fail(c, "scan of length 0");
    else if (!(res[ns + k] = cg_stack(outs + k * T, (int)T, (int)out_ax[k]))) st = cg_last_status();
  }
  free(outs);
  return st;
}

static int axes_attr(onnx_ctx *c, const char *name, int64_t *v, int n) {
  int got = onnx_attr_ints(c, name, v, MAX_VALS);
  if (got < -1) return -1;
  if (got < 0)
    for (int i = 0; i < n; i++) v[i] = 0;
  else if (got != n) return onnx_fail(c, "%s has %d entries, expected %d", name, got, n), -1;
  return 0;
}

static cg_status op_Scan(onnx_ctx *c) {
  int nx = (int)onnx_attr_i(c, "num_scan_inputs", 0);
  bool v8 = c->opset < 9; /* opset 8: a sequence_lens input first and a batch dim on everything */
  int first = v8 ? 1 : 0, ns = c->nin - first - nx, nso = c->nout - ns;
  if (nx < 1 || ns < 0 || nso < 0 || c->nin > MAX_VALS || c->nout > MAX_VALS) return onnx_fail(c, "inputs and outputs do not match num_scan_inputs");
  if (v8 && c->in[0]) return onnx_fail(c, "sequence_lens is not supported");
  int64_t in_ax[MAX_VALS], in_dir[MAX_VALS], out_ax[MAX_VALS], out_dir[MAX_VALS];
  if (axes_attr(c, v8 ? "scan_input_axes_" : "scan_input_axes", in_ax, nx) || axes_attr(c, v8 ? "directions" : "scan_input_directions", in_dir, nx) ||
      axes_attr(c, "scan_output_axes", out_ax, nso) || axes_attr(c, "scan_output_directions", out_dir, nso))
    return cg_last_status();
  cg_tensor *state[MAX_VALS], *xs[MAX_VALS], *res[MAX_VALS];
  for (int k = 0; k < ns; k++)
    if (!(state[k] = onnx_in(c, first + k))) return cg_last_status();
  for (int j = 0; j < nx; j++) {
    if (!(xs[j] = onnx_in(c, first + ns + j))) return cg_last_status();
    int nd = cg_ndim(xs[j]) - (v8 ? 1 : 0);
    int a = onnx_axis(c, in_ax[j], nd);
    if (a < 0) return cg_last_status();
    in_ax[j] = a;
  }
  for (int k = 0; k < nso; k++) {
    /* the output's rank is the body output's + 1; checked by cg_stack */
    if (out_ax[k] < 0) return onnx_fail(c, "negative scan_output_axes are not supported");
  }
  if (!v8) {
    cg_status st = scan_once(c, state, ns, xs, nx, in_ax, in_dir, out_ax, out_dir, nso, res);
    for (int k = 0; k < ns + nso && st == CG_OK; k++) st = onnx_set(c, k, res[k]);
    return st;
  }
  /* opset 8: per batch element, then stacked */
  int64_t B = ns ? cg_shape(state[0])[0] : cg_shape(xs[0])[0];
  cg_tensor **per = cg_calloc((size_t)((ns + nso) * B + 1), sizeof *per);
  if (!per) return CG_ERR_NOMEM;
  cg_status st = CG_OK;
  for (int64_t b = 0; b < B && st == CG_OK; b++) {
    cg_tensor *sb[MAX_VALS], *xb[MAX_VALS];
    for (int k = 0; k < ns; k++) sb[k] = cg_squeeze(cg_slice(state[k], 0, b, b + 1, 1), 0);
    for (int j = 0; j < nx; j++) xb[j] = cg_squeeze(cg_slice(xs[j], 0, b, b + 1, 1), 0);
    st = scan_once(c, sb, ns, xb, nx, in_ax, in_dir, out_ax, out_dir, nso, res);
    for (int k = 0; k < ns + nso && st == CG_OK; k++) per[k * B + b] = res[k];
  }
  for (int k = 0; k < ns + nso && st == CG_OK; k++) st = onnx_set(c, k, cg_stack(per + k * B, (int)B, 0));
  free(per);
  return st;
}

const onnx_op onnx_ops_control[] = {{"If", op_If, true}, {"Loop", op_Loop, true}, {"Scan", op_Scan, false}, {NULL, NULL, false}};
