/* Tensors split over devices (cgrad.h, "devices and sharding"; tinygrad's MultiLazyBuffer):
 * a cg_multi is one lazy UOp per device plus the axis they split. Every op here is a
 * per-shard application of the ordinary tensor ops, after the operands' layouts were
 * matched; the only data movement is cg_to (device.c: a lazy COPY), whose byte counters
 * show what a layout change cost. Internally shards are held as retained UOps, and each op wraps them
 * in tensor handles inside a scope of its own. */
#include "tensor.h"
#include <string.h>

#define MAXN RT_MAX_INSTANCES

struct cg_multi {
  int n, axis;             /* axis: >= 0, CG_REPLICATED or CG_PARTIAL */
  const char *dev[MAXN];   /* canonical device names */
  uop *u[MAXN];            /* the shards (retained) */
  int64_t shape[UOP_MAX_DIMS]; /* the whole tensor's */
  int ndim;
};

static cg_multi *multi_new(int n, int axis, const char *const *dev, const int64_t *shape, int ndim) {
  cg_multi *m = cg_calloc(1, sizeof *m);
  if (!m) return NULL;
  m->n = n, m->axis = axis, m->ndim = ndim;
  memcpy(m->dev, dev, sizeof(char *) * (size_t)n);
  if (ndim) memcpy(m->shape, shape, sizeof(int64_t) * (size_t)ndim);
  return m;
}

void cg_multi_free(cg_multi *m) {
  if (!m) return;
  for (int i = 0; i < m->n; i++) uop_release(m->u[i]);
  free(m);
}

int cg_multi_count(const cg_multi *m) { return m ? m->n : 0; }
int cg_multi_axis(const cg_multi *m) { return m ? m->axis : CG_REPLICATED; }
int cg_multi_shape(const cg_multi *m, int64_t *shape) {
  if (!m) return -1;
  if (shape && m->ndim) memcpy(shape, m->shape, sizeof(int64_t) * (size_t)m->ndim);
  return m->ndim;
}
const char *cg_multi_device(const cg_multi *m, int i) { return m && i >= 0 && i < m->n ? m->dev[i] : NULL; }
cg_tensor *cg_multi_shard(const cg_multi *m, int i) {
  if (!m || i < 0 || i >= m->n) return cg_fail_null(CG_ERR_INVALID, "multi_shard: expected a shard index in [0, %d), got %d", m ? m->n : 0, i);
  return tensor_new(m->u[i]);
}

/* Keep r's value as shard i (r may be NULL: false). */
static bool keep(cg_multi *m, int i, cg_tensor *r) {
  if (!r) return false;
  m->u[i] = uop_retain(r->u);
  return true;
}

/* Finish an op: the result, or NULL (freeing the partial result) when a shard failed. */
static cg_multi *finish(cg_multi *m, bool ok) {
  cg_scope_end();
  if (ok) return m;
  cg_multi_free(m);
  return NULL;
}

static cg_tensor *slice(cg_tensor *t, int axis, int64_t lo, int64_t hi) { return cg_slice(t, axis, lo, hi, 1); }

cg_multi *cg_shard(cg_tensor *t, const char *const *devices, int n, int axis) {
  if (!t || !devices) return cg_fail_null(CG_NULL_INPUT, "shard: %s is NULL", t ? "the device list" : "the tensor");
  if (n < 1 || n > MAXN) return cg_fail_null(CG_ERR_INVALID, "shard: expected 1 to %d devices, got %d", MAXN, n);
  const char *dev[MAXN];
  for (int i = 0; i < n; i++) {
    if (!(dev[i] = cg_device(devices[i]))) return NULL;
    for (int j = 0; j < i; j++)
      if (dev[j] == dev[i]) return cg_fail_null(CG_ERR_INVALID, "shard: device %s is listed twice (shards need distinct devices)", dev[i]);
  }
  int nd = t->u->ndim;
  if (axis != CG_REPLICATED) {
    if (axis < -nd || axis >= nd)
      return cg_fail_null(CG_ERR_INVALID, "shard: axis %d is out of range for shape %s (or CG_REPLICATED)", axis, shape_str(t->u->shape, nd));
    if (axis < 0) axis += nd;
    if (t->u->shape[axis] % n)
      return cg_fail_null(CG_ERR_INVALID, "shard: axis %d of shape %s has %lld elements, not divisible by %d devices", axis,
                          shape_str(t->u->shape, nd), (long long)t->u->shape[axis], n);
  }
  cg_multi *m = multi_new(n, axis, dev, t->u->shape, nd);
  if (!m) return NULL;
  cg_scope_begin();
  bool ok = true;
  int64_t k = axis >= 0 ? t->u->shape[axis] / n : 0;
  for (int i = 0; i < n && ok; i++) ok = keep(m, i, cg_to(axis >= 0 ? slice(t, axis, i * k, (i + 1) * k) : t, dev[i]));
  return finish(m, ok);
}

