/* Inside a cg_tensor: a retained UOp plus bookkeeping. Buffers: a BUFFER UOp names device
 * memory registered in buffer.c; the memory is given back when the UOp dies. */
#ifndef CG_TENSOR_TENSOR_H
#define CG_TENSOR_TENSOR_H
#include "cgrad.h"
#include "uop/shape.h"
#include "uop/uop.h"
#include "runtime/device.h"

struct cg_tensor {
  uop *u;             /* the lazy value (retained) */
  bool weak;          /* a weak scalar from cg_scalar */
  bool requires_grad;
  cg_tensor *grad;    /* accumulated gradient (owned), or NULL */
  int scope;          /* scope level that frees it; 0 = the caller's */
  cg_tensor *prev, *next;
};

/* A new tensor over u (u is retained), registered in the current scope. */
cg_tensor *tensor_new(uop *u);
/* Finish an op: make the tensor for u, close the pool opened by the op (op_begin). A NULL
 * u (an error already recorded) gives NULL. */
cg_tensor *op_end(uop *u);
static inline void op_begin(void) { uop_pool_push(); }
/* Call fn(t, ctx) for every live tensor of this thread (all scopes); fn must not free any. */
void tensor_foreach(void (*fn)(cg_tensor *t, void *ctx), void *ctx);

/* ---- buffers (buffer.c) ---------------------------------------------------------- */
typedef struct {
  void *ptr;          /* device memory, NULL until allocated */
  size_t nbytes;
  rt_device *dev;
} cg_buffer;

/* A new BUFFER UOp of count elements of dt (memory allocated on first use). */
uop *buffer_new(dtype dt, int64_t count);
/* The buffer behind a BUFFER UOp. */
cg_buffer *buffer_of(uop *b);
/* Allocate its memory if not yet there (CG_ERR_NOMEM on failure). */
cg_status buffer_alloc(uop *b);
/* Give the memory back early (the UOp may live on; it must not be read again). */
void buffer_release_memory(uop *b);

/* Write v, converted to dt as C converts (small floats rounded to nearest even), to
 * element i of a host array of dt. */
void host_store(dtype dt, void *p, int64_t i, double v);

/* ---- shapes and views ------------------------------------------------------------ */
/* Shape of a tensor-level UOp. */
static inline const int64_t *U_SHAPE(const uop *u) { return u->shape; }
/* View helpers that build the movement UOps (no checks: callers checked). */
uop *view_reshape(uop *u, const int64_t *shape, int ndim);
uop *view_expand(uop *u, const int64_t *shape, int ndim);
uop *view_permute(uop *u, const int64_t *perm);
uop *view_pad(uop *u, const int64_t *pads);
uop *view_shrink(uop *u, const int64_t *box);
/* Broadcast u to shape (ndim >= u's ndim): reshape with leading 1s, then expand. */
uop *view_broadcast(uop *u, const int64_t *shape, int ndim);
/* A scalar constant broadcast to shape. */
uop *const_full(dtype dt, double v, const int64_t *shape, int ndim);

/* ---- dtype helpers ------------------------------------------------------------------ */
dtype promote(dtype a, dtype b);
uop *cast_to(uop *u, dtype dt);

/* ---- elementwise helpers used by composite ops (elementwise.c) --------------------- */
uop *ew2(int op, uop *a, uop *b);       /* same shape and dtype */
uop *ew1(int op, uop *a);
uop *ew_const(uop *like, double v);     /* constant with like's shape and dtype */
uop *reduce_uop(uop *u, int op, const int *axes, int naxes); /* keepdim */
/* [0, n) as int64 along `axis` of an ndim-d shape of 1s (a small host buffer; mask.c). */
uop *iota_along(int64_t n, int axis, int ndim);
/* Normalize axes (negative count from end); false + error on a bad axis. */
bool norm_axes(const char *who, int ndim, const int *axes, int naxes, int *out, int *nout);
int norm_dim(const char *who, int ndim, int dim, bool *ok);

/* Realize a set of tensor-level UOps; returns their BUFFER views (same shapes) in out
 * (retained by the current pool), or an error. (engine/realize.c) */
cg_status realize_uops(uop *const *outs, int n, uop **views);

#endif
