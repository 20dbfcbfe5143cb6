/* Reductions and the composites built on them: mean/var/std, arg-reductions, cumsum,
 * softmax, matmul, gather. All are REDUCE UOps over elementwise graphs. */
#include "tensor.h"
#include "codegen/codegen.h"
#include "core/config.h"
#include "custom.h"
#include <math.h>
#include <string.h>

bool norm_axes(const char *who, int ndim, const int *axes, int naxes, int *out, int *nout) {
  bool seen[UOP_MAX_DIMS] = {0};
  if (naxes < 0 || naxes > ndim) {
    cg_fail(CG_ERR_INVALID, "%s: expected 0 to %d axes for a tensor of %d dims, got %d", who, ndim, ndim, naxes);
    return false;
  }
  if (naxes > 0 && !axes) {
    cg_fail(CG_ERR_INVALID, "%s: axes is NULL (with naxes %d)", who, naxes);
    return false;
  }
  if (naxes == 0) {
    for (int i = 0; i < ndim; i++) out[i] = i;
    *nout = ndim;
    return true;
  }
  int n = 0;
  for (int i = 0; i < naxes; i++) {
    int d = axes[i] < 0 ? axes[i] + ndim : axes[i];
    if (d < 0 || d >= ndim) {
      cg_fail(CG_ERR_INVALID, "%s: axis %d is out of range for a tensor of %d dims", who, axes[i], ndim);
      return false;
    }
    if (seen[d]) {
      cg_fail(CG_ERR_INVALID, "%s: axis %d appears more than once in the axes of a tensor of %d dims", who, axes[i], ndim);
      return false;
    }
    out[n++] = d;
    seen[d] = true;
  }
  *nout = n;
  return true;
}

/* Drop the reduced axes unless keepdim. */
static uop *squeeze_axes(uop *u, const int *axes, int naxes, bool keepdim) {
  if (keepdim || !u) return u;
  bool red[UOP_MAX_DIMS] = {0};
  for (int i = 0; i < naxes; i++) red[axes[i]] = true;
  int64_t s[UOP_MAX_DIMS];
  int j = 0;
  for (int i = 0; i < u->ndim; i++)
    if (!red[i]) s[j++] = u->shape[i];
  return view_reshape(u, s, j);
}

static int64_t count_of(const uop *u, const int *axes, int naxes) {
  int64_t n = 1;
  for (int i = 0; i < naxes; i++) n *= u->shape[axes[i]];
  return n;
}

typedef enum { R_SUM, R_PROD, R_MAX, R_MIN, R_MEAN, R_ANY, R_ALL } rkind;
static const char *rname[] = {"sum", "prod", "max", "min", "mean", "any", "all"};

/* keepdim reduction of u (already cast as wanted). */
static uop *reduce_kind(rkind k, uop *u, const int *ax, int n) {
  if (!u) return NULL;
  switch (k) {
  case R_SUM: return reduce_uop(u, OP_ADD, ax, n);
  case R_PROD: return reduce_uop(u, OP_MUL, ax, n);
  case R_MAX: case R_ANY: return reduce_uop(u, OP_MAX, ax, n);
  case R_MIN:
    if (dt_is_bool(u->dt)) return ew1(OP_NEG, reduce_uop(ew1(OP_NEG, u), OP_MAX, ax, n));
    return ew1(OP_NEG, reduce_uop(ew1(OP_NEG, u), OP_MAX, ax, n));
  case R_ALL: return ew1(OP_NEG, reduce_uop(ew1(OP_NEG, u), OP_MAX, ax, n));
  case R_MEAN: {
    int64_t cnt = count_of(u, ax, n);
    uop *s = reduce_uop(u, OP_ADD, ax, n);
    return ew2(OP_MUL, s, ew_const(s, cnt ? 1.0 / (double)cnt : NAN));
  }
  }
  return NULL;
}

