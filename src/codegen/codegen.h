/* Codegen: a scheduled kernel AST becomes a program for one renderer, through passes
 * listed once, in order (pipeline.c):
 *
 *   lower ─► opt ─► expand ─► linearize ─► render
 *
 *   lower      tensor-level AST over slots → loops: RANGEs, INDEX math, LOAD/STORE (lower.c)
 *   opt        the kernel's opts, records {kind, axis, amount}, applied by a pure function;
 *              the heuristic picks them unless given (opt.c)
 *   expand     upcast lanes become vector ops (GCC vector types in C) or unrolled copies
 *              (expand.c)
 *   linearize  the optimized graph → a block-structured instruction list; loop placement,
 *              hoisting and accumulators are decided here, once, for every backend
 *              (linearize.c)
 *   render     the list → source text for a device (renderer/)
 *
 * A verifier (CG_VERIFY=1, on in debug builds) checks the kernel after every pass, and
 * DEBUG_PASS=<name> prints it after the named pass. */
#ifndef CG_CODEGEN_H
#define CG_CODEGEN_H
#include "uop/uop.h"
#include <stddef.h>

/* RANGE arg = [axis id, kind]. Output ranges have axis id = their dim, reduce ranges 100+;
 * an UPCAST range holds the lanes of an upcast axis until the expand pass removes it; a
 * TILE range (arg [axis, RANGE_TILE, n]) is the block loop of a tiled output axis, which
 * the linearizer places outside every other loop. */
enum { RANGE_LOOP = 0, RANGE_REDUCE = 1, RANGE_THREAD = 2, RANGE_UPCAST = 3, RANGE_UNROLL = 4, RANGE_TILE = 5 };

/* ---- opts (opt.c) ---------------------------------------------------------------------- */
typedef enum {
#define OPT_KINDS(X) X(UPCAST) X(UNROLL) X(THREAD) X(TILE) X(PADTO) X(TC)
#define OPT_ENUM_(n) OPT_##n,
  OPT_KINDS(OPT_ENUM_)
#undef OPT_ENUM_
  OPT_NKINDS
} opt_kind;
/* UPCAST(axis, n): output axis split into n lanes computed together (a vector when the
 *                 lanes are contiguous in memory, else unrolled copies).
 * UNROLL(axis, n): reduce axis split into n unrolled steps per loop trip.
 * THREAD(axis, 0): this output axis is the one split across threads (at most one).
 * TILE(axis, n):   cache blocking: output axis r = tile*n + r', the tile loop (r/n trips)
 *                 outermost, outside the THREAD loop, so every thread works through one
 *                 block of n trips of r for all of its rows before the next (a GEMM's B
 *                 panels stay in L2 while A streams past them).
 * PADTO(axis, m):  the axis (output or reduce) runs to its size rounded up to m; loads and
 *                 stores of the extra trips are masked off (a reduction adds its identity
 *                 there), so UPCAST / UNROLL by m apply to sizes m does not divide (1000,
 *                 1023, primes). Masked vector loads and stores where the mask varies by
 *                 lane (the tail of a row).
 * TC(axis, unit):  the bf16 sum of products over this reduce axis runs on a matrix unit,
 *                 pairs of k per step (tc.c; unit TC_AVX512BF16 or TC_AMX). */
typedef struct {
  uint8_t kind;
  int16_t axis;   /* the RANGE's axis id */
  int32_t amount;
} opt;
#define MAX_OPTS 8
/* Equal lists (field by field: a struct's padding is not data). */
static inline bool opts_eq(const opt *a, int na, const opt *b, int nb) {
  if (na != nb) return false;
  for (int i = 0; i < na; i++)
    if (a[i].kind != b[i].kind || a[i].axis != b[i].axis || a[i].amount != b[i].amount) return false;
  return true;
}

const char *opt_name(int kind);
/* "UPCAST(3,16) THREAD(0)" into buf. */
void opts_str(const opt *o, int n, char *buf, size_t nbuf);
/* u with the RANGE from replaced by to (a pure rewrite; opts and the expand pass). */
uop *subst_range(uop *u, uop *from, uop *to);
/* The heuristic's opts for a lowered kernel; returns how many (0 with NOOPT=1). */
int opt_heuristic(uop *sink, opt *out);
/* The layout step of a GEMM C(rows, cols) = A(rows, k) B(k, cols): the width of the
 * column panels the tensor layer packs B into before the GEMM kernel (the heuristic's
 * register tile is 2 vectors of 16 columns), or 0 to read B where it is: small, narrow or
 * short products, where the copy would cost about what it saves, and dtypes without a
 * vector tile; a b whose columns are not contiguous (b_transposed: x @ w.T) is packed
 * from small sizes on, since it would be gathered. PACK=0 turns it off (to measure what
 * it gains), PACK=2 packs every f32 product of 16 columns or more (tests). */
