/* Optimizing a kernel's loops through recorded opts (ARCHITECTURE §6): {kind, axis,
 * amount} records applied by a pure function of (kernel, opts).
 *
 *   UPCAST(axis, n): the output range r of that axis becomes r' (size/n) and the kernel
 *   body is made for r = r'*n + lane, lane = 0..n-1, together. Hash-consing shares what
 *   the lanes have in common (a row of A across the columns of a matmul tile); the
 *   linearizer runs reductions over the same ranges in one loop, so a 4x16 upcast gives a
 *   register tile of 64 accumulators.
 *   UNROLL(axis, n): a reduce range r becomes r' (size/n); each trip adds n values.
 *   THREAD(axis): the output range split across threads.
 *   TILE(axis, n): r = tile*n + r', the tile loop outermost (RANGE_TILE, linearize.c).
 *   On a reduce axis (k blocks, BLAS's KC): each tile adds its partial sum to what the
 *   output holds, so a block of B's rows is read from L2 by every row tile (tile_reduce).
 *   PADTO(axis, m): r runs to its size rounded up to m, the extra trips masked (padto).
 *
 * The heuristic, one function per kind of kernel: a GEMM (heuristic_gemm: matched by
 * structure, BLAS's register tile, column blocks, threads on rows); any other kernel
 * (the generic branch in opt_heuristic): upcast the last output dim by 16, 8 or 4 (the
 * lanes of an elementwise kernel become one vector op each); kernels with a reduction get
 * a register tile of up to ~20 vector accumulators: the vector dim twice (2 x 16 lanes) or
 * the rest of a short row, times 8, 4 or 2 of the dim that shares the most loads; thread
 * the outermost output range left.
 * NOOPT=1 turns it off; GEMM_OPTS=0 sends GEMMs to the generic branch. */
#include "codegen.h"
#include "core/config.h"
#include "uop/rewrite.h"
#include "uop/symbolic.h"
#include "uop/uopset.h"
#include "core/error.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

/* One range replaced by an expression everywhere below (opts and the expand pass). */
typedef struct {
  uop *from, *to;
} subst;
static uop *subst_one(rw_match *m) {
  subst *s = m->ctx;
  return m->root == s->from ? s->to : NULL;
}
static const rw_rule subst_rules[] = {RULE("RANGE", subst_one)};
static RULESET(rs_subst_range, "subst_range", subst_rules);
uop *subst_range(uop *u, uop *from, uop *to) {
  subst s = {from, to};
  return graph_rewrite(u, &rs_subst_range, &s);
}

static void collect(uop *u, uopset *seen, uop **rng, int *nr, bool *has_reduce) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_REDUCE) *has_reduce = true;
  if (u->op == OP_RANGE && (u->arg.v[1] == RANGE_LOOP || u->arg.v[1] == RANGE_THREAD)) {
    if (*nr < UOP_MAX_DIMS) rng[(*nr)++] = u;
    return;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) collect(u->src[i], seen, rng, nr, has_reduce);
}

static uop *ci(int64_t v) { return uop_const_int(DT_I32, v); }

static void collect_index(uop *u, uopset *seen, uop **out, int *n, int max) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_INDEX && *n < max) out[(*n)++] = u;
  for (uint32_t i = 0; i < u->nsrc; i++) collect_index(u->src[i], seen, out, n, max);
}
/* How many loads an upcast of (a, b) shares between lanes: those that read the same
 * element for every lane of one of the two dims. */
static int shared_loads(uop **ix, int nix, uop *a, uop *b) {
  uopset ma = {0}, mb = {0};
  int score = 0;
  for (int i = 0; i < nix; i++) {
    bool da = uop_depends(ix[i]->src[1], a, &ma), db = uop_depends(ix[i]->src[1], b, &mb);
    score += da != db;
  }
  uopset_free(&ma);
  uopset_free(&mb);
  return score;
}

/* Of the addresses ix (INDEX nodes), how many step by one element along r (vector loads
 * if r were a vector) and how many by more (gathers). Judged over a tile of w lanes,
 * r = r'*w + lane, so that a packed operand's index ((r/32)*K*32 + r%32) counts as
 * contiguous when w divides its panel. */
static bool lanes_contiguous(uop *off, uop *lane, int64_t w) {
  uop *base = uop_simplify(subst_range(off, lane, ci(0)));
  for (int64_t k = 1; k < w; k++) {
    uop *d = uop_simplify(uop_alu(OP_ADD, subst_range(off, lane, ci(k)), uop_alu1(OP_NEG, base)));
    if (!d || d->op != OP_CONST || d->arg.i != k) return false; /* !d: out of memory, the pass fails */
  }
  return true;
}
void strides_along(uop *sink, uop **ix, int nix, uop *r, int64_t w, int *unit, int *other) {
  *unit = *other = 0;
  int64_t n = r->src[0]->arg.i;
  if (w < 2) w = 1;
  /* r = outer*w + lane; with w = 1 a stand-in range r2 (r -> r2 + 1 would never reach a
   * fixpoint) and the step from r2 to r2 + 1 */
  int64_t arg[3] = {r->arg.v[0], RANGE_UPCAST, 99};
  uop *outer = uop_new1(OP_RANGE, DT_I32, ci((n + w - 1) / w), r->arg), *lane = uop_new1(OP_RANGE, DT_I32, ci(w > 1 ? w : n), arg_ints(arg, 3));
  uop *as = w > 1 ? uop_alu(OP_ADD, uop_alu(OP_MUL, outer, ci(w)), lane) : lane;
  for (int i = 0; i < nix; i++) {
    bool store = false;
    for (uint32_t k = 0; k < sink->nsrc; k++) store |= sink->src[k]->src[0] == ix[i];
    if (store) continue; /* loads only */
    uop *off = uop_simplify(subst_range(ix[i]->src[1], r, as));
    uop *d = w > 1 ? uop_simplify(uop_alu(OP_ADD, subst_range(off, lane, ci(1)), uop_alu1(OP_NEG, subst_range(off, lane, ci(0)))))
                   : uop_simplify(uop_alu(OP_ADD, subst_range(ix[i]->src[1], r, uop_alu(OP_ADD, lane, ci(1))), uop_alu1(OP_NEG, off)));
    if (!d || (d->op == OP_CONST && d->arg.i == 0)) continue; /* does not move along r (!d: out of memory, the pass fails) */
    if (w > 1 ? lanes_contiguous(off, lane, w) : d->op == OP_CONST && d->arg.i == 1) (*unit)++;
    else (*other)++;
  }
}

static const char *const opt_names[] = {
#define OPT_NAME_(n) #n,
    OPT_KINDS(OPT_NAME_)
#undef OPT_NAME_
};
const char *opt_name(int kind) { return kind >= 0 && kind < OPT_NKINDS ? opt_names[kind] : "?"; }

void opts_str(const opt *o, int n, char *buf, size_t nbuf) {
  size_t w = 0;
  buf[0] = 0;
  if (!n) snprintf(buf, nbuf, "none");
  for (int i = 0; i < n && w < nbuf; i++)
    w += (size_t)snprintf(buf + w, nbuf - w, o[i].kind == OPT_THREAD ? "%s%s(%d)" : "%s%s(%d,%d)", i ? " " : "", opt_name(o[i].kind),
                          o[i].axis, o[i].amount);
}