static cg_tensor *reduce_api(rkind k, cg_tensor *a, const int *axes, int naxes, bool keepdim) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "%s: tensor is NULL", rname[k]);
  int ax[UOP_MAX_DIMS], n;
  if (!norm_axes(rname[k], a->u->ndim, axes, naxes, ax, &n)) return NULL;
  if ((k == R_MAX || k == R_MIN) && count_of(a->u, ax, n) == 0)
    return cg_fail_null(CG_ERR_INVALID, "%s: cannot reduce over an empty dimension of shape %s", rname[k], shape_str(a->u->shape, a->u->ndim));
  op_begin();
  uop *u = a->u;
  dtype dt = u->dt;
  if ((k == R_SUM || k == R_PROD) && (dt_is_bool(dt) || dt_is_int(dt))) u = cast_to(u, dt_is_unsigned(dt) && dt_scalar_size(dt) == 8 ? dt : DT_I64);
  if ((k == R_SUM || k == R_PROD || k == R_MEAN) && dt_is_float(dt) && dt_scalar_size(dt) < 4) u = cast_to(u, DT_F32);
  if (k == R_MEAN && !dt_is_float(dt)) u = cast_to(u, DT_F32);
  if (k == R_ANY || k == R_ALL) u = cast_to(u, DT_BOOL);
  if (k == R_MIN && dt_is_unsigned(dt)) u = cast_to(u, DT_I64);
  uop *r = reduce_kind(k, u, ax, n);
  if ((k == R_SUM || k == R_PROD || k == R_MEAN) && dt_is_float(dt) && dt_scalar_size(dt) < 4) r = cast_to(r, dt);
  if (k == R_MIN && dt_is_unsigned(dt)) r = cast_to(r, dt);
  return op_end(squeeze_axes(r, ax, n, keepdim));
}

cg_tensor *cg_sum(cg_tensor *a, const int *axes, int n, bool k) { return reduce_api(R_SUM, a, axes, n, k); }
cg_tensor *cg_prod(cg_tensor *a, const int *axes, int n, bool k) { return reduce_api(R_PROD, a, axes, n, k); }
cg_tensor *cg_max(cg_tensor *a, const int *axes, int n, bool k) { return reduce_api(R_MAX, a, axes, n, k); }
cg_tensor *cg_min(cg_tensor *a, const int *axes, int n, bool k) { return reduce_api(R_MIN, a, axes, n, k); }
cg_tensor *cg_mean(cg_tensor *a, const int *axes, int n, bool k) { return reduce_api(R_MEAN, a, axes, n, k); }
cg_tensor *cg_any(cg_tensor *a, const int *axes, int n, bool k) { return reduce_api(R_ANY, a, axes, n, k); }
cg_tensor *cg_all(cg_tensor *a, const int *axes, int n, bool k) { return reduce_api(R_ALL, a, axes, n, k); }

cg_tensor *cg_var(cg_tensor *a, const int *axes, int naxes, int correction, bool keepdim) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "var: tensor is NULL");
  int ax[UOP_MAX_DIMS], n;
  if (!norm_axes("var", a->u->ndim, axes, naxes, ax, &n)) return NULL;
  op_begin();
  uop *u = dt_is_float(a->u->dt) ? a->u : cast_to(a->u, DT_F32);
  int64_t cnt = count_of(u, ax, n);
  uop *mean = reduce_kind(R_MEAN, u, ax, n);
  uop *d = ew2(OP_ADD, u, ew1(OP_NEG, view_expand(mean, u->shape, u->ndim)));
  uop *ss = reduce_uop(ew2(OP_MUL, d, d), OP_ADD, ax, n);
  double denom = (double)cnt - correction;
  uop *v = ew2(OP_MUL, ss, ew_const(ss, denom > 0 ? 1.0 / denom : (denom == 0 ? INFINITY : NAN)));
  return op_end(squeeze_axes(v, ax, n, keepdim));
}

cg_tensor *cg_std(cg_tensor *a, const int *axes, int naxes, int correction, bool keepdim) {
  cg_scope_begin();
  cg_tensor *r = cg_keep(cg_sqrt(cg_var(a, axes, naxes, correction, keepdim)));
  cg_scope_end();
  return r;
}

