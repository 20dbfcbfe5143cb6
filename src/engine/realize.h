/* realize: run the kernels that compute a set of tensor-level UOps (ARCHITECTURE §8). */
#ifndef CG_ENGINE_REALIZE_H
#define CG_ENGINE_REALIZE_H
#include "uop/uop.h"

/* Realize n tensor-level UOps; writes their BUFFER views (same shapes, owned by the current
 * pool) to views, or returns an error. Any number of outputs. */
cg_status realize_uops(uop *const *outs, int n, uop **views);

#endif