/* ---- the heuristic's GEMM branch ------------------------------------------------------
 * A kernel whose one REDUCE (ADD) sums MUL(LOAD a, LOAD b) over one range k, where a moves
 * with an output range `rows` and k only and b with k and the last output range `cols`
 * only, ungated: a matmul (batched or with a fused epilogue). BLAS's recipe as opts:
 *   - a register tile of 8 rows x 2 vectors of 16 columns (16 zmm accumulators, 2 loads
 *     of b and 8 broadcasts of a per k step): PADTO to 32 columns and 8 rows first when
 *     they do not divide (masked tails), 8 rows x 16 columns for narrow outputs;
 *   - TILE of the columns when k is long: each thread sweeps all its rows over one block
 *     of columns whose packed panels (k x block floats) fit in L2 (1 MiB);
 *   - THREAD on the rows (the batch for batched products with few rows).
 *   - k blocks of 512 inside the column block for k >= 2048 on large float32 products
 *     with no epilogue (a block of b stays in each core's L2 on 2 threads, below).
 * Otherwise k is not blocked: the accumulators stay in registers over all of k, and the
 * panels it reads come from L2 at a rate it sustains (93% of the FMA peak on 1 core). */
typedef struct {
  uop *rows, *cols, *k, *batch;
  bool plain; /* float32 loads, and the one store writes the sum itself (k may be tiled) */
} gemm_shape;
static bool is_load_ungated(uop *u) { /* and float32 (or bf16 / f16 read as float32): the tile is f32x16 vectors */
  bool cast = u->op == OP_CAST && u->dt.scalar == CG_FLOAT32;
  while (u->op == OP_CAST) u = u->src[0];
  return u->op == OP_LOAD && u->src[0]->nsrc == 2 && (u->dt.scalar == CG_FLOAT32 || (cast && dt_is_half(u->dt))) &&
         u->dt.count <= 1;
}
static uop *strip_cast(uop *u) {
  while (u->op == OP_CAST) u = u->src[0];
  return u;
}
static void collect_reduces(uop *u, uopset *seen, uop **out, int *n) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_REDUCE && *n < 4) out[(*n)++] = u;
  for (uint32_t i = 0; i < u->nsrc; i++) collect_reduces(u->src[i], seen, out, n);
}
static bool moves_with(uop *off, uop *r) {
  uopset m = {0};
  bool d = uop_depends(off, r, &m);
  uopset_free(&m);
  return d;
}
static bool gemm_match(uop *sink, uop **rng, int nr, gemm_shape *g) {
  uop *red[4];
  int nred = 0;
  uopset seen = {0};
  collect_reduces(sink, &seen, red, &nred);
  uopset_free(&seen);
  if (nred != 1 || red[0]->nsrc != 2 || red[0]->arg.v[0] != OP_ADD || red[0]->src[0]->op != OP_MUL || nr < 2) return false;
  uop *m = red[0]->src[0], *k = red[0]->src[1];
  if (!is_load_ungated(m->src[0]) || !is_load_ungated(m->src[1])) return false;
  uop *cols = rng[nr - 1], *ld[2] = {strip_cast(m->src[0])->src[0]->src[1], strip_cast(m->src[1])->src[0]->src[1]};
  bool dep[2][UOP_MAX_DIMS + 1];
  for (int l = 0; l < 2; l++)
    for (int i = 0; i <= nr; i++) dep[l][i] = moves_with(ld[l], i < nr ? rng[i] : k);
  int b = dep[0][nr - 1] ? 0 : 1, a = 1 - b; /* b moves with the columns */
  if (!dep[b][nr - 1] || dep[a][nr - 1] || !dep[a][nr] || !dep[b][nr]) return false;
  /* b's columns must be contiguous (packed or row-major): a transposed b would be gathered */
  uop *bix = strip_cast(m->src[b])->src[0];
  int unit, other;
  strides_along(sink, &bix, 1, cols, 32, &unit, &other);
  if (unit != 1) return false;
  g->rows = g->batch = NULL, g->cols = cols, g->k = k;
  g->plain = m->src[0]->op == OP_LOAD && m->src[1]->op == OP_LOAD && sink->nsrc == 1 && sink->src[0]->op == OP_STORE && sink->src[0]->src[1] == red[0] &&
             red[0]->dt.scalar == CG_FLOAT32 && red[0]->nsrc == 2 && sink->src[0]->src[0]->src[0]->dt.scalar == CG_FLOAT32;
  for (int i = nr - 2; i >= 0; i--) {
    if (dep[a][i] && !dep[b][i] && !g->rows) g->rows = rng[i];
    else if (!g->batch) g->batch = rng[i];
  }
  return g->rows != NULL;
}
static int heuristic_gemm(const gemm_shape *g, opt *out) {
  int n = 0;
  int64_t nc = g->cols->src[0]->arg.i, nm = g->rows->src[0]->arg.i, nk = g->k->src[0]->arg.i;
  int16_t ac = (int16_t)g->cols->arg.v[0], am = (int16_t)g->rows->arg.v[0];
  /* columns: 2 vectors of 16 (1 for narrow outputs), padded up when they do not divide */
  int64_t w = nc > 16 ? 32 : 16, ncp = (nc + w - 1) / w * w;
  if (ncp != nc) out[n++] = (opt){OPT_PADTO, ac, (int32_t)w};
  out[n++] = (opt){OPT_UPCAST, ac, 16};
  if (w == 32) out[n++] = (opt){OPT_UPCAST, ac, 2};
  /* rows: 8 per tile, padded; fewer rows: all of them (16 rows with one vector of
   * columns measured 0.67x of 8 at 512x576x10) */
  int64_t mr = 8;
  if (nm < mr) mr = nm;
  if (nm % mr) out[n++] = (opt){OPT_PADTO, am, (int32_t)mr};
  out[n++] = (opt){OPT_UPCAST, am, (int32_t)mr};
  /* column blocks of up to 8 panels (256 columns), at least two blocks, for k >= 512 when
   * b is over 512 KiB: fewer passes over a against a block of b in L2/L3 (measured, 1
   * thread, thread CPU time, GFLOP/s: 512^3 205 -> 240; 1000^3 143 -> 211; 2048^3 175,
   * blocks of 4/8/16 panels 215/228/232; 4096^3 104, blocks of 2/4/8/16/32 panels
   * 200/209/227/210/178; none gains at k = 384) */
  int64_t trips = ncp / w, block = 1;
  while (block < 8 && trips % (block * 2) == 0 && block * 2 < trips) block *= 2;
  bool col_block = nk >= 512 && ncp * nk * 4 > 512 * 1024 && block < trips;
  if (col_block) out[n++] = (opt){OPT_TILE, ac, (int32_t)block};
  /* k blocks of 512 inside the column block for k >= 2048 on large products (BLIS's
   * jc -> pc -> ic): a 512 x 256 block of packed b (512 KiB) stays in each core's L2 for
   * all of the thread's row tiles, where a k x 256 column block (2 MiB and more) streams
   * from the L3 both cores share. Each block adds its partial sum to C (tile_reduce), so
   * only where the store writes the sum itself, and float32 (the bf16 TC list keeps its
   * own blocking). Measured: RESULTS.md, issue 8 round 5 */
  if (col_block && g->plain && block > 1 && nk >= 2048 && nk % 512 == 0 && nm >= 512 && nc >= 512)
    out[n++] = (opt){OPT_TILE, (int16_t)g->k->arg.v[0], 512};
  /* threads: the batch when there are fewer row tiles than cores x 4, or when the batch
   * alone has that many (the thread loop is outermost: each thread then runs all the row
   * tiles of one batch's product against its b panel, which stays in L1/L2, where
   * threading the rows runs every batch inside each row tile and reads each batch's b
   * again per row tile, from L3: attention's products, 48 batches of 256 x 128 x 64,
   * 1 thread: 27-28 -> 22-24 ms CPU per forward + backward (RESULTS.md, flash7)); else
   * the rows */
  int64_t row_tiles = (nm + mr - 1) / mr;
  bool by_batch = g->batch && (row_tiles < 8 || g->batch->src[0]->arg.i >= 8);
  uop *t = by_batch ? g->batch : row_tiles > 1 ? g->rows : trips > 1 ? g->cols : NULL;
  if (t) out[n++] = (opt){OPT_THREAD, (int16_t)t->arg.v[0], 0};
  return n;
}