cg_tensor *cg_logsumexp(cg_tensor *a, const int *axes, int naxes, bool keepdim) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "logsumexp: tensor is NULL");
  int ax[UOP_MAX_DIMS], n;
  if (!norm_axes("logsumexp", a->u->ndim, axes, naxes, ax, &n)) return NULL;
  op_begin();
  uop *u = dt_is_float(a->u->dt) ? a->u : cast_to(a->u, DT_F32);
  uop *m = reduce_uop(u, OP_MAX, ax, n);
  /* a row of -inf has max -inf: shift by 0 there so the result is -inf, not NaN */
  m = uop_where(ew2(OP_CMPEQ, m, ew_const(m, -INFINITY)), ew_const(m, 0), m);
  m = uop_new1(OP_DETACH, m->dt, m, arg_none());
  uop *e = ew1(OP_EXP2, ew2(OP_MUL, ew2(OP_ADD, u, ew1(OP_NEG, view_expand(m, u->shape, u->ndim))), ew_const(u, 1.0 / M_LN2)));
  uop *s = reduce_uop(e, OP_ADD, ax, n);
  uop *r = ew2(OP_ADD, ew2(OP_MUL, ew1(OP_LOG2, s), ew_const(s, M_LN2)), m);
  return op_end(squeeze_axes(r, ax, n, keepdim));
}

/* [0, 1, ..., n-1] as int32, laid along `axis` of an ndim-d shape of 1s. */
static uop *arange_along(int64_t n, int axis, int ndim) {
  uop *b = buffer_new(DT_I32, n);
  if (!b || buffer_alloc(b) != CG_OK) return NULL;
  int32_t *p = buffer_of(b)->ptr;
  for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
  int64_t s[UOP_MAX_DIMS];
  for (int i = 0; i < ndim; i++) s[i] = i == axis ? n : 1;
  return view_reshape(b, s, ndim);
}

static cg_tensor *arg_reduce(const char *who, cg_tensor *a, int axis, bool keepdim, bool is_min) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "%s: tensor is NULL", who);
  bool ok;
  int nd = a->u->ndim, d = norm_dim(who, nd ? nd : 1, axis, &ok);
  if (!ok) return NULL;
  op_begin();
  uop *u = a->u;
  if (nd == 0) u = view_reshape(u, (int64_t[]){1}, 1), nd = 1;
  int64_t n = u->shape[d];
  if (n == 0) return cg_fail(CG_ERR_INVALID, "%s: cannot reduce over an empty dimension of shape %s", who, shape_str(u->shape, nd)), op_end(NULL);
  if (is_min) u = dt_is_bool(u->dt) ? ew1(OP_NEG, u) : ew1(OP_NEG, dt_is_unsigned(u->dt) ? cast_to(u, DT_I64) : u);
  uop *m = view_expand(reduce_uop(u, OP_MAX, &d, 1), u->shape, nd);
  uop *hit = ew2(OP_CMPEQ, u, m);
  /* first index of the max: max over (n - i) where hit, then n - that */
  uop *ar = arange_along(n, d, nd);
  uop *rev = view_expand(ew2(OP_ADD, ew1(OP_NEG, ar), ew_const(ar, (double)n)), u->shape, nd);
  uop *sel = uop_where(hit, rev, ew_const(rev, 0));
  uop *best = reduce_uop(sel, OP_MAX, &d, 1);
  uop *idx = ew2(OP_ADD, ew1(OP_NEG, best), ew_const(best, (double)n));
  return op_end(squeeze_axes(idx, &d, 1, keepdim && a->u->ndim > 0));
}

cg_tensor *cg_argmax(cg_tensor *a, int axis, bool keepdim) { return arg_reduce("argmax", a, axis, keepdim, false); }
cg_tensor *cg_argmin(cg_tensor *a, int axis, bool keepdim) { return arg_reduce("argmin", a, axis, keepdim, true); }

