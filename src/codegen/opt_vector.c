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
#include "uop/symbolic.h"

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

/* A pool's kernel: a reduction of at most 64 terms per output (a 3x3 or 7x7 window) whose
 * loads step along r (the output's last dim) by a small constant (2, 3, 4: a strided
 * window) or not at all. Its vector along r is made of gathers, but the alternative is a
 * scalar load per tap and output: resnet18's 3x3 stride-2 max pool ran in 3.0 ms that way
 * on one thread, 0.5 ms with 8-wide gathers. */
bool opt_strided_pool(uop *sink, uop **ix, int nix, uop *r) {
  int64_t red = 1;
  uopset seen = {0};
  reduce_trips(sink, &seen, &red);
  uopset_free(&seen);
  if (red < 2 || red > 64) return false;
  int64_t arg[3] = {r->arg.v[0], RANGE_UPCAST, 98};
  uop *r2 = uop_new1(OP_RANGE, DT_I32, r->src[0], arg_ints(arg, 3)), *next = uop_alu(OP_ADD, r2, uop_const_int(DT_I32, 1));
  int strided = 0;
  for (int i = 0; i < nix; i++) {
    bool store = false;
    for (uint32_t k = 0; k < sink->nsrc; k++) store |= sink->src[k]->src[0] == ix[i];
    if (store) continue;
    uop *d = uop_simplify(uop_alu(OP_ADD, subst_range(ix[i]->src[1], r, next), uop_alu1(OP_NEG, subst_range(ix[i]->src[1], r, r2))));
    if (!d || d->op != OP_CONST || d->arg.i < 0 || d->arg.i > 4) return false; /* !d: out of memory, the pass fails */
    strided += d->arg.i > 1;
  }
  return strided > 0;
}

/* A transposed copy (dw's bf16 operand, a permuted view made contiguous): vectors along
 * the output's last dim gather one element per cache line from rows that lie a whole row
 * of the input apart. Left alone each line is fetched again for each of its 16 elements
 * from L2 or beyond (a 2048 x 1536 float32 transpose: 18.9 ms on one core against 0.65
 * for the straight copy); with the dim along which those loads are contiguous unrolled by
 * 16, the 16 gathers of one step read the same 16 lines, each used whole (7.7 ms), and
 * with the vector dim's loop outermost (TILE(vec, 1), opt.c) a thread's gathers walk 16
 * input rows along them, which the prefetchers follow (3.2 ms). */
uop *opt_transpose_tile(uop *sink, uop **ix, int nix, uop **rng, int nr, uop *vec, int64_t *amount) {
  int unit, other;
  strides_along(sink, ix, nix, vec, 1, &unit, &other);
  if (other == 0) return NULL;
  uop *best = NULL;
  int best_unit = 0;
  for (int i = 0; i < nr; i++) {
    int64_t w = vec_width(rng[i]->src[0]->arg.i);
    if (rng[i] == vec || w < 8) continue;
    int u, o;
    strides_along(sink, ix, nix, rng[i], 1, &u, &o);
    if (u > best_unit) best = rng[i], best_unit = u, *amount = w;
  }
  return best;
}

/* A copy whose whole last dim is short (8 floats: half a cache line; up to 32) and whose
 * loads continue along another output dim exactly where that row ends (a GEMM's A
 * operand packed into panels of 8 rows, gT (2048 x 1536) -> 192 panels of (2048, 8): the
 * panel dim steps the loads by 8 elements): that dim unrolled by 16 / width (2 from 16
 * wide), so each step reads whole lines, two or more (the half lines were read twice, by
 * two panels). Measured on one core (thread CPU time, 2048 x 1536): the 8-row A pack
 * 1.02 -> 0.62 ms, the 32-column B pack 0.66 -> 0.58; unrolling to 64 floats a step
 * was no better for the first and slower for smaller packs. NULL when no dim qualifies;
 * *amount: by how much. */
uop *opt_line_dim(uop *sink, uop **ix, int nix, uop **rng, int nr, uop *vec, int64_t width, int64_t *amount) {
  if (width > 32 || 32 % width || vec->src[0]->arg.i != width) return NULL;
  int64_t want = width < 16 ? 16 / width : 2;
  for (int i = nr - 1; i >= 0; i--) {
    if (rng[i] == vec || rng[i]->src[0]->arg.i % want) continue;
    int64_t arg[3] = {rng[i]->arg.v[0], RANGE_UPCAST, 98};
    uop *r2 = uop_new1(OP_RANGE, DT_I32, rng[i]->src[0], arg_ints(arg, 3)), *next = uop_alu(OP_ADD, r2, uop_const_int(DT_I32, 1));
    int loads = 0;
    bool ok = true;
    for (int j = 0; j < nix && ok; j++) {
      bool store = false;
      for (uint32_t k = 0; k < sink->nsrc; k++) store |= sink->src[k]->src[0] == ix[j];
      if (store) continue;
      uop *d = uop_simplify(uop_alu(OP_ADD, subst_range(ix[j]->src[1], rng[i], next), uop_alu1(OP_NEG, subst_range(ix[j]->src[1], rng[i], r2))));
      if (!d) return NULL; /* out of memory: the pass fails */
      if (d->op == OP_CONST && d->arg.i == 0) continue; /* does not move along it */
      ok = d->op == OP_CONST && d->arg.i == width, loads++;
    }
    if (ok && loads) {
      *amount = want;
      return rng[i];
    }
  }
  return NULL;
}