/* A kernel's output (loop and thread) ranges, ordered by axis; whether it reduces. */
static int output_ranges(uop *sink, uop **rng, bool *has_reduce) {
  int nr = 0;
  uopset seen = {0};
  collect(sink, &seen, rng, &nr, has_reduce);
  uopset_free(&seen);
  for (int i = 1; i < nr; i++)
    for (int j = i; j > 0 && rng[j]->arg.v[0] < rng[j - 1]->arg.v[0]; j--) {
      uop *t = rng[j];
      rng[j] = rng[j - 1], rng[j - 1] = t;
    }
  return nr;
}

/* BEAM's starting points for a GEMM: the heuristic's tile with other column blocks (none,
 * 1 .. 16 panels), with k blocks of 256, 512 and 1024 inside its column block and with
 * none (k >= 1024; BLIS's order jc -> pc -> ic: each thread's chunk of rows sweeps a block
 * of B's rows that stays in its L2; the heuristic takes 512 for k >= 2048, which costs
 * 1-4% on one thread at 4096^3, so "none" is a seed there), and other register tiles
 * (4 rows; 6 rows x 4 vectors; 8 rows x 1 vector), in the order at the end. Measured
 * (bench_gemm_kernel, RESULTS gemm4 and round 5): 2 threads, 4096^3 k blocks of 512
 * +7% over none; 1 thread -1..-4%. */
int opt_gemm_candidates(uop *sink, opt (*lists)[MAX_OPTS], int *lens, int max) {
  uop *rng[UOP_MAX_DIMS];
  int n = 0;
  bool has_reduce = false;
  int nr = output_ranges(sink, rng, &has_reduce);
  gemm_shape g;
  if (!has_reduce || !gemm_match(sink, rng, nr, &g) || g.cols->src[0]->arg.i < 8) return 0;
  if (max > 64) max = 64;
  opt base[MAX_OPTS];
  int nb = heuristic_gemm(&g, base);
  int16_t ac = (int16_t)g.cols->arg.v[0], am = (int16_t)g.rows->arg.v[0];
  int64_t nm = g.rows->src[0]->arg.i, nc = g.cols->src[0]->arg.i;
  static const int blocks[] = {0, 1, 2, 4, 8, 16};
  int prio[64];
  static const int tiles[][2] = {{8, 2}, {4, 2}, {6, 4}, {8, 1}}; /* rows, vectors of 16 columns */
  for (int t = 0; t < 4; t++) {
    int rows = tiles[t][0], vecs = tiles[t][1];
    int64_t w = 16 * vecs, trips = (nc + w - 1) / w;
    if (nc <= 16 * (vecs - 1) || nm < rows) continue;
    /* first: the heuristic's list with k blocks of 256, 512, 1024 inside its column block,
     * with none (where the heuristic has one), and with k blocks of 256 inside column
     * blocks of 16 panels (1 thread, 4096^3: 245-247 GFLOP/s against the heuristic's
     * 235-241; 2 threads 2-5% slower) */
    for (int v = 0; t == 0 && v < 5 && n < max; v++) {
      int64_t nk = g.k->src[0]->arg.i;
      int kc = v == 0 ? 0 : v == 4 ? 256 : 128 << v; /* 0: no k block */
      bool none = v == 0, wide = v == 4, widened = false;
      if (nb >= MAX_OPTS || (!none && (nk < 1024 || nk % kc || kc >= nk)) || (wide && (trips % 16 || 16 >= trips))) continue;
      opt *o = lists[n];
      int k = 0;
      bool put = none, had = false;
      for (int i = 0; i < nb; i++) {
        if (base[i].kind == OPT_TILE && base[i].axis == g.k->arg.v[0]) { /* the heuristic's own k block */
          had = true;
          continue;
        }
        if (!put && base[i].kind == OPT_THREAD) o[k++] = (opt){OPT_TILE, (int16_t)g.k->arg.v[0], kc}, put = true;
        o[k++] = base[i];
        if (wide && base[i].kind == OPT_TILE && base[i].axis == ac) o[k - 1].amount = 16, widened = true;
      }
      if (!put) o[k++] = (opt){OPT_TILE, (int16_t)g.k->arg.v[0], kc};
      if ((none && !had) || (wide && !widened)) continue;
      prio[n] = wide ? 0 : 2, lens[n++] = k;
    }
    /* and the heuristic's list inside row blocks of 512 rows (TILE(rows, 64) outermost,
     * where its column block is there): on 1 thread at 4096^3 a's rows then come from L3
     * for every column block instead of memory (the kernel alone: 264-269 GFLOP/s against
     * 246-250; 2048^3 +2%); on 2 threads 20% slower at 4096^3 (BEAM keys by thread count) */
    bool col_tiled = false;
    for (int i = 0; i < nb; i++) col_tiled |= base[i].kind == OPT_TILE && base[i].axis == ac;
    if (t == 0 && n < max && col_tiled && nm % 8 == 0 && (nm / 8) % 64 == 0 && nm / 8 > 64 && nb < MAX_OPTS) {
      opt *o = lists[n];
      int k = 0;
      bool put = false;
      for (int i = 0; i < nb; i++) {
        if (!put && base[i].kind == OPT_TILE) o[k++] = (opt){OPT_TILE, am, 64}, put = true;
        o[k++] = base[i];
      }
      prio[n] = 0, lens[n++] = k;
    }
    for (int b = 0; b < 6 && n < max; b++) {
      if (blocks[b] && (trips % blocks[b] || blocks[b] >= trips)) continue;
      opt *o = lists[n];
      int k = 0;
      if (nc % w) o[k++] = (opt){OPT_PADTO, ac, (int32_t)w};
      o[k++] = (opt){OPT_UPCAST, ac, 16};
      if (vecs > 1) o[k++] = (opt){OPT_UPCAST, ac, vecs};
      if (nm % rows) o[k++] = (opt){OPT_PADTO, am, rows};
      o[k++] = (opt){OPT_UPCAST, am, rows};
      if (blocks[b]) o[k++] = (opt){OPT_TILE, ac, blocks[b]};
      for (int i = 0; i < nb; i++)
        if (base[i].kind == OPT_THREAD) o[k++] = base[i];
      prio[n] = blocks[b] == 1 && t == 2 ? 1 : blocks[b] == 1 && t == 0 ? 3 : 4;
      lens[n++] = k;
    }
  }
  /* the order they are timed in (a large GEMM's budget times a few): row blocks, k
   * blocks of 256 in column blocks of 16 panels, 6 x 64 over one column panel at a time (TILE(cols, 1)),
   * the heuristic's other k blocks, 8 x 32 over one column panel, then the rest. The searches' winners (RESULTS.md, issue 8 round 5):
   * 6 x 64 with TILE(cols, 1) at 1024^3, 2048^3 and the transformer's shapes on 2 threads
   * and at 2048^3 on 1; 8 x 32 with TILE(cols, 1) or k blocks of 512 at 4096^3 on 2
   * threads (equal); at 4096^3 on 1 thread the column-panel tiles run 11-18% slower, the
   * k blocks within 2% of none */
  opt tmp[64][MAX_OPTS];
  int tl[64], m = 0;
  for (int p = 0; p < 5; p++)
    for (int i = 0; i < n; i++)
      if (prio[i] == p) memcpy(tmp[m], lists[i], sizeof tmp[m]), tl[m++] = lens[i];
  for (int i = 0; i < m; i++) memcpy(lists[i], tmp[i], sizeof tmp[i]), lens[i] = tl[i];
  return n;
}

