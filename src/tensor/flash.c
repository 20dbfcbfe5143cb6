/* Fused attention: online softmax over blocks of keys, a custom backward that recomputes
 * the weights from the saved log-sum-exp. Memory is linear in T: no L x S score matrix is
 * ever stored, only L x block pieces, one block at a time.
 *
 *   forward, for each block j of `block` keys (realized before the next block starts):
 *     s   = q k_j^T * scale (+ additive mask; -inf where masked)
 *     m'  = max(m, rowmax s)        p = exp(s - m')        a = exp(m - m')
 *     l'  = l a + rowsum p          o' = o a + p v_j
 *   out = o / l,  lse = m + log l   (a row with no valid key: out 0, lse +inf)
 *
 *   backward (FlashAttention-2's), D = rowsum(dO * out), for each block j:
 *     p = exp(s - lse)   dv_j = p^T dO   ds = p * (dO v_j^T - D)
 *     dq += ds k_j * scale            dk_j = ds^T q * scale
 *
 * One set of kernels for every block: the block index is a kernel variable (cg_variable_int)
 * and each block's keys are views at a var offset (cg_slice_var), so the steps of a pass are
 * one graph up to the var's value: the schedule cache serves it and nothing compiles after
 * the first block, whatever T is. The keys are padded to a whole number of blocks (the pad
 * masked off). Each block writes only what it changes, in place (cg_assign into a view):
 * the rows from r0 of m, l, o (forward) and of dq, and dk_j, dv_j at the var offset (a
 * slice at the var of dk, dv): no full-size copy or add per block.
 * Causal attention without a mask: a key block [j0, j0 + block) changes only the query rows
 * from j0 on; the rows are trimmed to a row group's start (at most `groups` distinct row
 * counts, so at most that many sets of kernels) instead of to j0 itself: (groups + 1) /
 * (2 groups) of the untrimmed work.
 *
 * Why a host loop of realizes: in this lazy framework a block loop built as one graph leaves
 * it to the scheduler and memory planner which L x block intermediates are alive together
 * (all of them, as it stands); realizing each block's running (m, l, o) or (dq, dk, dv)
 * bounds memory by construction. The price is a realize per block (host work: a schedule
 * cache hit) and that cg_backward runs kernels when it reaches an attention node.
 *
 * Masked rows never make NaN: the exponent's shift is 0 where the running max is -inf, a
 * zero denominator is replaced by 1, and lse = +inf makes p = exp(s - lse) = 0. */
#include "flash.h"
#include "custom.h"
#include "tensor.h"
#include <math.h>
#include <string.h>

static cg_tensor *wrap(uop *u) { return tensor_new(u); }

/* The shape of the key-block loop, the same in the forward and the backward. */
typedef struct {
  int64_t L, S, bk;  /* queries, keys, keys per block */
  int64_t nblk, P;   /* blocks run; the key length the stored k, v are padded to (>= S) */
  int64_t gblk;      /* blocks per row group (causal without a mask) */
  bool causal, trim; /* trim: rows before the block's row group are skipped */
  bool bf16;         /* bfloat16 inputs: the products' operands rounded to bf16 (mm) */
} blocks;

static blocks plan_blocks(int64_t L, int64_t S, int64_t bk, bool causal, bool masked, int64_t groups, bool bf16) {
  blocks b = {.L = L, .S = S, .bk = bk, .causal = causal, .trim = causal && !masked, .bf16 = bf16};
  int64_t keys = causal && S > L ? L : S; /* causal: keys after the last query see nothing */
  b.nblk = (keys + bk - 1) / bk;
  b.P = b.nblk * bk > S ? b.nblk * bk : S;
  if (groups < 1) groups = 1;
  b.gblk = (b.nblk + groups - 1) / groups;
  if (b.gblk < 1) b.gblk = 1;
  return b;
}
/* The first query row block j updates (rows before it see none of its keys): its row
 * group's first key. */
