/* Composite ops with a backward of their own (the role of torch.autograd.Function).
 *
 * Autograd differentiates the tensor graph with one rule per IR op (gradient.c). That is
 * right for almost everything, but not for an op whose forward is a *view* trick: a
 * convolution is a window view (pad, repeat, shrink, reshape) times the weights, summed.
 * Differentiating the view op by op sums overlapping windows through a tensor of the size
 * of every window, (N, C, OH, OW, KH, KW); the gradient a person would write (a transposed
 * convolution, a reduction over the batch) needs nothing larger than the activations.
 *
 * So a composite records, next to its value node, the inputs it was built from and a
 * function giving their gradients from the value's. grad_compute treats a recorded node as
 * one node whose sources are those inputs: it does not look inside the value's graph.
 *
 * Why a side record and not a marker node in the graph: the value stays an ordinary graph,
 * so the scheduler, the rewrite rules and the kernels see exactly what they saw before (a
 * marker would have to be stripped before every schedule, and would block view folding
 * across it). The record is keyed by the value node, which hash-consing makes the same
 * pointer for the same structure: an equal graph built another way gets the same, exact,
 * gradient. The record keeps its value node alive; once nothing else refers to the node
 * (no tensor, no graph), nothing can ask for its gradient again and the record is dropped
 * (composite_record sweeps such records, so a training loop does not grow them).
 *
 * Key the record on a node that is not a RESHAPE: view_reshape folds a reshape of a reshape
 * into one node, so a later reshape of a reshape-keyed value would skip the record (still
 * correct, through the per-op rules, only slower).
 *
 * The gradient function runs inside grad_compute, with a uop pool open: it builds the
 * input gradients (lazy UOps, owned by that pool) and may use the tensor API inside a
 * scope of its own (its results then need uop_pool_keep(uop_retain(t->u)) before the
 * scope ends). It may call composites itself (double backward works the same way). */
#ifndef CG_TENSOR_COMPOSITE_H
#define CG_TENSOR_COMPOSITE_H
#include "uop/uop.h"

#define COMPOSITE_MAX_IN 3
#define COMPOSITE_MAX_PARAMS 24

typedef struct composite composite;
/* d[i] = the gradient for in[i] (its shape and dtype), or NULL for none, given g, the
 * gradient of out (out's shape and dtype). */
typedef void (*composite_grad_fn)(const composite *c, uop *g, uop **d);

struct composite {
  uop *out;                          /* the value node (the record holds a reference) */
  uop *in[COMPOSITE_MAX_IN];         /* its inputs (held too: view folding may leave the
                                      * node itself out of out's graph, e.g. a reshape) */
  int nin, np;
  composite_grad_fn grad;
  int64_t p[COMPOSITE_MAX_PARAMS];   /* the op's parameters, for grad */
};

/* Record that out was computed from in[0..nin) with gradient function fn and parameters
 * p[0..np). out's value must depend on in[..] only (and on no other differentiable node). A node already recorded keeps its record. */
void composite_record(uop *out, uop *const *in, int nin, composite_grad_fn fn, const int64_t *p, int np);
/* Copy u's record into *c; false when u has none. */
bool composite_get(const uop *u, composite *c);

#endif
