/* The scheduler: which tensor-level nodes become buffers, and the kernels that fill them.
 *
 *   outputs ─► realize points (outputs, CONTIGUOUS, ASSIGN, reductions that cannot fuse)
 *           ─► one kernel per point, in dependency order ─► merge a kernel into its only
 *              reader at the same index (softmax's max inside its sum)
 *           ─► order: results before their readers, and every kernel that reads a
 *              buffer's old value before the assign that overwrites it (an optimizer step
 *              realized with the loss and gradients); a kernel that needs both the old
 *              and the new value of one buffer is refused with a message
 *
 * A COPY (tensor/device.c, cg_to) is a realize point of its own on its target device: its
 * source is read straight from a buffer where it is a contiguous range of one (a buffer,
 * a reshape, a slice along the leading axis), else realized on the source device first.
 *
 * Fusion rules (ARCHITECTURE §5): movement ops become index math; elementwise chains
 * fuse into their consumer; a reduction fuses into its consumer when it is used once and
 * reached without broadcasting (or broadcast only along an enclosing reduction's axes).
 *
 * A kernel comes out as a tensor-level AST over numbered slots, never concrete buffers:
 *     SINK(STORE(DEFINE_GLOBAL[slot, count], value), ...)
 * where value is a tensor-level graph (movement ops, ALU ops, REDUCE) whose leaves are
 * CONSTs, DEFINE_VARs and DEFINE_GLOBALs; slots 0..nout-1 are the outputs, the others
 * inputs in the order they are first met. A kernel variable (a tensor-level DEFINE_VAR)
 * becomes a var slot the same way: DEFINE_VAR(name, [min, max, slot]), its value passed at
 * launch. Two graphs that differ only in which buffers they read (or which vars, or their
 * values) give the same AST (hash-consing: the same pointer), so everything after the
 * scheduler (codegen, compiled programs) is cached by it. The scheduler never calls
 * codegen. */
#ifndef CG_SCHEDULE_H
#define CG_SCHEDULE_H
#include "uop/uop.h"

typedef struct {
  uop *ast;        /* SINK of STOREs over DEFINE_GLOBAL slots (owned by the caller's pool) */
  uop **bufs;      /* the BUFFER bound to each slot, outputs first */
  int nbufs, nout;
  uop **vars;      /* the tensor-level DEFINE_VAR bound to each var slot (runtime/var.h) */
  int nvars;
  /* A copy item (sched_copy_of) whose source bufs[1] is a view of a buffer made
   * contiguous for it: the "staging" bytes of cg_copy_stats (a counter only). */
  bool copy_staged;
} sched_kernel;

typedef struct {
  sched_kernel *k;
  int n;
  uop **out_bufs;  /* for each requested output: the BUFFER holding it */
} schedule;

/* Build the schedule for outs (tensor-level UOps); nodes are owned by the current pool.
 * Returns false with an error recorded on failure. */
bool sched_build(uop *const *outs, int nouts, schedule *s);
/* Whether k is a copy between devices (a COPY: an item of its own, never a kernel; its ast
 * is SINK(STORE(slot 0, COPY(a view of slot 1)))), read from the ast alone, so a schedule
 * rebuilt from its ASTs (a cache) keeps it: bufs[0], on the COPY's device, takes the
 * elements [*off, *off + count) of bufs[1]. */
bool sched_copy_of(const sched_kernel *k, int64_t *off);
void sched_free(schedule *s);

#endif
