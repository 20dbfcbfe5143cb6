/* The scheduler: which tensor-level nodes become buffers, and the kernels that fill them.
 *
 *   outputs ─► realize points (outputs, CONTIGUOUS, reductions that cannot fuse) ─►
 *   one kernel AST per point (codegen/lower.c), in dependency order.
 *
 * Fusion rules (ARCHITECTURE §5): movement ops become index math; elementwise chains
 * fuse into their consumer; a reduction fuses into its consumer when it is used once and
 * reached without broadcasting (or broadcast only along an enclosing reduction's axes). */
#ifndef CG_SCHEDULE_H
#define CG_SCHEDULE_H
#include "uop/uop.h"

typedef struct {
  uop *ast;        /* SINK of STOREs; buffers appear as BUFFER UOps inside INDEX */
  uop **bufs;      /* distinct buffers, outputs first (retained by the schedule's pool) */
  int nbufs, nout;
  int64_t global;  /* size of the outermost parallel range (1: none) */
  char opts[96];   /* the opts applied, for DEBUG=3 */
} sched_kernel;

typedef struct {
  sched_kernel *k;
  int n;
  uop **out_bufs;  /* for each requested output: the BUFFER holding it */
} schedule;

/* Build the schedule for outs (tensor-level UOps); nodes are owned by the current pool.
 * Returns false with an error recorded on failure. */
bool sched_build(uop *const *outs, int nouts, schedule *s);
void sched_free(schedule *s);

/* lower.c: the kernel AST that computes `root` (which will be stored to out_buf), with the
 * realized nodes of `realized` (node -> BUFFER) read from their buffers. Reduce ranges
 * get ids from *next_axis, unique in a schedule so merged kernels keep their loops apart.
 * The kernel's opts (codegen/opt.c) are applied and described in opts. */
uop *lower_kernel(uop *root, uop *out_buf, void *realized_map, int64_t *global, int *next_axis, char *opts, size_t nopts);

#endif
