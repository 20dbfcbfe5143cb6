/* Devices seen from tensors (ARCHITECTURE §7): names, where a tensor lives, copies between
 * devices, and the check that an op reads one device only.
 *
 * A copy (cg_to) is lazy: a COPY node (arg: the target's name) that the scheduler makes an
 * item of its own between the two devices' kernels (schedule.h), so a graph across devices
 * is one realize. Its gradient is a COPY back (gradient.c). */
#include "tensor.h"
#include "core/config.h"
#include "runtime/alloc.h"
#include "engine/copy.h"
#include <stdio.h>
#include <string.h>

void cg_copy_stats(int64_t *transfer, int64_t *staging) { engine_copy_stats(transfer, staging); }

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

cg_tensor *cg_to(cg_tensor *t, const char *device) {
  if (!t) return cg_fail_null(CG_NULL_INPUT, "to: tensor is NULL");
  rt_device *dst = rt_get_device(device), *src = dst ? device_of(t) : NULL;
  if (!dst || !src) return NULL;
  if (src == dst) return tensor_new(t->u); /* a second handle, no copy */
  rt_note_copy();
  op_begin();
  return op_end(uop_new1(OP_COPY, t->u->dt, t->u, arg_str(dst->name)));
}
