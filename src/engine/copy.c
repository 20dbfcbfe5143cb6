/* Copies between devices (see copy.h). */
#include "copy.h"
#include "runtime/alloc.h"
#include "core/error.h"
#include <stdlib.h>

static int64_t transfer_bytes, staging_bytes;

void engine_copy_stats(int64_t *transfer, int64_t *staging) {
  if (transfer) *transfer = __atomic_load_n(&transfer_bytes, __ATOMIC_RELAXED);
  if (staging) *staging = __atomic_load_n(&staging_bytes, __ATOMIC_RELAXED);
}

static bool host_addressable(rt_device *d) { return !d->allocator || d->allocator->host_memory; }

cg_status engine_copy(rt_device *dst, void *to, rt_device *src, const void *from, size_t nbytes, bool staged) {
  cg_status st = CG_OK;
  if (!nbytes) return CG_OK;
  if (host_addressable(dst)) st = src->copyout(to, from, nbytes);
  else if (host_addressable(src)) st = dst->copyin(to, from, nbytes);
  else { /* neither side is host memory: through a host bounce buffer */
    void *tmp = malloc(nbytes);
    st = !tmp ? cg_fail(CG_ERR_NOMEM, "copy %s -> %s: out of memory for a %zu-byte bounce buffer", src->name, dst->name, nbytes)
              : src->copyout(tmp, from, nbytes);
    if (st == CG_OK) st = dst->copyin(to, tmp, nbytes);
    free(tmp);
  }
  if (st == CG_OK) {
    __atomic_add_fetch(&transfer_bytes, (int64_t)nbytes, __ATOMIC_RELAXED);
    if (staged) __atomic_add_fetch(&staging_bytes, (int64_t)nbytes, __ATOMIC_RELAXED);
  }
  return st;
}

cg_status copy_step_run(const void *ctx, void *const *ptrs, int nbufs) {
  const copy_step *c = ctx;
  if (nbufs != 2) return cg_fail(CG_ERR_INVALID, "copy step: expected 2 buffers, got %d", nbufs);
  return engine_copy(c->dst, ptrs[0], c->src, (const char *)ptrs[1] + c->off, c->nbytes, c->staged);
}
