/* Custom gradients: the autograd extension point for ops whose backward should not be the
 * derivative of their forward graph (a fused attention that recomputes from a saved
 * log-sum-exp, a forward computed eagerly in blocks, a numerically better formula).
 *
 *   value = anything (lazy or realized)       inputs = the differentiable tensors
 *   node  = CUSTOM(value, inputs..., saved...)  arg = [kind, params...]
 *
 * The node is worth its value: the engine drops it before scheduling (one rule in
 * realize.c's before_schedule set), so it never reaches a kernel. Autograd reaches the
 * inputs through its sources and, at the node, calls kind->backward instead of descending
 * into value's graph. Saved tensors (a log-sum-exp, a mask) are plain further sources, so
 * the node itself keeps them alive and frees them with it: no side table, no lifetime
 * rules beyond reference counting. Why a node and not a hook on the value: the value may be
 * a realized buffer with no graph at all, and hash-consing would share a hook between
 * equal graphs. */
#ifndef CG_TENSOR_CUSTOM_H
#define CG_TENSOR_CUSTOM_H
#include "cgrad.h"
#include "uop/uop.h"

#define CUSTOM_MAX_SRC 10

typedef struct custom_kind {
  const char *name;
  /* Write d[i] = d(loss)/d(src[i]) (src[i]'s shape and dtype) for the sources that get a
   * gradient; leave the others NULL (d[0], the value, is ignored). g = d(loss)/d(node).
   * Called inside grad_compute with a uop pool open; it may realize (realize_uops). */
  void (*backward)(uop *node, uop *g, uop **d);
  /* The backward realizes (flash attention's key blocks): autograd first realizes the
   * gradients accumulated so far for the nodes it has not reached (gradient.c), so that
   * what this realize computes is stored once, not recomputed by every later realize. */
  bool realizes;
} custom_kind;

/* A backward that cannot finish (out of memory in a realize) calls custom_fail(status):
 * its gradients stay NULL and cg_backward returns that status. custom_take_failure gives
 * the first failure since the last call (CG_OK if none) and clears it. */
void custom_fail(cg_status st);
cg_status custom_take_failure(void);

/* CUSTOM(value, srcs[0..n)) with arg [kind, params[0..np)]. value and srcs must be
 * tensor-level; n + 1 <= CUSTOM_MAX_SRC. Owned by the current pool. */
uop *custom_node(const custom_kind *kind, uop *value, uop *const *srcs, int n, const int64_t *params, int np);
/* The kind and the params of a CUSTOM node. */
const custom_kind *custom_kind_of(const uop *u);
static inline int64_t custom_param(const uop *u, int i) { return u->arg.v[1 + i]; }

#endif