cg_multi *cg_multi_from(cg_tensor *const *shards, int n, int axis) {
  if (!shards) return cg_fail_null(CG_NULL_INPUT, "multi_from: the shard array is NULL");
  if (n < 1 || n > MAXN) return cg_fail_null(CG_ERR_INVALID, "multi_from: expected 1 to %d shards, got %d", MAXN, n);
  const char *dev[MAXN];
  for (int i = 0; i < n; i++) {
    if (!shards[i]) return cg_fail_null(CG_NULL_INPUT, "multi_from: shard %d is NULL", i);
    dev[i] = cg_device_of(shards[i]);
    for (int j = 0; j < i; j++)
      if (dev[j] == dev[i]) return cg_fail_null(CG_ERR_INVALID, "multi_from: shards %d and %d are both on %s", j, i, dev[i]);
    const uop *a = shards[0]->u, *b = shards[i]->u;
    bool same = a->ndim == b->ndim && dt_eq(a->dt, b->dt);
    for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == b->shape[d];
    if (!same)
      return cg_fail_null(CG_ERR_INVALID, "multi_from: shard %d is %s %s, shard 0 %s %s (shards must match)", i, dt_name(b->dt),
                          shape_str(b->shape, b->ndim), dt_name(a->dt), shape_str(a->shape, a->ndim));
  }
  int nd = shards[0]->u->ndim;
  if (axis < CG_PARTIAL || axis >= nd) return cg_fail_null(CG_ERR_INVALID, "multi_from: axis %d out of range for %d dims", axis, nd);
  int64_t shape[UOP_MAX_DIMS];
  memcpy(shape, shards[0]->u->shape, sizeof(int64_t) * (size_t)nd);
  if (axis >= 0) shape[axis] *= n;
  cg_multi *m = multi_new(n, axis, dev, shape, nd);
  for (int i = 0; m && i < n; i++) m->u[i] = uop_retain(shards[i]->u);
  return m;
}

cg_status cg_multi_realize(cg_multi *m) {
  if (!m) return cg_fail(CG_NULL_INPUT, "multi_realize: NULL");
  cg_scope_begin();
  cg_tensor *t[MAXN];
  for (int i = 0; i < m->n; i++) t[i] = tensor_new(m->u[i]);
  /* one realize: the devices' kernels (and the copies between them) run at once, each
   * device on its own lane (engine/queue.h) */
  cg_status st = cg_realize_many(t, m->n);
  for (int i = 0; i < m->n && st == CG_OK; i++) {
    uop_release(m->u[i]);
    m->u[i] = uop_retain(t[i]->u);
  }
  cg_scope_end();
  return st;
}

/* ---- collectives between devices ---------------------------------------------------- */