/* The largest c <= min(8, cap) dividing sz (powers of two only if pow2), or 0. Unrolled
 * lanes next to a vector dim need not be a power of two: a 7- or 14-wide output (resnet's
 * last stages) gets 7 rows of accumulators instead of 1 or 2. */
static int64_t tile_of(int64_t sz, int64_t cap, bool pow2) {
  for (int64_t c = cap < 8 ? cap : 8; c >= 2; c--)
    if (sz % c == 0 && (!pow2 || (c & (c - 1)) == 0)) return c;
  return 0;
}

/* The distinct constants r's index is compared with (r < c, r + k < c: PAD validity), up
 * to 4, in seen_c. With mod > 0 the same for r % mod (the pieces of a cat along a dim that
 * a reshape merged with the dim outside it: (T, m) rows seen as T*m). */
static void bounds_checks_on(uop *u, uop *r, int64_t mod, uopset *seen, int64_t *seen_c, int *nc) {
  if (*nc >= 4 || uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return;
  if (u->op == OP_CMPLT && u->src[1]->op == OP_CONST) {
    uop *a = u->src[0], *x = r;
    if (mod) { /* x: the r % mod node, if a reads it */
      x = NULL;
      uop *m = a->op == OP_ADD ? (a->src[0]->op == OP_MOD ? a->src[0] : a->src[1]) : a;
      if (m->op == OP_MOD && m->src[0] == r && m->src[1]->op == OP_CONST && m->src[1]->arg.i == mod) x = m;
    }
    int64_t c = u->src[1]->arg.i;
    if (x && a->op == OP_ADD && a->src[0] == x && a->src[1]->op == OP_CONST) c -= a->src[1]->arg.i, a = x;
    else if (x && a->op == OP_ADD && a->src[1] == x && a->src[0]->op == OP_CONST) c -= a->src[0]->arg.i, a = x;
    bool dup = false;
    for (int i = 0; i < *nc; i++) dup = dup || seen_c[i] == c;
    if (x && a == x && !dup) seen_c[(*nc)++] = c;
  }
  for (uint32_t i = 0; i < u->nsrc; i++) bounds_checks_on(u->src[i], r, mod, seen, seen_c, nc);
}

/* The m (2..16) of the first r % m found under u, or 0. */
static int64_t mod_of(uop *u, uop *r, uopset *seen) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return 0;
  if (u->op == OP_MOD && u->src[0] == r && u->src[1]->op == OP_CONST && u->src[1]->arg.i >= 2 && u->src[1]->arg.i <= 16)
    return u->src[1]->arg.i;
  for (uint32_t i = 0; i < u->nsrc; i++) {
    int64_t m = mod_of(u->src[i], r, seen);
    if (m) return m;
  }
  return 0;
}

/* Elementwise kernels: small output dims that select between concatenated pieces (three or
 * more distinct bounds on the index: a cat of four pieces or more,
 * Winograd's transforms: a sum of constant multiples of slices per row) are unrolled whole,
 * at most 64 lanes in all, so each lane's selections fold to constants and only its own
 * piece is computed; left as loops, every element would compute every piece and mask all
 * but one. */
static int unroll_selectors(uop *sink, uop **rng, int nr, uop *vec, opt *out, int n) {
  int64_t lanes = 1;
  for (int i = nr - 1; i >= 0 && n < MAX_OPTS - 1; i--) {
    int64_t sz = rng[i]->src[0]->arg.i, cs[4], m = 0;
    if (rng[i] == vec || sz < 2) continue;
    uopset seen = {0};
    int nc = 0;
    if (sz <= 16 && lanes * sz <= 64) bounds_checks_on(sink, rng[i], 0, &seen, cs, &nc);
    if (nc < 3) { /* the pieces along r % m: r's m lanes, each a straight sum of its own (Winograd rows' output transform, 24 rows of 6 tiles of 4: 9.3 -> ~5 ms) */
      uopset_free(&seen);
      m = mod_of(sink, rng[i], &seen);
      uopset_free(&seen);
      nc = 0;
      if (m && sz % m == 0 && lanes * m <= 64) bounds_checks_on(sink, rng[i], m, &seen, cs, &nc);
    }
    uopset_free(&seen);
    bool sel = nc >= 3; /* a plain pad checks two bounds; pieces of a cat, one per seam */
    if (sel) out[n++] = (opt){OPT_UPCAST, (int16_t)rng[i]->arg.v[0], (int32_t)(m ? m : sz)}, lanes *= m ? m : sz;
  }
  return n;
}

/* A reduction whose vectors run along its terms (UNROLL of a contiguous inner reduce
 * range: each accumulator a vector, summed across once at the end) tiles first x a of
 * its outputs, up to ~20 vector accumulators as an output vector's tile does, with a of
 * any size (the 5 taps of a 5x5 kernel), where each operand is shared along one of the
 * two dims (score 2: a tile of a x first reads a + first vectors per a*first FMAs):
 * conv1's weight gradient (32 x 5 x 5 outputs, 512*24*24 terms) read 5 vectors per 4
 * FMAs with first = 4 alone (70 GFLOP/s). */
static bool wide_red_tile(bool vec_red, int64_t first, int64_t sz) { return vec_red && first >= 2 && tile_of(sz, 20 / first, false) >= 2; }

/* Masked vector loads and stores exist for float32 and int32 (prelude.c); with bf16 / f16 16
 * lanes wide (bf16 only: the logits' gradient cast for a bf16 GEMM, rows of 114, ran
 * scalar, exp and all, 0.95 ms) */
static bool words_only(uop **ix, int nix, bool bf16) {
  bool words = true;
  for (int i = 0; i < nix; i++)
    words = words && (ix[i]->dt.scalar == CG_FLOAT32 || ix[i]->dt.scalar == CG_INT32 || (bf16 && dt_is_half(ix[i]->dt)));
  return words;
}

/* Whether expand turns a transposed copy's w x w tiles into vector loads and an in-register
 * transpose (expand.c, transposed_loads): equal widths of 8 or 16, every buffer float32 or
 * bf16 and no gates. */
