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
 * Why eager blocks: in this lazy framework a block loop built as one graph leaves it to the
 * scheduler and memory planner which L x block intermediates are alive together (all of
 * them, as it stands); realizing each block's running (m, l, o) or (dq, dk_j, dv_j) bounds
 * memory by construction. The price is a realize per block (host work per step) and that
 * cg_backward runs kernels when it reaches an attention node. When the scheduler can fuse
 * a reduce over keys of a reduce over features into one kernel, the loop can become three
 * lazy reductions with the same custom backward.
 *
 * Masked rows never make NaN: the exponent's shift is 0 where the running max is -inf, a
 * zero denominator is replaced by 1, and lse = +inf makes p = exp(s - lse) = 0. */
#include "flash.h"
#include "custom.h"
#include "tensor.h"
#include <math.h>
#include <string.h>

static cg_tensor *wrap(uop *u) { return tensor_new(u); }

/* The key-block's validity (bool (L - r0, bc)) for the causal mask over rows r0 .. L-1. */
static cg_tensor *causal_valid(int64_t r0, int64_t L, int64_t j0, int64_t j1) {
  cg_tensor *rows = cg_reshape(cg_arange((double)r0, (double)L, 1, CG_INT64), (int64_t[]){L - r0, 1}, 2);
  cg_tensor *cols = cg_reshape(cg_arange((double)j0, (double)j1, 1, CG_INT64), (int64_t[]){1, j1 - j0}, 2);
  return cg_ge(rows, cols);
}

/* Scores of one key block with the masks applied (-inf where not valid); q holds the
 * query rows from r0 on (r0 > 0 only without a mask: see rows_from). */
static cg_tensor *block_scores(cg_tensor *q, cg_tensor *kj, cg_tensor *mask, int mask_kind, bool causal, double scale, int64_t r0,
                               int64_t j0, int64_t j1) {
  int64_t L = r0 + cg_shape(q)[cg_ndim(q) - 2];
  cg_tensor *s = cg_mul(cg_matmul(q, cg_transpose(kj, -2, -1)), cg_scalar(scale));
  cg_tensor *mj = NULL;
  if (mask) mj = cg_shape(mask)[cg_ndim(mask) - 1] == 1 ? mask : cg_slice(mask, -1, j0, j1, 1);
  if (mask_kind == FLASH_MASK_ADD) s = cg_add(s, cg_cast(mj, cg_dtype_of(s)));
  cg_tensor *valid = mask_kind == FLASH_MASK_BOOL ? mj : causal ? causal_valid(r0, L, j0, j1) : NULL;
  return valid ? cg_where(valid, s, cg_scalar(-INFINITY)) : s;
}

/* Causal attention without a mask: the query rows a key block [j0, j1) can change, those
 * from j0 on (a row i sees keys j <= i); rows before it keep their running values, so each
 * block computes only L - j0 rows (about half of the work at T >> block). */
static int64_t rows_from(bool causal, const cg_tensor *mask, int64_t j0) { return causal && !mask ? j0 : 0; }
static cg_tensor *rows(cg_tensor *x, int64_t r0, int64_t L) { return r0 ? cg_slice(x, -2, r0, L, 1) : x; }
/* x with rows r0 .. L-1 replaced by new rows nr */
static cg_tensor *with_rows(cg_tensor *x, cg_tensor *nr, int64_t r0) {
  return r0 ? cg_cat((cg_tensor *[]){cg_slice(x, -2, 0, r0, 1), nr}, 2, -2) : nr;
}

static cg_tensor *where_eq(cg_tensor *x, double v, double then) { return cg_where(cg_eq(x, cg_scalar(v)), cg_scalar(then), x); }

/* Replace *t by its realized value (keeping it in the enclosing scope). */
static cg_status realize_keep(cg_tensor **ts, int n) {
  cg_status st = cg_realize_many(ts, n);
  for (int i = 0; i < n; i++) cg_keep(ts[i]);
  return st;
}

static const custom_kind FLASH;

