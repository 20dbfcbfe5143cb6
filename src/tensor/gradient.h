/* Reverse-mode autograd over the tensor-level UOp graph (ARCHITECTURE §4): one gradient
 * rule per IR op (the table in gradient.c), applied in reverse topological order from a
 * root. Everything is lazy: the gradients are UOp graphs, nothing is realized here. */
#ifndef CG_TENSOR_GRADIENT_H
#define CG_TENSOR_GRADIENT_H
#include "uop/uop.h"

/* The gradients of root with respect to targets[0..n), given seed = d(loss)/d(root) (root's
 * shape and dtype). The UOps are built in the current pool. out[i] gets targets[i]'s
 * gradient (its shape and dtype), or NULL when no gradient flows to it; reached[i] (when
 * reached is not NULL) says whether targets[i] is in root's graph at all, not counting
 * what lies below a DETACH. Only floating-point nodes carry gradients; CONST and BUFFER
 * are leaves; a target may sit anywhere in the graph (gradients flow on through it).
 * False when out of memory (in a checked pool; CG_ERR_NOMEM recorded). */
bool grad_compute(uop *root, uop *seed, uop *const *targets, int n, uop **out, bool *reached);

/* Whether u's graph reaches any of targets[0..n) (not counting u itself, and not looking
 * below a DETACH): 1 or 0, -1 when out of memory. */
int grad_depends_on(uop *u, uop *const *targets, int n);

#endif