static bool register_transpose(uop **ix, int nix, int64_t w, int64_t w2) {
  if (w != w2 || (w != 8 && w != 16)) return false;
  for (int i = 0; i < nix; i++) {
    int sc = ix[i]->src[0]->dt.scalar;
    if ((sc != CG_FLOAT32 && sc != CG_BFLOAT16 && sc != CG_FLOAT16) || ix[i]->nsrc != 2) return false;
  }
  return true;
}

int opt_heuristic(uop *sink, opt *out) {
  if (cfg_int("NOOPT", 0)) return 0;
  uop *rng[UOP_MAX_DIMS];
  int n = 0;
  bool has_reduce = false;
  int nr = output_ranges(sink, rng, &has_reduce);
  if (nr == 0 && !has_reduce) return 0;
  if (nr == 0) { /* a reduction to one value (a loss): lanes for its inner loops */
    uop *ix[256], *inner;
    int nix = 0;
    uopset seen_ix = {0};
    collect_index(sink, &seen_ix, ix, &nix, 256);
    uopset_free(&seen_ix);
    return opt_reduce_unrolls(sink, ix, nix, words_only(ix, nix, false), out, 0, MAX_OPTS, &inner);
  }
  int namx = has_reduce && tc_amx_ready() ? tc_amx_opts(sink, out) : 0; /* a bf16 GEMM on AMX tiles (tc.c) */
  if (namx) return namx;
  gemm_shape g;
  if (has_reduce && cfg_int("GEMM_OPTS", 1) && gemm_match(sink, rng, nr, &g) && g.cols->src[0]->arg.i >= 8)
    return tc_gemm_opts(sink, g.cols, out, heuristic_gemm(&g, out)); /* a bf16 GEMM: TC in front (tc.c) */
  uop *ix[256], *up[2];
  int nix = 0, nup = 0;
  uopset seen_ix = {0};
  collect_index(sink, &seen_ix, ix, &nix, 256);
  uopset_free(&seen_ix);
  bool words = words_only(ix, nix, false);
  /* first: the last output dim by 16, 8 or 4 (contiguous lanes); if it does not divide,
   * the largest dim that divides by 4 (kernels with a reduction only) */
  uop *last = has_reduce ? opt_vector_dim(sink, ix, nix, rng, nr) : rng[nr - 1];
  int64_t n_last = last->src[0]->arg.i;
  static const int64_t tries[] = {16, 8, 4};
  int64_t first = 0;
  /* a vector along the output's last dim only if its loads are mostly contiguous there
   * (else they would be gathers: a reduction's rows, e.g., are better read as vectors) */
  int unit, other;
  /* in a reduction, judged by the loads of every term (a per-channel bias added to each
   * term is read once per output: it made a tie with the gathered input of BatchNorm's
   * partial sums over (N, C, H*W), vectorized along C) */
  uop *rix[256];
  int nrix = has_reduce ? opt_reduce_loads(ix, nix, rix, 256) : 0;
  strides_along(sink, has_reduce ? rix : ix, has_reduce ? nrix : nix, last, n_last % 32 == 0 ? 32 : n_last % 16 == 0 ? 16 : n_last % 8 == 0 ? 8 : 4, &unit, &other);
  bool pool = has_reduce && other > unit && opt_strided_pool(sink, ix, nix, last);
  for (int t = 0; t < 3 && !first && (!has_reduce || other <= unit || pool); t++)
    if (n_last % tries[t] == 0 && n_last > tries[t] / 2) first = tries[t], up[nup++] = last;
  /* an elementwise kernel over float32 or int32 whose rows are no multiple of 4 (a padded
   * copy: 58, 30, 16 + 2 wide): 16-wide vectors anyway, the row padded up to them and the
   * tail lanes masked (resnet18's pad copies on one thread: 1.7 -> 0.5 ms in all); from 9
   * wide (Winograd rows' input transform of 10-wide rows, conv3 of the CNN: scalar and its
   * points not unrolled, 2.0 ms; 16 lanes of which 10 are used, 0.49 ms) */
  if (!first && !has_reduce && (words || words_only(ix, nix, true)) && n_last > 8 && n_last % 4) {
    out[n++] = (opt){OPT_PADTO, (int16_t)last->arg.v[0], 16};
    first = 16, up[nup++] = last;
  }
  bool vec_out = first != 0;
  if (!vec_out) { /* short inner dims (opt_small.c) */
    int ns = opt_small_dims(sink, rng, nr, out);
    if (ns) return ns;
  }
  if (!first && has_reduce) {
    uop *big = NULL;
    for (int i = 0; i < nr - 1; i++) {
      int64_t sz = rng[i]->src[0]->arg.i;
      if (sz % 4 == 0 && sz >= 8 && (!big || sz > big->src[0]->arg.i)) big = rng[i];
    }
    if (big) first = 4, up[nup++] = big;
  }
  if (first) out[n++] = (opt){OPT_UPCAST, (int16_t)up[0]->arg.v[0], (int32_t)first};
  if (!has_reduce) {
    int n0 = n;
    n = unroll_selectors(sink, rng, nr, first ? up[0] : NULL, out, n);
    int64_t ta = 0;
    uop *tr = first && n == n0 && n < MAX_OPTS - 3 ? opt_transpose_tile(sink, ix, nix, rng, nr, up[0], &ta) : NULL;
    /* a transposed read: lanes along the dim it is contiguous in, and the vector dim's
     * loop outermost, so each thread's gathers walk 16 rows of the input along them --
     * unless expand transposes the tiles in registers (no gathers): then the stores' rows
     * are written in order instead (the vector dim's loop outermost puts a tile's 16
     * stores rows apart, 4 KiB apart for 2048 bf16 columns: one L1 set; 2.7x slower) */
    if (tr) out[n++] = (opt){OPT_UPCAST, (int16_t)tr->arg.v[0], (int32_t)ta};
    if (tr && up[0]->src[0]->arg.i > first && !register_transpose(ix, nix, first, ta)) out[n++] = (opt){OPT_TILE, (int16_t)up[0]->arg.v[0], 1};
    int64_t la = 0;
    uop *lr = first && !tr && n == n0 && words ? opt_line_dim(sink, ix, nix, rng, nr, up[0], up[0]->src[0]->arg.i, &la) : NULL;
    if (lr) out[n++] = (opt){OPT_UPCAST, (int16_t)lr->arg.v[0], (int32_t)la}; /* whole lines per step */
  }
  /* no vector along the output (a convolution's weight gradient: (Cout, Cin, 5, 5)): the
   * innermost reduction's lanes (contiguous, as a row is) make a vector accumulator */
  bool vec_red = false; /* the terms' lanes are the vector accumulators (UNROLL below) */
  if (!vec_out && has_reduce) { /* every innermost reduce loop (opt_reduce.c) */
    uop *inner = NULL;
    n = opt_reduce_unrolls(sink, ix, nix, words, out, n, MAX_OPTS - 2, &inner); /* room for a tile and THREAD */
    vec_red = inner != NULL;
  }
  /* reductions hold a register tile: more of the vector dim (a 16-wide vector twice, or
   * the rest of a short row), then another dim, within ~20 vector accumulators of the 32 */
  int64_t nvec = 1, budget = 20;
  if (vec_out && has_reduce) {
    int64_t rem = up[0]->src[0]->arg.i / first;
    if (first == 16 && rem % 2 == 0) nvec = 2;
    else if (first < 16 && rem > 1 && rem <= 8) nvec = rem;
    if (nvec > 1) out[n++] = (opt){OPT_UPCAST, (int16_t)up[0]->arg.v[0], (int32_t)nvec};
  }
  /* second (reductions only): the dim whose lanes share the most loads with the first's
   * (for a convolution, output channels: the input is shared across them, the weights
   * across output columns), then the largest; by 8, 4 or 2 as the budget allows */
  uop *best = NULL;
  int best_score = -1;
  bool best_wide = false;
  for (int i = 0; nup == 1 && has_reduce && i < nr; i++) {
    int64_t sz = rng[i]->src[0]->arg.i;
    if (rng[i] == up[0] || sz < 2) continue;
    int score = shared_loads(ix, nix, rng[i], up[0]);
    bool wide = !vec_out && score >= 2 && wide_red_tile(vec_red, first, sz);
    if (vec_out ? tile_of(sz, budget / nvec, false) < 2 : !wide && (sz % 2 || sz < 4)) continue;
    if (score > best_score || (score == best_score && sz > best->src[0]->arg.i)) best = rng[i], best_score = score, best_wide = wide;
  }
  if (best) {
    int64_t sz = best->src[0]->arg.i, a = 0;
    if (!vec_out) budget = 16 / (first ? first : 1); /* every lane of the first is an accumulator */
    if (vec_out) a = tile_of(sz, budget / nvec, false); /* 7 rows of a 7x7 output too */
    else if (best_wide) a = tile_of(sz, 20 / first, false);
    for (int64_t c = 8; c >= 2 && !a; c /= 2)
      if (sz % c == 0 && sz > c / 2 && nvec * c <= budget) a = c;
    if (!first && a) first = a; /* no vector dim: this one is the tile */
    if (a) out[n++] = (opt){OPT_UPCAST, (int16_t)best->arg.v[0], (int32_t)a}, up[nup++] = best;
  }
  /* a column sum (one output dim, so no second tile: a bias gradient over 2048 rows of
   * 1536): more of the row per trip, 4 or 8 vectors (whole cache lines, contiguous, for
   * the prefetcher), while 8+ tiles are left to share among threads */
  if (vec_out && has_reduce && nr == 1 && nup == 1 && first == 16 && nvec == 2)
    for (int64_t w = 8, rem = up[0]->src[0]->arg.i / 16; w > 2; w /= 2)
      if (rem % w == 0 && rem / w >= 8) {
        for (int k = 0; k < n; k++)
          if (out[k].kind == OPT_UPCAST && out[k].axis == up[0]->arg.v[0] && out[k].amount == 2) out[k].amount = (int32_t)w;
        nvec = w;
        break;
      }
  /* a bf16 sum of products whose B operand is a 16-wide vector along the output's last
   * dim runs on the bf16 unit, if the CPU has one (tc.c); every such sum of the kernel
   * (a residual stream's x + y @ w1.T + h @ w2.T: both products, not the first found) */
  uop *tcs[4], *tcr = NULL;
  int ntc = has_reduce && vec_out && first == 16 ? tc_find_all(sink, tcs, 4) : 0, tcu = ntc ? tc_unit() : 0;
  int64_t tck = 0;
  for (int t = 0; tcu && t < ntc && n < MAX_OPTS - 2; t++) {
    if (!tc_vector_fits(tcs[t], last)) continue;
    uop *k = NULL;
    int64_t nk = 1;
    for (uint32_t i = 1; i < tcs[t]->nsrc; i++) {
      nk *= tcs[t]->src[i]->src[0]->arg.i;
      if (!k || tcs[t]->src[i]->arg.v[0] > k->arg.v[0]) k = tcs[t]->src[i];
    }
    memmove(out + 1, out, sizeof *out * (size_t)n);
    out[0] = (opt){OPT_TC, (int16_t)k->arg.v[0], tcu}, n++;
    if (nk > tck) tcr = tcs[t], tck = nk;
  }
  if (tcr) {
    int32_t block = tc_col_block(tcr, last, 16 * nvec); /* cache blocks of B's columns (the longest sum's) */
    if (block) out[n++] = (opt){OPT_TILE, (int16_t)last->arg.v[0], block};
  }
  /* threads split the outermost output range that is left (after the upcasts) */
  for (int i = 0; i < nr; i++) {
    int64_t sz = rng[i]->src[0]->arg.i;
    for (int u = 0; u < n; u++)
      if (out[u].kind == OPT_UPCAST && out[u].axis == rng[i]->arg.v[0]) sz /= out[u].amount;
    if (sz > 1) {
      out[n++] = (opt){OPT_THREAD, (int16_t)rng[i]->arg.v[0], 0};
      break;
    }
  }
  return n;
}

