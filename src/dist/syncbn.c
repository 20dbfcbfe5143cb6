/* Synchronized BatchNorm (torch.nn.SyncBatchNorm): in training, the batch statistics of
 * every channel are those of the global batch, all ranks' examples together, so N ranks
 * with batch B normalize (and train) as one process with batch N*B would.
 *
 * Forward: x is realized (the forward below it runs once, here), then the per-channel
 * sum is allreduced, giving the global mean, then the sum of squared deviations from it,
 * giving the global (biased) variance: two passes, as cg_batch_norm's cg_var. The sums
 * (here and in the backward) accumulate in float64: a float32 sum over N*H*W values per
 * channel (4096 in the CNN's second BatchNorm) lost ~3e-5 of the variance, which a
 * chain of BatchNorms turned into 1e-2 relative gradient errors against a float64 run
 * (plain BatchNorm: 1e-3, from its fused reductions). The running statistics get the
 * global values (all ranks keep identical ones).
 *
 * Backward (a custom-gradient node, tensor/custom.h), with g = dL_r/dy on this rank and
 * xhat = (x - mean) * invstd:
 *     dx = w * invstd * (g - sum(g)/Ng - xhat * sum(g*xhat)/Ng)
 * where the sums run over every rank's examples (one allreduce of both, per channel), and
 * dw = sum(g*xhat), db = sum(g) over this rank's only. Each rank's loss is the mean over
 * its own batch, so its dx is N times its share of the global loss's gradient, and the
 * parameter gradients it leads to are N times its share too: averaging them over ranks
 * (cg_dist_allreduce CG_DIST_MEAN, what data-parallel training does) gives the global
 * gradient, exactly as for the layers without cross-example terms.
 *
 * The collectives run inside the forward and the backward, so every rank must run the
 * same layers in the same order (as data-parallel training does). */
#include "tensor/custom.h"
#include "tensor/tensor.h"
#include <string.h>

enum { S_X, S_XD, S_MEAN, S_INVSTD, S_REST }; /* sources after the value; then weight, bias if given */

static void sync_bn_backward(uop *node, uop *g, uop **d) {
  int has_w = (int)custom_param(node, 0), has_b = (int)custom_param(node, 1);
  double ng = (double)custom_param(node, 2);
  int nd = node->ndim, axes[CG_MAX_DIMS], na = 0;
  for (int i = 0; i < nd; i++)
    if (i != 1) axes[na++] = i;
  cg_scope_begin();
  cg_tensor *xd = tensor_new(node->src[1 + S_XD]), *mean = tensor_new(node->src[1 + S_MEAN]), *invstd = tensor_new(node->src[1 + S_INVSTD]);
  cg_tensor *w = has_w ? tensor_new(node->src[1 + S_REST]) : NULL;
  int64_t C = node->shape[1];
  cg_tensor *gr = cg_contiguous(tensor_new(g)), *xhat = cg_mul(cg_sub(xd, mean), invstd);
  cg_status st = gr ? cg_realize(gr) : cg_last_status();
  cg_tensor *g64 = cg_cast(gr, CG_FLOAT64);
  cg_tensor *sums[2] = {cg_sum(g64, axes, na, true), cg_sum(cg_mul(g64, cg_cast(xhat, CG_FLOAT64)), axes, na, true)}; /* (1, C, 1, ...) */
  if (st == CG_OK) st = sums[0] && sums[1] ? cg_realize_many(sums, 2) : cg_last_status();
  if (st == CG_OK) st = cg_dist_allreduce(sums, 2, CG_DIST_SUM, 0);
  /* dw and db are this rank's sums: lazy again (the allreduce overwrote the realized ones),
   * computed with the other gradients as cg_batch_norm's are */
  cg_tensor *local[2] = {cg_sum(cg_mul(gr, xhat), axes, na, false), cg_sum(gr, axes, na, false)};
  cg_tensor *dx = NULL;
  if (st == CG_OK) {
    cg_dtype dt = cg_dtype_of(gr);
    cg_tensor *mg = cg_cast(cg_mul(sums[0], cg_scalar(1 / ng)), dt), *mgx = cg_cast(cg_mul(sums[1], cg_scalar(1 / ng)), dt);
    cg_tensor *inner = cg_sub(cg_sub(gr, mg), cg_mul(xhat, mgx));
    dx = cg_mul(inner, invstd);
    if (w) dx = cg_mul(dx, cg_reshape(cg_detach(w), (int64_t[]){1, C, 1, 1, 1, 1, 1, 1}, nd));
    /* realized: lazy, it fused into the convolution gradients' reductions below and was
     * recomputed there for every window it appears in (2.3 s of a 3.7 s CNN step) */
    dx = cg_contiguous(dx);
    if (!dx || !local[0] || !local[1]) st = cg_last_status();
    else st = cg_realize(dx);
  }
  if (st != CG_OK) custom_fail(st); /* cg_backward reports it */
  else {
    d[1 + S_X] = uop_pool_keep(uop_retain(dx->u));
    if (has_w) d[1 + S_REST] = uop_pool_keep(uop_retain(local[0]->u));
    if (has_b) d[1 + S_REST + has_w] = uop_pool_keep(uop_retain(local[1]->u));
  }
  cg_scope_end();
}
static const custom_kind SYNC_BN = {"sync_batch_norm", sync_bn_backward, true}; /* its backward realizes and allreduces */

