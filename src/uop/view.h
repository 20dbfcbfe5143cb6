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
/* Views at a kernel-variable offset (tinygrad's symbolic shrink): the box or pads as above,
 * moved along dim `dim` by mult * var, var a 0-d int DEFINE_VAR (at the tensor level, a
 * cg_variable) or its kernel slot. The node is SHRINK/PAD with the var as src[1] and arg
 * [box or pads..., dim, mult]; the shape does not depend on the var. The caller checks
 * that every value in the var's [min, max] keeps the view in bounds. */
uop *view_shrink_var(uop *u, const int64_t *box, int dim, int64_t mult, uop *var);
uop *view_pad_var(uop *u, const int64_t *pads, int dim, int64_t mult, uop *var);
/* A SHRINK or PAD that carries a var offset (src[1]); its dim is arg.v[2 * ndim]. */
static inline bool view_has_var(const uop *u) { return (u->op == OP_SHRINK || u->op == OP_PAD) && u->nsrc == 2; }
/* The BUFFER that u is a one-to-one view of (RESHAPE, SHRINK with or without a var
 * offset, PERMUTE, FLIP: each element of u is one element of the buffer, and no two share
 * one), or NULL: what an assign may write into (an EXPAND would have two elements write
 * one address, a PAD write outside). */
uop *view_store_base(uop *u);
/* Whether u is the buffer itself or only reshapes of it (every element where a flat
 * index of u's shape says). */
bool view_is_whole(uop *u);
/* Broadcast u to shape (ndim >= u's ndim): reshape with leading 1s, then expand. */
uop *view_broadcast(uop *u, const int64_t *shape, int ndim);
/* A scalar constant broadcast to shape. */
uop *const_full(dtype dt, double v, const int64_t *shape, int ndim);
/* REDUCE of u over axes, keeping them as size 1 (no node when every axis has size 1). */
uop *reduce_uop(uop *u, int op, const int *axes, int naxes);

#endif