static int64_t rows_from(const blocks *b, int64_t j) { return b->trim ? j / b->gblk * b->gblk * b->bk : 0; }
static cg_tensor *rows(cg_tensor *x, int64_t r0, int64_t L) { return r0 ? cg_slice(x, -2, r0, L, 1) : x; }
/* x @ y. bfloat16 inputs (autocast's attention, torch's numerics): both operands rounded
 * to bf16, the products summed in float32, which the TC opt runs on the CPU's bf16 unit
 * (the stored q, k, v, k^T, v^T, dO are bf16 buffers; a computed p or ds is stored rounded
 * by the scheduler, schedule.c's widen16); the softmax statistics (m, l, lse, D) and the
 * running sums (o, dq, dk, dv) stay float32. */
static cg_tensor *low(cg_tensor *x) {
  if (x && x->u->op == OP_CAST && x->u->dt.scalar == CG_FLOAT32 && x->u->src[0]->dt.scalar == CG_BFLOAT16) return x; /* rounded already */
  return cg_cast(cg_cast(x, CG_BFLOAT16), CG_FLOAT32);
}
static cg_tensor *mm(const blocks *b, cg_tensor *x, cg_tensor *y) { return b->bf16 ? cg_matmul(low(x), low(y)) : cg_matmul(x, y); }

/* x (..., S, d) or (..., d, S) along `dim` padded with zeros to P keys */
static cg_tensor *pad_keys(cg_tensor *x, int dim, int64_t P) {
  int nd = cg_ndim(x), d = dim < 0 ? dim + nd : dim;
  int64_t extra = P - cg_shape(x)[d];
  if (!extra) return x;
  int64_t pads[2 * CG_MAX_DIMS] = {0};
  pads[2 * d + 1] = extra;
  return cg_pad(x, pads, 0);
}

/* Scores of key block `blk` (a var) with the masks applied (-inf where not valid); q holds
 * the query rows from r0 on (r0 > 0 only without a mask). kt is k transposed and stored so,
 * (..., E, P): the block's scores read it along the keys, contiguous (k itself would be
 * read across its rows, a gather per key lane). Positions are int32 (int64 ones would keep
 * the kernel from vectorizing: expand.c). */
static cg_tensor *block_scores(const blocks *b, cg_tensor *q, cg_tensor *kt, cg_tensor *mask, int mask_kind, double scale, int64_t r0,
                               cg_tensor *blk) {
  int64_t bk = b->bk, L = b->L;
  cg_tensor *s = cg_mul(mm(b, q, cg_slice_var(kt, -1, blk, bk, bk)), cg_scalar(scale));
  cg_tensor *mj = NULL;
  if (mask) mj = cg_shape(mask)[cg_ndim(mask) - 1] == 1 ? mask : cg_slice_var(pad_keys(mask, -1, b->P), -1, blk, bk, bk);
  if (mask_kind == FLASH_MASK_ADD) s = cg_add(s, cg_cast(mj, cg_dtype_of(s)));
  cg_tensor *valid = mask_kind == FLASH_MASK_BOOL ? mj : NULL;
  bool ragged = b->nblk * bk > b->S;
  if (b->causal || ragged) {
    cg_tensor *cols = cg_reshape(cg_add(cg_mul(blk, cg_scalar((double)bk)), cg_arange(0, (double)bk, 1, CG_INT32)), (int64_t[]){1, bk}, 2);
    if (b->causal) {
      cg_tensor *rw = cg_reshape(cg_arange((double)r0, (double)L, 1, CG_INT32), (int64_t[]){L - r0, 1}, 2);
      cg_tensor *c = cg_ge(rw, cols);
      valid = valid ? cg_logical_and(valid, c) : c;
    }
    if (ragged) { /* the padded keys */
      cg_tensor *c = cg_lt(cols, cg_full((double)b->S, CG_INT32, NULL, 0));
      valid = valid ? cg_logical_and(valid, c) : c;
    }
  }
  /* as an additive 0 / -inf: the kernels that read it load floats, which make vectors
   * (a bool load runs lane by lane: expand.c); the scheduler stores it once per block */
  return valid ? cg_add(s, cg_where(valid, cg_scalar(0), cg_scalar(-INFINITY))) : s;
}