cg_multi *cg_multi_allreduce(cg_multi *a) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "multi_allreduce: NULL");
  if (a->axis >= 0) return cg_fail_null(CG_ERR_INVALID, "multi_allreduce: the shards hold slices (axis %d), not addends: use cg_multi_reshard", a->axis);
  if (cg_multi_realize(a) != CG_OK) return NULL;
  cg_multi *m = multi_new(a->n, CG_REPLICATED, a->dev, a->shape, a->ndim);
  if (!m) return NULL;
  if (a->axis == CG_REPLICATED) { /* already the value everywhere */
    for (int i = 0; i < a->n; i++) m->u[i] = uop_retain(a->u[i]);
    return m;
  }
  cg_scope_begin();
  int n = a->n;
  int64_t total = shape_numel(a->shape, a->ndim), chunk = (total + n - 1) / n;
  cg_tensor *flat[MAXN], *red[MAXN];
  bool ok = true;
  for (int i = 0; i < n && ok; i++) ok = (flat[i] = cg_reshape(tensor_new(a->u[i]), (int64_t[]){total}, 1)) != NULL;
  /* reduce-scatter: device j sums chunk j of every shard (each a contiguous range); one
   * realize, the devices at once */
  for (int j = 0; j < n && ok; j++) {
    int64_t lo = j * chunk < total ? j * chunk : total, hi = lo + chunk < total ? lo + chunk : total;
    red[j] = NULL;
    for (int i = 0; i < n && ok; i++) {
      cg_tensor *piece = cg_to(slice(flat[i], 0, lo, hi), a->dev[j]);
      red[j] = red[j] ? cg_add(red[j], piece) : piece;
      ok = red[j] != NULL;
    }
  }
  ok = ok && cg_realize_many(red, n) == CG_OK;
  /* all-gather: every device concatenates the n reduced chunks */
  for (int i = 0; i < n && ok; i++) {
    cg_tensor *parts[MAXN];
    for (int j = 0; j < n && ok; j++) ok = (parts[j] = cg_to(red[j], a->dev[i])) != NULL;
    cg_tensor *whole = ok ? cg_cat(parts, n, 0) : NULL;
    ok = keep(m, i, whole ? cg_contiguous(cg_reshape(whole, a->shape, a->ndim)) : NULL);
  }
  return finish(m, ok);
}

cg_multi *cg_multi_reshard(cg_multi *a, int axis) {
  if (!a) return cg_fail_null(CG_NULL_INPUT, "multi_reshard: NULL");
  int nd = a->ndim, n = a->n;
  if (axis != CG_REPLICATED && (axis < -nd || axis >= nd))
    return cg_fail_null(CG_ERR_INVALID, "multi_reshard: axis %d is out of range for shape %s", axis, shape_str(a->shape, nd));
  if (axis < 0 && axis != CG_REPLICATED) axis += nd;
  if (axis >= 0 && a->shape[axis] % n)
    return cg_fail_null(CG_ERR_INVALID, "multi_reshard: axis %d of shape %s has %lld elements, not divisible by %d devices", axis,
                        shape_str(a->shape, nd), (long long)a->shape[axis], n);
  if (a->axis == CG_PARTIAL) { /* the value first */
    cg_multi *r = cg_multi_allreduce(a), *out = r ? cg_multi_reshard(r, axis) : NULL;
    cg_multi_free(r);
    return out;
  }
  cg_multi *m = multi_new(n, axis, a->dev, a->shape, nd);
  if (!m) return NULL;
  cg_scope_begin();
  bool ok = true;
  if (a->axis == axis) {
    for (int i = 0; i < n; i++) m->u[i] = uop_retain(a->u[i]);
  } else if (a->axis == CG_REPLICATED) { /* every device has it all: take its slice, a view */
    int64_t k = a->shape[axis] / n;
    for (int i = 0; i < n && ok; i++) ok = keep(m, i, slice(tensor_new(a->u[i]), axis, i * k, (i + 1) * k));
  } else {
    /* all-to-all (axis >= 0) or all-gather: device j takes, from every shard i, the part
     * of it that belongs to j, and concatenates them along the old axis */
    int64_t k = axis >= 0 ? a->shape[axis] / n : 0;
    for (int j = 0; j < n && ok; j++) {
      cg_tensor *parts[MAXN];
      for (int i = 0; i < n && ok; i++) {
        cg_tensor *s = tensor_new(a->u[i]);
        ok = (parts[i] = cg_to(axis >= 0 ? slice(s, axis, j * k, (j + 1) * k) : s, a->dev[j])) != NULL;
      }
      ok = ok && keep(m, j, cg_cat(parts, n, a->axis));
    }
  }
  return finish(m, ok);
}