int64_t opt_gemm_pack_a(int64_t rows, int64_t k, int64_t cols, dtype dt) {
  int mode = (int)cfg_int("PACK", 1);
  if (!mode || dt.scalar != CG_FLOAT32 || dt.count > 1 || cols < 16 || rows < 8) return 0;
  if (mode == 2) return 8;
  return rows >= 64 && k >= 256 && cols >= 32 && rows * k * cols >= (int64_t)256 * 256 * 256 ? 8 : 0;
}

int64_t opt_gemm_pack(int64_t rows, int64_t k, int64_t cols, bool b_transposed, dtype dt) {
  int mode = (int)cfg_int("PACK", 1);
  if (!mode || dt.scalar != CG_FLOAT32 || dt.count > 1 || cols < 16) return 0;
  if (mode == 2) return 32; /* always (tests) */
  /* a transposed b (x @ w.T) would be gathered: its copy pays from a few row tiles on
   * (small products stay one kernel) */
  if (b_transposed) return rows >= 64 && k >= 32 && cols >= 32 && rows * k * cols >= 64 * 64 * 64 ? 32 : 0;
  /* measured on the Zen 5 VM: packing gains from N = 1024 up (rows of 4 KiB alias in L1/L2)
   * and costs a little at 512 */
  if (rows < 128 || cols < 64 || k < 128 || rows * k * cols < (int64_t)512 * 512 * 1024) return 0;
  return 32;
}

static uop *find_range(uop *u, int64_t axis, uopset *seen) {
  if (uopset_add(seen, u) <= 0 || u->op == OP_DEFINE_GLOBAL) return NULL;
  if (u->op == OP_RANGE)
    return u->arg.v[0] == axis && u->arg.v[1] != RANGE_UPCAST && u->arg.v[1] != RANGE_UNROLL && u->arg.v[1] != RANGE_TILE ? u : NULL;

  for (uint32_t i = 0; i < u->nsrc; i++) {
    uop *r = find_range(u->src[i], axis, seen);
    if (r) return r;
  }
  return NULL;
}

/* UPCAST: r = r'*n + u, u a RANGE_UPCAST of the n lanes (the expand pass makes them
 * vectors or copies). */
static uop *upcast(uop *sink, uop *r, int64_t amount, int nth) {
  uop *shorter = uop_new1(OP_RANGE, DT_I32, ci(r->src[0]->arg.i / amount), r->arg);
  int64_t arg[3] = {r->arg.v[0], RANGE_UPCAST, nth}; /* nth: upcasts of one axis stay apart */
  uop *lane = uop_new1(OP_RANGE, DT_I32, ci(amount), arg_ints(arg, 3));
  return subst_range(sink, r, uop_alu(OP_ADD, uop_alu(OP_MUL, shorter, ci(amount)), lane));
}

