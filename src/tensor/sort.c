/* sort and topk by ranks: along the sorted dim (n long), element i's rank is the number of
 * elements that come before it, rank_i = sum_j before(x_j, x_i) (ties broken by index, so
 * the order is stable), and output position r takes the element whose rank is r. Both
 * steps are one fused reduce over an n x n (or k x n) comparison that is never stored, so
 * memory is O(n) and work O(n^2) (or O(k n)) per row: right for the vocabulary-sized rows of
 * sampling and attention, wrong for sorting millions of keys (a bitonic network of O(log^2 n)
 * kernels would be the next step there). NaN sorts as larger than everything, as torch.
 * Gradients flow to the values through the selecting WHERE, as torch.sort's do. */
#include "tensor.h"
#include <string.h>

static uop *land(uop *a, uop *b) { return ew2(OP_AND, a, b); }
static uop *lor(uop *a, uop *b) { return ew2(OP_OR, a, b); }
static uop *isnan_u(uop *a) { return ew2(OP_CMPNE, a, a); }

/* Whether a comes strictly before b in the order (descending: larger first; NaN counts as
 * the largest value). */
static uop *ahead(uop *a, uop *b, bool descending) {
  uop *na = isnan_u(a), *nb = isnan_u(b);
  if (descending) return lor(ew2(OP_CMPLT, b, a), land(na, ew1(OP_NEG, nb)));
  return lor(ew2(OP_CMPLT, a, b), land(ew1(OP_NEG, na), nb));
}
static uop *same(uop *a, uop *b) { return lor(ew2(OP_CMPEQ, a, b), land(isnan_u(a), isnan_u(b))); }

static cg_status rank_select(const char *who, cg_tensor *a, int64_t k, bool kgiven, int dim, bool descending, cg_tensor **values,
                             cg_tensor **indices) {
  if (values) *values = NULL;
  if (indices) *indices = NULL;
  if (!a) return cg_fail(CG_ERR_INVALID, "%s: tensor is NULL", who);
  if (!values && !indices) return cg_fail(CG_ERR_INVALID, "%s: both outputs (values, indices) are NULL", who);
  int nd0 = a->u->ndim;
  if (nd0 + 1 > UOP_MAX_DIMS) return cg_fail(CG_ERR_INVALID, "%s: expected at most %d dims, got %d", who, UOP_MAX_DIMS - 1, nd0);
  bool ok;
  int d = norm_dim(who, nd0 ? nd0 : 1, dim, &ok);
  if (!ok) return cg_last_status();
  int64_t n = nd0 ? a->u->shape[d] : 1;
  if (!kgiven) k = n;
  if (k < 0 || k > n)
    return cg_fail(CG_ERR_INVALID, "%s: expected k in [0, %lld] (the size of dim %d), got %lld", who, (long long)n, dim, (long long)k);
  op_begin();
  uop *x = a->u;
  bool is_bool = dt_is_bool(x->dt);
  if (is_bool) x = cast_to(x, DT_I32);
  int nd = nd0 ? nd0 : 1;
  if (!nd0) x = view_reshape(x, (int64_t[]){1}, 1);
  /* the sorted dim last */
  int64_t perm[UOP_MAX_DIMS], inv[UOP_MAX_DIMS];
  for (int i = 0, j = 0; i < nd; i++)
    if (i != d) perm[j++] = i;
  perm[nd - 1] = d;
  for (int i = 0; i < nd; i++) inv[perm[i]] = i;
  x = view_permute(x, perm);
  int64_t s1[UOP_MAX_DIMS], sq[UOP_MAX_DIMS], sk[UOP_MAX_DIMS];
  for (int i = 0; i < nd - 1; i++) s1[i] = sq[i] = sk[i] = x->shape[i];
  int N = nd + 1;
  /* (..., j, i): rank_i = sum_j ahead(x_j, x_i) or (same and j < i) */
  s1[nd - 1] = 1, s1[nd] = n;
  sq[nd - 1] = n, sq[nd] = n;
  uop *xi = view_reshape(x, s1, N);
  int64_t sj[UOP_MAX_DIMS];
  memcpy(sj, sq, sizeof sj);
  sj[nd] = 1;
  uop *xj = view_expand(view_reshape(x, sj, N), sq, N), *xie = view_expand(xi, sq, N);
  uop *jj = iota_along(DT_I64, n, N - 2, N), *ii = iota_along(DT_I64, n, N - 1, N);
  if (!jj || !ii) {
    op_end(NULL);
    return cg_last_status();
  }
  uop *before_idx = ew2(OP_CMPLT, view_expand(jj, sq, N), view_expand(ii, sq, N));
  uop *before = lor(ahead(xj, xie, descending), land(same(xj, xie), before_idx));
  int ax = N - 2;
  uop *rank = reduce_uop(cast_to(before, DT_I64), OP_ADD, &ax, 1); /* (..., 1, n) */
  /* (..., r, i): position r < k takes the i whose rank is r */
  sk[nd - 1] = k, sk[nd] = n;
  uop *rr = iota_along(DT_I64, k, N - 2, N);
  if (!rr) {
    op_end(NULL);
    return cg_last_status();
  }
  uop *hit = ew2(OP_CMPEQ, view_expand(rank, sk, N), view_broadcast(rr, sk, N));
  int ax2 = N - 1;
  int64_t out[UOP_MAX_DIMS];
  for (int i = 0; i < nd - 1; i++) out[i] = x->shape[i];
  out[nd - 1] = k;
  uop *vals = NULL, *idxs = NULL;
  if (values) {
    uop *xv = view_expand(xi, sk, N);
    vals = view_reshape(reduce_uop(uop_where(hit, xv, ew_const(xv, 0)), OP_ADD, &ax2, 1), out, nd);
    vals = view_permute(vals, inv);
    if (is_bool) vals = cast_to(vals, DT_BOOL);
    if (!nd0) vals = view_reshape(vals, NULL, 0);
  }
  if (indices) {
    uop *iv = view_broadcast(ii, sk, N);
    idxs = view_reshape(reduce_uop(uop_where(hit, iv, ew_const(iv, 0)), OP_ADD, &ax2, 1), out, nd);
    idxs = view_permute(idxs, inv);
    if (!nd0) idxs = view_reshape(idxs, NULL, 0);
  }
  cg_tensor *tv = vals ? tensor_new(vals) : NULL, *ti = idxs ? tensor_new(idxs) : NULL;
  op_end(NULL);
  if ((values && !tv) || (indices && !ti)) {
    cg_free(tv), cg_free(ti);
    return cg_last_status();
  }
  if (values) *values = tv;
  if (indices) *indices = ti;
  return CG_OK;
}

cg_status cg_sort(cg_tensor *a, int dim, bool descending, cg_tensor **values, cg_tensor **indices) {
  return rank_select("sort", a, 0, false, dim, descending, values, indices);
}

cg_status cg_topk(cg_tensor *a, int64_t k, int dim, bool largest, bool sorted, cg_tensor **values, cg_tensor **indices) {
  (void)sorted; /* always sorted: the ranks give the order for free */
  return rank_select("topk", a, k, true, dim, largest, values, indices);
}