cg_tensor *cg_multi_gather(const cg_multi *m, const char *device) {
  if (!m) return cg_fail_null(CG_NULL_INPUT, "multi_gather: NULL");
  if (!cg_device(device)) return NULL;
  cg_tensor *parts[MAXN], *r = NULL;
  bool ok = true;
  int n = m->axis == CG_REPLICATED ? 1 : m->n;
  for (int i = 0; i < n && ok; i++) ok = (parts[i] = cg_to(tensor_new(m->u[i]), device)) != NULL;
  if (ok && m->axis >= 0) r = cg_cat(parts, n, m->axis);
  else if (ok) {
    r = parts[0];
    for (int i = 1; i < n && r; i++) r = cg_add(r, parts[i]);
  }
  return r;
}

/* ---- ops --------------------------------------------------------------------------- */

static bool same_devices(const char *who, const cg_multi *a, const cg_multi *b) {
  bool same = a->n == b->n;
  for (int i = 0; same && i < a->n; i++) same = a->dev[i] == b->dev[i];
  if (!same) cg_fail(CG_ERR_INVALID, "%s: the operands are split over different devices (%d: %s, ...; %d: %s, ...)", who, a->n, a->dev[0], b->n, b->dev[0]);
  return same;
}

/* a as a value (partials allreduced), owned by the caller when *own. */
static cg_multi *as_value(cg_multi *a, bool *own) {
  *own = a->axis == CG_PARTIAL;
  return *own ? cg_multi_allreduce(a) : a;
}

typedef cg_tensor *(*binop)(cg_tensor *, cg_tensor *);

static cg_multi *binary(const char *who, binop f, cg_multi *a0, cg_multi *b0) {
  if (!a0 || !b0) return cg_fail_null(CG_NULL_INPUT, "%s: an operand is NULL", who);
  if (!same_devices(who, a0, b0)) return NULL;
  bool owna, ownb = false;
  cg_multi *a = as_value(a0, &owna), *b = a ? as_value(b0, &ownb) : NULL, *m = NULL;
  if (!a || !b) goto out;
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim, n = a->n;
  int64_t shape[UOP_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
    int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      cg_fail(CG_ERR_INVALID, "%s: shapes %s and %s do not broadcast", who, shape_str(a->shape, a->ndim), shape_str(b->shape, b->ndim));
      goto out;
    }
    shape[i] = da == 1 ? db : da;
  }
  /* the result's axis, in its own dims: a's, else b's; the other operand follows it */
  int xa = a->axis >= 0 ? a->axis + nd - a->ndim : -1, xb = b->axis >= 0 ? b->axis + nd - b->ndim : -1;
  int ax = xa >= 0 ? xa : xb;
  /* an operand of size 1 along the axis broadcasts whole; a sharded one on another axis is
   * resharded; a replicated one is sliced per shard (a view) */
  cg_multi *ops[2] = {a, b}, *tmp[2] = {NULL, NULL};
  int x[2] = {xa, xb};
  for (int o = 0; o < 2; o++) {
    cg_multi *p = ops[o];
    int pd = ax - (nd - p->ndim); /* the axis in p's own dims (< 0: p lacks it) */
    bool whole = ax < 0 || pd < 0 || p->shape[pd] == 1;
    if (whole && p->axis >= 0) tmp[o] = ops[o] = cg_multi_reshard(p, CG_REPLICATED);
    else if (!whole && x[o] != ax) tmp[o] = ops[o] = cg_multi_reshard(p, pd);
    if (!ops[o]) {
      cg_multi_free(tmp[0]), cg_multi_free(tmp[1]);
      goto out;
    }
  }
  m = multi_new(n, ax >= 0 ? ax : CG_REPLICATED, a->dev, shape, nd);
  if (m) {
    cg_scope_begin();
    bool ok = true;
    for (int i = 0; i < n && ok; i++) ok = keep(m, i, f(tensor_new(ops[0]->u[i]), tensor_new(ops[1]->u[i])));
    m = finish(m, ok);
  }
  cg_multi_free(tmp[0]), cg_multi_free(tmp[1]);