int64_t opt_gemm_pack(int64_t rows, int64_t k, int64_t cols, bool b_transposed, dtype dt);
/* The same for A when it is transposed (a (rows, k) view of a (k, rows) tensor, a weight
 * gradient's g^T): the rows of the row panels the tensor layer packs it into (the
 * register tile's 8), or 0 to read it in place. Read in place, each k step of a row tile
 * loads from another row of the (k, rows) tensor, `rows` floats apart: at rows = 1536
 * those lines fall in 2 of L1's 64 sets (1 core: 143 against 227 GFLOP/s untransposed,
 * 1536 x 2048 x 384). PACK as for opt_gemm_pack. */
int64_t opt_gemm_pack_a(int64_t rows, int64_t k, int64_t cols, dtype dt);
/* For a GEMM kernel, other complete opt lists worth timing (other register tiles and
 * column blocks; BEAM starts from them with the heuristic's); returns how many (0: not a
 * GEMM). */
int opt_gemm_candidates(uop *sink, opt (*lists)[MAX_OPTS], int *lens, int max);
/* Of the addresses ix (INDEX nodes), how many loads step by one element along range r
 * and how many by more (gathers). */
void strides_along(uop *sink, uop **ix, int nix, uop *r, int64_t w, int *unit, int *other);
/* The output range a reduction kernel vectorizes along (opt_vector.c): the last, or one
 * with a wider vector and no gathers. rng: its output ranges by axis. */
uop *opt_vector_dim(uop *sink, uop **ix, int nix, uop **rng, int nr);
/* Whether a pool's strided loads along r should still make vectors along it (gathers):
 * few terms per output, every load stepping along r by a constant of at most 4. */
bool opt_strided_pool(uop *sink, uop **ix, int nix, uop *r);
/* Of the addresses ix_all, those that move with a reduce range (read once per term; the
 * others once per output); returns how many, at most max. */
int opt_reduce_loads(uop **ix_all, int nix_all, uop **ix, int max);
/* An elementwise kernel vectorized along vec whose loads include gathers along it (a
 * transposed copy): the output range along which those loads are contiguous, and by how
 * much to unroll it (so each gathered cache line serves that many lanes), or NULL. */
uop *opt_transpose_tile(uop *sink, uop **ix, int nix, uop **rng, int nr, uop *vec, int64_t *amount);
/* An elementwise kernel whose whole last dim vec is one vector of width < 16 lanes: the
 * output dim along which its loads continue where the vector ends (the next half line),
 * and by how much to unroll it (16 / width) so each step reads whole lines, or NULL. */
uop *opt_line_dim(uop *sink, uop **ix, int nix, uop **rng, int nr, uop *vec, int64_t width, int64_t *amount);
/* The heuristic's opts for a kernel whose inner dims are too short for vectors and whose
 * reduction (if any) is a small window (opt_small.c); 0 when it does not apply. */
int opt_small_dims(uop *sink, uop **rng, int nr, opt *out);
/* A reduction without a vector along its output: UNROLL (PADTO 16 first where no 16, 8 or
 * 4 divides it and words: the kernel reads only float32/int32) for each reduce loop that
 * runs innermost (opt_reduce.c; ix: the kernel's INDEX nodes), appended to out[0..n) up to max; returns the new count. *first:
 * the kernel's innermost reduce range (the largest axis id) if it got lanes, else NULL. */
int opt_reduce_unrolls(uop *sink, uop **ix, int nix, bool words, opt *out, int n, int max, uop **first);
/* Apply opts to a lowered kernel: a pure function of (sink, opts). NULL and an error
 * naming the opt when one does not apply (an axis that is not there, an amount that does
 * not divide it). */
uop *opt_apply(uop *sink, const opt *o, int n);

/* ---- the TC opt (tc.c) ------------------------------------------------------------------ */
/* WMMA's arg: the unit, and a flag per operand pair (src0/src1, src2/src3) whose two
 * elements are adjacent bf16s in memory, so one 32-bit read gets both */
enum { TC_AVX512BF16 = 1, TC_AMX = 2, TC_UNIT_MASK = 0xff, TC_PAIR_ADJACENT = 0x100 };
/* The first REDUCE of the kernel that is a bf16 sum of products (TC applies), or NULL. */
uop *tc_find(uop *sink);
/* All of them (up to max) into out, in the same order; returns how many. */
int tc_find_all(uop *sink, uop **out, int max);
/* The unit this CPU offers for TC (0: none; CPUID less CG_CPU_FEATURES). */
int tc_unit(void);
const char *tc_unit_name(int unit);
/* Whether AMX kernels may run here (CPUID less CG_CPU_FEATURES, and Linux allowed the
 * tile data); the heuristic's opts for an AMX kernel (0: the kernel does not suit it). */
bool tc_amx_ready(void);
/* Whether REDUCE red (tc_find's) makes WMMA vectors along output range lane: one operand
 * the same in every lane, the other contiguous along it. */
bool tc_vector_fits(uop *red, uop *lane);
int tc_amx_opts(uop *sink, opt *out);
/* A TC GEMM's column block: the TILE amount on its vector axis cols (register tile `width`
 * columns wide), or 0 for none. */