cg_tensor *cg_cumsum(cg_tensor *a, int axis) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "cumsum: tensor is NULL");
  bool ok;
  int nd = a->u->ndim, d = norm_dim("cumsum", nd ? nd : 1, axis, &ok);
  if (!ok) return NULL;
  if (nd + 1 > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "cumsum: too many dims");
  op_begin();
  uop *u = a->u;
  if (nd == 0) u = view_reshape(u, (int64_t[]){1}, 1), nd = 1;
  if (dt_is_bool(u->dt) || dt_is_int(u->dt)) u = cast_to(u, DT_I64);
  int64_t n = u->shape[d];
  /* out[..., i, ...] = sum_j x[..., j, ...] * (j <= i): x gets a new axis for i after d */
  int64_t s1[UOP_MAX_DIMS], s2[UOP_MAX_DIMS];
  for (int i = 0, j = 0; i <= nd; i++) {
    s1[i] = i == d + 1 ? 1 : u->shape[j];
    s2[i] = i == d + 1 ? n : u->shape[j];
    if (i != d + 1) j++;
  }
  uop *x = view_expand(view_reshape(u, s1, nd + 1), s2, nd + 1);
  uop *jj = view_expand(arange_along(n, d, nd + 1), s2, nd + 1);
  uop *ii = view_expand(arange_along(n, d + 1, nd + 1), s2, nd + 1);
  uop *keep = ew1(OP_NEG, ew2(OP_CMPLT, ii, jj));
  uop *r = reduce_uop(uop_where(keep, x, ew_const(x, 0)), OP_ADD, &d, 1);
  int64_t out[UOP_MAX_DIMS];
  for (int i = 0, j = 0; i <= nd; i++)
    if (i != d) out[j++] = r->shape[i];
  r = view_reshape(r, out, nd);
  if (a->u->ndim == 0) r = view_reshape(r, NULL, 0);
  return op_end(r);
}

static cg_tensor *softmax_impl(cg_tensor *a, int axis, bool log) {
  const char *who = log ? "log_softmax" : "softmax";
  if (!a) return cg_fail_null(CG_NULL_INPUT, "%s: tensor is NULL", who);
  bool ok;
  int nd = a->u->ndim, d = norm_dim(who, nd ? nd : 1, axis, &ok);
  if (!ok) return NULL;
  op_begin();
  uop *u = dt_is_float(a->u->dt) ? a->u : cast_to(a->u, DT_F32);
  if (nd == 0) u = view_reshape(u, (int64_t[]){1}, 1);
  uop *m = uop_new1(OP_DETACH, u->dt, reduce_uop(u, OP_MAX, &d, 1), arg_none());
  uop *x = ew2(OP_ADD, u, ew1(OP_NEG, view_expand(m, u->shape, u->ndim)));
  uop *e = ew1(OP_EXP2, ew2(OP_MUL, x, ew_const(x, 1.0 / M_LN2)));
  uop *s = reduce_uop(e, OP_ADD, &d, 1);
  uop *r;
  if (log) r = ew2(OP_ADD, x, ew1(OP_NEG, view_expand(ew2(OP_MUL, ew1(OP_LOG2, s), ew_const(s, M_LN2)), u->shape, u->ndim)));
  else r = ew2(OP_MUL, e, view_expand(ew1(OP_RECIPROCAL, s), u->shape, u->ndim));
  if (nd == 0) r = view_reshape(r, NULL, 0);
  return op_end(r);
}
cg_tensor *cg_softmax(cg_tensor *a, int axis) { return softmax_impl(a, axis, false); }
cg_tensor *cg_log_softmax(cg_tensor *a, int axis) { return softmax_impl(a, axis, true); }

/* ---- matmul ------------------------------------------------------------------------ */

/* The layout step (BLAS's packing): b (..., k, m) copied once into panels of w columns,
 * (..., m'/w, k, w) with m' = m rounded up to w and zeros in the pad, then viewed back as
 * (..., k, m). The GEMM kernel then reads each k-step of a register tile's columns from
 * one contiguous panel instead of a row of stride m (at m = 1024, 2048 those rows alias in
 * the caches, and a transposed b would be gathered). The copy is its own kernel (the
 * CONTIGUOUS), O(k m) against the GEMM's O(n k m); codegen decides w (opt_gemm_pack). */
