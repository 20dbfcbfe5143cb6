/* Pure builders of movement and reduce UOps, with the shortcuts that keep graphs small (a
 * reshape to the same shape is no node; reshape of reshape is one node). No user checks:
 * the tensor layer checks arguments before it calls these. Below the scheduler, so the
 * scheduler and the engine build views without reaching up into the tensor layer. */
#ifndef CG_UOP_VIEW_H
#define CG_UOP_VIEW_H
#include "uop.h"
#include "shape.h"

uop *view_reshape(uop *u, const int64_t *shape, int ndim);
uop *view_expand(uop *u, const int64_t *shape, int ndim);
uop *view_permute(uop *u, const int64_t *perm);
uop *view_pad(uop *u, const int64_t *pads);
uop *view_shrink(uop *u, const int64_t *box);
/* Broadcast u to shape (ndim >= u's ndim): reshape with leading 1s, then expand. */
uop *view_broadcast(uop *u, const int64_t *shape, int ndim);
/* A scalar constant broadcast to shape. */
uop *const_full(dtype dt, double v, const int64_t *shape, int ndim);
/* REDUCE of u over axes, keeping them as size 1 (no node when every axis has size 1). */
uop *reduce_uop(uop *u, int op, const int *axes, int naxes);

#endif