out:
  if (owna) cg_multi_free(a);
  if (ownb) cg_multi_free(b);
  return m;
}

cg_multi *cg_multi_add(cg_multi *a, cg_multi *b) {
  if (a && b && a->axis == CG_PARTIAL && b->axis == CG_PARTIAL && same_devices("multi_add", a, b)) { /* addends stay addends */
    cg_multi *m = multi_new(a->n, CG_PARTIAL, a->dev, a->shape, a->ndim);
    if (!m) return NULL;
    cg_scope_begin();
    bool ok = true;
    for (int i = 0; i < a->n && ok; i++) ok = keep(m, i, cg_add(tensor_new(a->u[i]), tensor_new(b->u[i])));
    return finish(m, ok);
  }
  return binary("multi_add", cg_add, a, b);
}
cg_multi *cg_multi_sub(cg_multi *a, cg_multi *b) { return binary("multi_sub", cg_sub, a, b); }
cg_multi *cg_multi_mul(cg_multi *a, cg_multi *b) { return binary("multi_mul", cg_mul, a, b); }

cg_multi *cg_multi_map(cg_multi *a0, cg_tensor *(*fn)(cg_tensor *)) {
  if (!a0 || !fn) return cg_fail_null(CG_NULL_INPUT, "multi_map: %s is NULL", a0 ? "the function" : "the tensor");
  bool own;
  cg_multi *a = as_value(a0, &own), *m = a ? multi_new(a->n, a->axis, a->dev, a->shape, a->ndim) : NULL;
  if (m) {
    cg_scope_begin();
    bool ok = true;
    for (int i = 0; i < a->n && ok; i++) ok = keep(m, i, fn(tensor_new(a->u[i])));
    if (ok) { /* the function may change the shape only away from the split axis */
      cg_tensor *s0 = tensor_new(m->u[0]);
      m->ndim = s0->u->ndim;
      memcpy(m->shape, s0->u->shape, sizeof(int64_t) * (size_t)m->ndim);
      if (m->axis >= 0 && (m->axis >= m->ndim || m->shape[m->axis] * a->n != a->shape[a->axis]))
        ok = !cg_fail(CG_ERR_INVALID, "multi_map: the function changed the split axis %d", m->axis);
      else if (m->axis >= 0) m->shape[m->axis] *= a->n;
    }
    m = finish(m, ok);
  }
  if (own) cg_multi_free(a);
  return m;
}

typedef cg_tensor *(*redop)(cg_tensor *, const int *, int, bool);

static cg_multi *reduce(const char *who, redop f, bool is_sum, cg_multi *a0, const int *axes, int naxes, bool keepdim) {
  if (!a0) return cg_fail_null(CG_NULL_INPUT, "%s: NULL", who);
  if (naxes < 0 || (naxes && !axes)) return cg_fail_null(CG_ERR_INVALID, "%s: bad axes", who);
  bool own = false;
  cg_multi *a = is_sum ? a0 : as_value(a0, &own), *m = NULL;
  if (!a) return NULL;
  int nd = a->ndim, norm[UOP_MAX_DIMS], nn = 0;
  bool red[UOP_MAX_DIMS] = {false};
  if (!norm_axes(who, nd, axes, naxes, norm, &nn)) goto out;
  if (naxes == 0)
    for (int i = 0; i < nd; i++) red[i] = true;
  for (int i = 0; i < nn; i++) red[norm[i]] = true;
  int64_t shape[UOP_MAX_DIMS];
  int ond = 0, newax = a->axis;
  for (int i = 0; i < nd; i++) {
    if (!red[i]) shape[ond++] = a->shape[i];
    else if (keepdim) shape[ond++] = 1;
    if (a->axis >= 0 && i < a->axis && red[i] && !keepdim) newax--;
  }
  bool across = a->axis >= 0 && red[a->axis]; /* reducing the split axis: partial results */
  m = multi_new(a->n, across ? CG_PARTIAL : newax, a->dev, shape, ond);
  if (m) {
    cg_scope_begin();
    bool ok = true;
    for (int i = 0; i < a->n && ok; i++) ok = keep(m, i, f(tensor_new(a->u[i]), axes, naxes, keepdim));
    m = finish(m, ok);
  }
  if (m && across && !is_sum) { /* max of maxima: gather them on every device */
    cg_multi *r = NULL;
    cg_scope_begin();
    bool ok = true;
    r = multi_new(m->n, CG_REPLICATED, m->dev, m->shape, m->ndim);
    for (int i = 0; r && i < m->n && ok; i++) {
      cg_tensor *acc = NULL;
      for (int j = 0; j < m->n && ok; j++) {
        cg_tensor *p = cg_to(tensor_new(m->u[j]), m->dev[i]);
        acc = acc ? cg_maximum(acc, p) : p;
        ok = acc != NULL;
      }
      ok = ok && keep(r, i, acc);
    }
    r = r ? finish(r, ok) : (cg_scope_end(), NULL);
    cg_multi_free(m);
    m = r;
  } else if (m && across) {
    cg_multi *r = cg_multi_allreduce(m);
    cg_multi_free(m);
    m = r;
  }
out:
  if (own) cg_multi_free(a);
  return m;
}