cg_tensor *flash_attention(cg_tensor *q, cg_tensor *k, cg_tensor *v, cg_tensor *mask, int mask_kind, bool causal, double scale,
                           int64_t block) {
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
  cg_tensor *qc = cg_cast(cg_detach(qe), cdt), *kc = cg_cast(cg_detach(ke), cdt), *vc = cg_cast(cg_detach(ve), cdt);
  cg_tensor *mk = mask ? cg_detach(mask) : NULL;
  if (!qc || !kc || !vc) {
    cg_scope_end();
    return NULL;
  }
  /* q, k, v computed once (every block reads them) and saved for the backward */
  cg_tensor *qkv[3] = {qc, kc, vc};
  if (realize_keep(qkv, 3) != CG_OK) {
    cg_scope_end();
    return NULL;
  }
  sh[nb] = L, sh[nb + 1] = 1;
  cg_tensor *m = cg_full(-INFINITY, cdt, sh, nb + 2), *l = cg_zeros(cdt, sh, nb + 2);
  sh[nb + 1] = Ev;
  cg_tensor *o = cg_zeros(cdt, sh, nb + 2);
  cg_status st = CG_OK;
  int last = -1;
  for (int64_t j0 = 0; j0 < S && st == CG_OK; j0 += block) {
    int64_t j1 = j0 + block < S ? j0 + block : S;
    if (causal && j0 > L - 1) break; /* every key of the block is after every query */
    cg_scope_begin();
    cg_tensor *kj = cg_slice(kc, -2, j0, j1, 1), *vj = cg_slice(vc, -2, j0, j1, 1);
    int64_t r0 = rows_from(causal, mk, j0);
    cg_tensor *mr = rows(m, r0, L), *lr = rows(l, r0, L), *orr = rows(o, r0, L);
    cg_tensor *s = block_scores(rows(qc, r0, L), kj, mk, mask_kind, causal, scale, r0, j0, j1);
    cg_tensor *mn = cg_maximum(mr, cg_max(s, &last, 1, true));
    cg_tensor *shift = where_eq(mn, -INFINITY, 0);
    cg_tensor *p = cg_exp(cg_sub(s, shift)), *a = cg_exp(cg_sub(mr, shift));
    cg_tensor *nx[3] = {with_rows(m, mn, r0), with_rows(l, cg_add(cg_mul(lr, a), cg_sum(p, &last, 1, true)), r0),
                        with_rows(o, cg_add(cg_mul(orr, a), cg_matmul(p, vj)), r0)};
    st = nx[0] && nx[1] && nx[2] ? realize_keep(nx, 3) : cg_last_status();
    cg_scope_end();
    if (st != CG_OK) break;
    cg_free(m), cg_free(l), cg_free(o);
    m = nx[0], l = nx[1], o = nx[2];
  }
  cg_tensor *res = NULL;
  if (st == CG_OK) {
    cg_tensor *fin[2] = {cg_cast(cg_div(o, where_eq(l, 0, 1)), dt),
                         cg_where(cg_eq(l, cg_scalar(0)), cg_scalar(INFINITY), cg_add(where_eq(m, -INFINITY, 0), cg_log(l)))};
    if (fin[0] && fin[1] && cg_realize_many(fin, 2) == CG_OK) {
      /* CUSTOM(out, q, k, v, lse, saved q, k, v[, mask]) with params [scale bits, causal,
       * block, mask kind] */
      int64_t par[4];
      memcpy(&par[0], &scale, sizeof scale);
      par[1] = causal, par[2] = block, par[3] = mask_kind;
      uop *srcs[8] = {qe->u, ke->u, ve->u, fin[1]->u, qc->u, kc->u, vc->u, mask ? mask->u : NULL};
      op_begin();
      res = op_end(custom_node(&FLASH, fin[0]->u, srcs, mask ? 8 : 7, par, 4));
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
  cg_scope_begin();
  cg_tensor *q = wrap(node->src[1]), *k = wrap(node->src[2]), *v = wrap(node->src[3]), *lse = wrap(node->src[4]);
  cg_tensor *mask = node->nsrc > 8 ? wrap(node->src[8]) : NULL, *out = wrap(node->src[0]);
  cg_dtype cdt = cg_dtype_of(lse);
  int nd = cg_ndim(q);
  int64_t L = cg_shape(q)[nd - 2], S = cg_shape(k)[nd - 2];
  /* the forward's stored copies (computing q, k, v again would run the layers below) */
  cg_tensor *qc = wrap(node->src[5]), *kc = wrap(node->src[6]), *vc = wrap(node->src[7]);
  cg_tensor *dO = cg_cast(wrap(g), cdt);
  int last = -1;
  cg_tensor *Dv = cg_sum(cg_mul(dO, cg_cast(out, cdt)), &last, 1, true);
  cg_tensor *pre[5] = {dO, Dv, qc, kc, vc};
  cg_status st = cg_realize_many(pre, 5);
  int64_t nblk = (S + block - 1) / block;
  cg_tensor **dk = cg_calloc((size_t)(nblk ? nblk : 1), sizeof *dk), **dv = cg_calloc((size_t)(nblk ? nblk : 1), sizeof *dv);
  if (st == CG_OK && (!dk || !dv)) st = CG_ERR_NOMEM; /* recorded by cg_calloc */
  cg_tensor *dq = cg_zeros(cdt, cg_shape(qc), nd);
  for (int64_t b = 0; b < nblk && st == CG_OK; b++) {
    int64_t j0 = b * block, j1 = j0 + block < S ? j0 + block : S;
    int64_t shk[CG_MAX_DIMS], shv[CG_MAX_DIMS];
    memcpy(shk, cg_shape(kc), sizeof(int64_t) * (size_t)nd), memcpy(shv, cg_shape(vc), sizeof(int64_t) * (size_t)nd);
    shk[nd - 2] = shv[nd - 2] = j1 - j0;
    if (causal && j0 > L - 1) { /* skipped in the forward: no gradient */
      dk[b] = cg_zeros(cdt, shk, nd), dv[b] = cg_zeros(cdt, shv, nd); /* freed with this scope */
      continue;
    }
    cg_scope_begin();
    cg_tensor *kj = cg_slice(kc, -2, j0, j1, 1), *vj = cg_slice(vc, -2, j0, j1, 1);
    int64_t r0 = rows_from(causal, mask, j0); /* rows before r0 have p = 0 for this block */
    cg_tensor *qr = rows(qc, r0, L), *dOr = rows(dO, r0, L);
    cg_tensor *s = block_scores(qr, kj, mask, mask_kind, causal, scale, r0, j0, j1);
    cg_tensor *p = cg_exp(cg_sub(s, rows(lse, r0, L)));
    cg_tensor *ds = cg_mul(p, cg_sub(cg_matmul(dOr, cg_transpose(vj, -2, -1)), rows(Dv, r0, L)));
    cg_tensor *nx[3] = {with_rows(dq, cg_add(rows(dq, r0, L), cg_mul(cg_matmul(ds, kj), cg_scalar(scale))), r0),
                        cg_mul(cg_matmul(cg_transpose(ds, -2, -1), qr), cg_scalar(scale)), cg_matmul(cg_transpose(p, -2, -1), dOr)};
    st = nx[0] && nx[1] && nx[2] ? realize_keep(nx, 3) : cg_last_status();
    cg_scope_end();
    if (st != CG_OK) break;
    cg_free(dq);
    dq = nx[0], dk[b] = nx[1], dv[b] = nx[2];
  }
  if (st == CG_OK) {
    /* the gradients outlive this scope in the backward's pool */
    cg_tensor *dkt = cg_cat(dk, (int)nblk, -2), *dvt = cg_cat(dv, (int)nblk, -2);
    cg_tensor *r[3] = {cg_cast(dq, cg_dtype_of(q)), cg_cast(dkt, cg_dtype_of(k)), cg_cast(dvt, cg_dtype_of(v))};
    for (int i = 0; i < 3; i++) d[1 + i] = r[i] ? uop_pool_keep(uop_retain(r[i]->u)) : NULL;
  }
  else custom_fail(st); /* cg_backward reports it */
  free(dk), free(dv);
  cg_scope_end();
}

static const custom_kind FLASH = {"flash_attention", flash_backward, true};
