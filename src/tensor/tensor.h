/* Inside a cg_tensor: a retained UOp plus bookkeeping. Buffers: a BUFFER UOp names device
 * memory registered in buffer.c; the memory is given back when the UOp dies. */
#ifndef CG_TENSOR_TENSOR_H
#define CG_TENSOR_TENSOR_H
#include "cgrad.h"
#include "uop/shape.h"
#include "uop/uop.h"
#include "runtime/buffer.h"
#include "uop/view.h"
#include "engine/realize.h"

struct cg_tensor {
  uop *u;             /* the lazy value (retained) */
  bool weak;          /* a weak scalar from cg_scalar */
  bool requires_grad;
  cg_tensor *grad;    /* accumulated gradient (owned), or NULL */
  uop *graph;         /* a realized loss's graph, kept for cg_backward (retained), or NULL */
  uop *grad_zero;     /* zeros of its shape (retained, with grad), so cg_zero_grad cannot fail */
  int scope;          /* scope level that frees it; 0 = the caller's */
  cg_tensor *prev, *next;
};

/* A new tensor over u (u is retained), registered in the current scope. */
cg_tensor *tensor_new(uop *u);
/* t kept out to the top level (the caller frees it): state an object owns across scopes,
 * an optimizer's moments, a scaler's vars, fp8's scales. */
static inline cg_tensor *tensor_own(cg_tensor *t) {
  while (t && t->scope > 0) cg_keep(t);
  return t;
}
/* Finish an op: make the tensor for u, close the pool opened by the op (op_begin). A NULL
 * u (an error already recorded) gives NULL; so does an IR allocation that failed while the
 * op ran (CG_ERR_NOMEM), even if the op went on with a result. The op's pool is checked:
 * out of memory while building its graph is an error, not an abort (uop.h). */
cg_tensor *op_end(uop *u);
static inline void op_begin(void) { uop_pool_push_checked(); }
/* The status for a checked pool about to be closed: CG_ERR_NOMEM (re-recorded if a later
 * message overwrote it) when an IR allocation failed in it, else st. */
cg_status op_status(cg_status st);
/* Call fn(t, ctx) for every live tensor of this thread (all scopes); fn must not free any. */
void tensor_foreach(void (*fn)(cg_tensor *t, void *ctx), void *ctx);

/* True if the tensors (NULLs skipped) read one device at most; else false + an error
 * naming who and both devices (device.c). */
bool tensor_check_devices(const char *who, cg_tensor *const *ts, int n);

/* A host update of a var's value (op OP_ADD or OP_MUL, runtime/var.h) that a JIT capture
 * records, so its replays repeat it: an optimizer's step counter and beta^t. */
cg_status tensor_var_update(cg_tensor *var, int op, double operand);

/* ---- buffers: uop/buffer.h ------------------------------------------------------ */

/* Write v, converted to dt as CAST converts (ints saturate, NaN gives 0; small floats
 * rounded to nearest even), to element i of a host array of dt. */
void host_store(dtype dt, void *p, int64_t i, double v);

/* ---- shapes and views: uop/view.h (pure builders, also used below this layer) ---- */

/* Shape checks for user input (tensor.c). check_shape: ndim in range, shape not NULL, dims
 * >= 0, then shape_fits: element count and byte size of dt fit in 64 bits. False + error. */
bool check_shape(const char *who, const int64_t *shape, int ndim, dtype dt);
bool shape_fits(const char *who, const int64_t *shape, int ndim, dtype dt);

/* ---- dtype helpers ------------------------------------------------------------------ */
dtype promote(dtype a, dtype b);
uop *cast_to(uop *u, dtype dt);

/* ---- elementwise helpers used by composite ops (elementwise.c) --------------------- */
uop *ew2(int op, uop *a, uop *b);       /* same shape and dtype */
uop *ew1(int op, uop *a);
uop *ew_const(uop *like, double v);     /* constant with like's shape and dtype */
/* [0, n) as dt (int32 or int64) along `axis` of an ndim-d shape of 1s (a small host buffer; mask.c). */
uop *iota_along(dtype dt, int64_t n, int axis, int ndim);
/* Normalize axes (negative count from end); false + error on a bad axis. */
bool norm_axes(const char *who, int ndim, const int *axes, int naxes, int *out, int *nout);
int norm_dim(const char *who, int ndim, int dim, bool *ok);

/* t was realized: it takes view (its BUFFER view) as value. A one-element float tensor
 * computed from tensors that require grad keeps its graph for a later cg_backward (the
 * torch habit loss.item(); loss.backward()). (gradient.c) */
void tensor_realized(cg_tensor *t, uop *view);

#endif