/* a^T b for a (..., R, M) and b (..., R, N) over a long R: as a sum of products of chunks
 * of CH rows, each stored (..., R / CH, M, N), then added up. One product over all R rows
 * (the key block's gradients: a 128 x 64 output over thousands of rows) keeps its small
 * output tile and streams the rows from memory once per tile; chunks of rows stay in
 * cache for every tile and give the threads a batch dim to share. */
static cg_tensor *matmul_tn(const blocks *bl, cg_tensor *a, cg_tensor *b) {
  enum { CH = 256 };
  int nd = cg_ndim(a);
  int64_t R = cg_shape(a)[nd - 2];
  if (R < 2 * CH || R % CH) return mm(bl, cg_transpose(a, -2, -1), b);
  int64_t sa[CG_MAX_DIMS + 1], sb[CG_MAX_DIMS + 1];
  for (int i = 0; i < nd - 2; i++) sa[i] = sb[i] = cg_shape(a)[i];
  sa[nd - 2] = sb[nd - 2] = R / CH, sa[nd - 1] = sb[nd - 1] = CH;
  sa[nd] = cg_shape(a)[nd - 1], sb[nd] = cg_shape(b)[nd - 1];
  cg_tensor *part = cg_contiguous(mm(bl, cg_transpose(cg_reshape(a, sa, nd + 1), -2, -1), cg_reshape(b, sb, nd + 1)));
  int ax = -3;
  return cg_sum(part, &ax, 1, false);
}

static cg_tensor *where_eq(cg_tensor *x, double v, double then) { return cg_where(cg_eq(x, cg_scalar(v)), cg_scalar(then), x); }

/* Replace *t by its realized value (keeping it in the enclosing scope). */
static cg_status realize_keep(cg_tensor **ts, int n) {
  cg_status st = cg_realize_many(ts, n);
  for (int i = 0; i < n; i++) cg_keep(ts[i]);
  return st;
}

/* The var that numbers the key blocks, [0, nblk - 1], from 0. It moves by host updates
 * (+1 before each block after the first, x0 after the last) rather than by
 * cg_variable_set: a JIT records updates and repeats them in its replays, so a replayed
 * step (cgrad train gpt) runs every block at its own offset and leaves the var at 0 for
 * the next replay. */
static cg_tensor *block_var(const blocks *b) { return cg_variable_int("flash_block", 0, 0, b->nblk > 0 ? b->nblk - 1 : 0); }
static void block_next(cg_tensor *blk, int64_t j) {
  if (j) tensor_var_update(blk, OP_ADD, 1);
}
static void block_reset(cg_tensor *blk) {
  if (blk) tensor_var_update(blk, OP_MUL, 0);
}

static const custom_kind FLASH;