int32_t tc_col_block(uop *red, uop *cols, int64_t width);
/* The GEMM heuristic's n opts in out with TC put in front where the kernel is a bf16 sum
 * of products the unit runs along the columns cols; returns the new count. */
int tc_gemm_opts(uop *sink, uop *cols, opt *out, int n);
/* TC on reduce range r (opt_apply's case): NULL + error when nothing there is bf16. */
uop *tc_apply(uop *sink, uop *r, int unit);

/* ---- lowering (lower.c) ------------------------------------------------------------------ */
uop *lower_kernel(uop *ast);
/* Adjacent output dims read only together merged into one range (merge_dims.c; the end
 * of lower_kernel). */
uop *merge_output_dims(uop *sink);

/* ---- expanding upcast lanes (expand.c): into vectors (one lane range, if vectors) and
 * unrolled copies (the others); no RANGE_UPCAST is left. */
uop *expand_lanes(uop *sink, bool vectors);

/* ---- loop bounds from gates (gate_bounds.c, used by linearize) -------------------------
 * For the sums body[0..nb) (one set of reduce loops), reduce range r (inner: the reduce
 * ranges whose loops open inside r's): when some scalar gate term is an affine comparison
 * with step 1 in r and every body is zero where it is false (a padded view), the trips
 * that can count, r = r' + *lo with 0 <= r' < *cnt (both computed outside r's loop), and
 * the bodies with those terms made true. false: r keeps all its trips. GATE_BOUNDS=0
 * turns it off. */
bool gate_bounds(uop **body, int nb, uop *r, uop *const *inner, int ninner, uop **lo, uop **cnt);

/* ---- the linear program (linearize.c) --------------------------------------------------- */
/* Instructions in order; each is a UOp whose sources are earlier instructions, CONSTs,
 * DEFINE_GLOBALs or DEFINE_VARs (immediates, never listed). Blocks:
 *   RANGE          opens a loop over [0, src0) (RANGE_THREAD: over [lo, hi) of the launch)
 *   END(range)     closes the innermost open loop, which is that range
 *   DEFINE_ACC     an accumulator (arg = its number) starting at src0
 *   ASSIGN(acc, v) acc takes v; after the loop, users read the ASSIGN: the final value
 *   INDEX, LOAD, STORE, ALU ops, VECTORIZE, GEP as in ops.def
 * A UOp may appear twice (recomputed in another scope): a source means its latest
 * appearance, which the linearizer guarantees is still in scope. */
typedef struct {
  uop **ins;
  int n, cap;
  int nbufs;         /* slots 0..nbufs-1 */
  int nout;          /* slots 0..nout-1 are written */
  int64_t global;    /* trips of the RANGE_THREAD loop (1: none) */
} linear;

bool linearize(uop *sink, linear *out);
void linear_free(linear *l);
void linear_print(FILE *f, const linear *l);
/* Floating-point ops one launch does: each float ALU instruction (per vector lane) times
 * the trips of the loops open around it (the THREAD loop's whole range). For DEBUG lines. */
double linear_flops(const linear *l);

/* ---- renderers -------------------------------------------------------------------------------
 * A renderer turns a linear program into source for a device: a name, a per-op template
 * table (designated initializers over the op table, checked for size) and a printer that
 * walks the list. Renderers live in src/renderer/ and are found by the device's renderer
 * name (renderer/render.h); codegen only calls through this table. */
typedef struct renderer {
  const char *name;
  const char *const *templates;   /* OP_COUNT entries: how each ALU op is spelled ("" none) */
  /* Source for the linear program l as entry point `name` (malloc'd), or NULL + error. */
  char *(*render)(const char *name, const linear *l);
} renderer;

/* ---- the pipeline (pipeline.c) ------------------------------------------------------------ */
typedef struct {
  uop *ast;              /* the scheduled AST, then each pass's result (retained) */
  const renderer *ren;
  opt opts[MAX_OPTS];
  int nopts;
  bool opts_given;       /* use opts as given instead of the heuristic's */
  linear lin;
  char *src;             /* rendered source (malloc'd) */
  char name[64];
} ckernel;

/* Run every pass on k (k->ast and k->ren set; opts too if opts_given). false + error. */
bool codegen_run(ckernel *k);
void ckernel_free(ckernel *k);

/* ---- BEAM search (beam.c) ------------------------------------------------------------------ */
typedef struct rt_device rt_device;
/* The fastest opt list found for the scheduled kernel ast on dev (beam of width lists,
 * BEAM_BUDGET_S seconds), from the disk cache when an earlier search stored one. Writes
 * it to out and returns its length, or -1 + error when no candidate compiled and ran. */
int beam_search(uop *ast, const renderer *ren, rt_device *dev, int width, opt *out);
typedef struct {
  int64_t searches, hits, rejects, candidates; /* searches run, answered from disk, corrupt entries */
  int64_t tc_candidates;                        /* lists with a TC opt put forward (tc.c) */
  int64_t verified;                             /* searches whose finalists were timed again */
  double seconds;
} beam_stats;
beam_stats beam_get_stats(void);

#endif