cg_multi *cg_multi_sum(cg_multi *a, const int *axes, int naxes, bool keepdim) { return reduce("multi_sum", cg_sum, true, a, axes, naxes, keepdim); }
cg_multi *cg_multi_max(cg_multi *a, const int *axes, int naxes, bool keepdim) { return reduce("multi_max", cg_max, false, a, axes, naxes, keepdim); }

cg_multi *cg_multi_matmul(cg_multi *a0, cg_multi *b0) {
  if (!a0 || !b0) return cg_fail_null(CG_NULL_INPUT, "multi_matmul: an operand is NULL");
  if (!same_devices("multi_matmul", a0, b0)) return NULL;
  if (a0->ndim != 2 || b0->ndim != 2)
    return cg_fail_null(CG_ERR_INVALID, "multi_matmul: expected 2-d operands, got %s @ %s", shape_str(a0->shape, a0->ndim), shape_str(b0->shape, b0->ndim));
  if (a0->shape[1] != b0->shape[0])
    return cg_fail_null(CG_ERR_INVALID, "multi_matmul: inner dimensions differ: %s @ %s", shape_str(a0->shape, 2), shape_str(b0->shape, 2));
  bool owna, ownb = false;
  cg_multi *av = as_value(a0, &owna), *bv = av ? as_value(b0, &ownb) : NULL, *a = av, *b = bv, *m = NULL, *ta = NULL, *tb = NULL;
  if (!a || !b) goto out;
  /* pick the layout: rows of a (b whole), columns of b (a whole), or the inner dim (both,
   * partial sums then an allreduce); anything else is resharded to the nearest of these */
  int out_axis;
  if (a->axis == 1 || (a->axis == CG_REPLICATED && b->axis == 0)) {
    if (a->axis != 1) ta = a = cg_multi_reshard(a, 1);
    if (a && b->axis != 0) tb = b = cg_multi_reshard(b, 0);
    out_axis = CG_PARTIAL;
  } else if (a->axis == 0) {
    if (b->axis != CG_REPLICATED) tb = b = cg_multi_reshard(b, CG_REPLICATED);
    out_axis = 0;
  } else { /* a replicated, b sharded on 1 or replicated */
    out_axis = b->axis == 1 ? 1 : CG_REPLICATED;
  }
  if (!a || !b) goto out;
  int64_t shape[2] = {a->shape[0], b->shape[1]};
  m = multi_new(a->n, out_axis, a->dev, shape, 2);
  if (m) {
    cg_scope_begin();
    bool ok = true;
    for (int i = 0; i < a->n && ok; i++) ok = keep(m, i, cg_matmul(tensor_new(a->u[i]), tensor_new(b->u[i])));
    m = finish(m, ok);
  }
  if (m && out_axis == CG_PARTIAL) {
    cg_multi *r = cg_multi_allreduce(m);
    cg_multi_free(m);
    m = r;
  }
out:
  cg_multi_free(ta), cg_multi_free(tb);
  if (owna) cg_multi_free(av);
  if (ownb) cg_multi_free(bv);
  return m;
}