/* UNROLL: each REDUCE over r becomes a REDUCE over r' and a lane range u of `amount`
 * (RANGE_UNROLL) with r = r'*amount + u; the expand pass makes the lanes a vector
 * accumulator (one horizontal combine after the loop) or unrolled combined values. */
typedef struct { uop *r, *shorter, *lane; int64_t amount; } unroll_ctx;
static uop *unroll_reduce(rw_match *m) {
  unroll_ctx *c = m->ctx;
  uop *u = m->root;
  int at = -1;
  for (uint32_t i = 1; i < u->nsrc; i++)
    if (u->src[i] == c->r) at = (int)i;
  if (at < 0 || u->nsrc > UOP_MAX_DIMS || !c->shorter || !c->lane) return NULL; /* NULL ranges: out of memory, the pass fails */
  uop *src[UOP_MAX_DIMS + 2];
  for (uint32_t i = 0; i < u->nsrc; i++) src[i] = u->src[i];
  if (c->shorter->src[0]->arg.i == 1) { /* unrolled completely: no loop of one trip (and no identity to start it) */
    src[0] = subst_range(u->src[0], c->r, c->lane);
    memmove(src + at, src + at + 1, sizeof(uop *) * (u->nsrc - (uint32_t)at - 1)); /* the lanes last, in the order of the opts */
    src[u->nsrc - 1] = c->lane;
    return uop_new(OP_REDUCE, u->dt, src, (int)u->nsrc, u->arg);
  }
  src[0] = subst_range(u->src[0], c->r, uop_alu(OP_ADD, uop_alu(OP_MUL, c->shorter, ci(c->amount)), c->lane));
  src[at] = c->shorter, src[u->nsrc] = c->lane;
  return uop_new(OP_REDUCE, u->dt, src, (int)u->nsrc + 1, u->arg);
}
static const rw_rule unroll_rules[] = {RULE("REDUCE", unroll_reduce)};
static RULESET(rs_unroll, "opt_unroll", unroll_rules);

/* PADTO: r (size n) becomes rp (size np). Stores whose offset moves with rp get the gate
 * rp < n; a REDUCE over rp adds its identity where the gate is off. A load that moves
 * with rp either gets the gate too (reads 0 past the end: a masked vector load when rp
 * runs along its contiguous elements, a row's tail) or, when rp strides over rows, reads
 * at min(rp, n-1) instead: in bounds, computed once outside the inner loops, and its value
 * only reaches masked stores or the identity (a gated scalar load in a GEMM's k loop
 * costs a branch per element). */
typedef struct {
  uop *rp, *valid, *clamped, *stand_in;
  int64_t lanes; /* the lane groups in which a contiguous load is judged: the multiple, so a
                  * packed operand's (j/32)*K*32 + j%32 counts as contiguous */
  uopset memo, dep;
} pad_ctx;
static bool lanes_contiguous(uop *off, uop *lane, int64_t w);
/* Whether off steps by one element along rp, in groups of c->lanes. */
static bool pad_contiguous(pad_ctx *c, uop *off) {
  int64_t np = c->rp->src[0]->arg.i, w = c->lanes;
  int64_t arg[3] = {c->rp->arg.v[0], RANGE_UPCAST, 98};
  if (w == 1) { /* the step from a stand-in r2 to r2 + 1 */
    uop *r2 = uop_new1(OP_RANGE, DT_I32, ci(np), arg_ints(arg, 3));
    uop *d = uop_simplify(uop_alu(OP_ADD, subst_range(off, c->rp, uop_alu(OP_ADD, r2, ci(1))), uop_alu1(OP_NEG, subst_range(off, c->rp, r2))));
    return d && d->op == OP_CONST && d->arg.i == 1;
  }
  int64_t oarg[3] = {c->rp->arg.v[0], RANGE_UPCAST, 96};
  uop *outer = uop_new1(OP_RANGE, DT_I32, ci(np / w), arg_ints(oarg, 3)), *lane = uop_new1(OP_RANGE, DT_I32, ci(w), arg_ints(arg, 3));
  return lanes_contiguous(uop_simplify(subst_range(off, c->rp, uop_alu(OP_ADD, uop_alu(OP_MUL, outer, ci(w)), lane))), lane, w);
}
static bool dep_on(pad_ctx *c, uop *u) {
  if (u == c->rp) return true;
  uintptr_t m = (uintptr_t)uopset_get(&c->dep, u);
  if (m) return m == 2;
  bool d = false;
  if (u->op != OP_DEFINE_GLOBAL)
    for (uint32_t i = 0; i < u->nsrc && !d; i++) d = dep_on(c, u->src[i]);
  uopset_put(&c->dep, u, (void *)(uintptr_t)(1 + d));
  return d;
}
static uop *reduce_identity(int op, dtype d) {
  if (op == OP_ADD) return dt_is_float(d) ? uop_const_float(d, 0) : uop_const_int(d, 0);
  if (op == OP_MUL) return dt_is_float(d) ? uop_const_float(d, 1) : uop_const_int(d, 1);
  if (dt_is_float(d)) return uop_const_float(d, -INFINITY);
  if (dt_is_bool(d) || dt_is_unsigned(d)) return uop_const_int(d, 0);
  return uop_const_int(d, d.scalar == CG_INT64 ? INT64_MIN : d.scalar == CG_INT32 ? INT32_MIN : d.scalar == CG_INT16 ? INT16_MIN : INT8_MIN);
}
static uop *pad_gate(pad_ctx *c, uop *u) {
  if (!u) return NULL; /* out of memory building it: the pass fails */
  if (u->op == OP_DEFINE_GLOBAL || u->op == OP_CONST || u->op == OP_RANGE || !dep_on(c, u)) return u;
  uop *r = uopset_get(&c->memo, u);
  if (r) return r;
  uop *src[UOP_MAX_DIMS + 4];
  CG_ASSERT(u->nsrc <= UOP_MAX_DIMS + 4, "a node with %u sources", u->nsrc);
  for (uint32_t i = 0; i < u->nsrc; i++)
    if (!(src[i] = pad_gate(c, u->src[i]))) return NULL; /* out of memory: the pass fails */
  int ns = (int)u->nsrc;
  if (u->op == OP_STORE && dep_on(c, u->src[0]->src[1])) { /* a store is always gated */
    uop *ix = u->src[0], *is[3];
    for (uint32_t i = 0; i < ix->nsrc; i++) is[i] = i == 2 ? pad_gate(c, ix->src[i]) : ix->src[i];
    is[1] = pad_gate(c, ix->src[1]);
    is[2] = ix->nsrc > 2 ? uop_alu(OP_AND, is[2], c->valid) : c->valid;
    src[0] = uop_new(OP_INDEX, ix->dt, is, 3, ix->arg);
  } else if (u->op == OP_INDEX && dep_on(c, u->src[1]) && !(src[1]->vmin >= 0 && src[1]->vmax < u->src[0]->arg.v[1])) {
    /* (a load in bounds for every padded trip, as a packed panel's zero padding is, needs
     * nothing: its value only reaches masked stores or the identity) */
    if (c->clamped && !pad_contiguous(c, u->src[1])) /* through a stand-in: clamped holds rp */
      src[1] = subst_range(subst_range(src[1], c->rp, c->clamped), c->stand_in, c->rp);
    else src[2] = ns > 2 ? uop_alu(OP_AND, src[2], c->valid) : c->valid, ns = 3;
  }
  if (u->op == OP_LOAD && ns == 1 && src[0]->nsrc > 2) src[ns++] = dt_is_float(u->dt) ? uop_const_float(u->dt, 0) : uop_const_int(u->dt, 0);
  bool over = false;
  for (uint32_t i = 1; u->op == OP_REDUCE && i < u->nsrc; i++) over |= u->src[i] == c->rp;
  if (over) src[0] = uop_where(c->valid, src[0], reduce_identity((int)u->arg.v[0], src[0]->dt));
  r = uop_new(u->op, u->dt, src, ns, u->arg);
  uopset_put(&c->memo, u, r);
  return r;
}
static uop *padto(uop *sink, uop *r, int64_t m) {
  int64_t n = r->src[0]->arg.i, np = (n + m - 1) / m * m;
  if (np == n) return sink;
  pad_ctx c = {.rp = uop_new1(OP_RANGE, DT_I32, ci(np), r->arg), .lanes = m <= 64 ? m : 1};
  c.valid = uop_alu(OP_CMPLT, c.rp, ci(n));
  /* loads of stores' sibling loads only: every STORE is gated, so a clamped load's value
   * never lands (a reduce range's padding adds the identity instead) */
  int64_t sarg[3] = {r->arg.v[0], RANGE_UPCAST, 97};
  c.stand_in = uop_new1(OP_RANGE, DT_I32, ci(np), arg_ints(sarg, 3));
  c.clamped = uop_where(uop_alu(OP_CMPLT, c.stand_in, ci(n)), c.stand_in, ci(n - 1));
  if (!c.rp || !c.valid || !c.clamped) return NULL; /* out of memory: the pass fails */
  sink = pad_gate(&c, subst_range(sink, r, c.rp));
  uopset_free(&c.memo), uopset_free(&c.dep);
  return sink;
}

