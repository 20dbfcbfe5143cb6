/* Running one scheduled kernel with chosen opts (engine/realize.c): for tests that compare
 * opts with NOOPT, and for search over opts. */
#ifndef CG_ENGINE_RUN_KERNEL_H
#define CG_ENGINE_RUN_KERNEL_H
#include "codegen/codegen.h"
#include "schedule/schedule.h"

/* Run k on its buffers (allocated here if needed) with the given opts (nopts 0: none, as
 * NOOPT=1), compiled once per (kernel, opts); *seconds (if given) the launch's wall
 * time. An opt that does not apply fails with a message naming it. */
cg_status kernel_run_with_opts(sched_kernel *k, const opt *o, int nopts, double *seconds);

#endif
