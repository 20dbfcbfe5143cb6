/* Copies between devices: the engine's side of a COPY item (schedule.h) and the byte
 * counters behind cg_copy_stats. */
#ifndef CG_ENGINE_COPY_H
#define CG_ENGINE_COPY_H
#include "runtime/device.h"
#include <stdbool.h>

/* Copy nbytes from `from` (memory of device src) to `to` (memory of dst), through the
 * host where neither side is host memory; counted as transferred (and as staged when
 * staged: the source is a view made contiguous for the copy). */
cg_status engine_copy(rt_device *dst, void *to, rt_device *src, const void *from, size_t nbytes, bool staged);
/* Bytes copied between devices, and bytes made contiguous before a copy, since the start
 * of the process (either pointer may be NULL). */
void engine_copy_stats(int64_t *transfer, int64_t *staging);

/* A copy as a JIT host step (capture_host_io: ptrs = {destination, source}). */
typedef struct {
  rt_device *dst, *src;
  size_t off, nbytes; /* bytes: the source's offset, the size */
  bool staged;
} copy_step;
cg_status copy_step_run(const void *ctx, void *const *ptrs, int nbufs);

#endif
