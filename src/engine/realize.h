/* realize: run the kernels that compute a set of tensor-level UOps (ARCHITECTURE §8). */
#ifndef CG_ENGINE_REALIZE_H
#define CG_ENGINE_REALIZE_H
#include "uop/uop.h"

/* Realize n tensor-level UOps; writes their BUFFER views (same shapes, owned by the current
 * pool) to views, or returns an error. Any number of outputs. */
cg_status realize_uops(uop *const *outs, int n, uop **views);

/* An observer of the next realize on this thread (then cleared): how a layer above
 * overlaps work with a realize's kernels (the distributed layer starts each bucket's
 * allreduce of gradients while the rest of the backward runs). ready(ctx, i, buf, left)
 * is called once per output i as soon as no later kernel of the realize reads or writes
 * its buffer buf (BUFFER; before the first kernel for outputs no kernel touches), in
 * kernel order, with the number of kernels still to run; not at all if the realize fails
 * before its kernels run. */
typedef struct {
  void (*ready)(void *ctx, int out, uop *buf, int kernels_left);
  void *ctx;
} realize_observer;
void realize_observe_next(const realize_observer *o);
/* A process-wide hook called after every kernel launch of a realize or a JIT replay
 * (NULL: none): what drives a non-blocking collective's progress between kernels. */
void realize_set_progress(void (*fn)(void));
void realize_progress(void); /* calls the hook, if any (replays) */

#endif
