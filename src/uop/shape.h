/* Shapes of tensor-level UOps, inferred when a node is built. The tensor layer validates
 * user input before building, so a bad shape here is an internal error. */
#ifndef CG_UOP_SHAPE_H
#define CG_UOP_SHAPE_H
#include "uop.h"

/* Writes the shape of (op, src, arg) to out and returns ndim, or -1 for a node without a
 * tensor shape (kernel-level nodes). */
int shape_infer(int op, uop *const *src, int nsrc, const uarg *arg, int64_t *out);
/* Product of dims. */
int64_t shape_numel(const int64_t *shape, int ndim);
/* Product of dims (all >= 0), or -1 when it or its size in bytes (elsize each) does not fit
 * int64: every shape a user can make passes here first. */
int64_t shape_numel_checked(const int64_t *shape, int ndim, int64_t elsize);
bool shape_eq(const int64_t *a, int na, const int64_t *b, int nb);
/* "(2, 3, 4)" into a static ring buffer (valid for a few calls). */
const char *shape_str(const int64_t *shape, int ndim);

#endif
