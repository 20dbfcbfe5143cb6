/* Devices seen from tensors (ARCHITECTURE §7): names, where a tensor lives, copies between
 * devices, and the check that an op reads one device only.
 *
 * A copy (cg_to) is eager: the source is realized and its bytes are copied into a new
 * buffer on the target. When the source is a contiguous range of a buffer (the buffer
 * itself, a reshape of it, a slice along its leading non-trivial axis) the range is
 * copied straight from the buffer; any other view is first made contiguous on the source
 * device, and those bytes are counted apart ("staging"), so a caller (resharding) can see
 * whether a layout needed the extra copy. The copy is a CUSTOM node over its source, so
 * gradients flow back across devices (copied the other way in the backward). */
#include "tensor.h"
#include "core/config.h"
#include "runtime/alloc.h"
#include "custom.h"
#include "engine/realize.h"
#include <stdio.h>
#include <string.h>

static int64_t transfer_bytes, staging_bytes;

void cg_copy_stats(int64_t *transfer, int64_t *staging) {
  if (transfer) *transfer = __atomic_load_n(&transfer_bytes, __ATOMIC_RELAXED);
  if (staging) *staging = __atomic_load_n(&staging_bytes, __ATOMIC_RELAXED);
}

const char *cg_device(const char *name) {
  rt_device *d = rt_get_device(name);
  return d ? d->name : NULL;
}

const char *cg_set_device(const char *name) {
  rt_device *d = NULL;
  if (name && !(d = rt_get_device(name))) return NULL;
  rt_set_thread_device(d);
  rt_device *now = rt_default_device();
  return now ? now->name : NULL;
}

int cg_device_count(void) {
  long n = cfg_int("CG_DEVICES", 1);
  return n < 1 ? 1 : n > RT_MAX_INSTANCES ? RT_MAX_INSTANCES : (int)n;
}

int cg_devices(const char **names, int max) {
  rt_device *base = rt_default_device();
  if (!base) return -1;
  if (base->base) base = base->base; /* DEVICE=CPU:1: the instances are still CPU's */
  int n = cg_device_count();
  for (int i = 0; i < n && i < max && names; i++) {
    char nm[64];
    snprintf(nm, sizeof nm, "%s:%d", base->name, i);
    if (!(names[i] = cg_device(nm))) return -1;
  }
  return n;
}

/* The device t's value is (or will be) computed on. */
static rt_device *device_of(cg_tensor *t) {
  rt_device *d = graph_device(t->u);
  return d ? d : rt_default_device();
}

const char *cg_device_of(cg_tensor *t) {
  if (!t) return cg_fail_null(CG_NULL_INPUT, "device_of: tensor is NULL");
  rt_device *d = device_of(t);
  return d ? d->name : NULL;
}

bool tensor_check_devices(const char *who, cg_tensor *const *ts, int n) {
  if (!rt_multi_device()) return true; /* one device of each kind: nothing to mix */
  rt_device *first = NULL;
  int at = -1;
  for (int i = 0; i < n; i++) {
    if (!ts[i]) continue;
    rt_device *d = graph_device(ts[i]->u);
    if (!d) continue; /* constants go anywhere */
    if (!first) first = d, at = i;
    else if (d != first) {
      cg_fail(CG_ERR_INVALID, "%s: operands on two devices: operand %d is on %s, operand %d on %s (copy one with cg_to first)", who, at,
              first->name, i, d->name);
      return false;
    }
  }
  return true;
}

/* Is u the elements [*off, *off + numel) of a BUFFER, in order? Follows reshapes and
 * shrinks (as a strided view: a reshape needs a contiguous input), and CUSTOM nodes to
 * their values. */
static bool contiguous_range(uop *u, uop **base, int64_t *off) {
  uop *chain[64];
  int n = 0;
  while (u->op != OP_BUFFER) {
    if (u->op == OP_CUSTOM) { /* worth its value (a copy's autograd node) */
      u = u->src[0];
      continue;
    }
    if ((u->op != OP_RESHAPE && u->op != OP_SHRINK) || n == 64) return false;
    chain[n++] = u;
    u = u->src[0];
  }
  *base = u;
  int64_t shape[UOP_MAX_DIMS], stride[UOP_MAX_DIMS], o = 0;
  int nd = 1;
  shape[0] = u->arg.v[1], stride[0] = 1;
  for (int c = n - 1; c >= 0; c--) {
    uop *v = chain[c];
    /* contiguous so far? (row-major strides, size-1 dims aside) */
    int64_t want = 1;
    bool contig = true;
    for (int i = nd - 1; i >= 0; i--) {
      if (shape[i] == 1) continue;
      contig = contig && stride[i] == want;
      want *= shape[i];
    }
    if (v->op == OP_RESHAPE) {
      if (!contig) return false;
      nd = v->ndim;
      int64_t s = 1;
      for (int i = nd - 1; i >= 0; i--) shape[i] = v->shape[i], stride[i] = s, s *= v->shape[i];
    } else {
      for (int i = 0; i < nd; i++) o += v->arg.v[2 * i] * stride[i], shape[i] = v->shape[i];
    }
  }
  int64_t want = 1;
  for (int i = nd - 1; i >= 0; i--) {
    if (shape[i] == 1) continue;
    if (stride[i] != want) return false;
    want *= shape[i];
  }
  *off = o;
  return true;
}

