/* The heuristic for kernels whose inner dims are too short for the generic branch's
 * vectors: a 2x2 max-pool over (N*C*10, 10) outputs and its gradient's mask, (N*C*10, 2,
 * 10, 2); a 6x6 map; a reduction over a small window. Left to the generic branch they ran
 * as nests of loops of 2 and 10 trips, one element per innermost trip (0.3-2 GB/s).
 *
 *   - a reduction of at most SMALL_RED terms per output is unrolled completely (every
 *     reduce range: its terms are straight-line code, no accumulator loop; a window's
 *     row that is contiguous becomes a short vector in expand.c);
 *   - the innermost output dims are unrolled completely, inner first, up to SMALL_BODY
 *     elements (and 4 x SMALL_BODY terms) per trip (expand.c makes one of them the vector where its stores are
 *     contiguous: the 2 of a pool gradient's (.., 10, 2));
 *   - threads on the outermost dim left.
 * Measured (1 thread, thread CPU time, Zen 5 VM; the CNN step's kernels): the 2x2
 * max-pool over (16384, 20, 20) 11.4 -> 3.7 ms, its first-max mask 14.3 -> 5.1 ms, the
 * gradient's spread (16384*10, 2, 10, 2) 3.1 -> 1.2 ms. The other way to make vectors
 * here, the last dim padded to 16 lanes with the stride-2 loads as gathers, ran 2x slower
 * than this (vgatherdps is slow on Zen 5). */
#include "codegen.h"
#include "uop/uopset.h"

#define SMALL_RED 16
#define SMALL_BODY 64

static void reduce_ranges(uop *u, uopset *seen, uop **out, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_RANGE && u->arg.v[1] == RANGE_REDUCE) {
    if (*n < UOP_MAX_DIMS) out[(*n)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) reduce_ranges(u->src[i], seen, out, n);
}

int opt_small_dims(uop *sink, uop **rng, int nr, opt *out) {
  uop *red[UOP_MAX_DIMS];
  int nred = 0, n = 0;
  uopset seen = {0};
  reduce_ranges(sink, &seen, red, &nred);
  uopset_free(&seen);
  int64_t terms = 1;
  for (int i = 0; i < nred && terms <= SMALL_RED; i++) /* saturates: trip counts may be huge */
    terms = red[i]->src[0]->arg.i > SMALL_RED ? SMALL_RED + 1 : terms * red[i]->src[0]->arg.i;
  if (terms > SMALL_RED || nr == 0) return 0;
  for (int i = 0; i < nred && n < MAX_OPTS - 4; i++)
    if (red[i]->src[0]->arg.i > 1) out[n++] = (opt){OPT_UNROLL, (int16_t)red[i]->arg.v[0], (int32_t)red[i]->src[0]->arg.i};
  int64_t amount[UOP_MAX_DIMS] = {0}, body = 1;
  for (int i = nr - 1; i >= 0 && n < MAX_OPTS - 1; i--) {
    int64_t sz = rng[i]->src[0]->arg.i;
    if (sz > 16 || body * sz > SMALL_BODY || body * sz * terms > 4 * SMALL_BODY) break;
    out[n++] = (opt){OPT_UPCAST, (int16_t)rng[i]->arg.v[0], (int32_t)sz};
    amount[i] = sz, body *= sz;
  }
  for (int i = 0; i < nr; i++) {
    int64_t sz = rng[i]->src[0]->arg.i;
    if (amount[i]) sz = (sz + amount[i] - 1) / amount[i];
    if (sz > 1) {
      out[n++] = (opt){OPT_THREAD, (int16_t)rng[i]->arg.v[0], 0};
      break;
    }
  }
  return n;
}
