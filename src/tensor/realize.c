/* Realizing tensors: the engine runs the kernels; the tensors then hold views of their
 * buffers. Any number at once, in one schedule. */
#include "tensor.h"
#include "custom.h"
#include "runtime/var.h"
#include "engine/capture.h"
#include <string.h>

/* One value everywhere (cg_zeros, cg_ones, cg_full: a module's constructor realizes a few):
 * filled on the host, since a kernel for it costs a compiler run the first time (~30 ms
 * each, most of a model's construction with an empty kernel cache). Only dtypes and values
 * a C cast gives exactly, and never while a JIT records kernels (a replay must redo it).
 * false: take the kernel path. */
static bool fill_on_host(cg_tensor *t) {
  uop *u = t->u;
  while (u->op == OP_RESHAPE || u->op == OP_EXPAND) u = u->src[0];
  if (u->op != OP_CONST || u->dt.count != 1 || capture_active()) return false;
  double v = uop_const_value(u);
  int64_t n = shape_numel(t->u->shape, t->u->ndim);
  union { float f; double d; int32_t i; int64_t l; uint8_t b; } one;
  size_t size;
  switch (u->dt.scalar) {
  case CG_FLOAT32: one.f = (float)v, size = 4; if ((double)one.f != v && v == v) return false; break;
  case CG_FLOAT64: one.d = v, size = 8; break;
  case CG_INT32: if (v != (double)(int32_t)v) return false; one.i = (int32_t)v, size = 4; break;
  case CG_INT64: if (v < -9.2e18 || v > 9.2e18 || v != (double)(int64_t)v) return false; one.l = (int64_t)v, size = 8; break;
  case CG_BOOL: one.b = v != 0, size = 1; break;
  default: return false;
  }
  uop *b = buffer_new(u->dt, n);
  if (!b || buffer_alloc(b) != CG_OK) return false; /* the kernel path reports it */
  cg_buffer *buf = buffer_of(b);
  char *host = n ? cg_malloc((size_t)n * size) : NULL;
  if (n && !host) return false;
  for (int64_t i = 0; i < n; i++) memcpy(host + (size_t)i * size, &one, size);
  bool ok = !n || buf->dev->copyin(buf->ptr, host, (size_t)n * size) == CG_OK;
  free(host);
  uop *view = ok ? view_reshape(b, t->u->shape, t->u->ndim) : NULL;
  if (view) tensor_realized(t, view);
  return view != NULL;
}

cg_status cg_realize_many(cg_tensor *const *ts, int n) {
  if (n < 0) return cg_fail(CG_ERR_INVALID, "realize: expected n >= 0 tensors, got %d", n);
  if (n > 0 && !ts) return cg_fail(CG_NULL_INPUT, "realize: the tensor array is NULL (n = %d)", n);
  for (int i = 0; i < n; i++)
    if (!ts[i]) return cg_fail(CG_NULL_INPUT, "realize: tensor %d is NULL", i);
  uop **outs = cg_malloc(sizeof(uop *) * (size_t)(2 * n + 1));
  if (!outs) return CG_ERR_NOMEM;
  uop **views = outs + n;
  /* checked: out of memory anywhere in scheduling, codegen or rendering fails this call
   * with CG_ERR_NOMEM (each pass fails as a whole, nothing half-built is cached) */
  uop_pool_push_checked();
  /* a var is never a buffer: its value lives in the var table (cg_read reads it there) */
  cg_tensor *const *all = ts;
  cg_tensor **some = NULL;
  int m = 0;
  for (int i = 0; i < n; i++) m += !var_is_tensor(all[i]->u);
  if (n == 1 && m == 1 && fill_on_host(all[0])) return uop_pool_pop(), free(outs), CG_OK;
  if (m < n) {
    if (!(some = cg_malloc(sizeof(cg_tensor *) * (size_t)(m ? m : 1)))) return uop_pool_pop(), free(outs), CG_ERR_NOMEM;
    for (int i = 0, k = 0; i < n; i++)
      if (!var_is_tensor(all[i]->u)) some[k++] = all[i];
    ts = some, n = m;
  }
  for (int i = 0; i < n; i++) {
    /* two tensors with one graph (two cg_zeros of a shape) must not share a buffer: an
     * in-place update of one would change the other */
    uop *u = ts[i]->u;
    for (int j = 0; j < i; j++)
      if (outs[j] == u && u->op != OP_BUFFER && u->op != OP_ASSIGN && !(u->op == OP_RESHAPE && u->src[0]->op == OP_BUFFER))
        u = uop_new1(OP_CONTIGUOUS, u->dt, u, arg_none());
    outs[i] = u;
  }
  cg_status st = realize_uops(outs, n, views);
  if (st == CG_OK)
    for (int i = 0; i < n; i++)
      if (!views[i]) st = op_status(CG_ERR_NOMEM);
  if (st == CG_OK)
    for (int i = 0; i < n; i++) tensor_realized(ts[i], views[i]);
  uop_pool_pop();
  free(outs), free(some);
  return st;
}

cg_status cg_realize(cg_tensor *t) { return cg_realize_many(&t, 1); }

/* CUSTOM(stored value, x): the engine drops the node for its value (a buffer); autograd
 * passes the gradient to x unchanged. */
static void stored_backward(uop *node, uop *g, uop **d) {
  (void)node;
  d[1] = g;
}
static const custom_kind STORED = {"stored", stored_backward, false};

cg_tensor *cg_stored(cg_tensor *value, cg_tensor *x) {
  if (!value || !x) return cg_fail_null(CG_NULL_INPUT, "stored: %s is NULL", !value ? "value" : "x");
  if (value->u->dt.scalar != x->u->dt.scalar || !shape_eq(value->u->shape, value->u->ndim, x->u->shape, x->u->ndim))
    return cg_fail_null(CG_ERR_INVALID, "stored: expected a value of x's dtype and shape %s %s, got %s %s", dt_name(x->u->dt),
                        shape_str(x->u->shape, x->u->ndim), dt_name(value->u->dt), shape_str(value->u->shape, value->u->ndim));
  cg_scope_begin();
  cg_tensor *v = cg_detach(value), *res = NULL;
  if (v && cg_realize(v) == CG_OK) {
    op_begin();
    res = cg_keep(op_end(custom_node(&STORED, v->u, &x->u, 1, NULL, 0)));
  }
  cg_scope_end();
  return res;
}

cg_tensor *cg_realize_stored(cg_tensor *x) {
  if (!x) return cg_fail_null(CG_NULL_INPUT, "realize_stored: x is NULL");
  return cg_stored(x, x);
}
