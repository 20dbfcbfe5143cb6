/* Which output dim a reduction kernel makes vectors along (a part of the heuristic, kept
 * apart from opt.c's tiling logic).
 *
 * The row-major default is the output's last dim. A convolution over NCHW has short last
 * dims (10, 8, 6 wide at the CNN's later layers, 20 or 24 at its first) that give narrow
 * vectors or none; its output channels are as good a vector dim once the weights are laid
 * out with the channel innermost (nn/functional_conv.c does that copy): the weights are
 * then contiguous vector loads, the input a broadcast shared by all lanes, and the output
 * is stored lane by lane once per reduction (expand.c's strided stores). So: of the
 * output dims along which no load is a gather (every load steps by one element or not at
 * all, and at least one steps by one), the one that gives the widest vector (16, then 8);
 * the last dim when it is as wide. Only where the lane-by-lane stores are amortized: a
 * reduction of at least 64 terms per output, and enough outputs (4096) that the tiles keep
 * both threads busy (conv1's weight gradient, 800 outputs over 300k terms, is better left
 * with its vector along the reduction). */
#include "codegen.h"
#include "uop/uopset.h"

static void reduce_trips(uop *u, uopset *seen, int64_t *trips) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE && u->arg.v[1] == RANGE_REDUCE) { /* saturating: only compared with small bounds */
    int64_t n = u->src[0]->arg.i;
    *trips = n > 0 && *trips > INT64_MAX / n ? INT64_MAX : *trips * n;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) reduce_trips(u->src[i], seen, trips);
}

static int64_t vec_width(int64_t size) { return size % 16 == 0 ? 16 : size % 8 == 0 ? 8 : size % 4 == 0 && size >= 4 ? 4 : 0; }

static bool in_reduction(uop *u, uopset *memo) {
  if (u->op == OP_RANGE) return u->arg.v[1] == RANGE_REDUCE;
  uintptr_t m = (uintptr_t)uopset_get(memo, u);
  if (m) return m == 2;
  bool r = false;
  for (uint32_t i = 0; i < u->nsrc && !r; i++) r = u->src[i]->op != OP_DEFINE_GLOBAL && in_reduction(u->src[i], memo);
  uopset_put(memo, u, (void *)(uintptr_t)(1 + r));
  return r;
}

int opt_reduce_loads(uop **ix_all, int nix_all, uop **ix, int max) {
  int nix = 0;
  uopset memo = {0};
  for (int i = 0; i < nix_all && nix < max; i++)
    if (in_reduction(ix_all[i]->src[1], &memo)) ix[nix++] = ix_all[i];
  uopset_free(&memo);
  return nix;
}

uop *opt_vector_dim(uop *sink, uop **ix_all, int nix_all, uop **rng, int nr) {
  uop *best = rng[nr - 1];
  /* the other dims are judged by the loads inside the reduction: one gather per output
   * (a ReLU mask fused into an input gradient) costs little */
  uop *ix[256];
  int nix = opt_reduce_loads(ix_all, nix_all, ix, 256);
  int unit, other;
  strides_along(sink, ix_all, nix_all, best, 1, &unit, &other);
  int64_t wbest = other <= unit ? vec_width(best->src[0]->arg.i) : 0, outs = 1, red = 1;
  for (int i = 0; i < nr; i++) outs *= rng[i]->src[0]->arg.i;
  uopset seen = {0};
  reduce_trips(sink, &seen, &red);
  uopset_free(&seen);
  if (outs < 4096 || red < 64) return best;
  for (int i = 0; i < nr - 1; i++) {
    int64_t w = vec_width(rng[i]->src[0]->arg.i);
    if (w < 8 || w <= wbest) continue;
    strides_along(sink, ix, nix, rng[i], 1, &unit, &other);
    if (other == 0 && unit >= 1) best = rng[i], wbest = w;
  }
  return best;
}