cg_tensor *flash_attention(cg_tensor *q, cg_tensor *k, cg_tensor *v, cg_tensor *mask, int mask_kind, bool causal, double scale,
                           int64_t block, int64_t groups) {
  int nq = cg_ndim(q), nk = cg_ndim(k), nv = cg_ndim(v);
  int64_t L = cg_shape(q)[nq - 2], E = cg_shape(q)[nq - 1], S = cg_shape(k)[nk - 2], Ev = cg_shape(v)[nv - 1];
  /* one batch shape for q, k, v (broadcast), so the custom node's inputs have it; their
   * EXPANDs sum the gradients back */
  int nb = nq > nk ? nq : nk;
  nb = (nb > nv ? nb : nv) - 2;
  int64_t bs[CG_MAX_DIMS];
  for (int i = 0; i < nb; i++) {
    int64_t d = 1;
    cg_tensor *t3[3] = {q, k, v};
    for (int t = 0; t < 3; t++) {
      int o = i - (nb - (cg_ndim(t3[t]) - 2));
      int64_t x = o >= 0 ? cg_shape(t3[t])[o] : 1;
      if (x != 1 && d != 1 && x != d)
        return cg_fail_null(CG_ERR_INVALID, "scaled_dot_product_attention: the batch dims of q %s, k %s, v %s do not broadcast",
                            shape_str(cg_shape(q), nq), shape_str(cg_shape(k), nk), shape_str(cg_shape(v), nv));
      if (x != 1) d = x;
    }
    bs[i] = d;
  }
  cg_scope_begin();
  int64_t sh[CG_MAX_DIMS];
  memcpy(sh, bs, sizeof(int64_t) * (size_t)nb);
  sh[nb] = L, sh[nb + 1] = E;
  cg_tensor *qe = cg_expand(q, sh, nb + 2);
  sh[nb] = S;
  cg_tensor *ke = cg_expand(k, sh, nb + 2);
  sh[nb + 1] = Ev;
  cg_tensor *ve = cg_expand(v, sh, nb + 2);
  cg_dtype dt = cg_dtype_of(q), cdt = dt == CG_FLOAT64 ? CG_FLOAT64 : CG_FLOAT32;
  /* bf16: the stored copies stay bf16 (the products' operands, read as the TC opt wants:
   * a float32 of a bf16 load; half the bytes) */
  cg_dtype sdt = dt == CG_BFLOAT16 ? CG_BFLOAT16 : cdt;
  cg_tensor *qc = cg_cast(cg_detach(qe), sdt), *kc = cg_cast(cg_detach(ke), sdt), *vc = cg_cast(cg_detach(ve), sdt);
  cg_tensor *mk = mask ? cg_detach(mask) : NULL;
  if (!qc || !kc || !vc) {
    cg_scope_end();
    return NULL;
  }
  blocks bl = plan_blocks(L, S, block, causal, mk != NULL, groups, dt == CG_BFLOAT16);
  /* q, k, v computed once (every block reads them) and saved for the backward; k^T stored
   * for the scores; the keys padded to whole blocks */
  kc = pad_keys(kc, -2, bl.P), vc = pad_keys(vc, -2, bl.P);
  cg_tensor *kt = cg_contiguous(cg_transpose(kc, -2, -1));
  cg_tensor *qkv[4] = {qc, kc, vc, kt};
  if (!kt || realize_keep(qkv, 4) != CG_OK) {
    cg_scope_end();
    return NULL;
  }
  /* the running max, sum and output: buffers each block updates in place, its rows only
   * (assigns into a view); block 0 (every row) starts from the constants -inf, 0, 0
   * instead of reading them */
  sh[nb] = L, sh[nb + 1] = 1;
  cg_tensor *m = cg_empty(cdt, sh, nb + 2), *l = cg_empty(cdt, sh, nb + 2), *m0 = cg_full(-INFINITY, cdt, sh, nb + 2), *l0 = cg_zeros(cdt, sh, nb + 2);
  sh[nb + 1] = Ev;
  cg_tensor *o = cg_empty(cdt, sh, nb + 2), *o0 = cg_zeros(cdt, sh, nb + 2);
  cg_status st = m && l && o && m0 && l0 && o0 ? CG_OK : cg_last_status();
  int last = -1;
  cg_tensor *blk = block_var(&bl);
  for (int64_t j = 0; j < bl.nblk && st == CG_OK && blk; j++) {
    block_next(blk, j);
    cg_scope_begin();
    cg_tensor *vj = cg_slice_var(vc, -2, blk, block, block);
    int64_t r0 = rows_from(&bl, j);
    cg_tensor *mr = rows(m, r0, L), *lr = rows(l, r0, L), *orr = rows(o, r0, L); /* block 0: r0 = 0 */
    cg_tensor *mv = j ? mr : m0, *lv = j ? lr : l0, *ov = j ? orr : o0;
    cg_tensor *s = block_scores(&bl, rows(qc, r0, L), kt, mk, mask_kind, scale, r0, blk);
    cg_tensor *mn = cg_maximum(mv, cg_max(s, &last, 1, true));
    cg_tensor *shift = where_eq(mn, -INFINITY, 0);
    cg_tensor *p = cg_exp(cg_sub(s, shift)), *a = cg_exp(cg_sub(mv, shift));
    /* bf16: p rounded once, the sum and p v read the same rounded weights (the exp runs
     * once: a float32 p for the sum would be computed again, the rounded one is stored) */
    if (bl.bf16) p = low(p);
    cg_tensor *nl = cg_add(cg_mul(lv, a), cg_sum(p, &last, 1, true)), *no = cg_add(cg_mul(ov, a), mm(&bl, p, vj));
    /* l and o read m's old rows: the scheduler runs them before m's assign */
    st = nl && no && mn ? cg_assign(lr, nl) : cg_last_status();
    if (st == CG_OK) st = cg_assign(orr, no);
    if (st == CG_OK) st = cg_assign(mr, mn);
    cg_tensor *nx[3] = {mr, lr, orr};
    if (st == CG_OK) st = cg_realize_many(nx, 3);
    cg_scope_end();
    if (st != CG_OK) break;
  }
  if (!blk) st = cg_last_status();
  block_reset(blk);
  cg_tensor *res = NULL;
  if (st == CG_OK) {
    cg_tensor *fin[2] = {cg_cast(cg_div(o, where_eq(l, 0, 1)), dt),
                         cg_where(cg_eq(l, cg_scalar(0)), cg_scalar(INFINITY), cg_add(where_eq(m, -INFINITY, 0), cg_log(l)))};
    if (fin[0] && fin[1] && cg_realize_many(fin, 2) == CG_OK) {
      /* CUSTOM(out, q, k, v, lse, saved q, k, v (k, v padded to whole blocks), k^T[, mask])
       * with params [scale bits, causal, block, mask kind, row groups]: k^T kept for the
       * backward's scores (a transposed copy, a gather, costs more than keeping it) */
      int64_t par[5];
      memcpy(&par[0], &scale, sizeof scale);
      par[1] = causal, par[2] = block, par[3] = mask_kind, par[4] = groups;
      uop *srcs[9] = {qe->u, ke->u, ve->u, fin[1]->u, qc->u, kc->u, vc->u, kt->u, mask ? mask->u : NULL};
      op_begin();
      res = op_end(custom_node(&FLASH, fin[0]->u, srcs, mask ? 9 : 8, par, 5));
      cg_keep(res);
    }
  }
  cg_scope_end();
  return res;
}

