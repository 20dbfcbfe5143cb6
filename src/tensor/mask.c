/* Masking: triu / tril (keep one triangle of the last two dims) and masked_fill. Each is a
 * WHERE over index comparisons, so it fuses into its consumer and costs no kernel. */
#include "tensor.h"

uop *iota_along(dtype dt, int64_t n, int axis, int ndim) {
  uop *b = buffer_new(dt, n);
  if (!b || buffer_alloc(b) != CG_OK) return NULL;
  if (dt.scalar == CG_INT32)
    for (int64_t i = 0; i < n; i++) ((int32_t *)buffer_of(b)->ptr)[i] = (int32_t)i;
  else
    for (int64_t i = 0; i < n; i++) ((int64_t *)buffer_of(b)->ptr)[i] = i;
  int64_t s[UOP_MAX_DIMS];
  for (int i = 0; i < ndim; i++) s[i] = i == axis ? n : 1;
  return view_reshape(b, s, ndim);
}

/* upper: keep col - row >= diagonal (torch.triu); lower: keep col - row <= diagonal. */
static cg_tensor *triangle(const char *who, cg_tensor *a, int64_t diagonal, bool upper) {
  if (!a) return cg_fail_null(CG_ERR_INVALID, "%s: tensor is NULL", who);
  int nd = a->u->ndim;
  if (nd < 2) return cg_fail_null(CG_ERR_INVALID, "%s: expected a tensor of at least 2 dims, got shape %s", who, shape_str(a->u->shape, nd));
  op_begin();
  uop *x = a->u;
  int64_t R = x->shape[nd - 2], Cc = x->shape[nd - 1];
  /* int32 positions where they fit (an int64 comparison keeps the consumer from
   * vectorizing: codegen/expand.c), the diagonal clamped to where it still decides */
  bool small = R < ((int64_t)1 << 29) && Cc < ((int64_t)1 << 29);
  if (small) diagonal = diagonal > Cc ? Cc : diagonal < -R ? -R : diagonal;
  uop *row = iota_along(small ? DT_I32 : DT_I64, R, 0, 2), *col = iota_along(small ? DT_I32 : DT_I64, Cc, 1, 2);
  if (!row || !col) return op_end(NULL);
  int64_t rc[2] = {R, Cc};
  row = view_expand(row, rc, 2), col = view_expand(col, rc, 2);
  /* col - row >= d  <=>  !(col < row + d);  col - row <= d  <=>  !(row + d < col) */
  uop *rd = ew2(OP_ADD, row, ew_const(row, (double)diagonal));
  uop *keep = ew1(OP_NEG, upper ? ew2(OP_CMPLT, col, rd) : ew2(OP_CMPLT, rd, col));
  keep = view_broadcast(keep, x->shape, nd);
  cg_tensor *r = op_end(uop_where(keep, x, ew_const(x, 0)));
  return r;
}

cg_tensor *cg_triu(cg_tensor *a, int64_t diagonal) { return triangle("triu", a, diagonal, true); }
cg_tensor *cg_tril(cg_tensor *a, int64_t diagonal) { return triangle("tril", a, diagonal, false); }

cg_tensor *cg_masked_fill(cg_tensor *a, cg_tensor *mask, double value) {
  if (!a || !mask) return cg_fail_null(CG_ERR_INVALID, "masked_fill: %s is NULL", a ? "mask" : "tensor");
  uop *x = a->u, *m = mask->u;
  /* mask must broadcast to a's shape (torch: the result has a's shape) */
  bool ok = m->ndim <= x->ndim;
  for (int i = 0; ok && i < m->ndim; i++) {
    int64_t dm = m->shape[m->ndim - 1 - i], dx = x->shape[x->ndim - 1 - i];
    ok = dm == dx || dm == 1;
  }
  if (!ok)
    return cg_fail_null(CG_ERR_INVALID, "masked_fill: the mask's shape %s does not broadcast to the tensor's shape %s",
                        shape_str(m->shape, m->ndim), shape_str(x->shape, x->ndim));
  op_begin();
  uop *mb = view_broadcast(cast_to(m, DT_BOOL), x->shape, x->ndim);
  cg_tensor *r = op_end(uop_where(mb, ew_const(x, value), x));
  if (r) r->weak = a->weak;
  return r;
}