/* The tensors' scope ends at the caller's; r is kept. */
static cg_tensor *finish(cg_tensor *r) {
  r = cg_keep(r);
  cg_scope_end();
  return r;
}

cg_tensor *cg_sync_batch_norm(cg_tensor *x, cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *weight, cg_tensor *bias, bool training,
                              double momentum, double eps) {
  const char *who = "sync_batch_norm";
  if (!training || !x) return cg_batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps);
  int nd = cg_ndim(x);
  if (nd < 2) return cg_fail_null(CG_ERR_INVALID, "%s: expected an input of at least 2 dims (N, C, ...), got shape %s", who, shape_str(cg_shape(x), nd));
  if (cg_dtype_of(x) != CG_FLOAT32 && cg_dtype_of(x) != CG_FLOAT64)
    return cg_fail_null(CG_ERR_INVALID, "%s: expected a float32 or float64 input (the statistics are reduced over MPI), got %s", who,
                        dt_name(x->u->dt));
  /* shapes, optional tensors and the 1-value-per-channel case: cg_batch_norm's checks */
  cg_tensor *check = cg_batch_norm(x, NULL, NULL, weight, bias, true, momentum, eps);
  if (!check) return NULL;
  cg_free(check);
  int64_t C = cg_shape(x)[1], ng = cg_numel(x) / C * cg_dist_size(), cs[1] = {C};
  int axes[CG_MAX_DIMS], na = 0;
  for (int i = 0; i < nd; i++)
    if (i != 1) axes[na++] = i;
  cg_scope_begin();
  cg_tensor *xd = cg_contiguous(cg_detach(x));
  cg_status st = xd ? cg_realize(xd) : cg_last_status();
  cg_dtype dt = cg_dtype_of(x);
  cg_tensor *x64 = st == CG_OK ? cg_cast(xd, CG_FLOAT64) : NULL;
  cg_tensor *s1 = x64 ? cg_sum(x64, axes, na, true) : NULL; /* (1, C, 1, ...) */
  if (st == CG_OK) st = s1 && cg_realize(s1) == CG_OK ? cg_dist_allreduce(&s1, 1, CG_DIST_SUM, 0) : cg_last_status();
  cg_tensor *mean64 = st == CG_OK ? cg_contiguous(cg_mul(s1, cg_scalar(1 / (double)ng))) : NULL;
  if (st == CG_OK) st = mean64 ? cg_realize(mean64) : cg_last_status();
  cg_tensor *d64 = st == CG_OK ? cg_sub(x64, mean64) : NULL;
  cg_tensor *s2 = st == CG_OK ? cg_sum(cg_mul(d64, d64), axes, na, true) : NULL;
  if (st == CG_OK) st = s2 && cg_realize(s2) == CG_OK ? cg_dist_allreduce(&s2, 1, CG_DIST_SUM, 0) : cg_last_status();
  cg_tensor *var64 = st == CG_OK ? cg_mul(s2, cg_scalar(1 / (double)ng)) : NULL;
  cg_tensor *mean = mean64 ? cg_contiguous(cg_cast(mean64, dt)) : NULL, *var = var64 ? cg_contiguous(cg_cast(var64, dt)) : NULL;
  cg_tensor *invstd = var64 ? cg_contiguous(cg_cast(cg_rsqrt(cg_add(var64, cg_scalar(eps))), dt)) : NULL;
  cg_tensor *dev = mean ? cg_sub(xd, mean) : NULL;
  cg_tensor *stats[3] = {mean, var, invstd};
  if (st == CG_OK) st = mean && var && invstd ? cg_realize_many(stats, 3) : cg_last_status();
  if (st != CG_OK) return finish(NULL);
  /* running statistics: the global ones, pending assigns as in cg_batch_norm */
  if (running_mean) {
    cg_tensor *nm = cg_add(cg_mul(running_mean, cg_scalar(1 - momentum)), cg_mul(cg_reshape(mean, cs, 1), cg_scalar(momentum)));
    if (cg_assign(running_mean, nm) != CG_OK) return finish(NULL);
  }
  if (running_var) {
    cg_tensor *bv = cg_mul(cg_reshape(var, cs, 1), cg_scalar((double)ng / (double)(ng - 1)));
    cg_tensor *nv = cg_add(cg_mul(running_var, cg_scalar(1 - momentum)), cg_mul(bv, cg_scalar(momentum)));
    if (cg_assign(running_var, nv) != CG_OK) return finish(NULL);
  }
  int64_t pc[CG_MAX_DIMS];
  for (int i = 0; i < nd; i++) pc[i] = i == 1 ? C : 1;
  cg_tensor *y = cg_mul(dev, invstd);
  if (weight) y = cg_mul(y, cg_reshape(weight, pc, nd));
  if (bias) y = cg_add(y, cg_reshape(bias, pc, nd));
  if (!y) return finish(NULL);
  uop *srcs[S_REST + 2] = {x->u, xd->u, mean->u, invstd->u};
  int n = S_REST;
  if (weight) srcs[n++] = weight->u;
  if (bias) srcs[n++] = bias->u;
  int64_t par[3] = {weight != NULL, bias != NULL, ng};
  op_begin();
  return finish(op_end(custom_node(&SYNC_BN, y->u, srcs, n, par, 3)));
}