static uop *pack_panels(uop *b, int64_t w) {
  int nd = b->ndim;
  int64_t k = b->shape[nd - 2], m = b->shape[nd - 1], mp = (m + w - 1) / w * w;
  int64_t pads[2 * UOP_MAX_DIMS] = {0}, sh[UOP_MAX_DIMS], perm[UOP_MAX_DIMS], box[2 * UOP_MAX_DIMS];
  pads[2 * (nd - 1) + 1] = mp - m;
  uop *p = mp != m ? view_pad(b, pads) : b;
  for (int i = 0; i < nd - 2; i++) sh[i] = b->shape[i], perm[i] = i;
  sh[nd - 2] = k, sh[nd - 1] = mp / w, sh[nd] = w;
  perm[nd - 2] = nd - 1, perm[nd - 1] = nd - 2, perm[nd] = nd; /* (..., m'/w, k, w) and back */
  p = view_reshape(p, sh, nd + 1);
  p = uop_new1(OP_CONTIGUOUS, p->dt, view_permute(p, perm), arg_none());
  p = view_permute(p, perm);
  sh[nd - 1] = mp;
  p = view_reshape(p, sh, nd);
  if (mp == m) return p;
  for (int i = 0; i < nd; i++) box[2 * i] = 0, box[2 * i + 1] = b->shape[i];
  return view_shrink(p, box);
}

/* x with its last two axes swapped (a view) */
static uop *swap_last2(uop *x) {
  if (!x) return NULL; /* out of memory building it: the rule's caller fails */
  int64_t perm[UOP_MAX_DIMS];
  for (int i = 0; i < x->ndim; i++) perm[i] = i;
  perm[x->ndim - 2] = x->ndim - 1, perm[x->ndim - 1] = x->ndim - 2;
  return view_permute(x, perm);
}

/* The product's graph for operands already checked: a (..., n, k), b (..., k, m) (va/vb:
 * a 1-d operand made 2-d, whose axis the result drops), batch the broadcast batch dims. */
static uop *matmul_graph(uop *a, uop *b, bool va, bool vb, const int64_t *batch, int nb) {
  int64_t n = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], m = b->shape[b->ndim - 1];
  int ba = a->ndim - 2, bb = b->ndim - 2;
  dtype dt = promote(a->dt, b->dt);
  a = cast_to(a, dt), b = cast_to(b, dt);
  bool bt = b->op == OP_PERMUTE && b->arg.v[b->ndim - 1] != b->ndim - 1; /* columns strided */
  int64_t pw = opt_gemm_pack(n, k, m, bt, dt);
  /* float32 of bf16 values (autocast): the bf16 values are packed and cast after, so the
   * copy moves half the bytes and the GEMM still reads bf16 operands (the TC opt) */
  if (pw && b->op == OP_CAST && b->src[0]->dt.scalar == CG_BFLOAT16 && b->src[0]->dt.count <= 1) b = cast_to(pack_panels(b->src[0], pw), dt);
  else if (pw) b = pack_panels(b, pw);
  /* a transposed a (a weight gradient's g^T): its k steps are rows of g, far apart in
   * memory and aliasing in the caches; packed into panels of the register tile's rows,
   * (..., n'/r, k, r), each k step of a row tile reads r contiguous values */
  bool at = a->op == OP_PERMUTE && a->arg.v[a->ndim - 1] != a->ndim - 1;
  int64_t pr = at ? opt_gemm_pack_a(n, k, m, dt) : 0;
  if (pr) a = swap_last2(pack_panels(swap_last2(a), pr));
  /* a: (..., n, 1, k)  b: (..., 1, m, k)  -> mul -> sum over k */
  int64_t sa[UOP_MAX_DIMS], sb[UOP_MAX_DIMS], full[UOP_MAX_DIMS];
  for (int i = 0; i < nb; i++) full[i] = batch[i];
  full[nb] = n, full[nb + 1] = m, full[nb + 2] = k;
  int64_t perm[UOP_MAX_DIMS];
  for (int i = 0; i < b->ndim; i++) perm[i] = i;
  perm[b->ndim - 2] = b->ndim - 1, perm[b->ndim - 1] = b->ndim - 2;
  b = view_permute(b, perm); /* (..., m, k) */
  for (int i = 0; i < ba; i++) sa[i] = a->shape[i];
  sa[ba] = n, sa[ba + 1] = 1, sa[ba + 2] = k;
  for (int i = 0; i < bb; i++) sb[i] = b->shape[i];
  sb[bb] = 1, sb[bb + 1] = m, sb[bb + 2] = k;
  a = view_broadcast(view_reshape(a, sa, ba + 3), full, nb + 3);
  b = view_broadcast(view_reshape(b, sb, bb + 3), full, nb + 3);
  int ax = nb + 2;
  uop *r = reduce_uop(ew2(OP_MUL, a, b), OP_ADD, &ax, 1);
  if (k == 1 || k == 0) r = k ? r : const_full(dt, 0, r->shape, r->ndim);
  /* drop the reduced axis and the promoted 1-d axes */
  int64_t out[UOP_MAX_DIMS];
  int no = 0;
  for (int i = 0; i < nb; i++) out[no++] = batch[i];
  if (!va) out[no++] = n;
  if (!vb) out[no++] = m;
  return view_reshape(r, out, no);
}