static bool host_addressable(rt_device *d) { return !d->allocator || d->allocator->host_memory; }

/* A copy of the realized u (a contiguous range at off of base, on src) on dst: a new
 * BUFFER view, or NULL + error. Owned by the current pool. */
static uop *copy_range(uop *u, uop *base, int64_t off, rt_device *src, rt_device *dst) {
  if (buffer_alloc(base) != CG_OK) return NULL;
  int64_t numel = shape_numel(u->shape, u->ndim);
  size_t esz = (size_t)dt_scalar_size(u->dt), nbytes = (size_t)numel * esz;
  uop *b = buffer_new_on(dst, u->dt, numel);
  cg_status st = b ? buffer_alloc(b) : cg_last_status();
  if (st == CG_OK && nbytes) {
    const char *from = (const char *)buffer_of(base)->ptr + (size_t)off * esz;
    void *to = buffer_of(b)->ptr;
    if (host_addressable(dst)) st = src->copyout(to, from, nbytes);
    else if (host_addressable(src)) st = dst->copyin(to, from, nbytes);
    else { /* neither side is host memory: through a host bounce buffer */
      void *tmp = cg_malloc(nbytes);
      st = !tmp ? CG_ERR_NOMEM : src->copyout(tmp, from, nbytes);
      if (st == CG_OK) st = dst->copyin(to, tmp, nbytes);
      free(tmp);
    }
    if (st == CG_OK) __atomic_add_fetch(&transfer_bytes, (int64_t)nbytes, __ATOMIC_RELAXED);
  }
  return st == CG_OK ? view_reshape(b, u->shape, u->ndim) : NULL;
}

/* The gradient of a copy goes back to the source's device: realized where it was computed
 * (a backward may realize: custom.h), then copied. A gradient that reads no buffer (a
 * constant) is made wherever it is used, so it needs no copy. */
static void copy_backward(uop *node, uop *g, uop **d) {
  rt_device *to = graph_device(node->src[1]), *from = graph_device(g);
  if (!to) to = rt_default_device();
  if (!from || from == to) {
    d[1] = g;
    return;
  }
  uop *view, *base;
  int64_t off = 0;
  cg_status st = realize_uops(&g, 1, &view);
  if (st == CG_OK && !contiguous_range(view, &base, &off)) st = cg_fail(CG_ERR_RUNTIME, "to (backward): a realized gradient is not a plain buffer");
  if (st == CG_OK && !(d[1] = copy_range(g, base, off, from, to))) st = cg_last_status();
  if (st != CG_OK) custom_fail(st); /* cg_backward reports it */
}

static const custom_kind copy_kind = {"to", copy_backward, false};

cg_tensor *cg_to(cg_tensor *t, const char *device) {
  if (!t) return cg_fail_null(CG_NULL_INPUT, "to: tensor is NULL");
  rt_device *dst = rt_get_device(device), *src = dst ? device_of(t) : NULL;
  if (!dst || !src) return NULL;
  if (src == dst) return tensor_new(t->u); /* a second handle, no copy */
  uop *base, *orig = uop_retain(t->u); /* the graph the gradient goes back into */
  int64_t off = 0;
  bool view = true; /* a view of a buffer (else a computation, realized in any case) */
  uop *v = t->u;
  while (view && v->op != OP_BUFFER) view = op_is_movement(v->op) || v->op == OP_CUSTOM, v = view ? v->src[0] : v;
  if (!contiguous_range(t->u, &base, &off)) {
    cg_status st = cg_realize(t); /* computes t, or copies its view contiguous */
    if (st == CG_OK && !contiguous_range(t->u, &base, &off)) st = cg_fail(CG_ERR_RUNTIME, "to: a realized tensor is not a plain buffer");
    if (st != CG_OK) {
      uop_release(orig);
      return NULL;
    }
    if (view) __atomic_add_fetch(&staging_bytes, (int64_t)(cg_numel(t) * dt_scalar_size(t->u->dt)), __ATOMIC_RELAXED);
  }
  op_begin();
  uop *c = copy_range(t->u, base, off, src, dst);
  /* CUSTOM(copy, source): worth the copy (the engine drops the node), while autograd
   * follows it back to the source (copy_backward) */
  uop *r = c && dt_is_float(c->dt) ? custom_node(&copy_kind, c, &orig, 1, NULL, 0) : c;
  uop_release(orig);
  return op_end(r);
}