/* TILE of a reduce range r: r = tile*n + inner with the tile loop outermost, and the store
 * writes the tile's sum plus what the output held (read only where tile > 0: the first
 * tile's store starts it). Only for a kernel whose one STORE writes an ADD REDUCE over r
 * itself (a GEMM): a fused epilogue would apply once per tile. */
static uop *tile_reduce(uop *sink, uop *r, uop *tile, uop *inner, int64_t amount, const char *d) {
  uop *st = sink->nsrc == 1 ? sink->src[0] : NULL, *red = st && st->op == OP_STORE ? st->src[1] : NULL;
  bool over = false;
  for (uint32_t i = 1; red && red->op == OP_REDUCE && i < red->nsrc; i++) over |= red->src[i] == r;
  if (!over || red->arg.v[0] != OP_ADD || red->nsrc > UOP_MAX_DIMS + 1 || red->dt.scalar != st->src[0]->src[0]->dt.scalar)
    return cg_fail_null(CG_ERR_INVALID, "opt %s: a reduce axis is tiled only where the kernel's one store writes its sum (ADD) directly", d);
  uop *src[UOP_MAX_DIMS + 2];
  src[0] = subst_range(red->src[0], r, uop_alu(OP_ADD, uop_alu(OP_MUL, tile, ci(amount)), inner));
  for (uint32_t i = 1; i < red->nsrc; i++) src[i] = red->src[i] == r ? inner : red->src[i];
  uop *ix = st->src[0], *later = uop_alu(OP_CMPLT, ci(0), tile);
  uop *is[3] = {ix->src[0], ix->src[1], ix->nsrc > 2 ? uop_alu(OP_AND, ix->src[2], later) : later};
  uop *ls[2] = {uop_new(OP_INDEX, ix->dt, is, 3, ix->arg), uop_const_like(ix->src[0], 0)};
  uop *sum = uop_alu(OP_ADD, uop_new(OP_REDUCE, red->dt, src, (int)red->nsrc, red->arg), uop_new(OP_LOAD, ix->src[0]->dt, ls, 2, arg_none()));
  uop *nst = uop_replace_src(st, (uop *[]){ix, sum}, 2);
  return nst ? uop_replace_src(sink, &nst, 1) : NULL;
}

uop *opt_apply(uop *sink, const opt *o, int n) {
  for (int i = 0; i < n && sink; i++) {
    uopset seen = {0};
    uop *r = find_range(sink, o[i].axis, &seen);
    uopset_free(&seen);
    char d[48];
    opts_str(&o[i], 1, d, sizeof d);
    bool reduce = r && r->arg.v[1] == RANGE_REDUCE, want = o[i].kind == OPT_UNROLL || o[i].kind == OPT_TC;
    if (!r || (o[i].kind != OPT_PADTO && o[i].kind != OPT_TILE && reduce != want))
      return cg_fail_null(CG_ERR_INVALID, "opt %s: the kernel has no %s range with axis id %d", d,
                          want ? "reduce" : o[i].kind == OPT_PADTO || o[i].kind == OPT_TILE ? "output or reduce" : "output", o[i].axis);
    if (o[i].kind == OPT_TC) { /* tc.c */
      if (!(sink = tc_apply(sink, r, o[i].amount))) return NULL;
      sink = uop_simplify(sink);
      continue;
    }
    int64_t size = r->src[0]->arg.i;
    if (o[i].kind == OPT_THREAD) {
      int64_t arg[2] = {r->arg.v[0], RANGE_THREAD};
      sink = subst_range(sink, r, uop_new1(OP_RANGE, DT_I32, r->src[0], arg_ints(arg, 2)));
      continue;
    }
    if (o[i].kind == OPT_PADTO) {
      if (o[i].amount < 1 || o[i].amount > 4096)
        return cg_fail_null(CG_ERR_INVALID, "opt %s: expected a multiple from 1 to 4096, got %d", d, o[i].amount);
      sink = uop_simplify(padto(sink, r, o[i].amount));
      continue;
    }
    if (o[i].amount < 1 || size % o[i].amount)
      return cg_fail_null(CG_ERR_INVALID, "opt %s: amount %d does not divide the axis's size %lld", d, o[i].amount, (long long)size);
    /* one trip: nothing to do (but TILE(axis, 1) moves the whole axis outermost) */
    if ((o[i].amount == 1 && o[i].kind != OPT_TILE) || (o[i].kind == OPT_TILE && o[i].amount == size)) continue;
    if (o[i].kind == OPT_UPCAST) sink = upcast(sink, r, o[i].amount, i);
    else if (o[i].kind == OPT_TILE) {
      int64_t arg[3] = {r->arg.v[0], RANGE_TILE, i};
      uop *tile = uop_new1(OP_RANGE, DT_I32, ci(size / o[i].amount), arg_ints(arg, 3));
      uop *inner = uop_new1(OP_RANGE, DT_I32, ci(o[i].amount), r->arg);
      sink = reduce ? tile_reduce(sink, r, tile, inner, o[i].amount, d) : subst_range(sink, r, uop_alu(OP_ADD, uop_alu(OP_MUL, tile, ci(o[i].amount)), inner));
    } else {
      int64_t arg[3] = {r->arg.v[0], RANGE_UNROLL, i};
      unroll_ctx c = {r, uop_new1(OP_RANGE, DT_I32, ci(size / o[i].amount), r->arg), uop_new1(OP_RANGE, DT_I32, ci(o[i].amount), arg_ints(arg, 3)), o[i].amount};
      sink = graph_rewrite(sink, &rs_unroll, &c);
    }
    sink = uop_simplify(sink);
  }
  return sink;
}
