/* The registry of device memory behind BUFFER UOps. A BUFFER UOp's arg is [id, count]: ids
 * are never reused, so two buffers never intern to one node. The registry entry and the
 * memory go when the UOp dies (uop_set_free_hook). The runtime sits above the IR and below
 * the scheduler: the scheduler makes the buffers its kernels write, the engine fills them. */
#ifndef CG_RUNTIME_BUFFER_H
#define CG_RUNTIME_BUFFER_H
#include "uop/uop.h"
#include "device.h"

typedef struct {
  void *ptr;          /* device memory, NULL until allocated */
  size_t nbytes;
  rt_device *dev;
  bool borrowed;      /* ptr points into memory someone else frees (a realize's arena) */
} cg_buffer;

/* A new BUFFER UOp of count elements of dt on dev (NULL: the default device, CPU or the
 * DEVICE knob); memory is allocated on first use. */
uop *buffer_new(dtype dt, int64_t count);
uop *buffer_new_on(rt_device *dev, dtype dt, int64_t count);
/* The device a tensor-level graph computes on: that of the first BUFFER found below u, or
 * the target of the first COPY (its arg: a device name) met before one (ops check that a
 * graph reads one device only, a COPY being the boundary between two), or NULL when it
 * reads none (constants, random bits: they are made wherever the result is put). */
rt_device *graph_device(uop *u);
/* The buffer behind a BUFFER UOp. */
cg_buffer *buffer_of(uop *b);
/* Allocate its memory if not yet there (CG_ERR_NOMEM on failure). */
cg_status buffer_alloc(uop *b);
/* Give the memory back early (the UOp may live on; it must not be read again). */
void buffer_release_memory(uop *b);
/* Point b at memory owned elsewhere (an arena of intermediates); released by forgetting. */
void buffer_borrow(uop *b, void *ptr);

#endif