/* ---- backward ------------------------------------------------------------------------- */

static void flash_backward(uop *node, uop *g, uop **d) {
  double scale;
  int64_t p0 = custom_param(node, 0);
  memcpy(&scale, &p0, sizeof scale);
  bool causal = custom_param(node, 1) != 0;
  int64_t block = custom_param(node, 2);
  int mask_kind = (int)custom_param(node, 3);
  int64_t groups = custom_param(node, 4);
  cg_scope_begin();
  cg_tensor *q = wrap(node->src[1]), *k = wrap(node->src[2]), *v = wrap(node->src[3]), *lse = wrap(node->src[4]);
  cg_tensor *mask = node->nsrc > 9 ? wrap(node->src[9]) : NULL, *out = wrap(node->src[0]);
  cg_dtype cdt = cg_dtype_of(lse);
  int nd = cg_ndim(q);
  int64_t L = cg_shape(q)[nd - 2], S = cg_shape(k)[nd - 2];
  blocks bl = plan_blocks(L, S, block, causal, mask != NULL, groups, node->src[5]->dt.scalar == CG_BFLOAT16);
  /* the forward's stored copies (computing q, k, v again would run the layers below); k, v
   * padded to P keys */
  cg_tensor *qc = wrap(node->src[5]), *kc = wrap(node->src[6]), *vc = wrap(node->src[7]);
  cg_tensor *dO = cg_cast(wrap(g), bl.bf16 ? CG_BFLOAT16 : cdt); /* bf16: a products' operand, stored so */
  int last = -1;
  cg_tensor *Dv = cg_sum(cg_mul(cg_cast(dO, cdt), cg_cast(out, cdt)), &last, 1, true);
  /* k^T (the forward's) for the scores and v^T for dO v^T, stored so that a block reads
   * them along keys */
  cg_tensor *kt = wrap(node->src[8]), *vt = cg_contiguous(cg_transpose(vc, -2, -1));
  /* the gradients, updated in place: dq's rows from r0 by every block (block 0 writes all
   * of them first), dk's and dv's rows of block j by block j alone (zeros first only where
   * some rows get no block: the keys a causal pass never reaches) */
  bool all_rows = bl.nblk * bl.bk == bl.P;
  cg_tensor *dq = cg_empty(cdt, cg_shape(qc), nd), *dk = all_rows ? cg_empty(cdt, cg_shape(kc), nd) : cg_zeros(cdt, cg_shape(kc), nd);
  cg_tensor *dv = all_rows ? cg_empty(cdt, cg_shape(vc), nd) : cg_zeros(cdt, cg_shape(vc), nd);
  cg_tensor *pre[9] = {dO, Dv, qc, kc, vc, kt, vt, dk, dv};
  cg_status st = kt && vt && dq && dk && dv ? cg_realize_many(pre, 9) : cg_last_status();
  cg_tensor *blk = block_var(&bl);
  if (st == CG_OK && !blk) st = cg_last_status();
  for (int64_t j = 0; j < bl.nblk && st == CG_OK; j++) {
    block_next(blk, j);
    cg_scope_begin();
    cg_tensor *kj = cg_slice_var(kc, -2, blk, block, block);
    int64_t r0 = rows_from(&bl, j); /* rows before r0 have p = 0 for this block */
    cg_tensor *qr = rows(qc, r0, L), *dOr = rows(dO, r0, L);
    cg_tensor *s = block_scores(&bl, qr, kt, mask, mask_kind, scale, r0, blk);
    cg_tensor *p = cg_exp(cg_sub(s, rows(lse, r0, L))), *pm = p;
    /* bf16: p rounded once and ds computed from the rounded p (as the forward's sum and
     * product read it): the scores' kernel stores only the bf16 p, no float32 s or p; ds
     * rounded once too, before the transposes (one stored bf16 ds for both products) */
    if (bl.bf16) pm = cg_cast(p, CG_BFLOAT16), p = cg_cast(pm, CG_FLOAT32);
    cg_tensor *ds = cg_mul(p, cg_sub(mm(&bl, dOr, cg_slice_var(vt, -1, blk, block, block)), rows(Dv, r0, L)));
    if (bl.bf16) ds = cg_cast(ds, CG_BFLOAT16);
    cg_tensor *dkj = cg_mul(matmul_tn(&bl, ds, qr), cg_scalar(scale)), *dvj = matmul_tn(&bl, pm, dOr);
    cg_tensor *dqr = rows(dq, r0, L), *dkv = cg_slice_var(dk, -2, blk, block, block), *dvv = cg_slice_var(dv, -2, blk, block, block);
    cg_tensor *ndq = cg_mul(mm(&bl, ds, kj), cg_scalar(scale)); /* block 0 (every row: r0 = 0) starts dq */
    if (j) ndq = cg_add(dqr, ndq);
    st = ndq && dkj && dvj && dkv && dvv ? cg_assign(dqr, ndq) : cg_last_status();
    if (st == CG_OK) st = cg_assign(dkv, dkj);
    if (st == CG_OK) st = cg_assign(dvv, dvj);
    cg_tensor *nx[3] = {dqr, dkv, dvv};
    if (st == CG_OK) st = cg_realize_many(nx, 3);
    cg_scope_end();
    if (st != CG_OK) break;
  }
  block_reset(blk);
  if (st == CG_OK) {
    /* the gradients outlive this scope in the backward's pool; the padded keys dropped */
    cg_tensor *r[3] = {cg_cast(dq, cg_dtype_of(q)), cg_cast(cg_slice(dk, -2, 0, S, 1), cg_dtype_of(k)),
                       cg_cast(cg_slice(dv, -2, 0, S, 1), cg_dtype_of(v))};
    for (int i = 0; i < 3; i++) d[1 + i] = r[i] ? uop_pool_keep(uop_retain(r[i]->u)) : NULL;
  }
  else custom_fail(st); /* cg_backward reports it */
  cg_scope_end();
}

static const custom_kind FLASH = {"flash_attention", flash_backward, true};