/* a @ b for a (..., n, k) and b with a's batch dims or none (k, m) */
static uop *matmul_same_batch(uop *a, uop *b) { return a && b ? matmul_graph(a, b, false, false, a->shape, a->ndim - 2) : NULL; }

/* The GEMMs' layouts in the backward: dA = g @ B^T and dB = A^T @ g as products of their
 * own (matmul_graph: B^T is read in packed panels where opt_gemm_pack says so, and the
 * heuristic sees a GEMM), instead of the derivative of the forward's broadcast-multiply-sum
 * (reductions over the forward's packed panels, read across them: a GPT's dx = dh @ W_fc
 * ran at ~1/10 of the GEMM's speed). A 2-d B under a batched A (a linear layer) gets
 * dB = A'^T @ g' over the flattened batch rows. */
static void matmul_backward(uop *node, uop *g, uop **d) {
  uop *a = node->src[1], *b = node->src[2];
  d[1] = matmul_same_batch(g, swap_last2(b));
  if (b->ndim == 2) {
    int64_t rows = 1;
    for (int i = 0; i < a->ndim - 1; i++) rows *= a->shape[i];
    uop *a2 = view_reshape(a, (int64_t[]){rows, a->shape[a->ndim - 1]}, 2), *g2 = view_reshape(g, (int64_t[]){rows, g->shape[g->ndim - 1]}, 2);
    /* b = w.T (x @ w.T, a linear layer): dB^T = g^T @ A, so w's gradient is a product
     * stored in w's layout (the optimizer reads it along its rows, not gathered) */
    bool wt = b->op == OP_PERMUTE && b->arg.v[0] == 1;
    d[2] = wt ? swap_last2(matmul_same_batch(swap_last2(g2), a2)) : matmul_same_batch(swap_last2(a2), g2);
  } else d[2] = matmul_same_batch(swap_last2(a), g);
}
static const custom_kind MATMUL = {"matmul", matmul_backward, false};
/* whether the custom backward covers a @ b: both at least 2-d, one float dtype, b's batch
 * dims none or a's (other products keep the derivative of their forward graph) */
