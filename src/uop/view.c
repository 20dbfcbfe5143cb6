/* Movement and reduce UOp builders (see view.h). A NULL node (out of memory while building
 * it) gives NULL. */
#include "view.h"
#include <string.h>

uop *view_reshape(uop *u, const int64_t *shape, int ndim) {
  if (!u) return NULL; /* out of memory upstream */
  if (shape_eq(u->shape, u->ndim, shape, ndim)) return u;
  if (u->op == OP_RESHAPE) u = u->src[0];
  if (shape_eq(u->shape, u->ndim, shape, ndim)) return u;
  return uop_new1(OP_RESHAPE, u->dt, u, arg_ints(shape, ndim));
}

uop *view_expand(uop *u, const int64_t *shape, int ndim) {
  if (!u) return NULL;
  if (shape_eq(u->shape, u->ndim, shape, ndim)) return u;
  return uop_new1(OP_EXPAND, u->dt, u, arg_ints(shape, ndim));
}

uop *view_permute(uop *u, const int64_t *perm) {
  if (!u) return NULL;
  bool id = true;
  for (int i = 0; i < u->ndim; i++) id &= perm[i] == i;
  return id ? u : uop_new1(OP_PERMUTE, u->dt, u, arg_ints(perm, u->ndim));
}

uop *view_pad(uop *u, const int64_t *pads) {
  if (!u) return NULL;
  bool zero = true;
  for (int i = 0; i < 2 * u->ndim; i++) zero &= pads[i] == 0;
  return zero ? u : uop_new1(OP_PAD, u->dt, u, arg_ints(pads, 2 * u->ndim));
}

uop *view_shrink(uop *u, const int64_t *box) {
  if (!u) return NULL;
  bool full = true;
  for (int i = 0; i < u->ndim; i++) full &= box[2 * i] == 0 && box[2 * i + 1] == u->shape[i];
  return full ? u : uop_new1(OP_SHRINK, u->dt, u, arg_ints(box, 2 * u->ndim));
}

static uop *view_var(int op, uop *u, const int64_t *lim, int dim, int64_t mult, uop *var) {
  if (!u || !var) return NULL;
  int64_t a[2 * UOP_MAX_DIMS + 2];
  memcpy(a, lim, sizeof(int64_t) * (size_t)(2 * u->ndim));
  a[2 * u->ndim] = dim, a[2 * u->ndim + 1] = mult;
  uop *src[2] = {u, var};
  return uop_new(op, u->dt, src, 2, arg_ints(a, 2 * u->ndim + 2));
}
uop *view_shrink_var(uop *u, const int64_t *box, int dim, int64_t mult, uop *var) { return view_var(OP_SHRINK, u, box, dim, mult, var); }
uop *view_pad_var(uop *u, const int64_t *pads, int dim, int64_t mult, uop *var) { return view_var(OP_PAD, u, pads, dim, mult, var); }

uop *view_broadcast(uop *u, const int64_t *shape, int ndim) {
  if (!u) return NULL;
  int64_t s[UOP_MAX_DIMS];
  int lead = ndim - u->ndim;
  for (int i = 0; i < ndim; i++) s[i] = i < lead ? 1 : u->shape[i - lead];
  return view_expand(view_reshape(u, s, ndim), shape, ndim);
}

uop *const_full(dtype dt, double v, const int64_t *shape, int ndim) {
  uop *c = uop_const_float(dt, v); /* an int dtype converts as CAST does */
  return view_broadcast(c, shape, ndim);
}

uop *reduce_uop(uop *u, int op, const int *axes, int naxes) {
  if (!u) return NULL;
  int64_t arg[UOP_MAX_DIMS + 1];
  int n = 0;
  arg[n++] = op;
  for (int i = 0; i < naxes; i++)
    if (u->shape[axes[i]] != 1) arg[n++] = axes[i];
  if (n == 1) return u;
  return uop_new(OP_REDUCE, u->dt, &u, 1, arg_ints(arg, n));
}

uop *view_store_base(uop *u) {
  while (u->op == OP_RESHAPE || u->op == OP_SHRINK || u->op == OP_PERMUTE || u->op == OP_FLIP || u->op == OP_DETACH) u = u->src[0];
  return u->op == OP_BUFFER ? u : NULL;
}

bool view_is_whole(uop *u) {
  while (u->op == OP_RESHAPE || u->op == OP_DETACH) u = u->src[0];
  return u->op == OP_BUFFER;
}