static bool matmul_custom_grad(const uop *a, const uop *b) {
  if (a->ndim < 2 || b->ndim < 2 || a->dt.scalar != b->dt.scalar || a->dt.count > 1 || !dt_is_float(a->dt) || a->shape[a->ndim - 1] < 1) return false;
  if (b->ndim == 2) return true;
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim - 2; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

cg_tensor *cg_matmul(cg_tensor *ta, cg_tensor *tb) {
  if (!ta || !tb) return cg_fail_null(CG_NULL_INPUT, "matmul: an operand is NULL");
  uop *a = ta->u, *b = tb->u;
  if (a->ndim == 0 || b->ndim == 0) return cg_fail_null(CG_ERR_INVALID, "matmul: expected tensors of at least 1 dim, got %s and %s", shape_str(a->shape, a->ndim), shape_str(b->shape, b->ndim));
  if (!tensor_check_devices("matmul", (cg_tensor *[]){ta, tb}, 2)) return NULL;
  op_begin();
  bool va = a->ndim == 1, vb = b->ndim == 1;
  if (va) a = view_reshape(a, (int64_t[]){1, a->shape[0]}, 2);
  if (vb) b = view_reshape(b, (int64_t[]){b->shape[0], 1}, 2);
  int64_t k = a->shape[a->ndim - 1], k2 = b->shape[b->ndim - 2];
  if (k != k2) {
    cg_fail(CG_ERR_INVALID, "matmul: inner dimensions differ: %s @ %s (%lld != %lld)", shape_str(ta->u->shape, ta->u->ndim),
            shape_str(tb->u->shape, tb->u->ndim), (long long)k, (long long)k2);
    return op_end(NULL);
  }
  /* batch dims broadcast */
  int ba = a->ndim - 2, bb = b->ndim - 2, nb = ba > bb ? ba : bb;
  int64_t batch[UOP_MAX_DIMS];
  for (int i = 0; i < nb; i++) {
    int ia = i - (nb - ba), ib = i - (nb - bb);
    int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      cg_fail(CG_ERR_INVALID, "matmul: cannot broadcast batch dims of %s and %s", shape_str(ta->u->shape, ta->u->ndim), shape_str(tb->u->shape, tb->u->ndim));
      return op_end(NULL);
    }
    batch[i] = da == 1 ? db : da;
  }
  if (nb + 3 > CG_MAX_DIMS) return cg_fail(CG_ERR_INVALID, "matmul: too many batch dims"), op_end(NULL);
  uop *r = matmul_graph(a, b, va, vb, batch, nb);
  if (r && matmul_custom_grad(ta->u, tb->u) && cfg_int("CG_MATMUL_GRAD", 1)) r = custom_node(&MATMUL, r, (uop *[]){ta->u, tb->u}, 2, NULL, 0);
  return op_end(r);
}

cg_tensor *cg_dot(cg_tensor *a, cg_tensor *b) {
  if (!a || !b) return cg_fail_null(CG_NULL_INPUT, "dot: an operand is NULL");
  if (a->u->ndim != 1 || b->u->ndim != 1)
    return cg_fail_null(CG_ERR_INVALID, "dot: expected two 1-d tensors, got %s and %s", shape_str(a->u->shape, a->u->ndim), shape_str(b->u->shape, b->u->ndim));
  return cg_matmul(a, b);
}

/* ---- gather ------------------------------------------------------------------------ */

/* out[p] = a[p with p[dim] = index[p]], by a one-hot sum over a new last axis. */
static uop *gather_uop(uop *a, int d, uop *index) {
  int nd = a->ndim;
  int64_t n = a->shape[d];
  /* a restricted to index's extent on other dims, dim d moved to a new last axis */
  int64_t box[2 * UOP_MAX_DIMS] = {0}, full[UOP_MAX_DIMS + 1], perm[UOP_MAX_DIMS + 1];
  for (int i = 0; i < nd; i++) box[2 * i] = 0, box[2 * i + 1] = i == d ? n : index->shape[i];
  uop *x = view_shrink(a, box);
  for (int i = 0; i < nd; i++) full[i] = index->shape[i];
  full[nd] = n;
  /* x (.., n at d, ..) -> (.., 1 at d, .., n last) */
  for (int i = 0; i < nd; i++) perm[i] = i;
  int64_t xs[UOP_MAX_DIMS + 1];
  for (int i = 0; i < nd; i++) xs[i] = x->shape[i];
  xs[nd] = 1;
  x = view_reshape(x, xs, nd + 1);
  perm[d] = nd, perm[nd] = d;
  x = view_permute(x, perm);
  x = view_expand(x, full, nd + 1);
  int64_t is[UOP_MAX_DIMS + 1];
  for (int i = 0; i < nd; i++) is[i] = index->shape[i];
  is[nd] = 1;
  uop *idx = view_expand(view_reshape(cast_to(index, DT_I32), is, nd + 1), full, nd + 1);
  uop *ar = view_expand(arange_along(n, nd, nd + 1), full, nd + 1);
  uop *hot = ew2(OP_CMPEQ, idx, ar);
  int ax = nd;
  uop *zero = ew_const(x, 0);
  uop *r = reduce_uop(uop_where(hot, x, zero), dt_is_bool(x->dt) ? OP_MAX : OP_ADD, &ax, 1);
  return view_reshape(r, index->shape, nd);
}

cg_tensor *cg_gather(cg_tensor *a, int dim, cg_tensor *index) {
  if (!a || !index) return cg_fail_null(CG_NULL_INPUT, "gather: an operand is NULL");
  bool ok;
  int nd = a->u->ndim, d = norm_dim("gather", nd, dim, &ok);
  if (!ok) return NULL;
  if (!dt_is_int(index->u->dt)) return cg_fail_null(CG_ERR_INVALID, "gather: index must be an integer tensor, got %s", dt_name(index->u->dt));
  if (index->u->ndim != nd) return cg_fail_null(CG_ERR_INVALID, "gather: index %s must have as many dims as input %s", shape_str(index->u->shape, index->u->ndim), shape_str(a->u->shape, nd));
  for (int i = 0; i < nd; i++)
    if (i != d && index->u->shape[i] > a->u->shape[i])
      return cg_fail_null(CG_ERR_INVALID, "gather: index %s is larger than input %s outside dim %d", shape_str(index->u->shape, nd), shape_str(a->u->shape, nd), d);
  if (nd + 1 > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "gather: too many dims");
  op_begin();
  return op_end(gather_uop(a->u, d, index->u));
}

/* index_select of rows (an embedding lookup): the gradient of the table is the product
 * onehot^T @ g, (num, N) @ (N, dim), with the one-hot realized, so the GEMM recipe runs it;
 * the derivative of the one-hot reduce was a reduction over N reading g across its rows
 * (gathers): ~1 GFLOP/s, 0.2 s of a GPT step for a 114 x 384 table. Only where the one-hot
 * is small (below 2^24 elements); larger tables keep the derivative. */
static void index_rows_backward(uop *node, uop *g, uop **d) {
  uop *a = node->src[1], *ix = node->src[2];
  int64_t n = ix->shape[0], num = a->shape[0], full[2] = {n, num};
  uop *col = view_expand(view_reshape(cast_to(ix, DT_I32), (int64_t[]){n, 1}, 2), full, 2), *ar = arange_along(num, 1, 2);
  if (!col || !ar) return;
  uop *hot = uop_new1(OP_CONTIGUOUS, a->dt, cast_to(ew2(OP_CMPEQ, col, view_expand(ar, full, 2)), a->dt), arg_none());
  d[1] = matmul_same_batch(swap_last2(hot), g);
}
static const custom_kind INDEX_ROWS = {"index_select_rows", index_rows_backward, false};

cg_tensor *cg_index_select(cg_tensor *a, int dim, cg_tensor *index) {
  if (!a || !index) return cg_fail_null(CG_NULL_INPUT, "index_select: an operand is NULL");
  bool ok;
  int nd = a->u->ndim, d = norm_dim("index_select", nd, dim, &ok);
  if (!ok) return NULL;
  if (index->u->ndim != 1 || !dt_is_int(index->u->dt))
    return cg_fail_null(CG_ERR_INVALID, "index_select: index must be a 1-d integer tensor, got %s %s", dt_name(index->u->dt), shape_str(index->u->shape, index->u->ndim));
  if (nd + 1 > CG_MAX_DIMS) return cg_fail_null(CG_ERR_INVALID, "index_select: too many dims");
  op_begin();
  int64_t s[UOP_MAX_DIMS], full[UOP_MAX_DIMS];
  for (int i = 0; i < nd; i++) s[i] = i == d ? index->u->shape[0] : 1, full[i] = i == d ? index->u->shape[0] : a->u->shape[i];
  uop *idx = view_expand(view_reshape(index->u, s, nd), full, nd);
  uop *r = gather_uop(a->u, d, idx);
  if (r && d == 0 && nd == 2 && dt_is_float(a->u->dt) && a->u->dt.count <= 1 && index->u->shape[0] * a->u->shape[0] < ((int64_t)1 << 24))
    r = custom_node(&INDEX_ROWS, r, (uop *[]){a->u, index->u}, 2, NULL, 0);
  return op_end(r);
}
